//! [`TopicTrie`]: subscription filters keyed by topic level, for matching a PUBLISH topic against
//! every stored filter at once.
//!
//! What it promises:
//! - [`TopicTrie::for_each_match`] reports each stored filter that matches a topic name exactly
//!   once, following MQTT section 4.7: `+` matches exactly one level (which may be empty), a
//!   trailing `#` matches its parent level and any number of deeper levels, and a filter whose
//!   first level is a wildcard does not match a topic whose first level starts with `$`
//!   [MQTT-4.7.2-1].
//! - Matching walks the topic in place (no allocation unless the trie is more than a few dozen
//!   levels deep along the matched paths) and costs one hash lookup per topic level per live
//!   branch, not one comparison per stored filter.
//! - Removing a filter prunes the nodes that only existed for it, so memory follows the live filter
//!   set rather than the history of subscribe/unsubscribe churn.
//! - No input string makes it panic, and no input makes it recurse: traversal, pruning and dropping
//!   all use explicit stacks, so a filter with tens of thousands of levels cannot overflow the
//!   stack.
//!
//! Filters are stored as given. `+` and `#` are wildcards only when they are a whole level, and `#`
//! only as the last level; anywhere else (`a/#/b`, `a+`) they are literal characters. Callers are
//! expected to have rejected such filters already, but if one slips through it is stored and
//! matched consistently rather than misbehaving.

use std::collections::HashMap;
use std::fmt;

/// A map from MQTT topic filter to `V`, optimised for finding every filter that matches a topic
/// name.
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

/// One topic level. A filter's value lives in the node reached by its levels (`value`), except that
/// a trailing `#` is stored in the `hash` slot of its parent node: `#` always ends a filter, so
/// giving it a whole node would only add a pointer chase on every match.
struct Node<V> {
    /// The filter ending exactly at this node.
    value: Option<V>,
    /// The filter "<this node's levels>/#" (or "#" at the root).
    hash: Option<V>,
    /// The `+` level below this node.
    plus: Option<Box<Node<V>>>,
    /// Literal levels below this node. SipHash (the std default) is kept on purpose: level strings
    /// come from clients, and a weaker hasher would let one client degrade every lookup with
    /// collisions.
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            hash: None,
            plus: None,
            children: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.hash.is_none()
            && self.plus.is_none()
            && self.children.is_empty()
    }

    /// Whether this node must survive pruning for reasons other than the one path being pruned.
    fn holds_more_than(&self, edges: usize) -> bool {
        self.value.is_some()
            || self.hash.is_some()
            || self.children.len() + usize::from(self.plus.is_some()) > edges
    }

    fn child(&self, step: Step<'_>) -> Option<&Node<V>> {
        match step {
            Step::Plus => self.plus.as_deref(),
            Step::Literal(level) => self.children.get(level),
        }
    }

    fn child_mut(&mut self, step: Step<'_>) -> Option<&mut Node<V>> {
        match step {
            Step::Plus => self.plus.as_deref_mut(),
            Step::Literal(level) => self.children.get_mut(level),
        }
    }

    fn slot(&self, slot: Slot) -> Option<&V> {
        match slot {
            Slot::Value => self.value.as_ref(),
            Slot::Hash => self.hash.as_ref(),
        }
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<V> {
        match slot {
            Slot::Value => &mut self.value,
            Slot::Hash => &mut self.hash,
        }
    }
}

/// One non-`#` level of a filter, as an edge in the trie.
#[derive(Clone, Copy)]
enum Step<'a> {
    Plus,
    Literal(&'a str),
}

/// Which slot of the final node a filter's value lives in.
#[derive(Clone, Copy)]
enum Slot {
    Value,
    Hash,
}

/// Splits a filter into the levels that name its node and the slot in that node. The levels are
/// `None` when there are none at all (the filter `#`), which is different from one empty level
/// (`/#`).
fn parse(filter: &str) -> (Option<&str>, Slot) {
    if filter == "#" {
        (None, Slot::Hash)
    } else if let Some(prefix) = filter.strip_suffix("/#") {
        (Some(prefix), Slot::Hash)
    } else {
        (Some(filter), Slot::Value)
    }
}

fn steps(levels: Option<&str>) -> impl Iterator<Item = Step<'_>> {
    levels
        .into_iter()
        .flat_map(|l| l.split('/'))
        .map(|level| match level {
            "+" => Step::Plus,
            literal => Step::Literal(literal),
        })
}

/// Takes the first level off a (non-empty-level-list) topic: the level and what follows the `/`, if
/// anything. `None` for the rest means the topic has no more levels, which differs from `Some("")`,
/// one more empty level.
#[inline]
fn split_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, next)) => (level, Some(next)),
        None => (rest, None),
    }
}

/// A LIFO stack that keeps its first `N` entries inline, so the common shallow traversal does not
/// touch the allocator, and spills to a `Vec` so a pathologically deep one still cannot overflow
/// the call stack.
pub(super) struct Stack<T, const N: usize> {
    inline: [Option<T>; N],
    len: usize,
    spill: Vec<T>,
}

impl<T, const N: usize> Stack<T, N> {
    pub(super) fn new() -> Self {
        Stack {
            inline: std::array::from_fn(|_| None),
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    pub(super) fn push(&mut self, item: T) {
        // Spill only while the inline part is full; since `pop` drains the spill first, order stays
        // strictly LIFO, which `RetainedIndex` relies on to rebuild topic names in one buffer.
        match self.inline.get_mut(self.len) {
            Some(slot) if self.spill.is_empty() => {
                *slot = Some(item);
                self.len += 1;
            }
            _ => self.spill.push(item),
        }
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get_mut(self.len).and_then(Option::take)
    }
}

/// How many pending branches a match keeps inline: one per level of depth at most, and real topic
/// trees rarely go past a dozen levels.
const INLINE_DEPTH: usize = 32;

impl<V> TopicTrie<V> {
    /// Creates an empty trie.
    pub fn new() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }

    /// Number of stored filters.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no filter is stored.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for exactly this filter (wildcards compared literally, not matched).
    pub fn get(&self, filter: &str) -> Option<&V> {
        let (levels, slot) = parse(filter);
        let mut node = &self.root;
        for step in steps(levels) {
            node = node.child(step)?;
        }
        node.slot(slot)
    }

    /// Mutable access to the value stored for exactly this filter.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let (levels, slot) = parse(filter);
        let mut node = &mut self.root;
        for step in steps(levels) {
            node = node.child_mut(step)?;
        }
        node.slot_mut(slot).as_mut()
    }

    /// The value stored for this filter, first storing `f()` if there is none.
    pub fn entry_or_insert_with(&mut self, filter: &str, f: impl FnOnce() -> V) -> &mut V {
        let (levels, slot) = parse(filter);
        let mut node = &mut self.root;
        for step in steps(levels) {
            node = match step {
                Step::Plus => node.plus.get_or_insert_with(Box::default),
                // Allocates the key even when the level exists; this is the SUBSCRIBE path, and a
                // lookup-then-insert does not pass the borrow checker without an unwrap.
                Step::Literal(level) => node.children.entry(Box::from(level)).or_default(),
            };
        }
        let value = node.slot_mut(slot);
        if value.is_none() {
            self.len += 1;
        }
        value.get_or_insert_with(f)
    }

    /// Removes and returns the value stored for exactly this filter, pruning nodes left empty.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        let (levels, slot) = parse(filter);
        let mut node = &mut self.root;
        for step in steps(levels) {
            node = node.child_mut(step)?;
        }
        let removed = node.slot_mut(slot).take()?;
        self.len -= 1;
        if node.is_empty() {
            self.prune(levels);
        }
        Some(removed)
    }

    /// Cuts off the chain of nodes that ends at the (now empty) node for `levels` and exists only
    /// for it: everything below the deepest ancestor that is the root, holds a value, or branches.
    fn prune(&mut self, levels: Option<&str>) {
        let mut keep = 0;
        let mut depth = 0;
        let mut node = &self.root;
        for step in steps(levels) {
            if depth == 0 || node.holds_more_than(1) {
                keep = depth;
            }
            match node.child(step) {
                Some(next) => node = next,
                None => return,
            }
            depth += 1;
        }
        if depth == 0 {
            // The filter `#` lives in the root, which is never removed.
            return;
        }

        let mut path = steps(levels);
        let mut node = &mut self.root;
        for _ in 0..keep {
            match path.next().and_then(|step| node.child_mut(step)) {
                Some(next) => node = next,
                None => return,
            }
        }
        let detached = match path.next() {
            Some(Step::Plus) => node.plus.take().map(|b| *b),
            Some(Step::Literal(level)) => {
                let detached = node.children.remove(level);
                // A level that once had many children (a burst of client ids, say) should not keep
                // its table at peak size forever.
                if node.children.capacity() > 16
                    && node.children.len() * 4 < node.children.capacity()
                {
                    node.children.shrink_to_fit();
                }
                detached
            }
            None => None,
        };
        if let Some(detached) = detached {
            dismantle(detached);
        }
    }

    /// Calls `f` once for each stored filter that matches the topic name `topic`.
    ///
    /// The order of calls is unspecified.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&V)) {
        // Wildcards in the first level must not reach `$SYS`-style topics [MQTT-4.7.2-1].
        let dollar = topic.starts_with('$');
        let mut stack: Stack<(&Node<V>, Option<&str>), INLINE_DEPTH> = Stack::new();
        // The root is the only node whose wildcards see the first level.
        let (level, next) = split_level(topic);
        if !dollar {
            if let Some(v) = &self.root.hash {
                f(v);
            }
            if let Some(plus) = self.root.plus.as_deref() {
                stack.push((plus, next));
            }
        }
        if let Some(child) = self.root.children.get(level) {
            stack.push((child, next));
        }

        while let Some((node, rest)) = stack.pop() {
            let Some(rest) = rest else {
                // Every topic level is consumed: the filter ending here matches, and so does
                // "<here>/#", because `#` also matches its parent level.
                if let Some(v) = &node.value {
                    f(v);
                }
                if let Some(v) = &node.hash {
                    f(v);
                }
                continue;
            };
            let (level, next) = split_level(rest);
            if let Some(v) = &node.hash {
                f(v);
            }
            if let Some(plus) = node.plus.as_deref() {
                stack.push((plus, next));
            }
            if let Some(child) = node.children.get(level) {
                stack.push((child, next));
            }
        }
    }

    /// Like [`for_each_match`](Self::for_each_match), with mutable access to each matching value.
    #[cfg(test)]
    pub fn for_each_match_mut(&mut self, topic: &str, mut f: impl FnMut(&mut V)) {
        let dollar = topic.starts_with('$');
        let mut stack: Stack<(&mut Node<V>, Option<&str>), INLINE_DEPTH> = Stack::new();
        let (level, next) = split_level(topic);
        let Node {
            hash,
            plus,
            children,
            ..
        } = &mut self.root;
        if !dollar {
            if let Some(v) = hash {
                f(v);
            }
            if let Some(plus) = plus.as_deref_mut() {
                stack.push((plus, next));
            }
        }
        if let Some(child) = children.get_mut(level) {
            stack.push((child, next));
        }

        // Each node is reached by at most one path for a given topic, so the `&mut` borrows on the
        // stack are always of distinct nodes.
        while let Some((node, rest)) = stack.pop() {
            let Node {
                value,
                hash,
                plus,
                children,
            } = node;
            let Some(rest) = rest else {
                if let Some(v) = value {
                    f(v);
                }
                if let Some(v) = hash {
                    f(v);
                }
                continue;
            };
            let (level, next) = split_level(rest);
            if let Some(v) = hash {
                f(v);
            }
            if let Some(plus) = plus.as_deref_mut() {
                stack.push((plus, next));
            }
            if let Some(child) = children.get_mut(level) {
                stack.push((child, next));
            }
        }
    }

    /// Every stored filter with its value, in unspecified order. Rebuilds the filter strings, so it
    /// allocates; meant for diagnostics and rare bulk operations, not the publish path.
    pub fn iter(&self) -> impl Iterator<Item = (String, &V)> + '_ {
        let mut out = Vec::with_capacity(self.len);
        // (node, its levels joined by '/'); `None` for the root, which has no levels.
        let mut stack: Vec<(&Node<V>, Option<String>)> = vec![(&self.root, None)];
        while let Some((node, name)) = stack.pop() {
            let below = |level: &str| match &name {
                Some(prefix) => format!("{prefix}/{level}"),
                None => level.to_owned(),
            };
            if let (Some(v), Some(name)) = (&node.value, &name) {
                out.push((name.clone(), v));
            }
            if let Some(v) = &node.hash {
                out.push((below("#"), v));
            }
            if let Some(plus) = node.plus.as_deref() {
                stack.push((plus, Some(below("+"))));
            }
            for (level, child) in &node.children {
                stack.push((child, Some(below(level))));
            }
        }
        out.into_iter()
    }

    /// Number of trie nodes, root included; lets tests check that removal prunes.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.plus.as_deref());
            stack.extend(node.children.values());
        }
        count
    }
}

/// Drops a subtree without recursion: the derived drop glue would recurse once per level, and a
/// client-chosen filter can have tens of thousands of levels.
fn dismantle<V>(node: Node<V>) {
    let mut stack = vec![node];
    while let Some(mut node) = stack.pop() {
        if let Some(plus) = node.plus.take() {
            stack.push(*plus);
        }
        stack.extend(std::mem::take(&mut node.children).into_values());
        // `node` now drops with no children.
    }
}

impl<V> Drop for TopicTrie<V> {
    fn drop(&mut self) {
        dismantle(std::mem::take(&mut self.root));
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for TopicTrie<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The filters (by name) in `trie` that match `topic`, sorted.
    fn matches(trie: &TopicTrie<String>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |v| out.push(v.clone()));
        out.sort();
        out
    }

    fn trie_of(filters: &[&str]) -> TopicTrie<String> {
        let mut trie = TopicTrie::new();
        for filter in filters {
            trie.entry_or_insert_with(filter, || filter.to_string());
        }
        trie
    }

    fn is_match(filter: &str, topic: &str) -> bool {
        !matches(&trie_of(&[filter]), topic).is_empty()
    }

    /// Straightforward MQTT matching, level by level, to check the trie against.
    pub(crate) fn naive_match(filter: &str, topic: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        if matches!(f[0], "+" | "#") && t[0].starts_with('$') {
            return false;
        }
        let mut i = 0;
        loop {
            if i == f.len() {
                return i == t.len();
            }
            if f[i] == "#" && i + 1 == f.len() {
                return true;
            }
            if i == t.len() || (f[i] != "+" && f[i] != t[i]) {
                return false;
            }
            i += 1;
        }
    }

    #[test]
    fn spec_multi_level_wildcard() {
        // MQTT 4.7.1.2
        let f = "sport/tennis/player1/#";
        assert!(is_match(f, "sport/tennis/player1"));
        assert!(is_match(f, "sport/tennis/player1/ranking"));
        assert!(is_match(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!is_match(f, "sport/tennis/player2"));
        assert!(!is_match(f, "sport/tennis"));
        assert!(is_match("sport/#", "sport"));
        assert!(is_match("sport/#", "sport/"));
        assert!(is_match("sport/#", "sport/a/b"));
        assert!(is_match("#", "anything/at/all"));
        assert!(is_match("#", "/"));
        assert!(is_match("#", ""));
    }

    #[test]
    fn spec_single_level_wildcard() {
        // MQTT 4.7.1.3
        assert!(is_match("sport/tennis/+", "sport/tennis/player1"));
        assert!(is_match("sport/tennis/+", "sport/tennis/player2"));
        assert!(!is_match("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!is_match("sport/+", "sport"));
        assert!(is_match("sport/+", "sport/"));
        assert!(is_match("+/+", "/finance"));
        assert!(is_match("/+", "/finance"));
        assert!(!is_match("+", "/finance"));
        assert!(is_match("+", ""));
        assert!(is_match("sport/+/player1", "sport/tennis/player1"));
        assert!(is_match("+/tennis/#", "sport/tennis/player1/ranking"));
    }

    #[test]
    fn spec_dollar_topics() {
        // MQTT 4.7.2 [MQTT-4.7.2-1]
        assert!(!is_match("#", "$SYS/x"));
        assert!(!is_match("#", "$SYS"));
        assert!(is_match("$SYS/#", "$SYS/x"));
        assert!(is_match("$SYS/#", "$SYS"));
        assert!(!is_match("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(is_match("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!is_match("+", "$"));
        // Only the first level is special.
        assert!(is_match("a/#", "a/$b"));
        assert!(is_match("a/+", "a/$b"));
        assert!(is_match("#", "a$"));
    }

    #[test]
    fn empty_levels_are_levels() {
        assert!(is_match("a//b", "a//b"));
        assert!(!is_match("a//b", "a/b"));
        assert!(is_match("a/+/b", "a//b"));
        assert!(is_match("/x", "/x"));
        assert!(!is_match("/x", "x"));
        assert!(is_match("/#", "/"));
        assert!(is_match("/#", "/a/b"));
        assert!(!is_match("/#", "a"));
        assert!(is_match("", ""));
        assert!(!is_match("", "/"));
    }

    #[test]
    fn overlapping_filters_each_reported_once() {
        let trie = trie_of(&["#", "a/#", "a/+", "a/b", "+/b", "+/+", "a/b/#", "a/c"]);
        assert_eq!(
            matches(&trie, "a/b"),
            ["#", "+/+", "+/b", "a/#", "a/+", "a/b", "a/b/#"]
        );
        assert_eq!(trie.len(), 8);
    }

    #[test]
    fn get_insert_remove() {
        let mut trie = TopicTrie::new();
        assert!(trie.is_empty());
        *trie.entry_or_insert_with("a/+/#", || 1) += 10;
        assert_eq!(trie.entry_or_insert_with("a/+/#", || 99), &mut 11);
        assert_eq!(trie.get("a/+/#"), Some(&11));
        assert_eq!(trie.get("a/+"), None);
        assert_eq!(trie.get("a/x/#"), None);
        if let Some(v) = trie.get_mut("a/+/#") {
            *v = 5;
        }
        assert_eq!(trie.len(), 1);
        assert_eq!(trie.remove("a/+"), None);
        assert_eq!(trie.remove("a/+/#"), Some(5));
        assert_eq!(trie.remove("a/+/#"), None);
        assert!(trie.is_empty());
    }

    #[test]
    fn removal_prunes() {
        let mut trie = TopicTrie::new();
        for filter in [
            "a/b/c/d",
            "a/b/+/#",
            "a/b",
            "#",
            "+/x",
            "/#",
            "",
            "a/b/c/d/e/f",
        ] {
            trie.entry_or_insert_with(filter, || ());
        }
        let full = trie.node_count();
        trie.remove("a/b/c/d/e/f");
        // "a/b/c/d" keeps its node; only "e" and "f" go.
        assert_eq!(trie.node_count(), full - 2);
        for filter in ["a/b/c/d", "a/b/+/#", "a/b", "#", "+/x", "/#", ""] {
            assert!(trie.remove(filter).is_some(), "{filter}");
        }
        assert_eq!(trie.node_count(), 1);
        assert!(trie.is_empty());

        // Churn does not grow the trie.
        for i in 0..1000 {
            let filter = format!("clients/{i}/+/#");
            trie.entry_or_insert_with(&filter, || ());
            trie.remove(&filter);
        }
        assert_eq!(trie.node_count(), 1);
    }

    #[test]
    fn iter_rebuilds_filters() {
        let filters = ["#", "/#", "", "a", "a/+", "+/+/#", "a//b", "$SYS/#"];
        let trie = trie_of(&filters);
        let mut got: Vec<String> = trie
            .iter()
            .map(|(f, v)| {
                assert_eq!(&f, v);
                f
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn for_each_match_mut_updates() {
        let mut trie = TopicTrie::new();
        for filter in ["a/#", "a/+", "+/b", "c"] {
            trie.entry_or_insert_with(filter, || 0);
        }
        trie.for_each_match_mut("a/b", |v| *v += 1);
        trie.for_each_match_mut("a", |v| *v += 10);
        assert_eq!(trie.get("a/#"), Some(&11));
        assert_eq!(trie.get("a/+"), Some(&1));
        assert_eq!(trie.get("+/b"), Some(&1));
        assert_eq!(trie.get("c"), Some(&0));
    }

    #[test]
    fn malformed_wildcards_are_literal() {
        let trie = trie_of(&["a/#/b", "a+", "#/#"]);
        assert!(matches(&trie, "a/x/b").is_empty());
        assert_eq!(matches(&trie, "a/#/b"), ["a/#/b"]);
        assert_eq!(matches(&trie, "a+"), ["a+"]);
        assert_eq!(trie.get("a/#/b").map(String::as_str), Some("a/#/b"));
    }

    #[test]
    fn very_deep_filters_do_not_overflow() {
        let deep_filter = vec!["+"; 100_000].join("/");
        let deep_topic = vec!["x"; 100_000].join("/");
        let mut trie = TopicTrie::new();
        trie.entry_or_insert_with(&deep_filter, || 1);
        trie.entry_or_insert_with(&deep_topic, || 2);
        let mut seen = Vec::new();
        trie.for_each_match(&deep_topic, |v| seen.push(*v));
        seen.sort();
        assert_eq!(seen, [1, 2]);
        assert_eq!(trie.remove(&deep_filter), Some(1));
        // Dropping the remaining deep chain must not recurse either.
        drop(trie);
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "$c", ""])
    }

    pub(crate) fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|levels| levels.join("/"))
    }

    pub(crate) fn filter_strategy() -> impl Strategy<Value = String> {
        let filter_level = prop::sample::select(vec!["a", "b", "$c", "", "+"]);
        (prop::collection::vec(filter_level, 0..5), any::<bool>()).prop_filter_map(
            "a filter has at least one level",
            |(mut levels, hash)| {
                if hash {
                    levels.push("#");
                }
                (!levels.is_empty()).then(|| levels.join("/"))
            },
        )
    }

    proptest! {
        #[test]
        fn matches_like_naive(
            filters in prop::collection::vec(filter_strategy(), 0..24),
            topics in prop::collection::vec(topic_strategy(), 1..16),
            remove_mask in prop::collection::vec(any::<bool>(), 24),
        ) {
            let mut trie = TopicTrie::new();
            for filter in &filters {
                trie.entry_or_insert_with(filter, || filter.clone());
            }
            let mut live: Vec<String> = filters.clone();
            live.sort();
            live.dedup();
            prop_assert_eq!(trie.len(), live.len());

            let check = |trie: &TopicTrie<String>, live: &[String]| -> Result<(), TestCaseError> {
                for topic in &topics {
                    let want: Vec<String> =
                        live.iter().filter(|f| naive_match(f, topic)).cloned().collect();
                    prop_assert_eq!(matches(trie, topic), want, "topic {:?}", topic);
                }
                Ok(())
            };
            check(&trie, &live)?;

            for (filter, remove) in live.clone().iter().zip(&remove_mask) {
                if *remove {
                    prop_assert_eq!(trie.remove(filter), Some(filter.clone()));
                    live.retain(|f| f != filter);
                }
            }
            prop_assert_eq!(trie.len(), live.len());
            check(&trie, &live)?;

            for filter in &live {
                prop_assert_eq!(trie.remove(filter), Some(filter.clone()));
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.node_count(), 1);
        }

        #[test]
        fn arbitrary_strings_do_not_panic(filter in ".{0,40}", topic in ".{0,40}") {
            let mut trie = TopicTrie::new();
            trie.entry_or_insert_with(&filter, || 1u8);
            prop_assert_eq!(trie.get(&filter), Some(&1));
            trie.for_each_match(&topic, |_| {});
            trie.for_each_match_mut(&topic, |_| {});
            let _ = trie.iter().count();
            prop_assert_eq!(trie.remove(&filter), Some(1));
            prop_assert_eq!(trie.node_count(), 1);
        }
    }
}
