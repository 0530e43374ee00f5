//! The sending side of the mesh: messages to other shards, the outbox for control messages that
//! found their channel full, and the acknowledgements a shard waits for.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use glommio::{GlommioError, ResourceType};
use ratatosk_shards::Mesh;

use super::notify::Notify;
use super::shard_msg::ShardMsg;

/// One shard's ends towards its peers.
pub struct Peers {
    id: usize,
    n: usize,
    /// Senders to other shards (`None` with a single shard).
    senders: Option<Mesh<ShardMsg>>,
    /// Control messages that found their channel full, in order, for the outbox task.
    outbox: RefCell<VecDeque<(usize, ShardMsg)>>,
    /// Wakes the outbox task.
    outbox_ready: Notify,
    /// The outbox task is sending a message it took out (later posts must queue behind it).
    outbox_sending: Cell<bool>,
    /// Requests sent to other shards and not yet acknowledged: token → (acks missing, waiter).
    pending: RefCell<HashMap<u64, (usize, Notify)>>,
    next_token: Cell<u64>,
}

impl Peers {
    /// Shard `id` of `n`, sending through `senders`.
    pub fn new(id: usize, n: usize, senders: Option<Mesh<ShardMsg>>) -> Peers {
        Peers {
            id,
            n,
            senders,
            outbox: RefCell::default(),
            outbox_ready: Notify::default(),
            outbox_sending: Cell::new(false),
            pending: RefCell::default(),
            next_token: Cell::new(1),
        }
    }

    /// Other shards' indexes.
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).filter(move |s| *s != self.id)
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

    /// Sends without waiting; a message for a full channel is set aside in `blocked` for a
    /// waiting send. Once one send to a shard waits, later ones to it wait behind it, which keeps
    /// the channel's order.
    pub fn try_send(&self, shard: usize, msg: ShardMsg, blocked: &mut Vec<(usize, ShardMsg)>) {
        let Some(senders) = &self.senders else { return };
        if blocked.iter().any(|(s, _)| *s == shard) {
            blocked.push((shard, msg));
            return;
        }
        match senders.try_send_to(shard, msg.lane(), msg) {
            Ok(()) => {}
            Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => blocked.push((shard, m)),
            Err(e) => tracing::warn!(from = self.id, to = shard, error = %e, "mesh channel closed"),
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
}
