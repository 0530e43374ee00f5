//! The retained messages one shard owns, per tenant, written through to its retained store.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytestring::ByteString;

use crate::router::RetainedIndex;
use crate::session::Message;
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
