//! Counters and latency histograms shared by all client executors and the reporting thread.
//!
//! Counters are relaxed atomics: each is only ever added to, and the reporter reads a snapshot once
//! a second. Latency goes into one histogram per executor behind a mutex that only the reporter
//! contends for (once a second, to take and reset it), so recording stays on the executor's core.
//! The run's phase is here too: the reporting thread moves it forward, clients poll it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::seq::SeqTracker;

/// Clients connect (subscribers first in `pubsub`); publishers wait.
pub const PHASE_CONNECTING: u8 = 0;
/// Publishers publish.
pub const PHASE_RUNNING: u8 = 1;
/// Publishers stop sending and wait for their acknowledgements; subscribers keep receiving.
pub const PHASE_DRAINING: u8 = 2;
/// Everyone disconnects.
pub const PHASE_STOP: u8 = 3;

/// Highest latency the histograms track, in nanoseconds (a minute); larger values are clamped.
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A new latency histogram: nanoseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

/// Everything the clients count.
#[derive(Debug)]
pub struct Stats {
    /// Successful connects (CONNACK with success).
    pub connect_succ: AtomicU64,
    /// Connects that failed or were refused, after retries.
    pub connect_fail: AtomicU64,
    /// Connections that ended before the run told them to.
    pub conn_lost: AtomicU64,
    /// Successful reconnects after a lost connection (`--reconnect`); each is also a connect_succ.
    pub reconnect: AtomicU64,
    /// Successful subscriptions.
    pub sub: AtomicU64,
    /// Refused subscriptions.
    pub sub_fail: AtomicU64,
    /// Messages written by publishers.
    pub publish: AtomicU64,
    /// QoS 1/2 messages acknowledged with success.
    pub pub_succ: AtomicU64,
    /// QoS 1/2 messages acknowledged with a failure reason code.
    pub pub_fail: AtomicU64,
    /// Messages received by subscribers (duplicates included).
    pub recv: AtomicU64,
    /// First receptions of a (publisher, sequence) at a subscriber: `recv` without duplicates, so
    /// the run can tell when everything expected has arrived.
    pub fresh: AtomicU64,
    /// Messages known lost, added by each subscriber when it ends.
    pub lost: AtomicU64,
    /// Duplicate receptions, added by each subscriber when it ends.
    pub duplicated: AtomicU64,
    /// Out-of-order receptions, added by each subscriber when it ends.
    pub out_of_order: AtomicU64,
    /// Messages subscribers should have received (exact accounting only), added when they end.
    pub expected: AtomicU64,
    /// Subscribers that got their SUBACK or gave up.
    pub subs_settled: AtomicU64,
    /// Publishers that stopped publishing (limit reached, stopped, or failed).
    pub pubs_done: AtomicU64,
    /// Clients whose task has ended.
    pub clients_ended: AtomicU64,
    /// Phase of the run (`PHASE_*`).
    pub phase: AtomicU8,
    /// Monotonic ns when the run started (connects are scheduled from here).
    pub start_ns: AtomicU64,
    /// Monotonic ns when publishing started.
    pub run_start_ns: AtomicU64,
    /// Messages written per publisher, by publisher id.
    pub sent_per_pub: Vec<AtomicU64>,
    /// One latency histogram per executor.
    pub hist: Vec<Mutex<Histogram<u64>>>,
    /// Union of the seen-sets of all members of a shared subscription group, by publisher id: each
    /// member sees only part of the stream, so loss is only known for the group as a whole.
    pub pool: Mutex<HashMap<u32, SeqTracker>>,
}

impl Stats {
    /// Zeroed statistics for `pubs` publishers on `cores` executors.
    pub fn new(pubs: usize, cores: usize) -> Stats {
        Stats {
            connect_succ: AtomicU64::new(0),
            connect_fail: AtomicU64::new(0),
            conn_lost: AtomicU64::new(0),
            reconnect: AtomicU64::new(0),
            sub: AtomicU64::new(0),
            sub_fail: AtomicU64::new(0),
            publish: AtomicU64::new(0),
            pub_succ: AtomicU64::new(0),
            pub_fail: AtomicU64::new(0),
            recv: AtomicU64::new(0),
            fresh: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            subs_settled: AtomicU64::new(0),
            pubs_done: AtomicU64::new(0),
            clients_ended: AtomicU64::new(0),
            phase: AtomicU8::new(PHASE_CONNECTING),
            start_ns: AtomicU64::new(0),
            run_start_ns: AtomicU64::new(0),
            sent_per_pub: (0..pubs).map(|_| AtomicU64::new(0)).collect(),
            hist: (0..cores.max(1)).map(|_| Mutex::new(new_histogram())).collect(),
            pool: Mutex::new(HashMap::new()),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// Moves the phase forward (never back).
    pub fn advance(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
    }

    /// The counters printed once a second, in emqtt-bench's names.
    pub fn counters(&self) -> [(&'static str, u64); 10] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("connect_succ", g(&self.connect_succ)),
            ("connect_fail", g(&self.connect_fail)),
            ("conn_lost", g(&self.conn_lost)),
            ("reconnect", g(&self.reconnect)),
            ("sub", g(&self.sub)),
            ("sub_fail", g(&self.sub_fail)),
            ("pub", g(&self.publish)),
            ("pub_succ", g(&self.pub_succ)),
            ("pub_fail", g(&self.pub_fail)),
            ("recv", g(&self.recv)),
        ]
    }

    /// Takes (and resets) every executor's histogram, merged into one.
    pub fn take_histogram(&self) -> Histogram<u64> {
        let mut out = new_histogram();
        for h in &self.hist {
            // A poisoned lock means an executor panicked while recording; its data is still usable.
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds everywhere, so adding cannot fail; clamp rather than lose a report if it did.
            let _ = out.add(&*h);
            h.reset();
        }
        out
    }
}

/// Adds `n` to a counter.
pub fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}
