//! The in-memory store: what `durability = "none"` keeps, and the reference the durable engines
//! are held to.
//!
//! It keeps every write in maps of the broker's own types and answers `load` with them, so the
//! code that writes through the store and the code that restores from it can be tested against
//! each other without a disk. Every write is durable at once: nothing here outlives the process,
//! and nothing waits.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytestring::ByteString;
use ratatosk_shards::Partition;

use super::{Commit, Durability, DurableWait, RetainedStore, SessionImage, SessionRecord, SessionStore, StoreError, StoreKey, StoredMessage};
use super::Subscription;
use crate::message::Message;

#[derive(Debug)]
struct Kept {
    partition: Partition,
    record: SessionRecord,
    subscriptions: BTreeMap<ByteString, Subscription>,
    messages: BTreeMap<u64, StoredMessage>,
    incoming_qos2: BTreeSet<u16>,
}

/// A retained message with its partition.
type KeptRetained = (Partition, Arc<Message>);

/// Sessions and retained messages of one shard, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Tenant → client id → session (nested, so that a write looks up by `&str` without
    /// allocating).
    sessions: RefCell<HashMap<ByteString, HashMap<ByteString, Kept>>>,
    /// Tenant → topic → retained message.
    retained: RefCell<HashMap<ByteString, HashMap<ByteString, KeptRetained>>>,
    writes: Cell<u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn commit(&self) -> Commit {
        let n = self.writes.get() + 1;
        self.writes.set(n);
        Commit(n)
    }

    /// Applies `f` to the stored session of `key`, if there is one (items of a session that was
    /// never put, or was removed, are not kept).
    fn with_session(&self, key: StoreKey<'_>, f: impl FnOnce(&mut Kept)) -> Commit {
        if let Some(k) = self.sessions.borrow_mut().get_mut(key.tenant).and_then(|t| t.get_mut(key.client_id)) {
            f(k);
        }
        self.commit()
    }

    /// Sessions held.
    #[cfg(test)]
    pub fn session_count(&self) -> usize {
        self.sessions.borrow().values().map(HashMap::len).sum()
    }
}

impl Durability for MemoryStore {
    fn last_commit(&self) -> Commit {
        Commit(self.writes.get())
    }

    fn is_durable(&self, _commit: Commit) -> bool {
        true
    }

    fn wait_durable(&self, _commit: Commit) -> DurableWait {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl SessionStore for MemoryStore {
    fn load(&self) -> Result<Vec<SessionImage>, StoreError> {
        Ok(self
            .sessions
            .borrow()
            .iter()
            .flat_map(|(tenant, t)| t.iter().map(move |(client_id, k)| (tenant, client_id, k)))
            .map(|(tenant, client_id, k)| SessionImage {
                partition: k.partition,
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                record: k.record.clone(),
                subscriptions: k.subscriptions.iter().map(|(f, s)| (f.clone(), *s)).collect(),
                messages: k.messages.values().cloned().collect(),
                incoming_qos2: k.incoming_qos2.iter().copied().collect(),
            })
            .collect())
    }

    fn put_session(&self, key: StoreKey<'_>, record: &SessionRecord) -> Commit {
        let mut sessions = self.sessions.borrow_mut();
        let tenant = match sessions.get_mut(key.tenant) {
            Some(t) => t,
            None => sessions.entry(ByteString::from(key.tenant)).or_default(),
        };
        let k = tenant.entry(ByteString::from(key.client_id)).or_insert_with(|| Kept {
            partition: key.partition,
            record: record.clone(),
            subscriptions: BTreeMap::new(),
            messages: BTreeMap::new(),
            incoming_qos2: BTreeSet::new(),
        });
        k.record = record.clone();
        drop(sessions);
        self.commit()
    }

    fn remove_session(&self, key: StoreKey<'_>) -> Commit {
        let mut sessions = self.sessions.borrow_mut();
        if let Some(t) = sessions.get_mut(key.tenant) {
            t.remove(key.client_id);
            if t.is_empty() {
                sessions.remove(key.tenant);
            }
        }
        drop(sessions);
        self.commit()
    }

    fn put_subscription(&self, key: StoreKey<'_>, filter: &str, sub: &Subscription) -> Commit {
        self.with_session(key, |k| {
            k.subscriptions.insert(ByteString::from(filter), *sub);
        })
    }

    fn remove_subscription(&self, key: StoreKey<'_>, filter: &str) -> Commit {
        self.with_session(key, |k| {
            k.subscriptions.remove(filter);
        })
    }

    fn put_message(&self, key: StoreKey<'_>, msg: &StoredMessage) -> Commit {
        self.with_session(key, |k| {
            k.messages.insert(msg.order, msg.clone());
        })
    }

    fn remove_message(&self, key: StoreKey<'_>, order: u64) -> Commit {
        self.with_session(key, |k| {
            k.messages.remove(&order);
        })
    }

    fn put_incoming_qos2(&self, key: StoreKey<'_>, packet_id: u16) -> Commit {
        self.with_session(key, |k| {
            k.incoming_qos2.insert(packet_id);
        })
    }

    fn remove_incoming_qos2(&self, key: StoreKey<'_>, packet_id: u16) -> Commit {
        self.with_session(key, |k| {
            k.incoming_qos2.remove(&packet_id);
        })
    }
}

impl RetainedStore for MemoryStore {
    fn load(&self) -> Result<Vec<(Partition, Arc<Message>)>, StoreError> {
        Ok(self.retained.borrow().values().flat_map(|t| t.values().cloned()).collect())
    }

    fn put(&self, partition: Partition, msg: &Arc<Message>) -> Commit {
        self.retained.borrow_mut().entry(msg.tenant.clone()).or_default().insert(msg.topic.clone(), (partition, msg.clone()));
        self.commit()
    }

    fn remove(&self, _partition: Partition, tenant: &str, topic: &str) -> Commit {
        let mut retained = self.retained.borrow_mut();
        if let Some(t) = retained.get_mut(tenant) {
            t.remove(topic);
            if t.is_empty() {
                retained.remove(tenant);
            }
        }
        drop(retained);
        self.commit()
    }
}
