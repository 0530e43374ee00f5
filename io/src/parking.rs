//! Parked connections: idle sockets watched by one epoll instance instead of one task each.
//!
//! A connection task that waits for input costs its whole suspended future plus a glommio
//! readiness source (each a few hundred bytes to kilobytes), for every idle connection on the
//! host. A connection that has been idle for a while is therefore *parked*: its task ends, its
//! descriptor is registered here (one-shot, for input or hang-up), and what remains of it is the
//! caller's small record under a slot number. When the socket becomes readable, the slot comes
//! back to its shard through [`ParkingSpot::woken`], and the shard starts a task for it again;
//! the shard can also wake a slot itself ([`ParkingSpot::wake`]) when it has output for it.
//!
//! glommio offers no way to wait for readiness of an arbitrary descriptor, so one thread per
//! process blocks in `epoll_wait` for all shards and hands each event to its shard's inbox,
//! waking the shard with an ordinary (cross-thread) waker. The thread does nothing else; shards
//! never block on it (an inbox lock is held for a push or a swap).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

/// Epoll events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// The epoll token of the stop eventfd (slot tokens have a shard below `u32::MAX`).
const STOP: u64 = u64::MAX;

/// Why parking could not start.
#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    /// epoll or eventfd could not be created, or the thread not started.
    #[error("cannot start the idle-connection watcher: {0}; check the process's descriptor and thread limits")]
    Start(#[source] io::Error),
}

/// The process's watcher of parked connections (one epoll instance and one thread); hands out a
/// [`ParkingSpot`] per shard. Dropping it stops the thread.
#[derive(Debug)]
pub struct ParkingLot {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    epoll: OwnedFd,
    stop: OwnedFd,
    inboxes: Vec<Mutex<Inbox>>,
}

/// What one shard has been woken for.
#[derive(Debug, Default)]
struct Inbox {
    ready: Vec<u32>,
    waker: Option<Waker>,
}

/// One shard's end of the [`ParkingLot`].
#[derive(Debug, Clone)]
pub struct ParkingSpot {
    shared: Arc<Shared>,
    shard: u32,
}

impl ParkingLot {
    /// A watcher for `shards` shards, with its thread running.
    pub fn start(shards: usize) -> Result<ParkingLot, ParkingError> {
        // SAFETY: plain system calls; the results are checked before use.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(ParkingError::Start(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(ParkingError::Start(io::Error::last_os_error()));
        }
        // SAFETY: as above.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, stop.as_raw_fd(), libc::EPOLLIN as u32, STOP).map_err(ParkingError::Start)?;
        let shared = Arc::new(Shared { epoll, stop, inboxes: (0..shards).map(|_| Mutex::default()).collect() });
        let watcher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ratatosk-idle".into())
            .spawn(move || watcher.watch())
            .map_err(ParkingError::Start)?;
        Ok(ParkingLot { shared, thread: Some(thread) })
    }

    /// The end of shard `shard`; `None` unless it is one of `0..shards`.
    pub fn spot(&self, shard: usize) -> Option<ParkingSpot> {
        (shard < self.shared.inboxes.len()).then(|| ParkingSpot { shared: self.shared.clone(), shard: shard as u32 })
    }
}

impl Drop for ParkingLot {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes we own to our eventfd.
        unsafe { libc::write(self.shared.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// The watcher thread: blocks in `epoll_wait` and posts each event to its shard.
    fn watch(&self) {
        // SAFETY: epoll_event is plain data.
        let mut events: Vec<libc::epoll_event> = vec![unsafe { std::mem::zeroed() }; EVENTS];
        loop {
            // SAFETY: the buffer holds EVENTS entries.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "idle-connection watcher failed; parked connections wake only on output");
                return;
            }
            let mut woken: Vec<u32> = Vec::new();
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == STOP {
                    return;
                }
                let shard = (token >> 32) as u32;
                let Some(inbox) = self.inboxes.get(shard as usize) else { continue };
                lock(inbox).ready.push(token as u32);
                if !woken.contains(&shard) {
                    woken.push(shard);
                }
            }
            for shard in woken {
                let waker = self.inboxes.get(shard as usize).and_then(|i| lock(i).waker.take());
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }
}

impl ParkingSpot {
    /// Parks descriptor `fd` under `slot`: the slot comes back from [`ParkingSpot::woken`] once
    /// the socket has input, or is hung up or in error. One-shot: the descriptor must be
    /// [`ParkingSpot::unpark`]ed before it is used (or parked) again.
    pub fn park(&self, fd: RawFd, slot: u32) -> io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        ctl(self.shared.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, events, (u64::from(self.shard) << 32) | u64::from(slot))
    }

    /// Takes `fd` out of the watcher (before its connection runs again or closes).
    pub fn unpark(&self, fd: RawFd) {
        // Not watched any more (never parked, or already removed) is fine.
        let _ = ctl(self.shared.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Wakes `slot` from this shard (it has output, or must close).
    pub fn wake(&self, slot: u32) {
        let waker = {
            let mut inbox = lock(self.inbox());
            inbox.ready.push(slot);
            inbox.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves with the slots woken since the last call (in no particular order; a slot may
    /// appear more than once).
    pub fn woken(&self) -> Woken<'_> {
        Woken { spot: self }
    }

    fn inbox(&self) -> &Mutex<Inbox> {
        &self.shared.inboxes[self.shard as usize]
    }
}

/// Future returned by [`ParkingSpot::woken`].
#[derive(Debug)]
pub struct Woken<'a> {
    spot: &'a ParkingSpot,
}

impl std::future::Future for Woken<'_> {
    type Output = Vec<u32>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<u32>> {
        let mut inbox = lock(self.spot.inbox());
        if !inbox.ready.is_empty() {
            return Poll::Ready(std::mem::take(&mut inbox.ready));
        }
        match &inbox.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inbox.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Locks an inbox; a panic elsewhere while it was held left it consistent (a push or a swap).
fn lock(m: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn ctl(epoll: RawFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` outlives the call; the kernel validates the descriptors.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn block_on_woken(spot: &ParkingSpot) -> Vec<u32> {
        // Bounded: 5 s at most.
        for _ in 0..500 {
            if let Some(v) = futures_lite::future::block_on(futures_lite::future::poll_once(spot.woken())) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Vec::new()
    }

    #[test]
    fn a_parked_socket_comes_back_to_its_shard_when_input_arrives() {
        let lot = ParkingLot::start(2).unwrap();
        let spot = lot.spot(1).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        spot.park(a.as_raw_fd(), 7).unwrap();
        b.write_all(b"x").unwrap();
        assert_eq!(block_on_woken(&spot), vec![7]);
        // One-shot: more input does not wake it again until it is parked anew.
        spot.unpark(a.as_raw_fd());
        spot.park(a.as_raw_fd(), 9).unwrap();
        assert_eq!(block_on_woken(&spot), vec![9], "input still unread wakes a re-parked socket");
        spot.unpark(a.as_raw_fd());
    }

    #[test]
    fn a_hang_up_wakes_and_a_shard_can_wake_its_own_slots() {
        let lot = ParkingLot::start(1).unwrap();
        let spot = lot.spot(0).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        spot.park(a.as_raw_fd(), 3).unwrap();
        spot.wake(5);
        assert_eq!(block_on_woken(&spot), vec![5]);
        drop(b);
        assert_eq!(block_on_woken(&spot), vec![3]);
        spot.unpark(a.as_raw_fd());
    }
}
