//! Retained messages: stored on the shard that holds the partition of (tenant, topic), gathered
//! for new subscriptions from the owner (exact filter) or from every shard (wildcard filter).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytestring::ByteString;

use super::shard::{RetainedQuery, Shard, ShardMsg};
use super::stats::ShardCounters;
use crate::protocol::topic::has_wildcards;
use crate::router::RetainedIndex;
use crate::session::{wall_ns, Delivery, Message};
use crate::store::RetainedStore;

/// The retained messages a shard owns, per tenant, written through to its retained store.
pub struct RetainedMessages {
    by_tenant: HashMap<ByteString, RetainedIndex<Arc<Message>>>,
    store: Rc<dyn RetainedStore>,
}

/// What storing a retained message changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainChange {
    /// A topic got its first retained message.
    Added,
    /// A topic's retained message was replaced.
    Replaced,
    /// A topic's retained message was cleared.
    Removed,
    /// Nothing was there to clear.
    Unchanged,
}

impl RetainedMessages {
    /// No retained messages, writing to `store`.
    pub fn new(store: Rc<dyn RetainedStore>) -> RetainedMessages {
        RetainedMessages { by_tenant: HashMap::new(), store }
    }

    /// Puts back what the store kept; returns how many messages there were.
    pub fn load(&mut self) -> Result<usize, crate::store::StoreError> {
        let kept = self.store.load()?;
        let n = kept.len();
        for (_, msg) in kept {
            self.by_tenant.entry(msg.tenant.clone()).or_default().insert(&msg.topic.clone(), msg);
        }
        Ok(n)
    }

    /// Stores `msg` as its topic's retained message; an empty payload clears the topic
    /// [MQTT-3.3.1-10], anything else replaces what was there [MQTT-3.3.1-5].
    pub fn put(&mut self, msg: Arc<Message>, partition: ratatosk_shards::Partition) -> RetainChange {
        let index = self.by_tenant.entry(msg.tenant.clone()).or_default();
        if msg.payload.is_empty() {
            if index.remove(&msg.topic).is_none() {
                return RetainChange::Unchanged;
            }
            self.store.remove(partition, &msg.tenant, &msg.topic);
            return RetainChange::Removed;
        }
        let kept = msg.for_keeping();
        self.store.put(partition, &kept);
        match index.insert(&msg.topic.clone(), kept) {
            None => RetainChange::Added,
            Some(_) => RetainChange::Replaced,
        }
    }

    /// Retained messages matching a filter; expired ones are dropped on the way. Returns the
    /// matches and how many expired ones were removed.
    pub fn matching(&mut self, tenant: &str, filter: &str, now_ns: u64, partition_of: impl Fn(&str) -> ratatosk_shards::Partition) -> (Vec<Arc<Message>>, usize) {
        let mut out = Vec::new();
        let mut expired = Vec::new();
        let Some(index) = self.by_tenant.get_mut(tenant) else { return (out, 0) };
        index.for_each_matching(filter, |topic, m| {
            if m.remaining_expiry(now_ns).is_ok() {
                out.push(m.clone());
            } else {
                expired.push(topic.to_owned());
            }
        });
        let mut removed = 0;
        for t in expired {
            if index.remove(&t).is_some() {
                self.store.remove(partition_of(&t), tenant, &t);
                removed += 1;
            }
        }
        (out, removed)
    }
}

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
