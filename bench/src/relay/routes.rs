//! Which connections want which topics.
//!
//! Exact filters are a hash lookup by topic; filters with `+` or `#` are kept in a list and matched
//! one by one with `ratatosk::protocol::topic::matches` (the broker's own rules, `$` included). A
//! trie would scale further, but benchmarks subscribe to a handful of wildcards at most, and a list
//! keeps the floor's cost per message where it belongs: in the copying.

use std::collections::HashMap;

use ratatosk::protocol::topic;

/// The subscriptions of every connection, by filter.
#[derive(Debug, Default)]
pub struct Routes {
    exact: HashMap<Box<str>, Vec<usize>>,
    wild: Vec<(Box<str>, usize)>,
}

impl Routes {
    /// Subscribes connection `conn` to `filter`; subscribing twice to one filter is one subscription.
    pub fn add(&mut self, filter: &str, conn: usize) {
        if topic::has_wildcards(filter) {
            if !self.wild.iter().any(|(f, c)| *c == conn && **f == *filter) {
                self.wild.push((filter.into(), conn));
            }
        } else {
            let conns = self.exact.entry(filter.into()).or_default();
            if !conns.contains(&conn) {
                conns.push(conn);
            }
        }
    }

    /// Removes `conn`'s subscription to `filter`; whether it had one.
    pub fn remove(&mut self, filter: &str, conn: usize) -> bool {
        if topic::has_wildcards(filter) {
            let before = self.wild.len();
            self.wild.retain(|(f, c)| !(*c == conn && **f == *filter));
            return self.wild.len() != before;
        }
        let Some(conns) = self.exact.get_mut(filter) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| *c != conn);
        let removed = conns.len() != before;
        if conns.is_empty() {
            self.exact.remove(filter);
        }
        removed
    }

    /// Calls `f` with every connection subscribed to a filter matching `topic`, once per matching
    /// filter (the caller merges a connection's overlapping subscriptions).
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(usize)) {
        if let Some(conns) = self.exact.get(topic) {
            conns.iter().copied().for_each(&mut f);
        }
        for (filter, conn) in &self.wild {
            if topic::matches(filter, topic) {
                f(*conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(r: &Routes, topic: &str) -> Vec<usize> {
        let mut v = Vec::new();
        r.for_each_match(topic, |c| v.push(c));
        v.sort_unstable();
        v
    }

    #[test]
    fn exact_and_wildcard_filters_match_per_mqtt_4_7() {
        let mut r = Routes::default();
        r.add("a/b", 1);
        r.add("a/+", 2);
        r.add("a/#", 3);
        r.add("#", 4);
        r.add("a/b", 1);
        assert_eq!(matching(&r, "a/b"), [1, 2, 3, 4]);
        assert_eq!(matching(&r, "a"), [3, 4]);
        assert_eq!(matching(&r, "a/b/c"), [3, 4]);
        // [MQTT-4.7.2-1] a leading wildcard does not match a `$` topic.
        assert_eq!(matching(&r, "$SYS/x"), Vec::<usize>::new());
    }

    #[test]
    fn removing_a_subscription_stops_its_matches() {
        let mut r = Routes::default();
        r.add("a/b", 1);
        r.add("a/b", 2);
        r.add("a/+", 1);
        assert!(r.remove("a/b", 1));
        assert!(r.remove("a/+", 1));
        assert!(!r.remove("a/+", 1));
        assert_eq!(matching(&r, "a/b"), [2]);
        assert!(r.remove("a/b", 2));
        assert!(r.exact.is_empty());
    }
}
