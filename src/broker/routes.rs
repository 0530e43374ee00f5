//! The route table of one shard, and the plan it makes for each message.
//!
//! Per tenant, a topic trie maps each filter to the subscribers on this shard, the other shards
//! with subscribers, and the shared subscription groups on it. [`RouteTable::plan`] is the one
//! place that decides where a message goes: the local deliveries (overlapping subscriptions of a
//! session merged into one), the remote shards to forward it to, and one pick per shared group.
//! It sends nothing and waits for nothing; the shard executes the plan (`fanout`). Its only side
//! effect is the round-robin cursors of the shared groups.

use std::collections::HashMap;

use bytestring::ByteString;
use ratatosk_shards::ShardSet;

use super::client::ClientRef;
use crate::protocol::{QoS, SubOptions};
use crate::router::TopicTrie;
use crate::session::Message;

/// A plain subscriber held in the route table.
#[derive(Debug, Clone)]
pub struct LocalSub {
    /// The client.
    pub client: ClientRef,
    /// Its session uid, to find it again on unsubscribe.
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
struct Group {
    name: ByteString,
    filter: ByteString,
    local: Vec<LocalSub>,
    remote: Vec<usize>,
    /// Round-robin cursor over (this shard + remote shards).
    next_shard: std::cell::Cell<usize>,
    /// Round-robin cursor over local members.
    next_member: std::cell::Cell<usize>,
}

/// Everything known about one filter of one tenant on this shard.
#[derive(Debug, Default)]
struct FilterEntry {
    local: Vec<LocalSub>,
    remote: ShardSet,
    groups: Vec<Group>,
}

impl FilterEntry {
    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.groups.is_empty()
    }

    fn group_mut(&mut self, name: &ByteString, filter: &ByteString) -> &mut Group {
        let idx = match self.groups.iter().position(|g| g.name == *name) {
            Some(i) => i,
            None => {
                self.groups.push(Group::new(name.clone(), filter.clone()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[idx]
    }
}

/// A route table change, announced to the other shards.
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

/// Splits a session's filter into its shared group, if any, and the filter proper
/// (`$share/g/a/#` → (`g`, `a/#`)).
pub fn split_filter(filter: &ByteString) -> (Option<ByteString>, ByteString) {
    match crate::protocol::topic::split_shared(filter) {
        Some((g, f)) => (Some(g.into()), f.into()),
        None => (None, filter.clone()),
    }
}

/// Which deliveries a plan should include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Published on this shard: local subscribers, the other shards, and shared group picks.
    Origin,
    /// Forwarded by the shard it was published on: local plain subscribers that existed when it
    /// arrived (that shard picked the shared group members).
    Forwarded,
    /// Replayed because this shard's route reached the publisher's shard late: local plain
    /// subscribers that existed when the message arrived.
    Replay,
}

/// One session's share of a message: its matching subscriptions merged.
#[derive(Debug)]
pub struct LocalDelivery {
    /// The client.
    pub client: ClientRef,
    /// Its session uid.
    pub uid: u64,
    /// The highest QoS of the matching subscriptions [MQTT-3.3.4-2].
    pub qos: QoS,
    /// Whether any matching subscription asked for retain-as-published.
    pub retain_as_published: bool,
    /// Subscription identifiers of every matching subscription [MQTT-3.3.4-3].
    pub sub_ids: Vec<u32>,
}

/// A shared group member chosen on another shard.
#[derive(Debug, Clone)]
pub struct SharedPick {
    /// The shard with the member.
    pub shard: usize,
    /// The group's filter.
    pub filter: ByteString,
    /// The group name.
    pub group: ByteString,
}

/// Where one message goes.
#[derive(Debug, Default)]
pub struct RoutePlan {
    /// Deliveries to sessions of this shard.
    pub local: Vec<LocalDelivery>,
    /// Other shards with plain subscribers.
    pub remote: ShardSet,
    /// Shared groups whose pick is on another shard.
    pub shared: Vec<SharedPick>,
}

/// The route table of one shard: per tenant, filter → subscribers here and shards elsewhere.
#[derive(Debug, Default)]
pub struct RouteTable {
    tenants: HashMap<ByteString, TopicTrie<FilterEntry>>,
}

impl RouteTable {
    /// Where `msg` goes from shard `here`.
    pub fn plan(&self, msg: &Message, here: usize, scope: Scope) -> RoutePlan {
        let mut plan = RoutePlan::default();
        let Some(trie) = self.tenants.get(&msg.tenant) else { return plan };
        trie.for_each_match(&msg.topic, |entry: &FilterEntry| {
            for sub in &entry.local {
                // [MQTT-3.8.3-3] no local: not to the publisher's own session.
                if sub.options.no_local && sub.client_id == msg.origin.client_id {
                    continue;
                }
                // A message from another shard goes only to subscriptions that existed when it
                // reached the broker (kernel receive times, one clock for all shards): one that
                // is still crossing the mesh when a client subscribes is not delivered live on
                // top of the retained copy the new subscription gets, and a replayed one (the
                // route was late, the subscription was not) reaches only older subscriptions.
                if scope != Scope::Origin && sub.since_ns > msg.arrived_ns {
                    continue;
                }
                merge(&mut plan.local, sub);
            }
            if scope != Scope::Origin {
                return;
            }
            for r in entry.remote.iter() {
                plan.remote.insert(r);
            }
            for g in &entry.groups {
                match g.pick_shard(here) {
                    Some(s) if s == here => {
                        if let Some(m) = g.pick_member() {
                            plan.local.push(single(m));
                        }
                    }
                    Some(shard) => plan.shared.push(SharedPick { shard, filter: g.filter.clone(), group: g.name.clone() }),
                    None => {}
                }
            }
        });
        plan
    }

    /// One local member of a shared group, for a message whose origin shard picked this shard.
    pub fn pick_shared(&self, tenant: &str, filter: &str, group: &str) -> Option<LocalDelivery> {
        let entry = self.tenants.get(tenant)?.get(filter)?;
        let g = entry.groups.iter().find(|g| g.name == group)?;
        g.pick_member().map(single)
    }

    /// Adds a local subscription; returns the route to announce to other shards when this is the
    /// shard's first subscriber of the filter (or group).
    pub fn add_local(&mut self, tenant: &ByteString, filter: &ByteString, group: Option<&ByteString>, sub: LocalSub, here: usize) -> Option<Route> {
        let trie = self.tenants.entry(tenant.clone()).or_default();
        let entry = trie.entry_or_insert_with(filter, FilterEntry::default);
        let list = match group {
            None => &mut entry.local,
            Some(name) => &mut entry.group_mut(name, filter).local,
        };
        if let Some(existing) = list.iter_mut().find(|s| s.uid == sub.uid) {
            // [MQTT-3.8.4-3] a repeated subscription replaces the old one.
            *existing = sub;
            return None;
        }
        let first = list.is_empty();
        list.push(sub);
        first.then(|| Route { tenant: tenant.clone(), filter: filter.clone(), group: group.cloned(), shard: here })
    }

    /// Removes a local subscription; returns the route to withdraw when it was the last one here.
    pub fn remove_local(&mut self, tenant: &ByteString, filter: &ByteString, group: Option<&ByteString>, uid: u64, here: usize) -> Option<Route> {
        let trie = self.tenants.get_mut(tenant)?;
        let entry = trie.get_mut(filter)?;
        let list = match group {
            None => &mut entry.local,
            Some(name) => &mut entry.groups.iter_mut().find(|g| g.name == *name)?.local,
        };
        let before = list.len();
        list.retain(|s| s.uid != uid);
        let now_empty = before != list.len() && list.is_empty();
        entry.groups.retain(|g| !(g.local.is_empty() && g.remote.is_empty()));
        if entry.is_empty() {
            trie.remove(filter);
        }
        now_empty.then(|| Route { tenant: tenant.clone(), filter: filter.clone(), group: group.cloned(), shard: here })
    }

    /// Applies another shard's route change.
    pub fn apply_remote(&mut self, route: &Route, add: bool) {
        let trie = self.tenants.entry(route.tenant.clone()).or_default();
        if add {
            let entry = trie.entry_or_insert_with(&route.filter, FilterEntry::default);
            match &route.group {
                None => {
                    entry.remote.insert(route.shard);
                }
                Some(name) => {
                    let g = entry.group_mut(name, &route.filter);
                    if !g.remote.contains(&route.shard) {
                        g.remote.push(route.shard);
                    }
                }
            }
        } else if let Some(entry) = trie.get_mut(&route.filter) {
            match &route.group {
                None => {
                    entry.remote.remove(route.shard);
                }
                Some(name) => {
                    if let Some(g) = entry.groups.iter_mut().find(|g| g.name == *name) {
                        g.remote.retain(|s| *s != route.shard);
                    }
                }
            }
            entry.groups.retain(|g| !(g.local.is_empty() && g.remote.is_empty()));
            if entry.is_empty() {
                trie.remove(&route.filter);
            }
        }
    }
}

impl Group {
    fn new(name: ByteString, filter: ByteString) -> Group {
        Group { name, filter, local: Vec::new(), remote: Vec::new(), next_shard: Default::default(), next_member: Default::default() }
    }

    /// The shard whose turn it is: this one (when it has members) and the remote ones in turn.
    fn pick_shard(&self, here: usize) -> Option<usize> {
        let has_local = !self.local.is_empty();
        let choices = self.remote.len() + usize::from(has_local);
        if choices == 0 {
            return None;
        }
        let i = self.next_shard.get() % choices;
        self.next_shard.set(self.next_shard.get().wrapping_add(1));
        match (has_local, i) {
            (true, 0) => Some(here),
            (true, i) => self.remote.get(i - 1).copied(),
            (false, i) => self.remote.get(i).copied(),
        }
    }

    fn pick_member(&self) -> Option<&LocalSub> {
        if self.local.is_empty() {
            return None;
        }
        let i = self.next_member.get() % self.local.len();
        self.next_member.set(self.next_member.get().wrapping_add(1));
        self.local.get(i)
    }
}

fn single(sub: &LocalSub) -> LocalDelivery {
    LocalDelivery {
        client: sub.client.clone(),
        uid: sub.uid,
        qos: sub.options.qos,
        retain_as_published: sub.options.retain_as_published,
        sub_ids: sub.id.into_iter().collect(),
    }
}

/// Merges overlapping subscriptions of one session into one delivery with the highest QoS and all
/// subscription identifiers [MQTT-3.3.4-2, MQTT-3.3.4-3].
fn merge(deliveries: &mut Vec<LocalDelivery>, sub: &LocalSub) {
    if let Some(m) = deliveries.iter_mut().find(|m| m.uid == sub.uid) {
        m.qos = m.qos.max(sub.options.qos);
        m.retain_as_published |= sub.options.retain_as_published;
        if let Some(id) = sub.id {
            m.sub_ids.push(id);
        }
    } else {
        deliveries.push(single(sub));
    }
}

#[cfg(test)]
mod tests;
