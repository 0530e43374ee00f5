//! One shard's state.
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

use ratatosk_io::ParkingSpot;
use ratatosk_shards::{Mesh, Placement};

use super::clients::Clients;
use super::parked::Parked;
use super::peers::Peers;
use super::replay::ReplayWindow;
use super::retained_set::RetainedMessages;
use super::routes::RouteTable;
use super::shard_msg::ShardMsg;
use super::stats::{ShardCounters, Stats};
use crate::config::Config;
use crate::session::{Keeper, Ledger, MessageIds};
use crate::store::{RetainedStore, SessionStore};
use crate::tenant::AuthProvider;

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
    /// Where idle connections park; `None` keeps a task per connection.
    pub parking: Option<ParkingSpot>,
}

/// One shard.
pub struct Shard {
    pub(super) id: usize,
    pub(super) n: usize,
    pub(super) config: Arc<Config>,
    pub(super) placement: Placement,
    pub(super) peers: Peers,
    pub(super) clients: Clients,
    pub(super) parked: Parked,
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
            parked: Parked::new(p.parking),
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
