//! The session's QoS state machine and its store, driven without sockets through a recording
//! outlet.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use ratatosk_shards::Partition;

use super::*;
use crate::config::Limits;
use crate::protocol::{reason, Packet, ProtocolVersion, QoS, SubOptions};
use crate::store::memory::MemoryStore;
use crate::store::{FlightState, SessionStore};

/// What a session sent through the outlet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Publish { pid: u16, qos: QoS, dup: bool, topic: String },
    PubRel { pid: u16, code: u8 },
    Other(String),
}

/// An outlet that records instead of encoding.
struct Recorder {
    version: ProtocolVersion,
    window: u16,
    unsent: usize,
    /// Payloads larger than this are refused as too large for the client.
    max_payload: usize,
    sent: Vec<Sent>,
}

impl Recorder {
    fn new(window: u16) -> Recorder {
        Recorder { version: ProtocolVersion::V5, window, unsent: 0, max_payload: usize::MAX, sent: Vec::new() }
    }

    fn take(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }
}

impl Outlet for Recorder {
    fn version(&self) -> ProtocolVersion {
        self.version
    }
    fn send_window(&self) -> u16 {
        self.window
    }
    fn unsent(&self) -> usize {
        self.unsent
    }
    fn send(&mut self, packet: &Packet) -> bool {
        self.sent.push(match packet {
            Packet::PubRel(r) => Sent::PubRel { pid: r.packet_id, code: r.reason },
            other => Sent::Other(format!("{other:?}")),
        });
        true
    }
    fn send_publish(&mut self, p: OutPublish<'_>) -> bool {
        if p.msg.payload.len() > self.max_payload {
            return false;
        }
        self.sent.push(Sent::Publish { pid: p.packet_id, qos: p.qos, dup: p.dup, topic: p.msg.topic.to_string() });
        true
    }
}

const T0: u64 = 1_700_000_000_000_000_000;

fn keeper(store: Rc<MemoryStore>) -> Rc<Keeper> {
    Rc::new(Keeper::new(Ledger::default(), store))
}

fn session(store: &Rc<MemoryStore>) -> Session {
    Session::new(1, Partition(7), "t".into(), "c".into(), keeper(store.clone()))
}

fn msg(topic: &str, qos: QoS, expires_ns: Option<u64>) -> Arc<Message> {
    msg_sized(topic, qos, expires_ns, 4)
}

fn msg_sized(topic: &str, qos: QoS, expires_ns: Option<u64>, size: usize) -> Arc<Message> {
    thread_local!(static IDS: MessageIds = MessageIds::new(0));
    Arc::new(Message {
        id: IDS.with(MessageIds::next),
        tenant: "t".into(),
        topic: ByteString::from(topic),
        payload: Bytes::from(vec![b'x'; size]),
        qos,
        retain: false,
        properties: None,
        expires_ns,
        origin: Publisher::unpaced("p".into(), 0),
        arrived_ns: T0,
        kept: Default::default(),
    })
}

fn deliver(s: &mut Session, out: Option<&mut Recorder>, m: &Arc<Message>) {
    s.deliver(Delivery { msg: m, qos: m.qos, retain: false, sub_ids: &[] }, out, &Limits::default(), T0);
}

fn published(pid: u16, qos: QoS, dup: bool, topic: &str) -> Sent {
    Sent::Publish { pid, qos, dup, topic: topic.into() }
}

#[test]
fn qos1_goes_out_while_the_window_has_room_and_each_puback_lets_the_next_in_mqtt_4_6_0_6() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(2);
    for t in ["a", "b", "c"] {
        deliver(&mut s, Some(&mut out), &msg(t, QoS::AtLeastOnce, None));
    }
    assert_eq!(out.take(), vec![published(1, QoS::AtLeastOnce, false, "a"), published(2, QoS::AtLeastOnce, false, "b")]);
    assert_eq!((s.in_flight(), s.queued()), (2, 1), "the third waits for a free slot");
    assert!(!s.on_puback(9, &mut out, T0), "unknown packet id");
    assert!(s.on_puback(1, &mut out, T0));
    assert_eq!(out.take(), vec![published(3, QoS::AtLeastOnce, false, "c")], "in order, with a fresh packet id");
    assert!(!s.on_puback(1, &mut out, T0), "acknowledged once only");
    assert!(s.on_puback(2, &mut out, T0) && s.on_puback(3, &mut out, T0));
    assert_eq!((s.in_flight(), s.queued()), (0, 0));
}

#[test]
fn qos2_completes_with_pubrec_pubrel_pubcomp_and_ends_early_on_an_error_code_mqtt_4_3_3() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(10);
    deliver(&mut s, Some(&mut out), &msg("a", QoS::ExactlyOnce, None));
    deliver(&mut s, Some(&mut out), &msg("b", QoS::ExactlyOnce, None));
    out.take();
    assert!(!s.on_pubcomp(1, &mut out, T0), "PUBCOMP before PUBREC is not the flow");
    assert!(s.on_pubrec(1, reason::SUCCESS, &mut out, T0));
    assert_eq!(out.take(), vec![Sent::PubRel { pid: 1, code: 0 }]);
    assert!(s.on_pubcomp(1, &mut out, T0));
    assert!(!s.on_pubcomp(1, &mut out, T0));
    // [MQTT-4.3.3] a PUBREC with an error reason code ends the flow without PUBREL.
    assert!(s.on_pubrec(2, reason::QUOTA_EXCEEDED, &mut out, T0));
    assert!(out.take().is_empty());
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn pubrec_for_an_unknown_packet_id_answers_pubrel_not_found_v5() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(10);
    assert!(!s.on_pubrec(42, reason::SUCCESS, &mut out, T0));
    assert_eq!(out.take(), vec![Sent::PubRel { pid: 42, code: reason::PACKET_IDENTIFIER_NOT_FOUND }]);
    out.version = ProtocolVersion::V3_1_1;
    s.on_pubrec(42, reason::SUCCESS, &mut out, T0);
    assert_eq!(out.take(), vec![Sent::PubRel { pid: 42, code: 0 }], "3.x has no reason codes");
}

#[test]
fn a_reconnect_resends_publish_with_dup_and_pubrel_in_the_original_order_then_the_queue_mqtt_4_4_0_1() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(2);
    deliver(&mut s, Some(&mut out), &msg("a", QoS::ExactlyOnce, None));
    deliver(&mut s, Some(&mut out), &msg("b", QoS::AtLeastOnce, None));
    s.on_pubrec(1, reason::SUCCESS, &mut out, T0);
    out.take();
    // Offline: QoS 1/2 are queued, QoS 0 is not kept.
    deliver(&mut s, None, &msg("c", QoS::AtLeastOnce, None));
    deliver(&mut s, None, &msg("d", QoS::AtMostOnce, None));
    assert_eq!(s.queued(), 1);
    assert_eq!(s.keeper.ledger().drops(DropReason::Offline), 1);
    let mut again = Recorder::new(3);
    s.resend(&mut again, T0);
    assert_eq!(
        again.take(),
        vec![Sent::PubRel { pid: 1, code: 0 }, published(2, QoS::AtLeastOnce, true, "b"), published(3, QoS::AtLeastOnce, false, "c")],
        "the flows in flight continue where they were, then the queue"
    );
}

#[test]
fn the_client_receive_maximum_bounds_what_is_in_flight_mqtt_3_3_4_7() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(1);
    for t in ["a", "b", "c"] {
        deliver(&mut s, Some(&mut out), &msg(t, QoS::ExactlyOnce, None));
    }
    assert_eq!(out.take().len(), 1);
    s.on_pubrec(1, reason::SUCCESS, &mut out, T0);
    assert_eq!(out.take(), vec![Sent::PubRel { pid: 1, code: 0 }], "PUBREL does not free the slot");
    s.on_pubcomp(1, &mut out, T0);
    assert_eq!(out.take(), vec![published(2, QoS::ExactlyOnce, false, "b")]);
}

#[test]
fn a_message_that_expires_while_queued_is_dropped_not_sent_mqtt_3_3_2_5() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let mut out = Recorder::new(1);
    deliver(&mut s, Some(&mut out), &msg("a", QoS::AtLeastOnce, None));
    deliver(&mut s, Some(&mut out), &msg("soon", QoS::AtLeastOnce, Some(T0 + 1_000)));
    deliver(&mut s, Some(&mut out), &msg("later", QoS::AtLeastOnce, None));
    out.take();
    assert!(s.on_puback(1, &mut out, T0 + 2_000));
    assert_eq!(out.take(), vec![published(2, QoS::AtLeastOnce, false, "later")], "the expired one never took a packet id");
    assert_eq!(s.keeper.ledger().drops(DropReason::Expired), 1);
    deliver(&mut s, Some(&mut out), &msg("gone", QoS::AtLeastOnce, Some(T0 - 1)));
    assert_eq!(s.queued(), 0, "an expired message is not even queued");
    assert_eq!(s.keeper.ledger().drops(DropReason::Expired), 2);
}

#[test]
fn qos0_is_dropped_for_a_slow_reader_and_too_large_messages_are_dropped_mqtt_3_1_2_25() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let limits = Limits::default();
    let mut out = Recorder::new(10);
    out.unsent = limits.max_output_buffer;
    deliver(&mut s, Some(&mut out), &msg("a", QoS::AtMostOnce, None));
    assert!(out.take().is_empty());
    assert_eq!(s.keeper.ledger().drops(DropReason::SlowReader), 1);
    out.unsent = 0;
    out.max_payload = 10;
    deliver(&mut s, Some(&mut out), &msg_sized("big", QoS::AtLeastOnce, None, 11));
    assert_eq!(s.keeper.ledger().drops(DropReason::TooLarge), 1);
    assert_eq!(s.in_flight(), 0, "never in flight");
}

#[test]
fn an_incoming_qos2_id_is_a_duplicate_until_released_mqtt_4_3_3_9() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    assert!(s.receive_qos2(5));
    assert!(!s.receive_qos2(5), "resent before PUBREL: a duplicate");
    assert!(s.is_unreleased(5) && s.unreleased() == 1);
    assert!(s.release_qos2(5));
    assert!(!s.release_qos2(5));
    assert!(s.receive_qos2(5), "a new message may reuse the id");
}

fn sub(qos: QoS) -> Subscription {
    Subscription { options: SubOptions { qos, ..SubOptions::default() }, id: Some(3) }
}

#[test]
fn a_session_that_ends_with_its_connection_writes_nothing_to_the_store() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    s.connected(0, None);
    s.subscribe("a/#".into(), sub(QoS::AtLeastOnce));
    deliver(&mut s, None, &msg("a/1", QoS::AtLeastOnce, None));
    s.receive_qos2(1);
    assert_eq!(store.session_count(), 0);
    assert!(SessionStore::load(&*store).unwrap().is_empty());
}

#[test]
fn a_persistent_session_restored_from_its_store_continues_every_flow_where_it_was() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    // Subscribed and holding state before it becomes persistent: all of it is written then.
    s.subscribe("early".into(), sub(QoS::AtMostOnce));
    s.receive_qos2(77);
    s.connected(NEVER_EXPIRES, None);
    s.subscribe("a/#".into(), sub(QoS::ExactlyOnce));
    s.subscribe("gone".into(), sub(QoS::AtLeastOnce));
    assert!(s.unsubscribe("gone"));
    let mut out = Recorder::new(2);
    deliver(&mut s, Some(&mut out), &msg("a/1", QoS::ExactlyOnce, None));
    deliver(&mut s, Some(&mut out), &msg("a/2", QoS::AtLeastOnce, None));
    deliver(&mut s, Some(&mut out), &msg("a/3", QoS::AtLeastOnce, None));
    deliver(&mut s, Some(&mut out), &msg("a/4", QoS::ExactlyOnce, None));
    s.on_pubrec(1, reason::SUCCESS, &mut out, T0);
    s.receive_qos2(9);
    s.receive_qos2(10);
    s.release_qos2(10);
    s.disconnected(T0 + 5);
    out.take();

    let images = SessionStore::load(&*store).unwrap();
    assert_eq!(images.len(), 1);
    let image = images.into_iter().next().unwrap();
    assert_eq!(image.record.disconnected_ns, Some(T0 + 5));
    let states: Vec<FlightState> = image.messages.iter().map(|m| m.state).collect();
    assert_eq!(states, vec![FlightState::AwaitPubComp(1), FlightState::AwaitPubAck(2), FlightState::Queued, FlightState::Queued]);

    let mut r = Session::restore(2, image, keeper(store.clone()));
    assert_eq!(r.expiry_interval(), NEVER_EXPIRES);
    let mut filters: Vec<String> = r.subscriptions().map(|(f, _)| f.to_string()).collect();
    filters.sort();
    assert_eq!(filters, vec!["a/#", "early"]);
    assert!(r.is_unreleased(9) && r.is_unreleased(77) && !r.is_unreleased(10));
    assert_eq!((r.in_flight(), r.queued()), (2, 2));
    let mut again = Recorder::new(3);
    r.resend(&mut again, T0);
    assert_eq!(
        again.take(),
        vec![Sent::PubRel { pid: 1, code: 0 }, published(2, QoS::AtLeastOnce, true, "a/2"), published(3, QoS::AtLeastOnce, false, "a/3")],
        "the restored session resends exactly what the original would"
    );
    assert!(r.on_pubcomp(1, &mut again, T0), "the QoS 2 flow finishes after the restart");
    assert_eq!(again.take(), vec![published(4, QoS::ExactlyOnce, false, "a/4")], "a fresh packet id, not one in use");

    // Ending it removes everything it stored.
    r.end();
    assert_eq!(store.session_count(), 0);
}

#[test]
fn a_will_waits_in_the_stored_record_until_taken() {
    let store = Rc::new(MemoryStore::new());
    let mut s = session(&store);
    let will = crate::protocol::LastWill { topic: "w".into(), payload: Bytes::from_static(b"bye"), qos: QoS::AtLeastOnce, retain: false, properties: Default::default() };
    s.connected(60, Some(Box::new(will)));
    assert_eq!(s.will_delay(), Some(0));
    let stored = |store: &MemoryStore| SessionStore::load(store).unwrap()[0].record.will.clone();
    assert!(stored(&store).is_some());
    assert!(s.take_will().is_some());
    assert!(stored(&store).is_none(), "taking the will updates the record");
    s.set_expiry(0);
    assert_eq!(store.session_count(), 0, "no longer persistent: removed");
}
