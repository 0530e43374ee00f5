//! One shard's state and its side of the mesh.
//!
//! A `Shard` owns the sessions whose home it is, the subscription index of those sessions merged
//! with the route table (which other shards have subscribers for a filter), and the retained
//! messages whose topic hashes to it. It is reached only from its own executor; other shards send
//! it a [`ShardMsg`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytestring::ByteString;
use ratatosk_shards::Mesh;

use ratatosk_io::DetachedStream;

use super::message::Message;
use super::notify::Notify;
use super::stats::{ShardCounters, Stats};
use crate::config::Config;
use crate::protocol::SubOptions;
use crate::router::{RetainedIndex, TopicTrie};
use crate::session::Session;

/// Key of a session: (tenant, client id).
pub type SessionKey = (ByteString, ByteString);

/// A shared, shard-local session handle.
pub type SessionRef = Rc<RefCell<Session>>;

/// What shards tell each other.
pub enum ShardMsg {
    /// A connection whose CONNECT names a client at home on the receiving shard; `bytes` are all
    /// bytes read so far, CONNECT included.
    Handoff {
        /// The socket.
        stream: DetachedStream,
        /// Bytes already read from it.
        bytes: Vec<u8>,
    },
    /// A message to match against the receiving shard's own subscribers.
    Publish(Arc<Message>),
    /// A message published before the sender learnt of the receiver's new route: deliver it only
    /// to subscriptions that were already active when it was published.
    Replay(Arc<Message>),
    /// A message for one member of a shared subscription group on the receiving shard.
    SharedPublish {
        /// The message.
        msg: Arc<Message>,
        /// The filter of the group (without `$share/group/`).
        filter: ByteString,
        /// The group name.
        group: ByteString,
    },
    /// The sending shard now has subscribers for a filter; ack with `token`.
    RouteAdd(Route, u64),
    /// The sending shard no longer has subscribers for a filter.
    RouteRemove(Route),
    /// Store (or clear, for an empty payload) a retained message owned by the receiver; ack with `token`.
    Retain(Arc<Message>, u64),
    /// Send retained messages matching a filter to a session on the sending shard.
    RetainedQuery(RetainedQuery),
    /// Answer to a `RetainedQuery`.
    RetainedReply(RetainedQuery, Vec<Arc<Message>>),
    /// The request with this token was applied.
    Ack(u64),
}

/// A route table change.
#[derive(Debug, Clone)]
pub struct Route {
    /// Tenant of the filter.
    pub tenant: ByteString,
    /// Topic filter without any `$share` prefix.
    pub filter: ByteString,
    /// Shared subscription group, if any.
    pub group: Option<ByteString>,
    /// The shard that gained or lost subscribers.
    pub shard: usize,
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

/// A plain subscriber held in the route table.
#[derive(Debug, Clone)]
pub struct LocalSub {
    /// The session.
    pub session: SessionRef,
    /// Its uid, to find it again on unsubscribe.
    pub uid: u64,
    /// Client id, for no-local.
    pub client_id: ByteString,
    /// Options of this subscription.
    pub options: SubOptions,
    /// Subscription identifier.
    pub id: Option<u32>,
    /// When the SUBSCRIBE reached the broker (kernel receive time, ns since the epoch); replayed
    /// messages that arrived earlier are not delivered to it.
    pub since_ns: u64,
}

/// Members of one shared subscription group for one filter.
#[derive(Debug)]
pub struct Group {
    /// Group name.
    pub name: ByteString,
    /// The filter the group subscribes to (the route table key).
    pub filter: ByteString,
    /// Members on this shard.
    pub local: Vec<LocalSub>,
    /// Other shards with members.
    pub remote: Vec<usize>,
    /// Round-robin cursor over (this shard + remote shards).
    pub next_shard: Cell<usize>,
    /// Round-robin cursor over local members.
    pub next_member: Cell<usize>,
}

/// Everything known about one filter of one tenant on this shard.
#[derive(Debug, Default)]
pub struct FilterEntry {
    /// Subscribers on this shard.
    pub local: Vec<LocalSub>,
    /// Other shards with subscribers.
    pub remote: Vec<usize>,
    /// Shared subscription groups on this filter.
    pub groups: Vec<Group>,
}

impl FilterEntry {
    /// Whether nothing refers to this filter any more.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.groups.is_empty()
    }
}

/// One shard.
pub struct Shard {
    /// Index of this shard.
    pub id: usize,
    /// Number of shards.
    pub n: usize,
    /// Configuration.
    pub config: Arc<Config>,
    /// Senders to other shards (`None` with a single shard).
    pub senders: Option<Mesh<ShardMsg>>,
    /// Sessions at home here.
    pub sessions: RefCell<HashMap<SessionKey, SessionRef>>,
    /// Per tenant: filter → local subscribers and remote shards.
    pub routes: RefCell<HashMap<ByteString, TopicTrie<FilterEntry>>>,
    /// Per tenant: retained messages owned by this shard.
    pub retained: RefCell<HashMap<ByteString, RetainedIndex<Arc<Message>>>>,
    /// All shards' counters.
    pub stats: Stats,
    /// Requests sent to other shards and not yet acknowledged: token → (acks missing, waiter).
    pub pending: RefCell<HashMap<u64, (usize, Notify)>>,
    next_uid: Cell<u64>,
    next_token: Cell<u64>,
    /// Messages published here recently, with the shards they went to, so that a route that
    /// arrives late still gets the messages published after its subscription began.
    pub recent: RefCell<std::collections::VecDeque<(Arc<Message>, u64)>>,
    /// Connected clients that fell behind during the current delivery, for back-pressure.
    pub congested: RefCell<Vec<SessionRef>>,
}

impl Shard {
    /// A shard with no sessions.
    pub fn new(id: usize, n: usize, config: Arc<Config>, senders: Option<Mesh<ShardMsg>>, stats: Stats) -> Shard {
        Shard {
            id,
            n,
            config,
            senders,
            sessions: RefCell::default(),
            routes: RefCell::default(),
            retained: RefCell::default(),
            stats,
            pending: RefCell::default(),
            recent: RefCell::default(),
            congested: RefCell::default(),
            next_uid: Cell::new(1),
            next_token: Cell::new(1),
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

    /// Sends a message to another shard, waiting while its channel is full (back-pressure).
    pub async fn send_to(&self, shard: usize, msg: ShardMsg) {
        if let Some(senders) = &self.senders {
            if senders.send_to(shard, msg).await.is_err() {
                tracing::warn!(from = self.id, to = shard, "mesh channel closed");
            }
        }
    }

    /// Registers a request that `count` shards must acknowledge; returns its token and waiter.
    pub fn expect_acks(&self, count: usize) -> (u64, Notify) {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        let n = Notify::default();
        if count > 0 {
            self.pending.borrow_mut().insert(t, (count, n.clone()));
        } else {
            n.notify();
        }
        (t, n)
    }

    /// Records one acknowledgement.
    pub fn on_ack(&self, token: u64) {
        let mut pending = self.pending.borrow_mut();
        if let Some((left, n)) = pending.get_mut(&token) {
            *left -= 1;
            if *left == 0 {
                n.notify();
                pending.remove(&token);
            }
        }
    }

    /// Other shards' indexes.
    pub fn peers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).filter(move |s| *s != self.id)
    }
}
