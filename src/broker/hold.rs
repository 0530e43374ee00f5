//! Back-pressure bookkeeping of one session, in both of its roles.
//!
//! As a **subscriber**, a session that falls behind (its queue or unsent output past half its
//! limit) opens an episode. Publishers whose messages reach it are held back (they read no more
//! input) and wait in a first-in first-out queue. As the subscriber drains, it lets them go in
//! turn, a share of the queue proportional to the room it has made, so every publisher feeding
//! it gets reads in round robin and none waits much longer than the others; a released publisher
//! that sends to it while it is still behind queues again at the back. An episode holds nobody
//! new once the subscriber has made no progress for `limits.max_pace_ms`: a subscriber that
//! stopped reading pays alone, under its own limits (QoS 0 dropped at the output limit, QoS 1/2
//! queued up to `max_queued`), until it has caught up and the episode ends.
//!
//! As a **publisher**, a session carries the holds placed on it; its connection reads no more
//! input (and handles no further QoS 1/2 PUBLISH of what it has read) while any is left, and for
//! at most `limits.max_pace_ms`, however many subscribers hold it.
//!
//! So the reach of one slow subscriber is bounded: a publisher waits at most the pacing limit
//! for it, and only while it is still draining.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::session::Publisher;

/// Publishers one subscriber's episode may hold at once; more are not held (bounded memory).
const MAX_WAITERS: usize = 256;

/// One session's pacing state (both roles). Empty, it costs two words.
#[derive(Debug, Default)]
pub struct Pacing {
    episode: Option<Box<Episode>>,
    holds: Vec<Hold>,
    held_since: Option<Instant>,
}

/// A subscriber that fell behind, and the publishers it holds, oldest first.
#[derive(Debug)]
struct Episode {
    /// When it fell behind or last let a publisher go (its last progress).
    since: Instant,
    waiters: VecDeque<Publisher>,
}

/// A subscriber holding this publisher: its shard and session uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hold {
    shard: usize,
    uid: u64,
}

impl Pacing {
    /// Subscriber role: the session is behind and a message from `publisher` just reached it.
    /// Returns true when that publisher should now be held: the subscriber made progress within
    /// `limit`, the publisher is not waiting for it already, and fewer than the maximum are.
    pub fn admit(&mut self, publisher: &Publisher, now: Instant, limit: Duration) -> bool {
        let episode = self.episode.get_or_insert_with(|| Box::new(Episode { since: now, waiters: VecDeque::new() }));
        if now.saturating_duration_since(episode.since) >= limit
            || episode.waiters.len() >= MAX_WAITERS
            || episode.waiters.contains(publisher)
        {
            return false;
        }
        episode.waiters.push_back(publisher.clone());
        true
    }

    /// Subscriber role: the session has drained below its congestion mark. Lets go of its `n`
    /// oldest waiting publishers (at least one), and ends the episode once none wait and it has
    /// `caught_up` (while it is still well behind, a publisher let go in turn is held again).
    pub fn release_some(&mut self, n: usize, caught_up: bool, now: Instant) -> Vec<Publisher> {
        let Some(episode) = self.episode.as_mut() else { return Vec::new() };
        let n = n.clamp(1, episode.waiters.len().max(1));
        let released: Vec<Publisher> = episode.waiters.drain(..n.min(episode.waiters.len())).collect();
        episode.since = now;
        if episode.waiters.is_empty() && caught_up {
            self.episode = None;
        }
        released
    }

    /// Subscriber role: whether an episode is open.
    pub fn behind(&self) -> bool {
        self.episode.is_some()
    }

    /// Subscriber role: ends the episode (the session caught up or went away) and returns the
    /// publishers to release.
    pub fn end_episode(&mut self) -> Vec<Publisher> {
        self.episode.take().map(|e| e.waiters.into()).unwrap_or_default()
    }

    /// Publisher role: a subscriber (`shard`, `uid`) holds this session.
    pub fn hold(&mut self, shard: usize, uid: u64, now: Instant) {
        let h = Hold { shard, uid };
        if !self.holds.contains(&h) {
            self.holds.push(h);
        }
        self.held_since.get_or_insert(now);
    }

    /// Publisher role: a subscriber lets go; returns true when that was the last hold.
    pub fn release(&mut self, shard: usize, uid: u64) -> bool {
        let before = self.holds.len();
        self.holds.retain(|h| *h != Hold { shard, uid });
        if self.holds.is_empty() {
            self.held_since = None;
            return before > 0;
        }
        false
    }

    /// Publisher role: until when the session is held, `None` when it is free.
    pub fn held_until(&self, limit: Duration) -> Option<Instant> {
        self.held_since.filter(|_| !self.holds.is_empty()).map(|t| t + limit)
    }

    /// Publisher role: drops every hold (the pacing limit passed); returns how many there were.
    pub fn clear_holds(&mut self) -> usize {
        self.held_since = None;
        std::mem::take(&mut self.holds).len()
    }

    /// Publisher role: whether any subscriber holds the session.
    pub fn is_held(&self) -> bool {
        !self.holds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(uid: u64) -> Publisher {
        Publisher { client_id: format!("p{uid}").into(), uid, shard: 0 }
    }

    const LIMIT: Duration = Duration::from_millis(500);

    #[test]
    fn a_subscriber_holds_each_publisher_once_per_episode_and_only_within_the_limit() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        assert!(p.admit(&publisher(1), t0, LIMIT));
        assert!(!p.admit(&publisher(1), t0, LIMIT), "already held by this episode");
        assert!(p.admit(&publisher(2), t0 + Duration::from_millis(100), LIMIT));
        assert!(!p.admit(&publisher(3), t0 + LIMIT, LIMIT), "a subscriber without progress for the limit holds no one new");
        assert!(p.behind());
        let released = p.end_episode();
        assert_eq!(released, vec![publisher(1), publisher(2)]);
        assert!(!p.behind());
        assert!(p.admit(&publisher(3), t0 + LIMIT, LIMIT), "a new episode starts after catching up");
    }

    #[test]
    fn draining_lets_publishers_go_in_turn_oldest_first() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        for u in 1..=4 {
            assert!(p.admit(&publisher(u), t0, LIMIT));
        }
        assert_eq!(p.release_some(0, false, t0), vec![publisher(1)], "a little room lets one go");
        assert!(p.admit(&publisher(1), t0, LIMIT), "released, it queues again at the back");
        assert_eq!(p.release_some(2, false, t0), vec![publisher(2), publisher(3)]);
        // Progress renews the episode: a publisher is still held well after the first hold.
        let later = t0 + LIMIT + Duration::from_millis(100);
        assert_eq!(p.release_some(1, false, later - Duration::from_millis(200)), vec![publisher(4)]);
        assert!(p.admit(&publisher(5), later, LIMIT));
        assert_eq!(p.release_some(10, false, later), vec![publisher(1), publisher(5)]);
        assert!(p.behind(), "still well behind: the episode goes on with nobody waiting");
        assert!(p.release_some(1, true, later).is_empty());
        assert!(!p.behind(), "the episode ends once nobody waits and the subscriber caught up");
    }

    #[test]
    fn an_episode_holds_a_bounded_number_of_publishers() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        let admitted = (1..=2 * MAX_WAITERS as u64).filter(|u| p.admit(&publisher(*u), t0, LIMIT)).count();
        assert_eq!(admitted, MAX_WAITERS);
    }

    #[test]
    fn a_publisher_is_free_once_every_holder_released_it_or_the_limit_passed() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        assert_eq!(p.held_until(LIMIT), None);
        p.hold(1, 10, t0);
        p.hold(1, 10, t0 + Duration::from_millis(5));
        p.hold(0, 11, t0 + Duration::from_millis(10));
        assert_eq!(p.held_until(LIMIT), Some(t0 + LIMIT), "the limit counts from the first hold");
        assert!(!p.release(1, 10));
        assert!(!p.release(7, 7), "an unknown holder changes nothing");
        assert!(p.is_held());
        assert!(p.release(0, 11));
        assert!(!p.is_held());
        assert_eq!(p.held_until(LIMIT), None);
        assert!(!p.release(0, 11), "a stale release after the last one is not a release");
        p.hold(1, 10, t0);
        assert_eq!(p.clear_holds(), 1);
        assert!(!p.is_held());
    }
}
