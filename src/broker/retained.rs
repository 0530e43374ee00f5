//! Retained messages: stored on the shard that holds the partition of (tenant, topic), gathered
//! for new subscriptions from the owner (exact filter) or from every shard (wildcard filter).

use std::rc::Rc;
use std::sync::Arc;

use super::retained_set::RetainChange;
use super::shard::Shard;
use super::shard_msg::{RetainedQuery, ShardMsg};
use super::stats::ShardCounters;
use crate::protocol::topic::has_wildcards;
use crate::session::{wall_ns, Delivery, Message};

impl Shard {
    /// Stores or clears a retained message at its owner shard, waiting until the owner applied it,
    /// so a later subscription from any shard sees it.
    pub async fn retain(&self, msg: Arc<Message>) {
        let owner = self.placement.shard_of(&msg.tenant, &msg.topic);
        if owner == self.id {
            self.store_retained(msg);
        } else {
            let (token, done) = self.peers.expect_acks(1);
            self.peers.send_to(owner, ShardMsg::Retain(Box::new((msg, token)))).await;
            done.notified().await;
        }
    }

    /// Applies a retained message owned by this shard.
    pub fn store_retained(&self, msg: Arc<Message>) {
        let partition = self.placement.partition(&msg.tenant, &msg.topic);
        let change = self.retained.borrow_mut().put(msg, partition);
        let c = &self.counters().retained;
        match change {
            RetainChange::Added => ShardCounters::add(c, 1),
            RetainChange::Removed => ShardCounters::sub(c, 1),
            RetainChange::Replaced | RetainChange::Unchanged => {}
        }
    }

    /// Retained messages of this shard matching a filter, dropping expired ones on the way.
    pub fn matching_retained(&self, tenant: &str, filter: &str) -> Vec<Arc<Message>> {
        let placement = &self.placement;
        let (out, removed) = self.retained.borrow_mut().matching(tenant, filter, wall_ns(), |topic| placement.partition(tenant, topic));
        ShardCounters::sub(&self.counters().retained, removed as u64);
        out
    }

    /// Asks the shards that may hold matching retained messages to send them to a new subscription.
    pub async fn request_retained(self: &Rc<Self>, q: RetainedQuery) {
        let targets: Vec<usize> = if has_wildcards(&q.filter) { (0..self.n).collect() } else { vec![self.placement.shard_of(&q.tenant, &q.filter)] };
        for t in targets {
            if t == self.id {
                let msgs = self.matching_retained(&q.tenant, &q.filter);
                self.deliver_retained(&q, &msgs);
            } else {
                self.peers.send_to(t, ShardMsg::RetainedQuery(Box::new(q.clone()))).await;
            }
        }
    }

    /// Hands retained messages to the subscribing session, with the retain flag set
    /// [MQTT-3.3.1-8].
    pub fn deliver_retained(&self, q: &RetainedQuery, msgs: &[Arc<Message>]) {
        if msgs.is_empty() {
            return;
        }
        let Some(client) = self.clients.get_uid(&q.tenant, &q.client_id, q.uid) else { return };
        let ids: Vec<u32> = q.sub_id.into_iter().collect();
        let now = wall_ns();
        for m in msgs {
            // Retained replays are bounded by what is stored; no back-pressure needed.
            let _ = self.deliver_counted(&client, Delivery { msg: m, qos: q.options.qos.min(m.qos), retain: true, sub_ids: &ids }, now);
        }
    }
}
