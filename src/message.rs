//! An application message on its way from a publisher to subscribers.
//!
//! Below sessions, stores and the broker, which all hold it.
//! Created once per incoming PUBLISH and shared by `Arc` between every shard and session that
//! delivers it, so the payload is never copied per subscriber. What a store needs to keep a
//! message across a restart is in it: an id that no other message of this broker has had or will
//! have, and its expiry as wall-clock time (a monotonic `Instant` means nothing after a restart).

use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;

use crate::protocol::{Properties, Publish, QoS};

/// Nanoseconds since the Unix epoch: the wall clock that message expiry and arrival times use.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// Identifies one message across shards and restarts.
///
/// `seq` counts up from the wall clock (in ns) at the start of the shard that accepted the
/// message, one per message: a later run starts above every id of an earlier one, because no
/// shard accepts more than one message per nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId {
    /// Position in the accepting shard's sequence.
    pub seq: u64,
    /// The shard that accepted it.
    pub shard: u16,
}

/// Hands out message ids on one shard.
#[derive(Debug)]
pub struct MessageIds {
    next: Cell<u64>,
    shard: u16,
}

impl MessageIds {
    /// Ids for messages accepted by `shard`, starting at the current wall-clock time.
    pub fn new(shard: usize) -> MessageIds {
        MessageIds { next: Cell::new(wall_ns()), shard: shard as u16 }
    }

    /// The next id.
    pub fn next(&self) -> MessageId {
        let seq = self.next.get();
        self.next.set(seq + 1);
        MessageId { seq, shard: self.shard }
    }
}

/// A routed application message.
#[derive(Debug)]
pub struct Message {
    /// Stable identity (see [`MessageId`]).
    pub id: MessageId,
    /// Tenant namespace the message lives in; it never leaves it.
    pub tenant: ByteString,
    /// Topic name (aliases already resolved).
    pub topic: ByteString,
    /// Payload, shared.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// Properties forwarded to subscribers (no topic alias or subscription identifiers; the message
    /// expiry interval is recomputed from `expires_ns` on each delivery). `None` when there are
    /// none, which keeps the common message small.
    pub properties: Option<Box<Properties>>,
    /// When the message expires (wall clock, ns since the epoch), from the v5 message expiry
    /// interval.
    pub expires_ns: Option<u64>,
    /// Who published it: for the v5 no-local option and for back-pressure.
    pub origin: Publisher,
    /// When its PUBLISH reached the broker (kernel receive time, ns since the epoch); orders it
    /// against subscriptions made on other shards and ages the replay window.
    pub arrived_ns: u64,
    /// The copy made for keeping (see [`Message::for_keeping`]), made once and shared.
    pub kept: KeptCopy,
}

/// A message's copy for keeping, or the mark that the message is such a copy already.
#[derive(Debug, Default)]
pub struct KeptCopy {
    copy: std::sync::OnceLock<Arc<Message>>,
    is_copy: bool,
}

impl KeptCopy {
    /// The mark of a message that owns its buffers already (restored from a store, made by the
    /// broker itself).
    pub fn owned() -> KeptCopy {
        KeptCopy { copy: std::sync::OnceLock::new(), is_copy: true }
    }
}

impl Message {
    /// Builds a message from an incoming PUBLISH whose topic has been resolved; `now_ns` is the
    /// wall clock that its expiry interval counts from.
    pub fn from_publish(id: MessageId, tenant: ByteString, origin: Publisher, topic: ByteString, mut p: Box<Publish>, now_ns: u64, arrived_ns: u64) -> Message {
        let expires_ns = p.properties.message_expiry_interval.map(|s| now_ns.saturating_add(u64::from(s) * NS_PER_SEC));
        let pp = &p.properties;
        let forwarded = pp.payload_format_indicator.is_some()
            || pp.content_type.is_some()
            || pp.response_topic.is_some()
            || pp.correlation_data.is_some()
            || !pp.user_properties.is_empty();
        let properties = forwarded.then(|| {
            let mut props = std::mem::take(&mut p.properties);
            props.message_expiry_interval = None;
            props.topic_alias = None;
            props.subscription_identifiers.clear();
            Box::new(props)
        });
        Message {
            id,
            tenant,
            topic,
            payload: std::mem::take(&mut p.payload),
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_ns,
            origin,
            arrived_ns,
            kept: KeptCopy::default(),
        }
    }

    /// A QoS 0 message that the broker itself publishes (`$SYS`), owning its buffers.
    pub fn from_broker(id: MessageId, tenant: ByteString, topic: ByteString, payload: Bytes, retain: bool, origin: Publisher) -> Message {
        let now = wall_ns();
        Message {
            id,
            tenant,
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain,
            properties: None,
            expires_ns: None,
            origin,
            arrived_ns: now,
            kept: KeptCopy::owned(),
        }
    }

    /// The message as it should be kept for long (queued, retained): payload and topic in
    /// allocations of their own. A message decoded from a read buffer shares that buffer, often
    /// 64 KiB, so a small message kept as it is would pin all of it, and the bytes counted
    /// against the queue limits would not be the bytes held. The copy is made once per message
    /// and shared by every session and shard that keeps it.
    pub fn for_keeping(self: &Arc<Self>) -> Arc<Message> {
        if self.kept.is_copy {
            return self.clone();
        }
        self.kept
            .copy
            .get_or_init(|| {
                Arc::new(Message {
                    id: self.id,
                    tenant: self.tenant.clone(),
                    topic: ByteString::from(&*self.topic),
                    payload: Bytes::copy_from_slice(&self.payload),
                    qos: self.qos,
                    retain: self.retain,
                    properties: self.properties.clone(),
                    expires_ns: self.expires_ns,
                    origin: self.origin.clone(),
                    arrived_ns: self.arrived_ns,
                    kept: KeptCopy::owned(),
                })
            })
            .clone()
    }

    /// Whole seconds of life left at `now_ns` (rounded up, at least 1), `None` for no expiry; an
    /// expired message returns `Err`.
    pub fn remaining_expiry(&self, now_ns: u64) -> Result<Option<u32>, Expired> {
        match self.expires_ns {
            None => Ok(None),
            Some(at) if at <= now_ns => Err(Expired),
            Some(at) => {
                let secs = (at - now_ns).div_ceil(NS_PER_SEC);
                Ok(Some(secs.clamp(1, u64::from(u32::MAX)) as u32))
            }
        }
    }
}

/// The session that published a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Client id, for the v5 no-local option.
    pub client_id: ByteString,
    /// Session uid on its home shard; 0 when no client session can be held back (wills, `$SYS`).
    pub uid: u64,
    /// The publisher's home shard.
    pub shard: usize,
}

impl Publisher {
    /// A publisher that back-pressure cannot hold (a will, the broker itself).
    pub fn unpaced(client_id: ByteString, shard: usize) -> Publisher {
        Publisher { client_id, uid: 0, shard }
    }
}

/// The message's expiry interval has passed; it must not be delivered [MQTT-3.3.2-5].
#[derive(Debug, Clone, Copy)]
pub struct Expired;

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(payload: Bytes, expiry: Option<u32>) -> Box<Publish> {
        let properties = Properties { message_expiry_interval: expiry, ..Properties::default() };
        Box::new(Publish { dup: false, qos: QoS::AtLeastOnce, retain: false, topic: "a/b".into(), packet_id: 1, payload, properties })
    }

    #[test]
    fn the_copy_for_keeping_is_made_once_and_owns_its_bytes() {
        // A small payload cut out of a large read buffer, as the decoder makes it.
        let buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let origin = Publisher::unpaced("c".into(), 0);
        let ids = MessageIds::new(0);
        let msg = Arc::new(Message::from_publish(ids.next(), "t".into(), origin, "a/b".into(), publish(buffer.slice(100..116), None), wall_ns(), 0));
        let kept = msg.for_keeping();
        assert!(Arc::ptr_eq(&kept, &msg.for_keeping()), "one copy per message");
        assert!(Arc::ptr_eq(&kept, &kept.for_keeping()), "a copy is kept as it is");
        assert_eq!(kept.payload, msg.payload);
        assert_ne!(kept.payload.as_ptr(), msg.payload.as_ptr(), "the copy has a buffer of its own");
        assert_eq!(&*kept.topic, "a/b");
        assert_eq!(kept.id, msg.id, "the copy is the same message");
    }

    #[test]
    fn expiry_is_wall_clock_time_and_counts_down_in_whole_seconds_mqtt_3_3_2_6() {
        let t0 = 1_700_000_000 * NS_PER_SEC;
        let origin = Publisher::unpaced("c".into(), 0);
        let m = Message::from_publish(MessageIds::new(0).next(), "t".into(), origin, "a".into(), publish(Bytes::new(), Some(10)), t0, t0);
        assert_eq!(m.expires_ns, Some(t0 + 10 * NS_PER_SEC));
        assert_eq!(m.remaining_expiry(t0).unwrap(), Some(10));
        assert_eq!(m.remaining_expiry(t0 + 2_500_000_000).unwrap(), Some(8), "rounded up");
        assert!(m.remaining_expiry(t0 + 10 * NS_PER_SEC).is_err(), "expired at the deadline");
    }

    #[test]
    fn ids_grow_and_a_later_run_starts_above_an_earlier_one() {
        let first = MessageIds::new(3);
        let a = first.next();
        let b = first.next();
        assert!(b > a && a.shard == 3);
        let later = MessageIds::new(3);
        assert!(later.next() > b);
    }
}
