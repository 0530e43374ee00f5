//! What the broker does with each packet a connected client sends.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;

use super::message::{Message, Publisher};
use super::shard::{LocalSub, RetainedQuery, SessionRef, Shard};
use super::stats::ShardCounters;
use super::lifecycle::split;
use crate::protocol::topic::is_valid_topic_filter;
use crate::protocol::{reason, Packet, Properties, PubResp, Publish, QoS, SubAck, Subscribe, UnsubAck, Unsubscribe};
use crate::session::Subscription;

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
    /// The session.
    pub session: SessionRef,
    /// Connection generation.
    pub gen: u64,
    /// Whether CONNECT set a session expiry of 0 (a DISCONNECT may not raise it [MQTT-3.14.2-2]).
    pub connect_expiry_zero: bool,
    /// When the current batch of packets was read; one clock reading serves the whole batch.
    pub now: Instant,
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
    let now = ctx.now;
    Work::Done(match packet {
        Packet::Publish(p) => return Work::Publish(p),
        Packet::Subscribe(sub) => return Work::Subscribe(Box::new(sub)),
        Packet::Unsubscribe(u) => return Work::Unsubscribe(Box::new(u)),
        Packet::PubAck(r) => {
            ctx.session.borrow_mut().on_puback(r.packet_id, now);
            Flow::Continue
        }
        Packet::PubRec(r) => {
            ctx.session.borrow_mut().on_pubrec(r.packet_id, r.reason, now);
            Flow::Continue
        }
        Packet::PubComp(r) => {
            ctx.session.borrow_mut().on_pubcomp(r.packet_id, now);
            Flow::Continue
        }
        Packet::PubRel(r) => {
            let mut s = ctx.session.borrow_mut();
            // (section 4.3.3) release the packet id; answer even an unknown one so the client can
            // finish its flow.
            let known = s.incoming_qos2.remove(&r.packet_id);
            let code = if known || !s.conn.version.is_v5() { reason::SUCCESS } else { reason::PACKET_IDENTIFIER_NOT_FOUND };
            s.send(&Packet::PubComp(PubResp { packet_id: r.packet_id, reason: code, properties: Properties::default() }));
            Flow::Continue
        }
        Packet::PingReq => {
            ctx.session.borrow_mut().send(&Packet::PingResp);
            Flow::Continue
        }
        Packet::Disconnect(d) => disconnect(ctx, d.reason, &d.properties),
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

async fn publish(ctx: &mut Ctx, mut p: Box<Publish>) -> Flow {
    let limits = &ctx.shard.config.limits;
    let (tenant, origin, topic) = {
        let mut s = ctx.session.borrow_mut();
        // Topic aliases (5.0 section 3.3.2.3.4): 0 or above our maximum is invalid; an empty topic needs a
        // known alias.
        let topic = match p.properties.topic_alias.take() {
            Some(a) if a == 0 || a > limits.topic_alias_maximum => {
                return Flow::Close(reason::TOPIC_ALIAS_INVALID, "topic alias is 0 or above the maximum in CONNACK")
            }
            Some(a) if p.topic.is_empty() => match s.in_aliases.get(&a) {
                Some(t) => t.clone(),
                None => return Flow::Close(reason::PROTOCOL_ERROR, "unknown topic alias with an empty topic"),
            },
            Some(a) => {
                s.in_aliases.insert(a, p.topic.clone());
                p.topic.clone()
            }
            None if p.topic.is_empty() => return Flow::Close(reason::PROTOCOL_ERROR, "empty topic without a topic alias"),
            None => p.topic.clone(),
        };
        if !limits.topic_fits(&topic) {
            // v5: refused with 0x90 in the acknowledgement; QoS 0 and 3.x (which cannot be told,
            // [MQTT-3.3.5-2]) are acknowledged as usual and dropped. Counted either way.
            ShardCounters::add(&ctx.shard.counters().topics_refused, 1);
            let code = if s.conn.version.is_v5() { reason::TOPIC_NAME_INVALID } else { reason::SUCCESS };
            let ack = PubResp { packet_id: p.packet_id, reason: code, properties: Properties::default() };
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => {
                    s.send(&Packet::PubAck(ack));
                }
                QoS::ExactlyOnce => {
                    if code == reason::SUCCESS {
                        // A 3.x flow still ends with PUBREL/PUBCOMP; remember the id so that
                        // flow completes normally.
                        s.incoming_qos2.insert(p.packet_id);
                    }
                    s.send(&Packet::PubRec(ack));
                }
            }
            return Flow::Continue;
        }
        if p.qos == QoS::ExactlyOnce {
            if s.incoming_qos2.contains(&p.packet_id) {
                // [MQTT-4.3.3-9] a resent QoS 2 PUBLISH is acknowledged again but not redelivered.
                s.send(&Packet::PubRec(PubResp { packet_id: p.packet_id, ..Default::default() }));
                return Flow::Continue;
            }
            if s.conn.version.is_v5() && s.incoming_qos2.len() >= usize::from(limits.receive_maximum) {
                // [MQTT-3.3.4-9] the client went past our receive maximum. Widely used clients
                // ignore it, so this is counted and tolerated up to a hard cap. 3.x has no receive
                // maximum: its packet identifiers bound it.
                ShardCounters::add(&ctx.shard.counters().receive_maximum_exceeded, 1);
                if s.incoming_qos2.len() >= usize::from(limits.max_unreleased_qos2) {
                    return Flow::Close(reason::RECEIVE_MAXIMUM_EXCEEDED, "more unreleased QoS 2 messages than limits.max_unreleased_qos2");
                }
            }
            // Recorded before routing, so that a resend after a takeover during routing is
            // recognised as a duplicate [MQTT-4.3.3].
            s.incoming_qos2.insert(p.packet_id);
        }
        (s.tenant.clone(), Publisher { client_id: s.client_id.clone(), uid: s.uid, shard: ctx.shard.id }, topic)
    };
    ShardCounters::add(&ctx.shard.counters().messages_received, 1);
    let (qos, pid) = (p.qos, p.packet_id);
    let msg = Message::from_publish(tenant, origin, topic, p, ctx.now, ctx.arrived_ns);
    // Subscribers that fell behind hold this client (see `pacing`); its connection then reads
    // no more input for a while, which is what slows it: the acknowledgement goes out at once.
    ctx.shard.publish(Arc::new(msg)).await;
    let mut s = ctx.session.borrow_mut();
    if s.generation != ctx.gen {
        return Flow::Continue;
    }
    match qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            s.send(&Packet::PubAck(PubResp { packet_id: pid, ..Default::default() }));
        }
        QoS::ExactlyOnce => {
            s.send(&Packet::PubRec(PubResp { packet_id: pid, ..Default::default() }));
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
    for (filter, options) in sub.filters {
        let (group, real) = split(&filter);
        let (v5, uid, tenant, client_id, existed, room) = {
            let s = ctx.session.borrow();
            let existed = s.subscriptions.contains_key(&filter);
            let room = existed || s.subscriptions.len() < limits.max_subscriptions;
            (s.conn.version.is_v5(), s.uid, s.tenant.clone(), s.client_id.clone(), existed, room)
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
        if !room {
            why = Some("too many subscriptions for this session (limits.max_subscriptions)");
            reasons.push(if v5 { reason::QUOTA_EXCEEDED } else { reason::v3::SUBACK_FAILURE });
            continue;
        }
        ctx.session.borrow_mut().subscriptions.insert(filter.clone(), Subscription { options, id: sub_id });
        let local = LocalSub { session: ctx.session.clone(), uid, client_id: client_id.clone(), options, id: sub_id, since_ns: ctx.arrived_ns };
        if let Some(route) = shard.add_route(&tenant, &real, group.as_ref(), local) {
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
            queries.push(RetainedQuery { tenant, filter: real, reply_to: shard.id, client_id, uid, options, sub_id });
        }
    }
    for route in announcements {
        shard.announce(route, true).await;
    }
    {
        let mut s = ctx.session.borrow_mut();
        if s.generation != ctx.gen {
            return Flow::Continue;
        }
        // A reason string only when the client did not opt out [MQTT-3.1.2-29].
        let reason_string = why.filter(|_| s.conn.problem_info).map(ByteString::from_static);
        let properties = Properties { reason_string, ..Properties::default() };
        s.send(&Packet::SubAck(SubAck { packet_id: sub.packet_id, reasons, properties }));
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
            let mut s = ctx.session.borrow_mut();
            (s.subscriptions.remove(&filter).is_some(), s.uid, s.tenant.clone())
        };
        if existed {
            let (group, real): (Option<ByteString>, ByteString) = split(&filter);
            if let Some(route) = shard.remove_route(&tenant, &real, group.as_ref(), uid) {
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
    let mut s = ctx.session.borrow_mut();
    if !s.conn.version.is_v5() {
        reasons.clear();
    }
    s.send(&Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: Properties::default() }));
    Flow::Continue
}

fn disconnect(ctx: &mut Ctx, code: u8, props: &Properties) -> Flow {
    let mut s = ctx.session.borrow_mut();
    if let Some(expiry) = props.session_expiry_interval {
        if ctx.connect_expiry_zero && expiry != 0 {
            // [MQTT-3.14.2-2]
            return Flow::Close(reason::PROTOCOL_ERROR, "session expiry set on DISCONNECT after 0 in CONNECT");
        }
        s.expiry_interval = expiry;
    }
    if code != reason::DISCONNECT_WITH_WILL {
        // [MQTT-3.14.4-3] a normal DISCONNECT discards the will.
        s.will = None;
        Flow::Disconnect { will: false }
    } else {
        Flow::Disconnect { will: true }
    }
}
