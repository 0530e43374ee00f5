//! An application message on its way from a publisher to subscribers.
//!
//! Created once per incoming PUBLISH and shared by `Arc` between every shard and session that
//! delivers it, so the payload is never copied per subscriber.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;

use crate::protocol::{Properties, Publish, QoS};

/// A routed application message.
#[derive(Debug)]
pub struct Message {
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
    /// expiry interval is recomputed from `expires_at` on each delivery). `None` when there are
    /// none, which keeps the common message small.
    pub properties: Option<Box<Properties>>,
    /// When the message expires, from the v5 message expiry interval.
    pub expires_at: Option<Instant>,
    /// Who published it: for the v5 no-local option and for back-pressure.
    pub origin: Publisher,
    /// When the broker accepted it (keeps the replay window).
    pub published_at: Instant,
    /// When its PUBLISH reached the broker (kernel receive time, ns since the epoch); orders it
    /// against subscriptions made on other shards.
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

impl Message {
    /// Builds a message from an incoming PUBLISH whose topic has been resolved.
    pub fn from_publish(tenant: ByteString, origin: Publisher, topic: ByteString, mut p: Box<Publish>, now: Instant, arrived_ns: u64) -> Message {
        let expires_at = p
            .properties
            .message_expiry_interval
            .map(|s| now + std::time::Duration::from_secs(u64::from(s)));
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
            tenant,
            topic,
            payload: std::mem::take(&mut p.payload),
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at,
            origin,
            published_at: now,
            arrived_ns,
            kept: KeptCopy::default(),
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
                    tenant: self.tenant.clone(),
                    topic: ByteString::from(&*self.topic),
                    payload: Bytes::copy_from_slice(&self.payload),
                    qos: self.qos,
                    retain: self.retain,
                    properties: self.properties.clone(),
                    expires_at: self.expires_at,
                    origin: self.origin.clone(),
                    published_at: self.published_at,
                    arrived_ns: self.arrived_ns,
                    kept: KeptCopy { copy: std::sync::OnceLock::new(), is_copy: true },
                })
            })
            .clone()
    }

    /// Seconds of life left, `None` for no expiry, `Some(0)`-free: an expired message returns `Err`.
    pub fn remaining_expiry(&self, now: Instant) -> Result<Option<u32>, Expired> {
        match self.expires_at {
            None => Ok(None),
            Some(at) if at <= now => Err(Expired),
            Some(at) => {
                let secs = at.duration_since(now).as_secs_f64().ceil() as u64;
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

    #[test]
    fn the_copy_for_keeping_is_made_once_and_owns_its_bytes() {
        // A small payload cut out of a large read buffer, as the decoder makes it.
        let buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let p = Box::new(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: 1,
            payload: buffer.slice(100..116),
            properties: Properties::default(),
        });
        let origin = Publisher::unpaced("c".into(), 0);
        let msg = Arc::new(Message::from_publish("t".into(), origin, "a/b".into(), p, Instant::now(), 0));
        let kept = msg.for_keeping();
        assert!(Arc::ptr_eq(&kept, &msg.for_keeping()), "one copy per message");
        assert!(Arc::ptr_eq(&kept, &kept.for_keeping()), "a copy is kept as it is");
        assert_eq!(kept.payload, msg.payload);
        assert_ne!(kept.payload.as_ptr(), msg.payload.as_ptr(), "the copy has a buffer of its own");
        assert_eq!(&*kept.topic, "a/b");
    }
}
