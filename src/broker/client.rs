//! A client on its home shard: its session, and the link of the connection attached to it, if any.
//!
//! The [`Client`] is what the shard's registry, its route table and the connection task share
//! (`Rc<RefCell<Client>>`, never across threads). The session is the state that outlives
//! connections; the link exists while one is attached. A generation number tells a connection
//! task whether the link it started with is still the current one: a takeover replaces the link
//! and bumps the generation, and the old task then closes without touching the session.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use crate::config::Limits;
use crate::protocol::Packet;
use crate::session::{Delivery, DropReason, Outlet, Session};

use super::link::Link;

/// A shared, shard-local client handle.
pub type ClientRef = Rc<RefCell<Client>>;

/// One client's session and live link.
#[derive(Debug)]
pub struct Client {
    session: Session,
    generation: u64,
    /// Boxed: an offline session holds no connection state at all.
    link: Option<Box<Link>>,
}

impl Client {
    /// A client with `session` and no connection.
    pub fn new(session: Session) -> Client {
        Client { session, generation: 0, link: None }
    }

    /// A shared handle to a new client.
    pub fn shared(session: Session) -> ClientRef {
        Rc::new(RefCell::new(Client::new(session)))
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to change.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The current connection generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a connection is attached.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// The attached connection's link.
    pub fn link(&self) -> Option<&Link> {
        self.link.as_deref()
    }

    /// The attached connection's link, to change.
    pub fn link_mut(&mut self) -> Option<&mut Link> {
        self.link.as_deref_mut()
    }

    /// The link, if it belongs to generation `gen` (the connection task's own).
    pub fn link_of(&mut self, gen: u64) -> Option<&mut Link> {
        if self.generation == gen {
            self.link.as_deref_mut()
        } else {
            None
        }
    }

    /// Attaches a new connection; returns its generation. A connection still attached must have
    /// been taken off first (see [`Client::take_link`]).
    pub fn attach(&mut self, link: Link) -> u64 {
        self.generation += 1;
        self.link = Some(Box::new(link));
        self.generation
    }

    /// Takes the link off: the connection of this generation is gone, or is being replaced. The
    /// generation moves on, so that its task sees it no longer owns the session.
    pub fn take_link(&mut self) -> Option<Box<Link>> {
        let link = self.link.take()?;
        self.generation += 1;
        Some(link)
    }

    /// Takes the link off if it belongs to generation `gen`.
    pub fn detach(&mut self, gen: u64) -> Option<Box<Link>> {
        if self.generation != gen {
            return None;
        }
        self.link.take()
    }

    /// Closes the attached connection with `reason`, if there is one.
    pub fn kick(&mut self, reason: u8) {
        if let Some(l) = self.link.as_deref_mut() {
            l.kick(reason);
        }
    }

    /// Encodes a control packet for the connected client; counted as a drop when it is too large
    /// for the client.
    pub fn send(&mut self, packet: &Packet) -> bool {
        let Some(l) = self.link.as_deref_mut() else { return false };
        let sent = l.send(packet);
        if !sent {
            self.session.drop_message(DropReason::TooLarge);
        }
        sent
    }

    /// Hands a message to the session (sent, queued or dropped there). Returns true when the
    /// connected client has fallen behind: publishers should then slow down rather than let its
    /// queue overflow.
    pub fn deliver(&mut self, d: Delivery<'_>, limits: &Limits, now_ns: u64) -> bool {
        self.session.deliver(d, self.link.as_deref_mut(), limits, now_ns);
        self.is_congested(limits)
    }

    /// After a reconnect to a kept session: resends what is unacknowledged, then what is queued.
    pub fn resend(&mut self, now_ns: u64) {
        if let Some(l) = self.link.as_deref_mut() {
            self.session.resend(l, now_ns);
        }
    }

    /// PUBACK from the client.
    pub fn on_puback(&mut self, pid: u16, now_ns: u64) -> bool {
        let Some(l) = self.link.as_deref_mut() else { return false };
        self.session.on_puback(pid, l, now_ns)
    }

    /// PUBREC from the client.
    pub fn on_pubrec(&mut self, pid: u16, code: u8, now_ns: u64) -> bool {
        let Some(l) = self.link.as_deref_mut() else { return false };
        self.session.on_pubrec(pid, code, l, now_ns)
    }

    /// PUBCOMP from the client.
    pub fn on_pubcomp(&mut self, pid: u16, now_ns: u64) -> bool {
        let Some(l) = self.link.as_deref_mut() else { return false };
        self.session.on_pubcomp(pid, l, now_ns)
    }

    /// Whether a connected client has fallen behind: its queue or its unsent output has reached
    /// the back-pressure mark (half of `max_queued` / `max_queued_bytes` / `max_output_buffer`).
    pub fn is_congested(&self, limits: &Limits) -> bool {
        let Some(l) = self.link.as_deref() else { return false };
        self.session.queued() >= (limits.max_queued / 2).max(1)
            || self.session.queued_bytes() >= limits.max_queued_bytes / 2
            || l.unsent() >= limits.max_output_buffer / 2
    }

    /// How much of its back-pressure headroom a client has free: 1.0 with nothing queued or
    /// unsent (or no connection: an offline session just queues, up to the limit), 0.0 at the
    /// congestion mark of [`Client::is_congested`] or beyond.
    pub fn room(&self, limits: &Limits) -> f64 {
        let Some(l) = self.link.as_deref() else { return 1.0 };
        let used = |n: usize, mark: usize| n as f64 / mark.max(1) as f64;
        let fullest = used(self.session.queued(), (limits.max_queued / 2).max(1))
            .max(used(self.session.queued_bytes(), limits.max_queued_bytes / 2))
            .max(used(l.unsent(), limits.max_output_buffer / 2));
        (1.0 - fullest).clamp(0.0, 1.0)
    }

    /// Whether the attached connection has been silent past its keep alive.
    pub fn keep_alive_expired(&self, now: Instant) -> bool {
        self.link.as_deref().is_some_and(|l| !l.is_kicked() && l.keep_alive_expired(now))
    }
}
