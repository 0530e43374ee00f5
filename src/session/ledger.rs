//! A shard's account of what its sessions hold and drop: queued bytes against the shard's share
//! of `limits.max_queued_bytes_total`, and dropped messages by reason.
//!
//! Shared by every session of one shard (`Rc`, never across threads). The broker copies the
//! figures into its `$SYS` counters from time to time.

use std::cell::Cell;

/// Why a message for a session was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The session's queue holds `max_queued` messages.
    QueueFull,
    /// The session's queue holds `max_queued_bytes`.
    SessionBytes,
    /// The shard's queues together hold its share of `max_queued_bytes_total`.
    BrokerBytes,
    /// A QoS 0 message to a client whose unsent output reached `max_output_buffer`.
    SlowReader,
    /// Larger than the client's maximum packet size.
    TooLarge,
    /// Its message expiry interval passed before it could be sent.
    Expired,
    /// A QoS 0 message for a session without a connection (never queued).
    Offline,
}

impl DropReason {
    /// Every reason, in the order of [`Ledger::drops`].
    pub const ALL: [DropReason; 7] = [
        DropReason::QueueFull,
        DropReason::SessionBytes,
        DropReason::BrokerBytes,
        DropReason::SlowReader,
        DropReason::TooLarge,
        DropReason::Expired,
        DropReason::Offline,
    ];

    /// The `$SYS/broker/messages/dropped/...` name of the reason.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::SessionBytes => "queue_bytes",
            DropReason::BrokerBytes => "broker_queue_bytes",
            DropReason::SlowReader => "slow_reader",
            DropReason::TooLarge => "too_large",
            DropReason::Expired => "expired",
            DropReason::Offline => "offline_qos0",
        }
    }
}

/// One shard's ledger.
#[derive(Debug)]
pub struct Ledger {
    queued_bytes: Cell<usize>,
    max_queued_bytes: usize,
    drops: [Cell<u64>; 7],
}

impl Default for Ledger {
    /// A ledger without a byte limit (tests, tools).
    fn default() -> Self {
        Ledger::new(usize::MAX)
    }
}

impl Ledger {
    /// A ledger whose sessions may queue `max_queued_bytes` in all.
    pub fn new(max_queued_bytes: usize) -> Ledger {
        Ledger { queued_bytes: Cell::new(0), max_queued_bytes, drops: Default::default() }
    }

    /// Takes `n` bytes of the shard's queue budget; false (nothing taken) when they do not fit.
    pub fn reserve(&self, n: usize) -> bool {
        let used = self.queued_bytes.get();
        if used.saturating_add(n) > self.max_queued_bytes {
            return false;
        }
        self.queued_bytes.set(used + n);
        true
    }

    /// Takes `n` bytes even past the budget: for what was accepted before a restart and must not
    /// be dropped now. Later reservations are refused until enough is given back.
    pub fn force_reserve(&self, n: usize) {
        self.queued_bytes.set(self.queued_bytes.get().saturating_add(n));
    }

    /// Gives back bytes taken with [`Ledger::reserve`].
    pub fn release(&self, n: usize) {
        self.queued_bytes.set(self.queued_bytes.get().saturating_sub(n));
    }

    /// Bytes queued by the shard's sessions.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.get()
    }

    /// Counts one dropped message.
    pub fn count(&self, reason: DropReason) {
        let c = &self.drops[reason as usize];
        c.set(c.get() + 1);
    }

    /// Messages dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Messages dropped for any reason so far.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Cell::get).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_are_given_back() {
        let l = Ledger::new(100);
        assert!(l.reserve(60));
        assert!(!l.reserve(41), "would pass the limit");
        assert!(l.reserve(40));
        assert_eq!(l.queued_bytes(), 100);
        l.release(70);
        assert_eq!(l.queued_bytes(), 30);
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let l = Ledger::default();
        l.count(DropReason::SlowReader);
        l.count(DropReason::SlowReader);
        l.count(DropReason::Expired);
        assert_eq!(l.drops(DropReason::SlowReader), 2);
        assert_eq!(l.drops(DropReason::QueueFull), 0);
        assert_eq!(l.total_drops(), 3);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
