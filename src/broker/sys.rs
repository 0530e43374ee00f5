//! `$SYS/broker/...` topics: version, uptime, clients, sessions, message counts (dropped ones by
//! reason), queued bytes, back-pressure and limit refusals, published as retained messages in
//! the default tenant's namespace by shard 0 every `sys_interval` seconds.

use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use super::shard::Shard;
use super::stats::ShardCounters;
use crate::session::{DropReason, Message, Publisher};
use crate::tenant::DEFAULT_TENANT;

/// A counter summed over all shards, by its topic under `$SYS/broker/`.
type Counter = (&'static str, fn(&ShardCounters) -> &AtomicU64);

const COUNTERS: [Counter; 13] = [
    ("clients/connected", |c| &c.clients_connected),
    ("clients/parked", |c| &c.connections_parked),
    ("clients/refused", |c| &c.connections_refused),
    ("sessions", |c| &c.sessions),
    ("messages/received", |c| &c.messages_received),
    ("messages/sent", |c| &c.messages_sent),
    ("messages/dropped", |c| &c.messages_dropped),
    ("messages/queued/bytes", |c| &c.queued_bytes),
    ("retained messages/count", |c| &c.retained),
    ("publishers/paced", |c| &c.publishers_paced),
    ("publishers/pacing_timeouts", |c| &c.pacing_timeouts),
    ("topics/refused", |c| &c.topics_refused),
    ("qos2/receive_maximum_exceeded", |c| &c.receive_maximum_exceeded),
];

/// Publishes the `$SYS` topics forever.
pub async fn publish_loop(shard: Rc<Shard>) {
    let every = Duration::from_secs(shard.config.sys_interval.max(1));
    loop {
        shard.sync_counters();
        let st = &shard.stats;
        let mut values: Vec<(String, String)> = vec![
            ("$SYS/broker/version".into(), format!("ratatosk {}", env!("CARGO_PKG_VERSION"))),
            ("$SYS/broker/uptime".into(), format!("{} seconds", st.started.elapsed().as_secs())),
        ];
        for (name, pick) in COUNTERS {
            values.push((format!("$SYS/broker/{name}"), st.total(pick).to_string()));
        }
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let n = st.total(|c| &c.dropped_by_reason[i]);
            values.push((format!("$SYS/broker/messages/dropped/{}", reason.name()), n.to_string()));
        }
        for (topic, value) in values {
            let origin = Publisher::unpaced(ByteString::from_static("$SYS"), shard.id);
            let msg = Message::from_broker(shard.ids.next(), ByteString::from_static(DEFAULT_TENANT), ByteString::from(topic), Bytes::from(value), true, origin);
            shard.publish(Arc::new(msg)).await;
        }
        glommio::timer::sleep(every).await;
    }
}
