//! The clients at home on one shard, by (tenant, client id).

use std::cell::RefCell;
use std::collections::HashMap;

use bytestring::ByteString;

use super::client::ClientRef;

/// Key of a session: (tenant, client id).
pub type SessionKey = (ByteString, ByteString);

/// The shard's clients. Lookups never hand out a borrow of the map: callers get a cloned handle.
#[derive(Debug, Default)]
pub struct Clients {
    map: RefCell<HashMap<SessionKey, ClientRef>>,
}

impl Clients {
    /// The client with this key.
    pub fn get(&self, tenant: &ByteString, client_id: &ByteString) -> Option<ClientRef> {
        self.map.borrow().get(&(tenant.clone(), client_id.clone())).cloned()
    }

    /// The client with this key, if its session is the one with `uid` (not a newer one).
    pub fn get_uid(&self, tenant: &ByteString, client_id: &ByteString, uid: u64) -> Option<ClientRef> {
        let c = self.get(tenant, client_id)?;
        let same = c.borrow().session().uid() == uid;
        same.then_some(c)
    }

    /// Whether a session with this key exists.
    pub fn contains(&self, tenant: &ByteString, client_id: &ByteString) -> bool {
        self.map.borrow().contains_key(&(tenant.clone(), client_id.clone()))
    }

    /// Adds (or replaces) the client with this key.
    pub fn insert(&self, key: SessionKey, client: ClientRef) {
        self.map.borrow_mut().insert(key, client);
    }

    /// Removes the client with this key if its session is the one with `uid`; returns whether
    /// it did.
    pub fn remove_uid(&self, tenant: &ByteString, client_id: &ByteString, uid: u64) -> bool {
        let mut map = self.map.borrow_mut();
        let key = (tenant.clone(), client_id.clone());
        if map.get(&key).is_some_and(|c| c.borrow().session().uid() == uid) {
            map.remove(&key);
            true
        } else {
            false
        }
    }

    /// Applies `f` to every client without taking a snapshot; `f` must not change the registry.
    pub fn for_each(&self, mut f: impl FnMut(&ClientRef)) {
        for c in self.map.borrow().values() {
            f(c);
        }
    }
}
