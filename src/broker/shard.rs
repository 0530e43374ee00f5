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
use glommio::{GlommioError, ResourceType};
use ratatosk_shards::{Lane, Mesh};

use ratatosk_io::DetachedStream;

use super::message::{Message, Publisher};
use super::notify::Notify;
use super::stats::{ShardCounters, Stats};
use crate::config::Config;
use crate::protocol::SubOptions;
use crate::router::{RetainedIndex, TopicTrie};
use crate::session::{Ledger, Session};

/// Key of a session: (tenant, client id).
pub type SessionKey = (ByteString, ByteString);

/// A shared, shard-local session handle.
pub type SessionRef = Rc<RefCell<Session>>;

/// What shards tell each other.
///
/// Kept to two words, so the mesh's preallocated slots stay small: anything larger is boxed.
pub enum ShardMsg {
    /// A connection whose CONNECT names a client at home on the receiving shard.
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

/// A connection handed to its home shard, with what the accepting shard learnt of it.
pub struct Handoff {
    /// The socket.
    pub stream: DetachedStream,
    /// Bytes read from it so far, CONNECT included.
    pub bytes: Vec<u8>,
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
    /// What this shard's sessions queue and drop; charged against this shard's share of
    /// `limits.max_queued_bytes_total`.
    pub ledger: Rc<Ledger>,
    /// Requests sent to other shards and not yet acknowledged: token → (acks missing, waiter).
    pub pending: RefCell<HashMap<u64, (usize, Notify)>>,
    next_uid: Cell<u64>,
    next_token: Cell<u64>,
    /// Messages published here recently, with the shards they went to, so that a route that
    /// arrives late still gets the messages published after its subscription began.
    pub recent: RefCell<std::collections::VecDeque<(Arc<Message>, u64)>>,
    /// Payload bytes held in `recent`.
    pub recent_bytes: Cell<usize>,
    /// Control messages that found their channel full, in order, for the outbox task.
    outbox: RefCell<std::collections::VecDeque<(usize, ShardMsg)>>,
    /// Wakes the outbox task.
    outbox_ready: Notify,
    /// The outbox task is sending a message it took out (later posts must queue behind it).
    outbox_sending: Cell<bool>,
}

impl Shard {
    /// A shard with no sessions.
    pub fn new(id: usize, n: usize, config: Arc<Config>, senders: Option<Mesh<ShardMsg>>, stats: Stats) -> Shard {
        Shard {
            id,
            n,
            ledger: Rc::new(Ledger::new(config.limits.max_queued_bytes_total / n.max(1))),
            config,
            senders,
            sessions: RefCell::default(),
            routes: RefCell::default(),
            retained: RefCell::default(),
            stats,
            pending: RefCell::default(),
            recent: RefCell::default(),
            recent_bytes: Cell::new(0),
            outbox: RefCell::default(),
            outbox_ready: Notify::default(),
            outbox_sending: Cell::new(false),
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

    /// Sends a message to another shard on its lane, waiting while that channel is full
    /// (back-pressure).
    pub async fn send_to(&self, shard: usize, msg: ShardMsg) {
        if let Some(senders) = &self.senders {
            let lane = msg.lane();
            if senders.send_to(shard, lane, msg).await.is_err() {
                tracing::debug!(from = self.id, to = shard, "mesh channel closed (shard stopping)");
            }
        }
    }

    /// Sends a control message without waiting, from code that must not wait (a mesh receive
    /// task, a delivery). When the channel is full, or earlier posts still wait, it joins the
    /// outbox, which keeps posts to a shard in order.
    pub fn post(&self, shard: usize, msg: ShardMsg) {
        let Some(senders) = &self.senders else { return };
        let mut outbox = self.outbox.borrow_mut();
        if outbox.is_empty() && !self.outbox_sending.get() {
            match senders.try_send_to(shard, msg.lane(), msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => outbox.push_back((shard, m)),
                Err(_) => return,
            }
        } else {
            outbox.push_back((shard, msg));
        }
        self.outbox_ready.notify();
    }

    /// Drains the outbox forever: one task per shard, so that posts wait for room in order.
    pub async fn run_outbox(&self) {
        loop {
            let next = self.outbox.borrow_mut().pop_front();
            match next {
                Some((shard, msg)) => {
                    self.outbox_sending.set(true);
                    self.send_to(shard, msg).await;
                    self.outbox_sending.set(false);
                }
                None => self.outbox_ready.notified().await,
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
