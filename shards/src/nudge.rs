//! Wake-ups from outside for shards that are starting.
//!
//! glommio's executor can go to sleep with tasks still queued: when its preemption timer has
//! already expired by the time it looks for tasks to run (the thread was descheduled for longer
//! than the timer, common with many shards on few cores), it finds "nothing ran", parks, and
//! sleeps until some timer or I/O event arrives. While a shard joins the mesh it may have neither
//! (its peers' hand-shakes are seen only when it polls), so it slept for good in one start of
//! 256 shards in four or five, and no shard could start. During start-up the starting thread
//! therefore wakes every shard every few milliseconds from outside: a foreign wake-up goes through
//! the executor's eventfd, which does end such a sleep.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// One waker slot per shard, filled by the shard and emptied (and woken) by the nudging thread.
#[derive(Debug)]
pub(crate) struct Nudger {
    slots: Mutex<Vec<Option<Waker>>>,
}

impl Nudger {
    /// Slots for `shards` shards.
    pub(crate) fn new(shards: usize) -> Nudger {
        Nudger { slots: Mutex::new((0..shards).map(|_| None).collect()) }
    }

    /// Wakes every shard waiting in [`Nudger::nudged`].
    pub(crate) fn nudge_all(&self) {
        let wakers: Vec<Waker> = match self.slots.lock() {
            Ok(mut s) => s.iter_mut().filter_map(Option::take).collect(),
            Err(poisoned) => poisoned.into_inner().iter_mut().filter_map(Option::take).collect(),
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves at the next nudge.
    pub(crate) fn nudged(&self, shard: usize) -> Nudged<'_> {
        Nudged { nudger: self, shard, registered: false }
    }
}

/// Future returned by [`Nudger::nudged`].
pub(crate) struct Nudged<'a> {
    nudger: &'a Nudger,
    shard: usize,
    registered: bool,
}

impl Future for Nudged<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slots = match self.nudger.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(slot) = slots.get_mut(self.shard) else { return Poll::Ready(()) };
        // Registered and since emptied by a nudge: that nudge was for us.
        if self.registered && slot.is_none() {
            return Poll::Ready(());
        }
        *slot = Some(cx.waker().clone());
        drop(slots);
        self.registered = true;
        Poll::Pending
    }
}
