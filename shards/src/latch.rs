//! A one-shot latch that any thread opens and every shard awaits: the stop request, and the
//! start gate that lets shards begin only once all of them have joined the mesh.
//!
//! A shard waiting on it is woken through its waker (glommio wakes a task from a foreign thread
//! by notifying its reactor), not by polling a flag on a timer: a shard asleep in its reactor
//! still wakes, and waiting costs no periodic wake-ups (which, with hundreds of shards sharing a
//! few cores, slowed start-up tenfold).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Opened once, from any thread; awaited by any number of tasks on any executors.
#[derive(Debug, Default)]
pub struct Latch {
    open: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
}

impl Latch {
    /// Opens the latch, waking every waiter; later calls change nothing.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
        let wakers = match self.waiting.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether the latch is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once the latch is open.
    pub fn opened(&self) -> Opened<'_> {
        Opened { signal: self }
    }
}

/// Future returned by [`Latch::opened`].
pub struct Opened<'a> {
    signal: &'a Latch,
}

impl Future for Opened<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_open() {
            return Poll::Ready(());
        }
        let mut waiting = match self.signal.waiting.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Checked again under the lock: an opening between the first check and here has
        // already taken the wakers, and must not be missed.
        if self.signal.is_open() {
            return Poll::Ready(());
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn opening_from_another_thread_wakes_a_waiting_executor() {
        let latch = Arc::new(Latch::default());
        let l = latch.clone();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            l.open();
        });
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).io_memory(64 * 1024).make().expect("executor");
        ex.run(async move { latch.opened().await });
        opener.join().expect("opener");
    }

    #[test]
    fn opening_before_the_wait_is_not_missed() {
        let latch = Latch::default();
        latch.open();
        latch.open();
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).io_memory(64 * 1024).make().expect("executor");
        ex.run(async { latch.opened().await });
        assert!(latch.is_open());
    }
}
