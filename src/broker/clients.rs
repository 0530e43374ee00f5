//! The clients at home on one shard, by (tenant, client id).

use std::cell::RefCell;
use std::collections::HashMap;

use bytestring::ByteString;

use super::client::ClientRef;

/// Key of a session: (tenant, client id).
pub type SessionKey = (ByteString, ByteString);

/// The shard's clients, by tenant and then client id (an entry per client is a client id and a
/// handle, kept for every idle connection). Lookups never hand out a borrow of the map: callers
/// get a cloned handle.
#[derive(Debug, Default)]
pub struct Clients {
    map: RefCell<HashMap<ByteString, HashMap<ByteString, ClientRef>>>,
}

impl Clients {
    /// The client with this key.
    pub fn get(&self, tenant: &ByteString, client_id: &ByteString) -> Option<ClientRef> {
        self.map.borrow().get(tenant)?.get(client_id).cloned()
    }

    /// The client with this key, if its session is the one with `uid` (not a newer one).
    pub fn get_uid(&self, tenant: &ByteString, client_id: &ByteString, uid: u64) -> Option<ClientRef> {
        let c = self.get(tenant, client_id)?;
        let same = c.borrow().session().uid() == uid;
        same.then_some(c)
    }

    /// Whether a session with this key exists.
    pub fn contains(&self, tenant: &ByteString, client_id: &ByteString) -> bool {
        self.map.borrow().get(tenant).is_some_and(|m| m.contains_key(client_id))
    }

    /// Adds (or replaces) the client with this key.
    pub fn insert(&self, key: SessionKey, client: ClientRef) {
        let (tenant, client_id) = key;
        self.map.borrow_mut().entry(tenant).or_default().insert(client_id, client);
    }

    /// Removes the client with this key if its session is the one with `uid`; returns whether
    /// it did.
    pub fn remove_uid(&self, tenant: &ByteString, client_id: &ByteString, uid: u64) -> bool {
        let mut map = self.map.borrow_mut();
        let Some(clients) = map.get_mut(tenant) else { return false };
        if clients.get(client_id).is_none_or(|c| c.borrow().session().uid() != uid) {
            return false;
        }
        clients.remove(client_id);
        if clients.is_empty() {
            map.remove(tenant);
        }
        true
    }

    /// Applies `f` to every client without taking a snapshot; `f` must not change the registry.
    pub fn for_each(&self, mut f: impl FnMut(&ClientRef)) {
        for c in self.map.borrow().values().flat_map(|m| m.values()) {
            f(c);
        }
    }
}
