//! Counters for `$SYS` and metrics: one cache-line-padded block per shard, written only by its shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::session::{DropReason, Ledger};

/// One shard's counters. Only the owning shard writes; `$SYS` reads all with relaxed loads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardCounters {
    /// Network connections with an accepted CONNECT.
    pub clients_connected: AtomicU64,
    /// Connections parked while idle (no task; see `parked`), as of the last keep alive sweep.
    pub connections_parked: AtomicU64,
    /// Sessions held (connected or not).
    pub sessions: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Messages dropped (queues full, slow readers, too large for the client), copied from the
    /// shard's ledger.
    pub messages_dropped: AtomicU64,
    /// Messages dropped by reason, indexed like `DropReason::ALL`.
    pub dropped_by_reason: [AtomicU64; 7],
    /// Bytes queued by the shard's sessions.
    pub queued_bytes: AtomicU64,
    /// Retained messages owned by the shard.
    pub retained: AtomicU64,
    /// QoS 2 PUBLISHes from v5 clients beyond the receive maximum (tolerated up to a cap).
    pub receive_maximum_exceeded: AtomicU64,
    /// Clients refused at CONNECT because of `max_connections` / `max_sessions`.
    pub connections_refused: AtomicU64,
    /// Topic names and filters refused for `max_topic_levels` / `max_topic_length`.
    pub topics_refused: AtomicU64,
    /// Times a publisher was held back for a subscriber that fell behind.
    pub publishers_paced: AtomicU64,
    /// Times a held publisher went on because the pacing limit passed before its subscribers caught up.
    pub pacing_timeouts: AtomicU64,
}

impl ShardCounters {
    /// Copies the shard's ledger into the counters others read.
    pub fn sync(&self, ledger: &Ledger) {
        let r = Ordering::Relaxed;
        for (slot, reason) in self.dropped_by_reason.iter().zip(DropReason::ALL) {
            slot.store(ledger.drops(reason), r);
        }
        self.messages_dropped.store(ledger.total_drops(), r);
        self.queued_bytes.store(ledger.queued_bytes() as u64, r);
    }

    /// Adds `n` to a counter of this shard.
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Sets a gauge of this shard.
    pub fn set(c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge of this shard.
    pub fn sub(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).saturating_sub(n), Ordering::Relaxed);
    }
}

/// All shards' counters.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Indexed by shard id.
    pub shards: Arc<[ShardCounters]>,
    /// When the broker started.
    pub started: std::time::Instant,
}

impl Stats {
    /// Counters for `n` shards.
    pub fn new(n: usize) -> Stats {
        Stats { shards: (0..n).map(|_| ShardCounters::default()).collect(), started: std::time::Instant::now() }
    }

    /// Sum of one counter over all shards.
    pub fn total(&self, pick: impl Fn(&ShardCounters) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| pick(s).load(Ordering::Relaxed)).sum()
    }
}
