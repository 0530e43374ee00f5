//! The session: what the broker keeps about one client id within a tenant, apart from any
//! connection.
//!
//! A [`Session`] holds what must survive the client's connections, and a restart when the session
//! is persistent: its subscriptions, the unacknowledged outgoing messages (in flight), the messages
//! waiting for a free in-flight slot or for the client to come back (queued), the incoming QoS 2
//! packet ids not yet released, its expiry and its will. Every change goes through a method here,
//! and a persistent session writes each change to the shard's [`SessionStore`]; a session that
//! ends with its connection writes nothing.
//!
//! What belongs to one live connection (buffers, topic aliases, keep alive, the wake-up of its
//! task) is not here: the broker's link type owns it and offers the session an [`Outlet`] to send
//! through. This module imports nothing from the broker.

mod inbound;
mod ledger;
mod outbound;
mod outlet;
mod queue;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use bytestring::ByteString;
use ratatosk_shards::Partition;

use crate::protocol::LastWill;
use crate::store::{FlightState, SessionImage, SessionRecord, SessionStore, StoreKey, StoredMessage};

pub use ledger::{DropReason, Ledger};
pub use crate::message::{wall_ns, Message, MessageIds, Publisher};
pub use crate::store::Subscription;
pub use outbound::Delivery;
pub use outlet::{OutPublish, Outlet};
pub use queue::{OutFlight, OutState, QueuedMessage};

use queue::Inflight;

/// Session expiry meaning "never" (5.0 section 3.1.2.11.2) (0xFFFFFFFF in v5; 3.x persistent sessions).
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// What the sessions of one shard share: the account of their queued bytes and drops, and the
/// store their persistent state is written to.
pub struct Keeper {
    ledger: Ledger,
    store: Rc<dyn SessionStore>,
}

impl Keeper {
    /// A keeper charging `ledger` and writing persistent sessions to `store`.
    pub fn new(ledger: Ledger, store: Rc<dyn SessionStore>) -> Keeper {
        Keeper { ledger, store }
    }

    /// The shard's account of queued bytes and drops.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The store of persistent sessions.
    pub fn store(&self) -> &dyn SessionStore {
        &*self.store
    }
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper").field("ledger", &self.ledger).finish_non_exhaustive()
    }
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    /// Unique on this shard; distinguishes a new session from an old one with the same client id.
    uid: u64,
    partition: Partition,
    tenant: ByteString,
    client_id: ByteString,
    /// Session expiry interval in seconds after disconnect; `NEVER_EXPIRES` for never; 0 ends
    /// the session with its connection (and keeps it out of the store).
    expiry_interval: u32,
    /// When the last connection ended (wall clock, ns); `None` while connected.
    disconnected_ns: Option<u64>,
    /// Will of the current connection, or one still waiting for its delay (boxed: most sessions
    /// have none).
    will: Option<Box<LastWill>>,
    /// Filter string (including any `$share/group/` prefix) → subscription.
    subscriptions: HashMap<ByteString, Subscription>,
    /// Outgoing QoS 1/2 flow state.
    flight: Inflight,
    /// Incoming QoS 2 packet ids received and acknowledged with PUBREC, awaiting PUBREL.
    /// Boxed on first use: most sessions never receive QoS 2, and every idle one is kept (the
    /// box is one word in the session where the set is six).
    #[expect(clippy::box_collection, reason = "the session's size, not the set's allocation, is what is saved")]
    incoming_qos2: Option<Box<HashSet<u16>>>,
    /// Messages dropped for this session (queue full, buffer full, too large), for metrics.
    dropped: u64,
    keeper: Rc<Keeper>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.ledger.release(self.flight.queued_bytes());
    }
}

impl Session {
    /// A fresh session with no state, not yet persistent.
    pub fn new(uid: u64, partition: Partition, tenant: ByteString, client_id: ByteString, keeper: Rc<Keeper>) -> Session {
        Session {
            uid,
            partition,
            tenant,
            client_id,
            expiry_interval: 0,
            disconnected_ns: None,
            will: None,
            subscriptions: HashMap::new(),
            flight: Inflight::default(),
            incoming_qos2: None,
            dropped: 0,
            keeper,
        }
    }

    /// A session as a store kept it: offline, with its subscriptions, messages (their packet ids
    /// and flow states as they were) and unreleased QoS 2 ids.
    pub fn restore(uid: u64, image: SessionImage, keeper: Rc<Keeper>) -> Session {
        let mut s = Session::new(uid, image.partition, image.tenant, image.client_id, keeper);
        s.expiry_interval = image.record.expiry_interval;
        s.disconnected_ns = image.record.disconnected_ns;
        s.will = image.record.will.map(Box::new);
        s.subscriptions = image.subscriptions.into_iter().collect();
        if !image.incoming_qos2.is_empty() {
            s.incoming_qos2 = Some(Box::new(image.incoming_qos2.into_iter().collect()));
        }
        let (mut window, mut queue) = (Vec::new(), Vec::new());
        for m in image.messages {
            let item = QueuedMessage { order: m.order, msg: m.msg, qos: m.qos, retain: m.retain, sub_ids: m.sub_ids };
            let (pid, state) = match m.state {
                FlightState::Queued => {
                    queue.push(item);
                    continue;
                }
                FlightState::AwaitPubAck(pid) => (pid, OutState::AwaitPubAck),
                FlightState::AwaitPubRec(pid) => (pid, OutState::AwaitPubRec),
                FlightState::AwaitPubComp(pid) => (pid, OutState::AwaitPubComp),
            };
            window.push(OutFlight { pid, item, state });
        }
        s.flight.restore(window, queue, &s.keeper.ledger);
        s
    }

    /// The session's uid on its shard.
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Tenant namespace.
    pub fn tenant(&self) -> &ByteString {
        &self.tenant
    }

    /// Client identifier.
    pub fn client_id(&self) -> &ByteString {
        &self.client_id
    }

    /// Whether this session keeps state after its connection closes (and so is stored).
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// Session expiry interval in seconds (`NEVER_EXPIRES` for never).
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// When the last connection ended (wall clock, ns), `None` while connected.
    pub fn disconnected_ns(&self) -> Option<u64> {
        self.disconnected_ns
    }

    fn key(&self) -> StoreKey<'_> {
        StoreKey { partition: self.partition, tenant: &self.tenant, client_id: &self.client_id }
    }

    fn record(&self) -> SessionRecord {
        SessionRecord { expiry_interval: self.expiry_interval, disconnected_ns: self.disconnected_ns, will: self.will.as_deref().cloned() }
    }

    /// Runs `write` against the store when the session is persistent.
    fn persist(&self, write: impl FnOnce(&dyn SessionStore, StoreKey<'_>)) {
        if self.is_persistent() {
            write(self.keeper.store(), self.key());
        }
    }

    /// A connection attached with this expiry interval and will. A session that becomes
    /// persistent is written to the store whole; one that stops being persistent is removed.
    pub fn connected(&mut self, expiry_interval: u32, will: Option<Box<LastWill>>) {
        self.will = will;
        self.disconnected_ns = None;
        self.set_expiry(expiry_interval);
    }

    /// The connection ended at `now_ns` (wall clock).
    pub fn disconnected(&mut self, now_ns: u64) {
        self.disconnected_ns = Some(now_ns);
        let record = self.record();
        self.persist(|store, key| {
            store.put_session(key, &record);
        });
    }

    /// Changes the expiry interval (CONNECT, or a v5 DISCONNECT [MQTT-3.14.2-2]).
    pub fn set_expiry(&mut self, expiry_interval: u32) {
        let was = self.is_persistent();
        self.expiry_interval = expiry_interval;
        match (was, self.is_persistent()) {
            (_, true) => {
                let record = self.record();
                let store = self.keeper.store();
                store.put_session(self.key(), &record);
                if !was {
                    self.write_all_items(store);
                }
            }
            (true, false) => {
                self.keeper.store().remove_session(self.key());
            }
            (false, false) => {}
        }
    }

    /// Writes every subscription, message and QoS 2 id (the session just became persistent).
    fn write_all_items(&self, store: &dyn SessionStore) {
        let key = self.key();
        for (filter, sub) in &self.subscriptions {
            store.put_subscription(key, filter, sub);
        }
        for f in self.flight.window() {
            store.put_message(key, &stored(&f.item, f.stored_state()));
        }
        for item in self.flight.queue() {
            store.put_message(key, &stored(item, FlightState::Queued));
        }
        for pid in self.incoming_qos2.iter().flat_map(|ids| ids.iter()) {
            store.put_incoming_qos2(key, *pid);
        }
    }

    /// Takes the will (to publish it, or because it no longer applies).
    pub fn take_will(&mut self) -> Option<Box<LastWill>> {
        let will = self.will.take();
        if will.is_some() {
            let record = self.record();
            self.persist(|store, key| {
                store.put_session(key, &record);
            });
        }
        will
    }

    /// The delay of the waiting will in seconds (0 for none given), `None` without a will.
    pub fn will_delay(&self) -> Option<u32> {
        self.will.as_ref().map(|w| w.properties.will_delay_interval.unwrap_or(0))
    }

    /// Adds or replaces a subscription [MQTT-3.8.4-3]; returns whether the filter existed.
    pub fn subscribe(&mut self, filter: ByteString, sub: Subscription) -> bool {
        self.persist(|store, key| {
            store.put_subscription(key, &filter, &sub);
        });
        self.subscriptions.insert(filter, sub).is_some()
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe(&mut self, filter: &str) -> bool {
        let existed = self.subscriptions.remove(filter).is_some();
        if existed {
            self.persist(|store, key| {
                store.remove_subscription(key, filter);
            });
        }
        existed
    }

    /// Whether the session subscribes to exactly this filter.
    pub fn has_subscription(&self, filter: &str) -> bool {
        self.subscriptions.contains_key(filter)
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The subscriptions (filter with any `$share/group/` prefix, and options).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&ByteString, &Subscription)> {
        self.subscriptions.iter()
    }

    /// Ends the session: everything is dropped, and removed from the store. Returns the
    /// filters it subscribed to, for the route table.
    pub fn end(&mut self) -> Vec<ByteString> {
        self.persist(|store, key| {
            store.remove_session(key);
        });
        self.expiry_interval = 0;
        self.will = None;
        self.flight.clear(&self.keeper.ledger);
        self.incoming_qos2 = None;
        self.subscriptions.drain().map(|(f, _)| f).collect()
    }

    /// Counts a message (or packet) that could not be kept or sent.
    pub fn drop_message(&mut self, reason: DropReason) {
        self.dropped += 1;
        self.keeper.ledger.count(reason);
    }

    /// Messages dropped for this session so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages waiting in the queue (not in flight).
    pub fn queued(&self) -> usize {
        self.flight.queued()
    }

    /// Bytes the queued messages are charged.
    pub fn queued_bytes(&self) -> usize {
        self.flight.queued_bytes()
    }

    /// Messages sent and not yet fully acknowledged.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.flight.in_flight()
    }
}

/// The stored form of an outgoing message.
fn stored(item: &QueuedMessage, state: FlightState) -> StoredMessage {
    StoredMessage { order: item.order, msg: item.msg.clone(), qos: item.qos, retain: item.retain, sub_ids: item.sub_ids.clone(), state }
}

#[cfg(test)]
mod tests;
