//! Wake-ups from outside for shards, for as long as they run.
//!
//! glommio's executor can go to sleep with tasks still queued: when its preemption timer has
//! already expired by the time it looks for tasks to run (the thread was descheduled for longer
//! than the timer, common with many shards on few cores), it finds "nothing ran", parks, and
//! sleeps until some timer or I/O event arrives. While a shard joins the mesh it may have neither
//! (its peers' hand-shakes are seen only when it polls), so it slept for good in one start of
//! 256 shards in four or five, and no shard could start. The same can happen at any later time:
//! a shard that parked so while it was starting its listeners never saw the stop signal, and its
//! broker did not exit on SIGTERM (about one stop of 256 oversubscribed shards in twenty). The
//! starting thread therefore wakes every shard from outside, every few milliseconds while they
//! start and every 50 ms while they run: a foreign wake-up goes through the executor's eventfd,
//! which does end such a sleep.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// One waker slot per shard, filled by the shard and woken (every time) by the nudging thread.
///
/// The wakers stay in their slots: a nudge that finds its task already woken but never run (the
/// executor parked with it queued) must still reach the executor, and only a foreign wake, which
/// writes the executor's eventfd, does. Taking the waker on the first nudge left such a shard
/// with nothing to wake it ever again.
#[derive(Debug)]
pub(crate) struct Nudger {
    slots: Mutex<Vec<Option<Waker>>>,
    /// Counts nudges, so that a waiting future knows one happened since it registered.
    nudges: AtomicU64,
}

impl Nudger {
    /// Slots for `shards` shards.
    pub(crate) fn new(shards: usize) -> Nudger {
        Nudger { slots: Mutex::new((0..shards).map(|_| None).collect()), nudges: AtomicU64::new(0) }
    }

    /// Wakes every shard waiting in [`Nudger::nudged`].
    pub(crate) fn nudge_all(&self) {
        self.nudges.fetch_add(1, Ordering::AcqRel);
        let slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        for w in slots.iter().flatten() {
            w.wake_by_ref();
        }
    }

    /// Stops nudging `shard` (it has ended: its task is gone).
    pub(crate) fn forget(&self, shard: usize) {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = slots.get_mut(shard) {
            *slot = None;
        }
    }

    /// Resolves at the next nudge.
    pub(crate) fn nudged(&self, shard: usize) -> Nudged<'_> {
        Nudged { nudger: self, shard, since: None }
    }
}

/// Future returned by [`Nudger::nudged`].
pub(crate) struct Nudged<'a> {
    nudger: &'a Nudger,
    shard: usize,
    /// The nudge count when first polled.
    since: Option<u64>,
}

impl Future for Nudged<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slots = match self.nudger.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Read under the lock: a nudge counts before it takes the lock, so one that did not see
        // the waker stored here is seen as a changed count by the next poll.
        let now = self.nudger.nudges.load(Ordering::Acquire);
        let Some(slot) = slots.get_mut(self.shard) else { return Poll::Ready(()) };
        match self.since {
            Some(since) if since != now => return Poll::Ready(()),
            Some(_) => {}
            None => self.since = Some(now),
        }
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
