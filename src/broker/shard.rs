//! One shard's state, and the messages shards send each other.
//!
//! A [`Shard`] owns the clients whose home it is, the route table (its own subscribers merged
//! with which other shards have subscribers for a filter), the retained messages of the topics
//! it owns, the replay window of what it published recently, and its ends of the mesh. It is
//! reached only from its own executor; other shards send it a [`ShardMsg`]. Each part is a type
//! of its own that changes only through its methods; the shard's methods that combine them live
//! in the file of their concern (`fanout`, `pacing`, `retained`, `lifecycle`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytestring::ByteString;
use ratatosk_io::Detached;
use ratatosk_shards::{Lane, Mesh, Placement};

use super::admission::Admitted;
use super::clients::Clients;
use super::peers::Peers;
use super::replay::ReplayWindow;
use super::retained::RetainedMessages;
use super::routes::{Route, RouteTable};
use super::stats::{ShardCounters, Stats};
use crate::config::Config;
use crate::protocol::SubOptions;
use crate::session::{Keeper, Ledger, Message, MessageIds, Publisher};
use crate::store::{RetainedStore, SessionStore};
use crate::tenant::AuthProvider;

/// What shards tell each other.
///
/// Kept to two words, so the mesh's preallocated slots stay small: anything larger is boxed.
pub enum ShardMsg {
    /// An admitted connection whose client is at home on the receiving shard.
    Handoff(Box<Handoff>),
    /// A message to match against the receiving shard's own subscribers.
    Publish(Arc<Message>),
    /// A message published before the sender learnt of the receiver's new route: deliver it only
    /// to subscriptions that were already active when it was published.
    Replay(Arc<Message>),
    /// A message for one member of a shared subscription group on the receiving shard.
    SharedPublish(Box<SharedPublish>),
    /// The sending shard now has subscribers for a filter; ack with the token.
    RouteAdd(Box<(Route, u64)>),
    /// The sending shard no longer has subscribers for a filter.
    RouteRemove(Box<Route>),
    /// Store (or clear, for an empty payload) a retained message owned by the receiver; ack with the token.
    Retain(Box<(Arc<Message>, u64)>),
    /// Send retained messages matching a filter to a session on the sending shard.
    RetainedQuery(Box<RetainedQuery>),
    /// Answer to a `RetainedQuery`.
    RetainedReply(Box<(RetainedQuery, Vec<Arc<Message>>)>),
    /// A subscriber on the sending shard fell behind on messages from a publisher at home on the
    /// receiving shard: hold that publisher until `Resume` (or the pacing limit).
    Pace(Box<PaceSignal>),
    /// The subscriber of an earlier `Pace` caught up (or went away).
    Resume(Box<PaceSignal>),
    /// The request with this token was applied.
    Ack(u64),
}

impl ShardMsg {
    /// The mesh lane this message travels on: forwarded publishes are data; everything others
    /// wait for is control, so it never queues behind a congested data channel. Replays travel
    /// with control so that they reach the subscriber's shard before the route's `Ack`.
    pub fn lane(&self) -> Lane {
        match self {
            ShardMsg::Publish(_) | ShardMsg::SharedPublish(_) => Lane::Data,
            _ => Lane::Control,
        }
    }
}

/// A connection handed to its client's home shard after admission: the connection with its
/// transport state, who the client is (decided once, on the accepting shard), and the bytes
/// that arrived after CONNECT.
pub struct Handoff {
    /// The connection.
    pub transport: Detached,
    /// The admitted client and its CONNECT.
    pub admitted: Admitted,
    /// Input read after the CONNECT packet (a client may send without waiting for CONNACK).
    pub rest: Vec<u8>,
}

/// A message for one member of a shared subscription group.
pub struct SharedPublish {
    /// The message.
    pub msg: Arc<Message>,
    /// The filter of the group (without `$share/group/`).
    pub filter: ByteString,
    /// The group name.
    pub group: ByteString,
}

/// Who holds whom for back-pressure across shards (see `pacing`).
#[derive(Debug, Clone)]
pub struct PaceSignal {
    /// Tenant of both sessions.
    pub tenant: ByteString,
    /// The publisher's session, at home on the receiving shard.
    pub publisher: Publisher,
    /// The shard of the subscriber that fell behind.
    pub sub_shard: usize,
    /// The subscriber's session uid.
    pub sub_uid: u64,
}

/// A request for retained messages on behalf of a subscription.
#[derive(Debug, Clone)]
pub struct RetainedQuery {
    /// Tenant namespace.
    pub tenant: ByteString,
    /// Filter to match.
    pub filter: ByteString,
    /// Shard of the subscribing session.
    pub reply_to: usize,
    /// Client id of the session.
    pub client_id: ByteString,
    /// Session uid, so a reply for a replaced session is dropped.
    pub uid: u64,
    /// Options of the subscription.
    pub options: SubOptions,
    /// Subscription identifier.
    pub sub_id: Option<u32>,
}

/// What a shard is built from.
pub struct ShardParts {
    /// Index of this shard.
    pub id: usize,
    /// Configuration.
    pub config: Arc<Config>,
    /// Which shard holds which partition.
    pub placement: Placement,
    /// Senders to other shards (`None` with a single shard).
    pub senders: Option<Mesh<ShardMsg>>,
    /// All shards' counters.
    pub stats: Stats,
    /// Where persistent sessions are kept.
    pub sessions: Rc<dyn SessionStore>,
    /// Where retained messages are kept.
    pub retained: Rc<dyn RetainedStore>,
    /// Who is admitted, and to what.
    pub auth: Rc<dyn AuthProvider>,
}

/// One shard.
pub struct Shard {
    pub(super) id: usize,
    pub(super) n: usize,
    pub(super) config: Arc<Config>,
    pub(super) placement: Placement,
    pub(super) peers: Peers,
    pub(super) clients: Clients,
    pub(super) routes: RefCell<RouteTable>,
    pub(super) retained: RefCell<RetainedMessages>,
    pub(super) replay: RefCell<ReplayWindow>,
    pub(super) keeper: Rc<Keeper>,
    pub(super) stats: Stats,
    pub(super) auth: Rc<dyn AuthProvider>,
    pub(super) ids: MessageIds,
    next_uid: Cell<u64>,
}

impl Shard {
    /// A shard with no clients.
    pub fn new(p: ShardParts) -> Shard {
        let n = p.placement.shards();
        let ledger = Ledger::new(p.config.limits.max_queued_bytes_total / n.max(1));
        Shard {
            id: p.id,
            n,
            peers: Peers::new(p.id, n, p.senders),
            clients: Clients::default(),
            routes: RefCell::default(),
            retained: RefCell::new(RetainedMessages::new(p.retained)),
            replay: RefCell::default(),
            keeper: Rc::new(Keeper::new(ledger, p.sessions)),
            stats: p.stats,
            auth: p.auth,
            ids: MessageIds::new(p.id),
            next_uid: Cell::new(1),
            config: p.config,
            placement: p.placement,
        }
    }

    /// This shard's counters.
    pub fn counters(&self) -> &ShardCounters {
        &self.stats.shards[self.id]
    }

    /// A uid for a new session.
    pub fn new_uid(&self) -> u64 {
        let u = self.next_uid.get();
        self.next_uid.set(u + 1);
        u
    }

    /// Copies the shard's ledger into the counters others read.
    pub fn sync_counters(&self) {
        self.counters().sync(self.keeper.ledger());
    }
}
