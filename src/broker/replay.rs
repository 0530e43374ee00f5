//! The replay window: messages published here a moment ago, with the shards they went to.
//!
//! Route updates cross the mesh asynchronously: a message published here a moment after a client
//! subscribed on another shard may have been matched against the old route table. When that
//! shard's route arrives, the messages it missed are replayed to it, and it delivers them only to
//! subscriptions older than each message, so nothing published before a subscription leaks in and
//! nothing after it is lost. The window is bounded in time, count and bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use ratatosk_shards::ShardSet;

use super::routes::Route;
use crate::protocol::topic::matches;
use crate::session::Message;

/// How long published messages are kept for replay to late routes.
const REPLAY_WINDOW_NS: u64 = 200_000_000;
/// At most this many messages are kept for replay.
const REPLAY_MAX: usize = 4096;
/// At most this many payload bytes are kept for replay (per shard): large messages published in
/// a burst would otherwise keep up to `REPLAY_MAX` × the packet limit in memory.
const REPLAY_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Recent messages of one shard and where each went.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    recent: VecDeque<(Arc<Message>, ShardSet)>,
    bytes: usize,
}

impl ReplayWindow {
    /// Keeps a message just published, which went to `sent`; older messages leave the window.
    /// A message larger than the byte bound is not kept.
    pub fn remember(&mut self, msg: &Arc<Message>, sent: ShardSet) {
        if msg.payload.len() > REPLAY_MAX_BYTES {
            return;
        }
        let now = msg.arrived_ns;
        while self.recent.front().is_some_and(|(m, _)| now.saturating_sub(m.arrived_ns) > REPLAY_WINDOW_NS)
            || self.recent.len() >= REPLAY_MAX
            || self.bytes + msg.payload.len() > REPLAY_MAX_BYTES
        {
            match self.recent.pop_front() {
                Some((old, _)) => self.bytes -= old.payload.len(),
                None => break,
            }
        }
        self.recent.push_back((msg.clone(), sent));
        self.bytes += msg.payload.len();
    }

    /// The recent messages that match a route another shard just announced and were not sent
    /// there; they are marked as sent.
    pub fn replays_for(&mut self, route: &Route) -> Vec<Arc<Message>> {
        if route.group.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (m, sent) in self.recent.iter_mut() {
            if !sent.contains(route.shard) && m.tenant == route.tenant && matches(&route.filter, &m.topic) {
                sent.insert(route.shard);
                out.push(m.clone());
            }
        }
        out
    }

    /// Messages in the window.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{MessageIds, Publisher};

    fn msg(ids: &MessageIds, topic: &str, arrived_ns: u64, payload: usize) -> Arc<Message> {
        Arc::new(Message {
            id: ids.next(),
            tenant: "t".into(),
            topic: topic.into(),
            payload: bytes::Bytes::from(vec![1u8; payload]),
            qos: crate::protocol::QoS::AtMostOnce,
            retain: false,
            properties: None,
            expires_ns: None,
            origin: Publisher::unpaced("p".into(), 0),
            arrived_ns,
            kept: Default::default(),
        })
    }

    fn route(filter: &str, shard: usize) -> Route {
        Route { tenant: "t".into(), filter: filter.into(), group: None, shard }
    }

    #[test]
    fn a_late_route_of_a_shard_past_sixty_four_gets_what_it_missed_once() {
        let ids = MessageIds::new(0);
        let mut w = ReplayWindow::default();
        let sent_to_3: ShardSet = [3].into_iter().collect();
        w.remember(&msg(&ids, "a/1", 1_000, 4), sent_to_3.clone());
        w.remember(&msg(&ids, "b/1", 2_000, 4), sent_to_3);
        let got = w.replays_for(&route("a/#", 100));
        assert_eq!(got.len(), 1, "only the matching message");
        assert_eq!(&*got[0].topic, "a/1");
        assert!(w.replays_for(&route("a/#", 100)).is_empty(), "replayed once");
        assert!(w.replays_for(&route("a/#", 3)).is_empty(), "shard 3 had it already");
        assert_eq!(w.replays_for(&route("#", 70)).len(), 2, "another shard past 64 gets both");
        let shared = Route { group: Some("g".into()), ..route("#", 5) };
        assert!(w.replays_for(&shared).is_empty(), "shared groups are not replayed");
    }

    #[test]
    fn the_window_is_bounded_in_time_and_bytes() {
        let ids = MessageIds::new(0);
        let mut w = ReplayWindow::default();
        w.remember(&msg(&ids, "a", 0, 10), ShardSet::new());
        w.remember(&msg(&ids, "a", REPLAY_WINDOW_NS / 2, 10), ShardSet::new());
        assert_eq!(w.len(), 2);
        w.remember(&msg(&ids, "a", REPLAY_WINDOW_NS + 1, 10), ShardSet::new());
        assert_eq!(w.len(), 2, "the oldest aged out");
        w.remember(&msg(&ids, "a", REPLAY_WINDOW_NS + 2, REPLAY_MAX_BYTES - 5), ShardSet::new());
        assert_eq!(w.len(), 1, "room made for the big one");
        w.remember(&msg(&ids, "a", REPLAY_WINDOW_NS + 3, REPLAY_MAX_BYTES + 1), ShardSet::new());
        assert_eq!(w.len(), 1, "larger than the bound: not kept");
    }
}
