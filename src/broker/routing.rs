//! Routing: matching a published message against subscriptions, here and on other shards.
//!
//! The shard that receives a PUBLISH matches it once against its route table: its own subscribers
//! get it directly, every other shard with subscribers for a matching filter gets one `Publish`
//! over the mesh (payload shared, not copied), and each shared subscription group gets exactly one
//! delivery, to a member chosen round-robin across the shards that have members.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use glommio::{GlommioError, ResourceType};

use super::message::Message;
use super::shard::{FilterEntry, Group, LocalSub, Route, SessionRef, Shard, SharedPublish, ShardMsg};
use super::stats::ShardCounters;
use crate::protocol::topic::matches;
use crate::protocol::QoS;

/// How long published messages are kept for replay to late routes.
const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);
/// At most this many messages are kept for replay.
const REPLAY_MAX: usize = 4096;
/// At most this many payload bytes are kept for replay (per shard): large messages published in
/// a burst would otherwise keep up to `REPLAY_MAX` × the packet limit in memory.
const REPLAY_MAX_BYTES: usize = 4 * 1024 * 1024;
use crate::session::Delivery;

/// One session's share of a message: matching subscriptions merged.
struct Match {
    session: crate::broker::shard::SessionRef,
    uid: u64,
    qos: QoS,
    retain_as_published: bool,
    ids: Vec<u32>,
}

impl Shard {
    /// Routes a message published by a client of this shard (or a will) to every subscriber.
    ///
    /// The common case completes without suspending: mesh sends are tried first and only a full
    /// channel (or a retained message, which waits for its owner shard) takes the slower, boxed
    /// path. That keeps the per-connection future small.
    pub async fn publish(self: &Rc<Self>, msg: Arc<Message>) {
        if msg.retain {
            Box::pin(self.retain(msg.clone())).await;
        }
        let mut remote = vec![false; self.n];
        let mut shared_remote = Vec::new();
        self.deliver_local(&msg, Some((&mut remote, &mut shared_remote)), false);
        let mut sent_mask = 0u64;
        let mut blocked = Vec::new();
        for (shard, wanted) in remote.iter().enumerate() {
            if *wanted {
                sent_mask |= 1u64.checked_shl(shard as u32).unwrap_or(0);
                self.try_send(shard, ShardMsg::Publish(msg.clone()), &mut blocked);
            }
        }
        self.remember(&msg, sent_mask);
        for (shard, filter, group) in shared_remote {
            self.try_send(shard, ShardMsg::SharedPublish(Box::new(SharedPublish { msg: msg.clone(), filter, group })), &mut blocked);
        }
        if !blocked.is_empty() {
            Box::pin(async {
                for (shard, m) in blocked {
                    self.send_to(shard, m).await;
                }
            })
            .await;
        }
    }

    /// Sends without waiting; a message for a full channel is set aside for a waiting send.
    fn try_send(&self, shard: usize, msg: ShardMsg, blocked: &mut Vec<(usize, ShardMsg)>) {
        let Some(senders) = &self.senders else { return };
        // Once one send waits, later ones to the same shard wait behind it to keep channel order.
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

    /// Delivers to this shard's subscribers. With `fan_out`, also collects the other shards with
    /// plain subscribers and picks one target for each shared group; without it (a message that
    /// came from another shard) shared groups are left to the origin shard.
    pub fn deliver_local(
        &self,
        msg: &Arc<Message>,
        mut fan_out: Option<(&mut Vec<bool>, &mut Vec<(usize, ByteString, ByteString)>)>,
        replay: bool,
    ) {
        let mut matches: Vec<Match> = Vec::new();
        {
            let routes = self.routes.borrow();
            let Some(trie) = routes.get(&msg.tenant) else { return };
            trie.for_each_match(&msg.topic, |entry: &FilterEntry| {
                for sub in &entry.local {
                    // [MQTT-3.8.3-3] no local: not to the publisher's own session.
                    if sub.options.no_local && sub.client_id == msg.origin.client_id {
                        continue;
                    }
                    // A replayed message goes only to subscriptions that were active when it was
                    // published: the route was late, the subscription was not.
                    if replay && sub.since_ns > msg.arrived_ns {
                        continue;
                    }
                    merge(&mut matches, sub);
                }
                if let Some((remote, shared)) = fan_out.as_mut() {
                    for r in &entry.remote {
                        if let Some(slot) = remote.get_mut(*r) {
                            *slot = true;
                        }
                    }
                    for g in &entry.groups {
                        match self.pick_group_shard(g) {
                            Some(s) if s == self.id => {
                                if let Some(m) = pick_member(g) {
                                    matches.push(single(m));
                                }
                            }
                            Some(s) => shared.push((s, g.filter.clone(), g.name.clone())),
                            None => {}
                        }
                    }
                }
            });
        }
        // Expiry is judged against the publish time: a mesh hop takes microseconds, and queued
        // messages are checked again with the real clock when they leave the queue.
        let now = msg.published_at;
        for m in matches {
            let qos = m.qos.min(msg.qos);
            // [MQTT-3.3.1-12/13]: retain flag only with retain-as-published.
            let retain = m.retain_as_published && msg.retain;
            if self.deliver_counted(&m.session, Delivery { msg, qos, retain, sub_ids: &m.ids }, now) {
                self.pace(&m.session, msg);
            }
        }
    }

    /// Hands a message to a session of this shard and counts it as sent or dropped; returns true
    /// when the client has fallen behind (see [`Shard::pace`]).
    pub fn deliver_counted(&self, session: &SessionRef, d: Delivery<'_>, now: Instant) -> bool {
        let mut s = session.borrow_mut();
        let dropped_before = s.dropped;
        let congested = s.deliver(d, &self.config.limits, now);
        let dropped = s.dropped - dropped_before;
        drop(s);
        // Drops are counted by reason in the shard's ledger.
        ShardCounters::add(&self.counters().messages_sent, 1 - dropped.min(1));
        congested
    }

    /// Delivers to one local member of a shared group (the origin shard picked this shard).
    pub fn deliver_shared(&self, msg: &Arc<Message>, filter: &str, group: &str) {
        let m = {
            let routes = self.routes.borrow();
            let Some(entry) = routes.get(&msg.tenant).and_then(|t| t.get(filter)) else { return };
            let Some(g) = entry.groups.iter().find(|g| g.name == group) else { return };
            match pick_member(g) {
                Some(m) => single(m),
                None => return,
            }
        };
        let d = Delivery { msg, qos: m.qos.min(msg.qos), retain: m.retain_as_published && msg.retain, sub_ids: &m.ids };
        if self.deliver_counted(&m.session, d, Instant::now()) {
            self.pace(&m.session, msg);
        }
    }

    /// Keeps a published message for `REPLAY_WINDOW` with the set of shards it went to, within
    /// `REPLAY_MAX` messages and `REPLAY_MAX_BYTES` bytes (a message larger than that is not kept).
    fn remember(&self, msg: &Arc<Message>, sent_mask: u64) {
        if self.n < 2 || self.n > 64 || msg.payload.len() > REPLAY_MAX_BYTES {
            return;
        }
        let mut recent = self.recent.borrow_mut();
        let now = msg.published_at;
        let mut bytes = self.recent_bytes.get();
        while recent.front().is_some_and(|(m, _)| now.saturating_duration_since(m.published_at) > REPLAY_WINDOW)
            || recent.len() >= REPLAY_MAX
            || bytes + msg.payload.len() > REPLAY_MAX_BYTES
        {
            match recent.pop_front() {
                Some((old, _)) => bytes -= old.payload.len(),
                None => break,
            }
        }
        recent.push_back((msg.clone(), sent_mask));
        self.recent_bytes.set(bytes + msg.payload.len());
    }

    /// Recent messages that match a route another shard just announced and were not sent there.
    ///
    /// Route updates cross the mesh asynchronously: a message published here a moment after a
    /// client subscribed on another shard may have been matched against the old route table. The
    /// subscriber's shard delivers these replays only to subscriptions older than the message, so
    /// nothing published before a subscription leaks in and nothing after it is lost.
    pub fn replays_for(&self, route: &Route) -> Vec<Arc<Message>> {
        if route.group.is_some() || route.shard >= 64 {
            return Vec::new();
        }
        let bit = 1u64 << route.shard;
        let mut out = Vec::new();
        for (m, mask) in self.recent.borrow_mut().iter_mut() {
            if *mask & bit == 0 && m.tenant == route.tenant && matches(&route.filter, &m.topic) {
                *mask |= bit;
                out.push(m.clone());
            }
        }
        out
    }

    fn pick_group_shard(&self, g: &Group) -> Option<usize> {
        let has_local = !g.local.is_empty();
        let choices = g.remote.len() + usize::from(has_local);
        if choices == 0 {
            return None;
        }
        let i = g.next_shard.get() % choices;
        g.next_shard.set(g.next_shard.get().wrapping_add(1));
        if has_local {
            if i == 0 {
                Some(self.id)
            } else {
                g.remote.get(i - 1).copied()
            }
        } else {
            g.remote.get(i).copied()
        }
    }

    /// Adds a local subscription to the route table; returns the route to announce to other shards
    /// when this is the shard's first subscriber of the filter (or group).
    pub fn add_route(&self, tenant: &ByteString, filter: &ByteString, group: Option<&ByteString>, sub: LocalSub) -> Option<Route> {
        let mut routes = self.routes.borrow_mut();
        let trie = routes.entry(tenant.clone()).or_default();
        let entry = trie.entry_or_insert_with(filter, FilterEntry::default);
        let list = match group {
            None => &mut entry.local,
            Some(name) => {
                let idx = match entry.groups.iter().position(|g| &g.name == name) {
                    Some(i) => i,
                    None => {
                        entry.groups.push(Group::new(name.clone(), filter.clone()));
                        entry.groups.len() - 1
                    }
                };
                &mut entry.groups[idx].local
            }
        };
        let first = list.is_empty();
        if let Some(existing) = list.iter_mut().find(|s| s.uid == sub.uid) {
            // [MQTT-3.8.4-3] a repeated subscription replaces the old one.
            *existing = sub;
            return None;
        }
        list.push(sub);
        first.then(|| Route { tenant: tenant.clone(), filter: filter.clone(), group: group.cloned(), shard: self.id })
    }

    /// Removes a local subscription; returns the route to withdraw when it was the last one here.
    pub fn remove_route(&self, tenant: &ByteString, filter: &ByteString, group: Option<&ByteString>, uid: u64) -> Option<Route> {
        let mut routes = self.routes.borrow_mut();
        let trie = routes.get_mut(tenant)?;
        let entry = trie.get_mut(filter)?;
        let now_empty = match group {
            None => {
                let before = entry.local.len();
                entry.local.retain(|s| s.uid != uid);
                before != entry.local.len() && entry.local.is_empty()
            }
            Some(name) => {
                let g = entry.groups.iter_mut().find(|g| &g.name == name)?;
                let before = g.local.len();
                g.local.retain(|s| s.uid != uid);
                before != g.local.len() && g.local.is_empty()
            }
        };
        entry.groups.retain(|g| !(g.local.is_empty() && g.remote.is_empty()));
        if entry.is_empty() {
            trie.remove(filter);
        }
        now_empty.then(|| Route { tenant: tenant.clone(), filter: filter.clone(), group: group.cloned(), shard: self.id })
    }

    /// Applies another shard's route change.
    pub fn apply_remote_route(&self, route: &Route, add: bool) {
        let mut routes = self.routes.borrow_mut();
        let trie = routes.entry(route.tenant.clone()).or_default();
        if add {
            let entry = trie.entry_or_insert_with(&route.filter, FilterEntry::default);
            let list = match &route.group {
                None => &mut entry.remote,
                Some(name) => {
                    let idx = match entry.groups.iter().position(|g| &g.name == name) {
                        Some(i) => i,
                        None => {
                            entry.groups.push(Group::new(name.clone(), route.filter.clone()));
                            entry.groups.len() - 1
                        }
                    };
                    &mut entry.groups[idx].remote
                }
            };
            if !list.contains(&route.shard) {
                list.push(route.shard);
            }
        } else if let Some(entry) = trie.get_mut(&route.filter) {
            match &route.group {
                None => entry.remote.retain(|s| *s != route.shard),
                Some(name) => {
                    if let Some(g) = entry.groups.iter_mut().find(|g| &g.name == name) {
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

    /// Announces a route change to every other shard. Additions wait until every shard has applied
    /// them, so that a client that got its SUBACK receives messages published anywhere afterwards.
    pub async fn announce(&self, route: Route, add: bool) {
        if self.n < 2 {
            return;
        }
        if add {
            let (token, done) = self.expect_acks(self.n - 1);
            for peer in self.peers() {
                self.send_to(peer, ShardMsg::RouteAdd(Box::new((route.clone(), token)))).await;
            }
            done.notified().await;
        } else {
            for peer in self.peers() {
                self.send_to(peer, ShardMsg::RouteRemove(Box::new(route.clone()))).await;
            }
        }
    }
}

impl Group {
    fn new(name: ByteString, filter: ByteString) -> Group {
        Group { name, filter, local: Vec::new(), remote: Vec::new(), next_shard: Default::default(), next_member: Default::default() }
    }
}

fn pick_member(g: &Group) -> Option<&LocalSub> {
    if g.local.is_empty() {
        return None;
    }
    let i = g.next_member.get() % g.local.len();
    g.next_member.set(g.next_member.get().wrapping_add(1));
    g.local.get(i)
}

fn single(sub: &LocalSub) -> Match {
    Match { session: sub.session.clone(), uid: sub.uid, qos: sub.options.qos, retain_as_published: sub.options.retain_as_published, ids: sub.id.into_iter().collect() }
}

/// Merges overlapping subscriptions of one session into one delivery with the highest QoS and all
/// subscription identifiers [MQTT-3.3.4-2, MQTT-3.3.4-3].
fn merge(matches: &mut Vec<Match>, sub: &LocalSub) {
    if let Some(m) = matches.iter_mut().find(|m| m.uid == sub.uid) {
        m.qos = m.qos.max(sub.options.qos);
        m.retain_as_published |= sub.options.retain_as_published;
        if let Some(id) = sub.id {
            m.ids.push(id);
        }
    } else {
        matches.push(single(sub));
    }
}
