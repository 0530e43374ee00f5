//! A single-waiter wake-up flag for one connection task, shard-local.
//!
//! Deliveries append to a session's output buffer from any task on the shard and then `notify`; the
//! connection task awaits `notified` between reads and flushes everything gathered in one write.
//! While the connection is parked (it has no task; see `parked`), a notification wakes its slot
//! in the shard's parking spot instead, which starts a task for it again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ratatosk_io::ParkingSpot;

/// Wakes one waiting connection task; notifications before the wait are not lost.
#[derive(Debug, Default, Clone)]
pub struct Notify {
    inner: Rc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Where to wake the connection while it is parked: its shard's spot and its slot there.
    parked: RefCell<Option<(ParkingSpot, u32)>>,
}

impl Notify {
    /// Marks work pending and wakes the waiter, if any.
    pub fn notify(&self) {
        self.inner.pending.set(true);
        if let Some(w) = self.inner.waker.borrow_mut().take() {
            w.wake();
            return;
        }
        // Taken, so a parked connection is woken once however many notifications follow.
        let parked = self.inner.parked.borrow_mut().take();
        if let Some((spot, slot)) = parked {
            spot.wake(slot);
        }
    }

    /// Forgets a pending notification (the connection has done what it was for).
    pub fn clear(&self) {
        self.inner.pending.set(false);
    }

    /// The connection is parked in `slot` of `spot`: notifications wake it there.
    pub fn park(&self, spot: ParkingSpot, slot: u32) {
        *self.inner.waker.borrow_mut() = None;
        *self.inner.parked.borrow_mut() = Some((spot, slot));
    }

    /// The connection runs again: notifications wake its task.
    pub fn unpark(&self) {
        *self.inner.parked.borrow_mut() = None;
    }

    /// Resolves once `notify` has been called since the last resolution.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self }
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.notify.inner;
        if inner.pending.replace(false) {
            return Poll::Ready(());
        }
        *inner.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
