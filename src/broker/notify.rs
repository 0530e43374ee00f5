//! A single-waiter wake-up flag for one connection task, shard-local.
//!
//! Deliveries append to a session's output buffer from any task on the shard and then `notify`; the
//! connection task awaits `notified` between reads and flushes everything gathered in one write.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes one waiting connection task; notifications before the wait are not lost.
#[derive(Debug, Default, Clone)]
pub struct Notify {
    inner: Rc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    /// Marks work pending and wakes the waiter, if any.
    pub fn notify(&self) {
        self.inner.pending.set(true);
        if let Some(w) = self.inner.waker.borrow_mut().take() {
            w.wake();
        }
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
