//! Retained messages: stored on the shard that owns `hash(tenant, topic)`, gathered for new
//! subscriptions from the owner (exact filter) or from every shard (wildcard filter).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use ratatosk_shards::shard_of;

use super::message::Message;
use super::shard::{RetainedQuery, Shard, ShardMsg};
use super::stats::ShardCounters;
use crate::protocol::topic::has_wildcards;
use crate::session::Delivery;

impl Shard {
    /// Stores or clears a retained message at its owner shard, waiting until the owner applied it,
    /// so a later subscription from any shard sees it.
    pub async fn retain(&self, msg: Arc<Message>) {
        let owner = shard_of(&msg.tenant, &msg.topic, self.n);
        if owner == self.id {
            self.store_retained(msg);
        } else {
            let (token, done) = self.expect_acks(1);
            self.send_to(owner, ShardMsg::Retain(Box::new((msg, token)))).await;
            done.notified().await;
        }
    }

    /// Applies a retained message owned by this shard. An empty payload clears the topic
    /// [MQTT-3.3.1-10]; otherwise it replaces what was there [MQTT-3.3.1-5].
    pub fn store_retained(&self, msg: Arc<Message>) {
        let mut all = self.retained.borrow_mut();
        let index = all.entry(msg.tenant.clone()).or_default();
        let c = self.counters();
        if msg.payload.is_empty() {
            if index.remove(&msg.topic).is_some() {
                ShardCounters::sub(&c.retained, 1);
            }
        } else if index.insert(&msg.topic.clone(), msg.for_keeping()).is_none() {
            ShardCounters::add(&c.retained, 1);
        }
    }

    /// Retained messages of this shard matching a filter, dropping expired ones on the way.
    pub fn matching_retained(&self, tenant: &str, filter: &str) -> Vec<Arc<Message>> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut expired = Vec::new();
        if let Some(index) = self.retained.borrow().get(tenant) {
            index.for_each_matching(filter, |topic, m| {
                if m.remaining_expiry(now).is_ok() {
                    out.push(m.clone());
                } else {
                    expired.push(topic.to_owned());
                }
            });
        }
        if !expired.is_empty() {
            if let Some(index) = self.retained.borrow_mut().get_mut(tenant) {
                for t in expired {
                    if index.remove(&t).is_some() {
                        ShardCounters::sub(&self.counters().retained, 1);
                    }
                }
            }
        }
        out
    }

    /// Asks the shards that may hold matching retained messages to send them to a new subscription.
    pub async fn request_retained(self: &Rc<Self>, q: RetainedQuery) {
        let targets: Vec<usize> = if has_wildcards(&q.filter) {
            (0..self.n).collect()
        } else {
            vec![shard_of(&q.tenant, &q.filter, self.n)]
        };
        for t in targets {
            if t == self.id {
                let msgs = self.matching_retained(&q.tenant, &q.filter);
                self.deliver_retained(&q, &msgs);
            } else {
                self.send_to(t, ShardMsg::RetainedQuery(Box::new(q.clone()))).await;
            }
        }
    }

    /// Hands retained messages to the subscribing session, with the retain flag set
    /// [MQTT-3.3.1-8].
    pub fn deliver_retained(&self, q: &RetainedQuery, msgs: &[Arc<Message>]) {
        if msgs.is_empty() {
            return;
        }
        let key = (q.tenant.clone(), q.client_id.clone());
        let Some(session) = self.sessions.borrow().get(&key).cloned() else { return };
        if session.borrow().uid != q.uid {
            return;
        }
        let ids: Vec<u32> = q.sub_id.into_iter().collect();
        let now = Instant::now();
        for m in msgs {
            // Retained replays are bounded by what is stored; no back-pressure needed.
            let _ = self.deliver_counted(&session, Delivery { msg: m, qos: q.options.qos.min(m.qos), retain: true, sub_ids: &ids }, now);
        }
    }
}
