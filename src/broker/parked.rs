//! Parked connections: idle clients that are connected but have no task.
//!
//! An idle connection's task is most of what a connection costs (its suspended future and the
//! readiness source it waits on). The keep alive sweep asks connections that have been idle
//! for `park_idle_ms` to park; the connection's task then detaches its transport (as for a
//! hand-off to another shard), puts it in a slot here with what is needed to run it again, has
//! the socket watched by the process's `ParkingLot`, and ends. The session and its link stay as
//! they were: deliveries still encode into the link's output, and the client still counts as
//! connected.
//!
//! A parked connection runs again, with a fresh task, when its socket has input or hangs up (the
//! watcher wakes its slot) or when the shard has something for it (output, a kick, a takeover:
//! the link's notification wakes the slot).
//!
//! A newly accepted connection parks too, until its first bytes arrive: a storm of handshakes
//! that are slow to send CONNECT then costs a slot each, not a task. The keep alive sweep closes
//! those still silent after `limits.connect_timeout`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use bytestring::ByteString;
use ratatosk_io::{Detached, ParkingSpot, TcpTransport, Transport};

use super::admission;
use super::client::ClientRef;
use super::connection::{self, Live};
use super::notify::Notify;
use super::shard::Shard;
use super::stats::ShardCounters;
use crate::protocol::ProtocolVersion;
use crate::tenant::Identity;

/// A parked connection: its socket and what its task needs to run again.
struct Slot {
    transport: Detached,
    waiting: Waiting,
}

/// What a parked connection is waiting as.
enum Waiting {
    /// A client attached to its session.
    Client {
        client: ClientRef,
        /// The connection's generation: a takeover while parked makes it stale.
        gen: u64,
        /// Boxed: most clients have none, and a slot is kept per parked connection.
        principal: Option<Box<ByteString>>,
        version: ProtocolVersion,
    },
    /// A new connection that has not sent anything yet, accepted then.
    New(Instant),
}

/// The shard's parked connections, by slot number.
#[derive(Default)]
pub struct Parked {
    spot: Option<ParkingSpot>,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<u32>>,
}

impl Parked {
    /// Parking through `spot`; `None` never parks.
    pub fn new(spot: Option<ParkingSpot>) -> Parked {
        Parked { spot, ..Parked::default() }
    }

    /// Whether connections can park here.
    pub fn enabled(&self) -> bool {
        self.spot.is_some()
    }

    /// Parked connections now.
    pub fn len(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }

    fn insert(&self, slot: Slot) -> u32 {
        let mut slots = self.slots.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i as usize] = Some(slot);
                i
            }
            None => {
                slots.push(Some(slot));
                (slots.len() - 1) as u32
            }
        }
    }

    fn take(&self, i: u32) -> Option<Slot> {
        let s = self.slots.borrow_mut().get_mut(i as usize)?.take()?;
        self.free.borrow_mut().push(i);
        Some(s)
    }
}

impl Shard {
    /// Parks an idle connection of generation `gen` of `client` (its task ends after this).
    pub fn park(self: &Rc<Shard>, client: &ClientRef, gen: u64, transport: Detached, identity: Identity, version: ProtocolVersion) {
        let Some(spot) = &self.parked.spot else {
            // Parking is off (nothing asks then); should a connection get here anyway, it runs on.
            let waiting = Waiting::Client { client: client.clone(), gen, principal: identity.principal.map(Box::new), version };
            self.resume(Slot { transport, waiting });
            return;
        };
        let fd = transport.raw_fd();
        let notify = {
            let mut c = client.borrow_mut();
            match c.link_of(gen) {
                Some(l) => {
                    l.set_parked(true);
                    l.notify()
                }
                None => Notify::default(),
            }
        };
        let waiting = Waiting::Client { client: client.clone(), gen, principal: identity.principal.map(Box::new), version };
        let slot = self.parked.insert(Slot { transport, waiting });
        notify.park(spot.clone(), slot);
        // A socket the watcher cannot take runs again at once.
        if let Err(e) = spot.park(fd, slot) {
            // Debug, not warn: the sweep asks again every 250 ms (e.g. past the epoll watch limit).
            tracing::debug!(error = %e, "cannot park an idle connection; it keeps its task");
            spot.wake(slot);
        }
    }

    /// Runs the parked connections whose slots were woken, each in a new task.
    pub async fn run_parked(self: Rc<Shard>) {
        let Some(spot) = self.parked.spot.clone() else { return };
        loop {
            let woken = spot.woken().await;
            for slot in woken {
                if let Some(s) = self.parked.take(slot) {
                    spot.unpark(s.transport.raw_fd());
                    self.resume(s);
                }
            }
        }
    }

    /// Parks a connection just accepted until it sends something; `false` (with the transport
    /// back) when parking is off or the socket cannot be watched.
    pub fn park_new<T: Transport>(&self, transport: T) -> Result<(), T> {
        let Some(spot) = &self.parked.spot else { return Err(transport) };
        let detached = match transport.detach() {
            Ok(d) => d,
            Err(e) => {
                // The descriptor could not be duplicated (out of descriptors): the connection
                // is gone with the stream, as if the accept had failed.
                tracing::debug!(error = %e, "cannot park a new connection; closed");
                return Ok(());
            }
        };
        let fd = detached.raw_fd();
        let slot = self.parked.insert(Slot { transport: detached, waiting: Waiting::New(Instant::now()) });
        if spot.park(fd, slot).is_err() {
            spot.wake(slot);
        }
        Ok(())
    }

    /// Closes new connections parked since before `cutoff` without sending anything: their
    /// connect timeout passed.
    pub fn close_silent_new(&self, cutoff: Instant) {
        let Some(spot) = &self.parked.spot else { return };
        let stale: Vec<u32> = {
            let slots = self.parked.slots.borrow();
            slots.iter().enumerate().filter_map(|(i, s)| matches!(s, Some(Slot { waiting: Waiting::New(t), .. }) if *t < cutoff).then_some(i as u32)).collect()
        };
        for i in stale {
            if let Some(s) = self.parked.take(i) {
                spot.unpark(s.transport.raw_fd());
                tracing::debug!("connection closed before a valid CONNECT");
            }
        }
    }

    fn resume(self: &Rc<Shard>, s: Slot) {
        let Slot { transport, waiting } = s;
        let (client, gen, principal, version) = match waiting {
            Waiting::Client { client, gen, principal, version } => (client, gen, principal, version),
            Waiting::New(_) => {
                match transport {
                    Detached::Tcp(stream) => {
                        glommio::spawn_local(admission::accept(self.clone(), TcpTransport::attach(stream))).detach();
                    }
                }
                return;
            }
        };
        let (notify, expiry_zero, tenant) = {
            let mut c = client.borrow_mut();
            let tenant = c.session().tenant().clone();
            match c.link_of(gen) {
                Some(l) => {
                    l.set_parked(false);
                    (l.notify(), l.conn().connect_expiry_zero, tenant)
                }
                // Taken over while parked: the task says so and closes.
                None => (Notify::default(), false, tenant),
            }
        };
        notify.unpark();
        let identity = Identity { tenant, principal: principal.map(|p| *p) };
        let live = Live::new(self.clone(), client, gen, identity, version, notify, expiry_zero);
        match transport {
            Detached::Tcp(stream) => {
                glommio::spawn_local(connection::run(live, TcpTransport::attach(stream), BytesMut::new())).detach();
            }
        }
    }

    /// Asks the connections idle since `since` to park (called by the keep alive sweep).
    pub fn ask_idle_to_park(&self, since: Instant) {
        if !self.parked.enabled() {
            return;
        }
        ShardCounters::set(&self.counters().connections_parked, self.parked.len() as u64);
        self.clients.for_each(|c| {
            if let Some(l) = c.borrow_mut().link_mut() {
                if !l.is_kicked() && l.idle_since(since) {
                    l.ask_park();
                }
            }
        });
    }
}
