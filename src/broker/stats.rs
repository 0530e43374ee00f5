//! Counters for `$SYS` and metrics: one cache-line-padded block per shard, written only by its shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One shard's counters. Only the owning shard writes; `$SYS` reads all with relaxed loads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardCounters {
    /// Network connections with an accepted CONNECT.
    pub clients_connected: AtomicU64,
    /// Sessions held (connected or not).
    pub sessions: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Messages dropped (queues full, slow readers, too large for the client).
    pub messages_dropped: AtomicU64,
    /// Retained messages owned by the shard.
    pub retained: AtomicU64,
}

impl ShardCounters {
    /// Adds `n` to a counter of this shard.
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
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
