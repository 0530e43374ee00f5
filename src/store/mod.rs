//! Where sessions and retained messages are kept beyond the memory of one process.
//!
//! Two traits form the seam between the broker's state and a storage engine, in the broker's own
//! types: a [`SessionStore`] keeps what a persistent session must not lose (its record, its
//! subscriptions, its queued and in-flight messages, the QoS 2 packet ids it has received but
//! not released), and a [`RetainedStore`] keeps retained messages. Every key starts with the
//! virtual partition and the tenant, so an engine can lay data out by partition and a change of
//! shard count moves whole partitions.
//!
//! Writes never wait. Each returns a [`Commit`]: the point in the store's sequence of writes after
//! which that write is durable. A caller that must not acknowledge before then (a PUBACK for a
//! message queued for a persistent session) asks [`Durability::is_durable`] and, only when not
//! yet, waits with [`Durability::wait_durable`]; a group-committing engine answers many writes
//! with one fsync. The in-memory store ([`memory::MemoryStore`]) makes every write durable at
//! once, which is exactly its promise: nothing survives the process.

pub mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytestring::ByteString;
use ratatosk_shards::Partition;

use crate::message::Message;
use crate::protocol::{LastWill, QoS, SubOptions};

/// A subscription as a session keeps it (the filter string is its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Options given in SUBSCRIBE.
    pub options: SubOptions,
    /// v5 subscription identifier, if one was given.
    pub id: Option<u32>,
}

/// A point in a store's sequence of writes; writes up to it become durable together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Commit(pub u64);

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
#[expect(dead_code, reason = "the durable engines (storage issue) fail this way; the in-memory store never fails")]
pub enum StoreError {
    /// The engine could not read or write its files.
    #[error("storage I/O failed on {path}: {source}; check the disk and the permissions of the data directory")]
    Io {
        /// The file or directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Stored data could not be understood.
    #[error("stored data in {path} is damaged: {problem}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// A future that resolves when a commit is durable.
pub type DurableWait = Pin<Box<dyn Future<Output = Result<(), StoreError>>>>;

/// How a store tells when writes are durable.
pub trait Durability {
    /// The commit that covers every write made so far.
    fn last_commit(&self) -> Commit;
    /// Whether `commit` (and everything before it) is durable.
    fn is_durable(&self, commit: Commit) -> bool;
    /// Resolves when `commit` is durable; only called when [`Durability::is_durable`] said no.
    fn wait_durable(&self, commit: Commit) -> DurableWait;
}

/// Which session a stored item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey<'a> {
    /// The virtual partition of (tenant, client id).
    pub partition: Partition,
    /// Tenant namespace.
    pub tenant: &'a str,
    /// Client identifier.
    pub client_id: &'a str,
}

/// What a persistent session keeps besides its subscriptions and messages.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Session expiry interval in seconds; `NEVER_EXPIRES` for never.
    pub expiry_interval: u32,
    /// When its last connection ended (wall clock, ns since the epoch); `None` while connected.
    /// Expiry counts from here, across restarts.
    pub disconnected_ns: Option<u64>,
    /// A will that is still to be published (with a delay, after a disconnect).
    pub will: Option<LastWill>,
}

/// Where a stored outgoing message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlightState {
    /// Waiting in the queue for a free in-flight slot or for the client.
    Queued,
    /// QoS 1 sent with this packet id, waiting for PUBACK.
    AwaitPubAck(u16),
    /// QoS 2 sent with this packet id, waiting for PUBREC.
    AwaitPubRec(u16),
    /// PUBREL sent for this packet id, waiting for PUBCOMP.
    AwaitPubComp(u16),
}

/// An outgoing QoS 1/2 message of a persistent session.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Position in the session's delivery order; the key of the message within its session.
    pub order: u64,
    /// The message.
    pub msg: Arc<Message>,
    /// QoS granted for this delivery.
    pub qos: QoS,
    /// Retain flag to send.
    pub retain: bool,
    /// v5 subscription identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
    /// Where it is in its flow.
    pub state: FlightState,
}

/// Everything stored of one session, as loaded at start-up.
#[derive(Debug, Clone)]
pub struct SessionImage {
    /// Partition of the session.
    pub partition: Partition,
    /// Tenant namespace.
    pub tenant: ByteString,
    /// Client identifier.
    pub client_id: ByteString,
    /// The session record.
    pub record: SessionRecord,
    /// Filter (with any `$share/group/` prefix) → subscription.
    pub subscriptions: Vec<(ByteString, Subscription)>,
    /// Outgoing messages in delivery order.
    pub messages: Vec<StoredMessage>,
    /// Incoming QoS 2 packet ids acknowledged with PUBREC and not yet released.
    pub incoming_qos2: Vec<u16>,
}

/// Keeps persistent sessions: written by the session as its state changes, read at start-up.
pub trait SessionStore: Durability {
    /// Every stored session of the partitions this store holds.
    fn load(&self) -> Result<Vec<SessionImage>, StoreError>;
    /// Creates or replaces the session's record.
    fn put_session(&self, key: StoreKey<'_>, record: &SessionRecord) -> Commit;
    /// Removes the session and everything stored under it.
    fn remove_session(&self, key: StoreKey<'_>) -> Commit;
    /// Adds or replaces a subscription.
    fn put_subscription(&self, key: StoreKey<'_>, filter: &str, sub: &Subscription) -> Commit;
    /// Removes a subscription.
    fn remove_subscription(&self, key: StoreKey<'_>, filter: &str) -> Commit;
    /// Adds an outgoing message or records its new state (same `order`).
    fn put_message(&self, key: StoreKey<'_>, msg: &StoredMessage) -> Commit;
    /// Removes an outgoing message (acknowledged, expired or dropped).
    fn remove_message(&self, key: StoreKey<'_>, order: u64) -> Commit;
    /// Records an incoming QoS 2 packet id answered with PUBREC.
    fn put_incoming_qos2(&self, key: StoreKey<'_>, packet_id: u16) -> Commit;
    /// Forgets an incoming QoS 2 packet id (PUBREL received).
    fn remove_incoming_qos2(&self, key: StoreKey<'_>, packet_id: u16) -> Commit;
}

/// Keeps retained messages of the topics a shard owns.
pub trait RetainedStore: Durability {
    /// Every stored retained message of the partitions this store holds, with its partition.
    fn load(&self) -> Result<Vec<(Partition, Arc<Message>)>, StoreError>;
    /// Stores `msg` as the retained message of its topic.
    fn put(&self, partition: Partition, msg: &Arc<Message>) -> Commit;
    /// Clears the retained message of a topic.
    fn remove(&self, partition: Partition, tenant: &str, topic: &str) -> Commit;
}
