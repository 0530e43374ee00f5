//! `$SYS/broker/...` topics: version, uptime, clients and message counts, published as retained
//! messages in the default tenant's namespace by shard 0 every `sys_interval` seconds.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use super::message::Message;
use super::shard::Shard;
use super::DEFAULT_TENANT;
use crate::protocol::QoS;

/// Publishes the `$SYS` topics forever.
pub async fn publish_loop(shard: Rc<Shard>) {
    let every = Duration::from_secs(shard.config.sys_interval.max(1));
    loop {
        let st = &shard.stats;
        let values: [(&str, String); 8] = [
            ("$SYS/broker/version", format!("ratatosk {}", env!("CARGO_PKG_VERSION"))),
            ("$SYS/broker/uptime", format!("{} seconds", st.started.elapsed().as_secs())),
            ("$SYS/broker/clients/connected", st.total(|c| &c.clients_connected).to_string()),
            ("$SYS/broker/sessions", st.total(|c| &c.sessions).to_string()),
            ("$SYS/broker/messages/received", st.total(|c| &c.messages_received).to_string()),
            ("$SYS/broker/messages/sent", st.total(|c| &c.messages_sent).to_string()),
            ("$SYS/broker/messages/dropped", st.total(|c| &c.messages_dropped).to_string()),
            ("$SYS/broker/retained messages/count", st.total(|c| &c.retained).to_string()),
        ];
        for (topic, value) in values {
            let msg = Message {
                tenant: ByteString::from_static(DEFAULT_TENANT),
                topic: ByteString::from(topic),
                payload: Bytes::from(value),
                qos: QoS::AtMostOnce,
                retain: true,
                properties: None,
                expires_at: None,
                origin: ByteString::from_static("$SYS"),
                published_at: std::time::Instant::now(),
                arrived_ns: ratatosk_io::realtime_ns(),
            };
            shard.publish(Arc::new(msg)).await;
        }
        glommio::timer::sleep(every).await;
    }
}
