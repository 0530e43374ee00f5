//! What the broker does with each packet a connected client sends.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;

use super::client::ClientRef;
use super::routes::{split_filter, LocalSub};
use super::shard::Shard;
use super::shard_msg::RetainedQuery;
use super::stats::ShardCounters;
use crate::protocol::topic::is_valid_topic_filter;
use crate::protocol::{reason, Packet, Properties, PubResp, Publish, QoS, SubAck, Subscribe, UnsubAck, Unsubscribe};
use crate::session::{Message, Publisher, Subscription};
use crate::tenant::{Access, Identity};

/// What the connection does after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The client sent DISCONNECT; `will` when it asked for its will to be sent (v5 0x04).
    Disconnect {
        /// Publish the will as for a lost connection.
        will: bool,
    },
    /// Close the connection with this reason code and explanation (sent as DISCONNECT with a
    /// reason string to v5 clients).
    Close(u8, &'static str),
}

/// What a handler needs to know about its connection.
pub struct Ctx {
    /// The home shard.
    pub shard: Rc<Shard>,
    /// The client.
    pub client: ClientRef,
    /// Who the client is (its tenant, its principal), for authorization.
    pub identity: Identity,
    /// Connection generation.
    pub gen: u64,
    /// Whether CONNECT set a session expiry of 0 (a DISCONNECT may not raise it [MQTT-3.14.2-2]).
    pub connect_expiry_zero: bool,
    /// When the current batch of packets was read; one clock reading serves the whole batch.
    pub now: Instant,
    /// The same moment on the wall clock (ns since the epoch), for message expiry.
    pub now_ns: u64,
    /// When the kernel received the current batch (ns since the epoch): orders this client's
    /// packets against other clients' packets read by other shards.
    pub arrived_ns: u64,
}

/// What is left to do for a packet after [`dispatch`]: nothing, or a step that may wait.
///
/// Every variant is pointer-sized, so the connection's future never holds a whole `Packet` (with
/// its inline properties) across a wait: that kept every idle connection ~1 KiB larger.
pub enum Work {
    /// Handled; this is what the connection does next.
    Done(Flow),
    /// A PUBLISH to route.
    Publish(Box<Publish>),
    /// A SUBSCRIBE.
    Subscribe(Box<Subscribe>),
    /// An UNSUBSCRIBE.
    Unsubscribe(Box<Unsubscribe>),
}

/// Finishes what [`dispatch`] left to do.
pub async fn finish(ctx: &mut Ctx, work: Work) -> Flow {
    match work {
        Work::Done(flow) => flow,
        Work::Publish(p) => publish(ctx, p).await,
        // Boxed: rare packets with large futures would otherwise enlarge every idle connection.
        Work::Subscribe(sub) => Box::pin(subscribe(ctx, *sub)).await,
        Work::Unsubscribe(u) => Box::pin(unsubscribe(ctx, *u)).await,
    }
}

/// Handles one packet from the client: acknowledgements, PINGREQ and DISCONNECT right away; the
/// rest is handed on to [`finish`].
pub fn dispatch(ctx: &mut Ctx, packet: Packet) -> Work {
    let now_ns = ctx.now_ns;
    let mut c = ctx.client.borrow_mut();
    if c.generation() != ctx.gen {
        // Taken over while this batch was read: the new connection owns the session now.
        return Work::Done(Flow::Continue);
    }
    Work::Done(match packet {
        Packet::Publish(p) => return Work::Publish(p),
        Packet::Subscribe(sub) => return Work::Subscribe(Box::new(sub)),
        Packet::Unsubscribe(u) => return Work::Unsubscribe(Box::new(u)),
        Packet::PubAck(r) => {
            c.on_puback(r.packet_id, now_ns);
            Flow::Continue
        }
        Packet::PubRec(r) => {
            c.on_pubrec(r.packet_id, r.reason, now_ns);
            Flow::Continue
        }
        Packet::PubComp(r) => {
            c.on_pubcomp(r.packet_id, now_ns);
            Flow::Continue
        }
        Packet::PubRel(r) => {
            // (section 4.3.3) release the packet id; answer even an unknown one so the client can
            // finish its flow.
            let known = c.session_mut().release_qos2(r.packet_id);
            let v5 = c.link().is_some_and(|l| l.conn().version.is_v5());
            let code = if known || !v5 { reason::SUCCESS } else { reason::PACKET_IDENTIFIER_NOT_FOUND };
            c.send(&Packet::PubComp(PubResp { packet_id: r.packet_id, reason: code, properties: Properties::default() }));
            Flow::Continue
        }
        Packet::PingReq => {
            c.send(&Packet::PingResp);
            Flow::Continue
        }
        Packet::Disconnect(d) => {
            drop(c);
            disconnect(ctx, d.reason, &d.properties)
        }
        // No enhanced authentication method was agreed in CONNECT, so AUTH is a protocol error
        // (5.0 section 4.12); server-to-client packets from a client are protocol errors too.
        Packet::Auth(_)
        | Packet::Connect(_)
        | Packet::ConnAck(_)
        | Packet::SubAck(_)
        | Packet::UnsubAck(_)
        | Packet::PingResp => Flow::Close(reason::PROTOCOL_ERROR, "packet not allowed from a client here"),
    })
}

/// Acknowledges a PUBLISH that will not be routed (refused topic): PUBACK / PUBREC with `code`.
fn ack_refused(c: &mut super::client::Client, p: &Publish, code: u8) {
    let ack = PubResp { packet_id: p.packet_id, reason: code, properties: Properties::default() };
    match p.qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            c.send(&Packet::PubAck(ack));
        }
        QoS::ExactlyOnce => {
            if code == reason::SUCCESS {
                // A 3.x flow still ends with PUBREL/PUBCOMP; remember the id so that flow
                // completes normally.
                c.session_mut().receive_qos2(p.packet_id);
            }
            c.send(&Packet::PubRec(ack));
        }
    }
}

async fn publish(ctx: &mut Ctx, mut p: Box<Publish>) -> Flow {
    let limits = &ctx.shard.config.limits;
    let (tenant, origin, topic) = {
        let mut c = ctx.client.borrow_mut();
        let Some(link) = c.link_of(ctx.gen) else { return Flow::Continue };
        let v5 = link.conn().version.is_v5();
        // Topic aliases (5.0 section 3.3.2.3.4): 0 or above our maximum is invalid; an empty topic needs a
        // known alias.
        let topic = match p.properties.topic_alias.take() {
            Some(a) if a == 0 || a > limits.topic_alias_maximum => {
                return Flow::Close(reason::TOPIC_ALIAS_INVALID, "topic alias is 0 or above the maximum in CONNACK")
            }
            Some(a) if p.topic.is_empty() => match link.inbound_alias(a) {
                Some(t) => t.clone(),
                None => return Flow::Close(reason::PROTOCOL_ERROR, "unknown topic alias with an empty topic"),
            },
            Some(a) => {
                link.set_inbound_alias(a, p.topic.clone());
                p.topic.clone()
            }
            None if p.topic.is_empty() => return Flow::Close(reason::PROTOCOL_ERROR, "empty topic without a topic alias"),
            None => p.topic.clone(),
        };
        if !limits.topic_fits(&topic) {
            // v5: refused with 0x90 in the acknowledgement; QoS 0 and 3.x (which cannot be told,
            // [MQTT-3.3.5-2]) are acknowledged as usual and dropped. Counted either way.
            ShardCounters::add(&ctx.shard.counters().topics_refused, 1);
            ack_refused(&mut c, &p, if v5 { reason::TOPIC_NAME_INVALID } else { reason::SUCCESS });
            return Flow::Continue;
        }
        if !ctx.shard.auth.authorize(&ctx.identity, Access::Publish, &topic) {
            // v5: 0x87 in the acknowledgement; 3.x cannot be told, so it is acknowledged and
            // dropped [MQTT-3.3.5-2].
            ack_refused(&mut c, &p, if v5 { reason::NOT_AUTHORIZED } else { reason::SUCCESS });
            return Flow::Continue;
        }
        if p.qos == QoS::ExactlyOnce {
            let s = c.session_mut();
            if s.is_unreleased(p.packet_id) {
                // [MQTT-4.3.3-9] a resent QoS 2 PUBLISH is acknowledged again but not redelivered.
                c.send(&Packet::PubRec(PubResp { packet_id: p.packet_id, ..Default::default() }));
                return Flow::Continue;
            }
            if v5 && s.unreleased() >= usize::from(limits.receive_maximum) {
                // [MQTT-3.3.4-9] the client went past our receive maximum. Widely used clients
                // ignore it, so this is counted and tolerated up to a hard cap. 3.x has no receive
                // maximum: its packet identifiers bound it.
                ShardCounters::add(&ctx.shard.counters().receive_maximum_exceeded, 1);
                if s.unreleased() >= usize::from(limits.max_unreleased_qos2) {
                    return Flow::Close(reason::RECEIVE_MAXIMUM_EXCEEDED, "more unreleased QoS 2 messages than limits.max_unreleased_qos2");
                }
            }
            // Recorded before routing, so that a resend after a takeover during routing is
            // recognised as a duplicate [MQTT-4.3.3].
            s.receive_qos2(p.packet_id);
        }
        let s = c.session();
        (s.tenant().clone(), Publisher { client_id: s.client_id().clone(), uid: s.uid(), shard: ctx.shard.id }, topic)
    };
    ShardCounters::add(&ctx.shard.counters().messages_received, 1);
    let (qos, pid) = (p.qos, p.packet_id);
    let msg = Message::from_publish(ctx.shard.ids.next(), tenant, origin, topic, p, ctx.now_ns, ctx.arrived_ns);
    // Subscribers that fell behind hold this client (see `pacing`); its connection then reads
    // no more input for a while, which is what slows it: the acknowledgement goes out at once.
    ctx.shard.publish(Arc::new(msg)).await;
    if qos != QoS::AtMostOnce {
        // Acknowledged only once whatever this shard stored for it is durable (a message queued
        // for a persistent session); the in-memory store always is, so this never waits today.
        let store = ctx.shard.keeper.store();
        let commit = store.last_commit();
        if !store.is_durable(commit) {
            let wait = store.wait_durable(commit);
            if let Err(e) = Box::pin(wait).await {
                tracing::error!(error = %e, "storage failed; the publisher is not acknowledged and will resend");
                return Flow::Close(reason::UNSPECIFIED_ERROR, "the broker could not store the message");
            }
        }
    }
    let mut c = ctx.client.borrow_mut();
    if c.generation() != ctx.gen {
        return Flow::Continue;
    }
    match qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            c.send(&Packet::PubAck(PubResp { packet_id: pid, ..Default::default() }));
        }
        QoS::ExactlyOnce => {
            c.send(&Packet::PubRec(PubResp { packet_id: pid, ..Default::default() }));
        }
    }
    Flow::Continue
}

async fn subscribe(ctx: &mut Ctx, sub: Subscribe) -> Flow {
    let shard = ctx.shard.clone();
    let limits = &shard.config.limits;
    let sub_id = sub.properties.subscription_identifiers.first().copied();
    let mut reasons = Vec::with_capacity(sub.filters.len());
    let mut announcements = Vec::new();
    let mut queries = Vec::new();
    let mut why = None;
    let (v5, uid, tenant, client_id) = {
        let c = ctx.client.borrow();
        let s = c.session();
        (c.link().is_some_and(|l| l.conn().version.is_v5()), s.uid(), s.tenant().clone(), s.client_id().clone())
    };
    for (filter, options) in sub.filters {
        // Copied out of the read buffer (up to 64 KiB), which a stored slice would keep alive
        // for as long as the subscription lasts.
        let filter = ByteString::from(&*filter);
        let (group, real) = split_filter(&filter);
        let (existed, room) = {
            let c = ctx.client.borrow();
            let existed = c.session().has_subscription(&filter);
            (existed, existed || c.session().subscription_count() < limits.max_subscriptions)
        };
        if group.is_some() && options.no_local {
            // [MQTT-3.8.3-4] no local on a shared subscription is a protocol error.
            return Flow::Close(reason::PROTOCOL_ERROR, "no local on a shared subscription");
        }
        if !is_valid_topic_filter(&filter) {
            why = Some("a topic filter is invalid");
            reasons.push(if v5 { reason::TOPIC_FILTER_INVALID } else { reason::v3::SUBACK_FAILURE });
            continue;
        }
        if !limits.topic_fits(&filter) {
            // Refused before anything is stored: each level would cost a node of the index.
            ShardCounters::add(&shard.counters().topics_refused, 1);
            why = Some("a topic filter is longer than limits.max_topic_length or deeper than limits.max_topic_levels");
            reasons.push(if v5 { reason::TOPIC_FILTER_INVALID } else { reason::v3::SUBACK_FAILURE });
            continue;
        }
        if !shard.auth.authorize(&ctx.identity, Access::Subscribe, &filter) {
            why = Some("not authorized to subscribe to this filter");
            reasons.push(if v5 { reason::NOT_AUTHORIZED } else { reason::v3::SUBACK_FAILURE });
            continue;
        }
        if !room {
            why = Some("too many subscriptions for this session (limits.max_subscriptions)");
            reasons.push(if v5 { reason::QUOTA_EXCEEDED } else { reason::v3::SUBACK_FAILURE });
            continue;
        }
        ctx.client.borrow_mut().session_mut().subscribe(filter.clone(), Subscription { options, id: sub_id });
        let local = LocalSub { client: ctx.client.clone(), uid, client_id: client_id.clone(), options, id: sub_id, since_ns: ctx.arrived_ns };
        if let Some(route) = shard.routes.borrow_mut().add_local(&tenant, &real, group.as_ref(), local, shard.id) {
            announcements.push(route);
        }
        reasons.push(options.qos as u8);
        // [MQTT-3.3.1-9..11] retain handling: 0 always, 1 only for a new subscription, 2 never;
        // shared subscriptions get no retained messages (5.0 section 4.8.2).
        let wants_retained = match options.retain_handling {
            0 => true,
            1 => !existed,
            _ => false,
        };
        if group.is_none() && wants_retained {
            queries.push(RetainedQuery { tenant: tenant.clone(), filter: real, reply_to: shard.id, client_id: client_id.clone(), uid, options, sub_id });
        }
    }
    for route in announcements {
        shard.announce(route, true).await;
    }
    {
        let mut c = ctx.client.borrow_mut();
        if c.generation() != ctx.gen {
            return Flow::Continue;
        }
        // A reason string only when the client did not opt out [MQTT-3.1.2-29].
        let problem_info = c.link().is_some_and(|l| l.conn().problem_info);
        let reason_string = why.filter(|_| problem_info).map(ByteString::from_static);
        let properties = Properties { reason_string, ..Properties::default() };
        c.send(&Packet::SubAck(SubAck { packet_id: sub.packet_id, reasons, properties }));
    }
    for q in queries {
        shard.request_retained(q).await;
    }
    Flow::Continue
}

async fn unsubscribe(ctx: &mut Ctx, u: Unsubscribe) -> Flow {
    let shard = ctx.shard.clone();
    let mut reasons = Vec::with_capacity(u.filters.len());
    let mut withdrawals = Vec::new();
    for filter in u.filters {
        let (existed, uid, tenant) = {
            let mut c = ctx.client.borrow_mut();
            let existed = c.session_mut().unsubscribe(&filter);
            (existed, c.session().uid(), c.session().tenant().clone())
        };
        if existed {
            let (group, real): (Option<ByteString>, ByteString) = split_filter(&filter);
            if let Some(route) = shard.routes.borrow_mut().remove_local(&tenant, &real, group.as_ref(), uid, shard.id) {
                withdrawals.push(route);
            }
            reasons.push(reason::SUCCESS);
        } else {
            reasons.push(reason::NO_SUBSCRIPTION_EXISTED);
        }
    }
    for route in withdrawals {
        shard.announce(route, false).await;
    }
    let mut c = ctx.client.borrow_mut();
    if c.generation() != ctx.gen {
        return Flow::Continue;
    }
    if !c.link().is_some_and(|l| l.conn().version.is_v5()) {
        reasons.clear();
    }
    c.send(&Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: Properties::default() }));
    Flow::Continue
}

fn disconnect(ctx: &mut Ctx, code: u8, props: &Properties) -> Flow {
    let mut c = ctx.client.borrow_mut();
    if let Some(expiry) = props.session_expiry_interval {
        if ctx.connect_expiry_zero && expiry != 0 {
            // [MQTT-3.14.2-2]
            return Flow::Close(reason::PROTOCOL_ERROR, "session expiry set on DISCONNECT after 0 in CONNECT");
        }
        c.session_mut().set_expiry(expiry);
    }
    if code != reason::DISCONNECT_WITH_WILL {
        // [MQTT-3.14.4-3] a normal DISCONNECT discards the will.
        c.session_mut().take_will();
        Flow::Disconnect { will: false }
    } else {
        Flow::Disconnect { will: true }
    }
}
