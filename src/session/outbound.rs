//! Broker → client message flow: delivery, the QoS 1/2 acknowledgements and redelivery.
//!
//! Each method takes the client's [`Outlet`] when it is connected. A QoS 1/2 message goes out at
//! once when the in-flight window has room and nothing is queued before it; otherwise it waits in
//! the queue, which is pumped into the window as acknowledgements free slots [MQTT-4.6.0-6]. A
//! persistent session stores each message and each change of its flow state.

use std::sync::Arc;

use crate::config::Limits;
use crate::protocol::{reason, Packet, PubResp, QoS};
use crate::store::FlightState;

use super::ledger::DropReason;
use super::queue::{OutFlight, OutState, QueuedMessage};
use super::{stored, Message, OutPublish, Outlet, Session};

/// One message to hand to a session.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The message.
    pub msg: &'a Arc<Message>,
    /// Granted QoS: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// Retain flag to send (retain-as-published, or set for retained replays).
    pub retain: bool,
    /// v5 subscription identifiers of every matching subscription [MQTT-3.3.4-3].
    pub sub_ids: &'a [u32],
}

impl Session {
    /// Delivers a message: sends it now when connected and the window allows, queues QoS 1/2
    /// otherwise, and drops (counting) what cannot be kept.
    pub fn deliver<O: Outlet>(&mut self, d: Delivery<'_>, out: Option<&mut O>, limits: &Limits, now_ns: u64) {
        if d.msg.remaining_expiry(now_ns).is_err() {
            self.drop_message(DropReason::Expired);
            return;
        }
        if d.qos == QoS::AtMostOnce {
            // QoS 0 is neither queued offline nor kept beyond the output buffer for a slow reader;
            // from half a buffer on, publishers are paced (briefly) so that it rarely comes to that.
            match out {
                Some(o) if o.unsent() < limits.max_output_buffer => {
                    let p = OutPublish { msg: d.msg, qos: QoS::AtMostOnce, retain: d.retain, packet_id: 0, dup: false, sub_ids: d.sub_ids, now_ns };
                    if !o.send_publish(p) {
                        self.drop_message(DropReason::TooLarge);
                    }
                }
                Some(_) => self.drop_message(DropReason::SlowReader),
                None => self.drop_message(DropReason::Offline),
            }
            return;
        }
        let order = self.flight.next_order();
        let item = QueuedMessage { order, msg: d.msg.clone(), qos: d.qos, retain: d.retain, sub_ids: d.sub_ids.to_vec() };
        match out {
            Some(o) if self.flight.queued() == 0 && self.window_has_room(o) => self.send_new(item, o, now_ns),
            _ => match self.flight.enqueue(item, limits, &self.keeper.ledger) {
                Ok(()) => {
                    if let Some(q) = self.flight.queue().last() {
                        let m = stored(q, FlightState::Queued);
                        self.persist(|store, key| {
                            store.put_message(key, &m);
                        });
                    }
                }
                Err(reason) => self.drop_message(reason),
            },
        }
    }

    fn window_has_room<O: Outlet>(&self, out: &O) -> bool {
        self.flight.in_flight() < usize::from(out.send_window())
    }

    /// Sends a message with a new packet id and puts it into the window; a message too large for
    /// the client is dropped (and forgotten by the store, if it had been queued there).
    fn send_new<O: Outlet>(&mut self, item: QueuedMessage, out: &mut O, now_ns: u64) {
        let pid = self.flight.next_pid();
        let state = if item.qos == QoS::ExactlyOnce { OutState::AwaitPubRec } else { OutState::AwaitPubAck };
        let sent = out.send_publish(OutPublish { msg: &item.msg, qos: item.qos, retain: item.retain, packet_id: pid, dup: false, sub_ids: &item.sub_ids, now_ns });
        if sent {
            let f = OutFlight { pid, item, state };
            let m = stored(&f.item, f.stored_state());
            self.persist(|store, key| {
                store.put_message(key, &m);
            });
            self.flight.push_sent(f);
        } else {
            self.drop_message(DropReason::TooLarge);
            self.forget(item.order);
        }
    }

    /// Removes a message whose flow ended from the store.
    fn forget(&self, order: u64) {
        self.persist(|store, key| {
            store.remove_message(key, order);
        });
    }

    /// Moves queued messages into the window while it has room.
    pub fn pump<O: Outlet>(&mut self, out: &mut O, now_ns: u64) {
        while self.window_has_room(out) {
            let Some(item) = self.flight.dequeue(&self.keeper.ledger) else { break };
            if item.msg.remaining_expiry(now_ns).is_err() {
                self.drop_message(DropReason::Expired);
                self.forget(item.order);
                continue;
            }
            self.send_new(item, out, now_ns);
        }
    }

    /// Resends every unacknowledged message after a reconnect with a kept session, in the original
    /// order: PUBLISH with DUP for those not yet acknowledged, PUBREL for those past PUBREC
    /// [MQTT-4.4.0-1]; then sends what the window has room for.
    pub fn resend<O: Outlet>(&mut self, out: &mut O, now_ns: u64) {
        for f in self.flight.window() {
            match f.state {
                OutState::AwaitPubAck | OutState::AwaitPubRec => {
                    // An expired message already in flight is still sent: the client may hold a
                    // partial flow for it.
                    let p = OutPublish { msg: &f.item.msg, qos: f.item.qos, retain: f.item.retain, packet_id: f.pid, dup: true, sub_ids: &f.item.sub_ids, now_ns };
                    out.send_publish(p);
                }
                OutState::AwaitPubComp => {
                    out.send(&Packet::PubRel(PubResp { packet_id: f.pid, ..Default::default() }));
                }
            }
        }
        self.pump(out, now_ns);
    }

    /// Ends the flow of the in-flight message at `i` and refills the window.
    fn complete<O: Outlet>(&mut self, i: usize, out: &mut O, now_ns: u64) {
        if let Some(f) = self.flight.remove(i) {
            self.forget(f.item.order);
        }
        self.pump(out, now_ns);
    }

    /// PUBACK from the client; returns false for an unknown packet id.
    pub fn on_puback<O: Outlet>(&mut self, pid: u16, out: &mut O, now_ns: u64) -> bool {
        match self.flight.position(pid) {
            Some(i) if self.flight.get(i).is_some_and(|f| f.state == OutState::AwaitPubAck) => {
                self.complete(i, out, now_ns);
                true
            }
            _ => false,
        }
    }

    /// PUBREC from the client: answer PUBREL, or end the flow on an error reason code.
    pub fn on_pubrec<O: Outlet>(&mut self, pid: u16, code: u8, out: &mut O, now_ns: u64) -> bool {
        let Some(i) = self.flight.position(pid) else {
            // (section 4.3.3) answer an unknown id with PUBREL "packet identifier not found" so the
            // client can finish its side.
            let code = if out.version().is_v5() { reason::PACKET_IDENTIFIER_NOT_FOUND } else { 0 };
            out.send(&Packet::PubRel(PubResp { packet_id: pid, reason: code, ..Default::default() }));
            return false;
        };
        if code >= 0x80 {
            self.complete(i, out, now_ns);
            return true;
        }
        if let Some(f) = self.flight.set_state(i, OutState::AwaitPubComp) {
            let m = stored(&f.item, f.stored_state());
            self.persist(|store, key| {
                store.put_message(key, &m);
            });
        }
        out.send(&Packet::PubRel(PubResp { packet_id: pid, ..Default::default() }));
        true
    }

    /// PUBCOMP from the client; returns false for an unknown packet id.
    pub fn on_pubcomp<O: Outlet>(&mut self, pid: u16, out: &mut O, now_ns: u64) -> bool {
        match self.flight.position(pid) {
            Some(i) if self.flight.get(i).is_some_and(|f| f.state == OutState::AwaitPubComp) => {
                self.complete(i, out, now_ns);
                true
            }
            _ => false,
        }
    }
}
