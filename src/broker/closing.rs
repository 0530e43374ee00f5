//! Last words to a connection: a CONNACK that refuses, a DISCONNECT that says why, each written
//! with a time bound, and the lingering read that keeps a reset from destroying them.

use std::time::Duration;

use bytes::BytesMut;
use ratatosk_io::Transport;

use super::shard::Shard;
use super::stats::ShardCounters;
use crate::protocol::{self, reason, ConnAck, Packet, ProtocolVersion, Properties};

/// Longest the last words to a client that is being closed may take to write (its DISCONNECT,
/// the answer to a protocol error): one that does not read must not hold up its close, or a
/// shutdown.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Writes `bytes` and flushes, giving up after [`CLOSE_WRITE_TIMEOUT`].
pub async fn write_bounded<T: Transport>(stream: &mut T, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let _ = glommio::timer::timeout(CLOSE_WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await?;
        Ok(())
    })
    .await;
}

/// Writes a CONNACK refusing (or, with 0, accepting) the client, bounded in time: a client that
/// does not read must not hold its connection open.
pub async fn write_connack<T: Transport>(transport: &mut T, v: ProtocolVersion, code: u8) {
    let mut out = BytesMut::new();
    let p = Packet::ConnAck(ConnAck { session_present: false, code, properties: Properties::default() });
    if protocol::encode(&p, v, &mut out).is_ok() {
        write_bounded(transport, &out).await;
    }
}

/// Refuses a client because the broker is at a capacity limit: v5 CONNACK 0x97 (quota
/// exceeded), 3.x 0x03 (server unavailable). Counted, and logged once per shard so a storm of
/// refusals does not flood the log.
pub async fn refuse_for_capacity<T: Transport>(shard: &Shard, transport: &mut T, v: ProtocolVersion, limit: &'static str) {
    let c = &shard.counters().connections_refused;
    if c.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        tracing::warn!(limit, "refusing new clients: the broker is at its limit (raise it in the config)");
    }
    ShardCounters::add(c, 1);
    let code = if v.is_v5() { reason::QUOTA_EXCEEDED } else { reason::v3::SERVER_UNAVAILABLE };
    write_connack(transport, v, code).await;
}

/// After closing for an error, a kick or a takeover: stop sending, then read and discard what
/// the client still sends for a moment (a busy client always has some on the way). Closing a
/// socket with unread input makes the kernel reset the connection, and a reset can destroy the
/// DISCONNECT (with its reason code) before the client reads it.
pub async fn linger<T: Transport>(stream: &mut T) {
    let _ = stream.shutdown_write().await;
    let mut scratch = vec![0u8; 4096];
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        // Bounded by the timeout; ends early at EOF or error.
        while let Ok(n) = stream.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
        Ok(())
    })
    .await;
}
