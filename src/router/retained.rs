//! [`RetainedIndex`]: retained messages keyed by topic name, for finding every one a new
//! subscription's filter matches.
//!
//! It is the inverse of [`TopicTrie`](super::TopicTrie): the stored keys are concrete topic names
//! and the query is a filter. What it promises:
//! - [`RetainedIndex::for_each_matching`] reports each stored topic that the filter matches exactly
//!   once, with its name, following MQTT section 4.7 (`+` is one level, possibly empty; a trailing
//!   `#` is its parent level and everything below; a filter starting with a wildcard does not match
//!   topics starting with `$` [MQTT-4.7.2-1]).
//! - A query visits only the subtrees the filter can reach: a literal level is one hash lookup, so
//!   `a/b/+` on a large index touches the children of `a/b`, not the whole index.
//! - Removing a topic prunes the nodes that only existed for it.
//! - No input string makes it panic, and nothing recurses (queries, pruning and dropping all use
//!   explicit stacks), so topics with tens of thousands of levels are safe.
//!
//! Topic names are stored as given; `+` and `#` in a stored name are ordinary characters (the
//! protocol layer rejects such names before they get here). In a query filter, `+` and `#` are
//! wildcards only as whole levels, and `#` only as the last one; elsewhere they are literal.

use std::collections::HashMap;
use std::fmt;

use super::trie::Stack;

/// A map from MQTT topic name to `V`, for finding every stored topic that a filter matches.
pub struct RetainedIndex<V> {
    root: Node<V>,
    len: usize,
}

/// One topic level. The name is not stored: queries rebuild it from the path, which is cheaper than
/// keeping a second copy of every topic for the (comparatively rare) SUBSCRIBE-time lookups.
struct Node<V> {
    value: Option<V>,
    /// SipHash on purpose: the level strings are client-chosen.
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            children: HashMap::new(),
        }
    }
}

/// What a pending node still has to match.
#[derive(Clone, Copy)]
enum Todo<'a> {
    /// The rest of the filter, `None` once every filter level is consumed.
    Filter(Option<&'a str>),
    /// Everything at or below this node (the node is under a trailing `#`).
    All,
}

/// A node waiting to be visited, with what it takes to put its topic name in the shared buffer.
struct Pending<'n, 'f, V> {
    node: &'n Node<V>,
    /// This node's level.
    level: &'n str,
    /// Length of the parent's name in the buffer; `None` when the parent is the root (no `/`).
    parent_len: Option<usize>,
    todo: Todo<'f>,
}

/// Takes the first level off a filter: the level and what follows the `/`, if anything.
#[inline]
fn split_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, next)) => (level, Some(next)),
        None => (rest, None),
    }
}

impl<V> RetainedIndex<V> {
    /// Creates an empty index.
    pub fn new() -> Self {
        RetainedIndex {
            root: Node::default(),
            len: 0,
        }
    }

    /// Number of stored topics.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no topic is stored.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for exactly this topic name.
    #[cfg(test)]
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Stores `v` for `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, v: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let old = node.value.replace(v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes and returns the value stored for `topic`, pruning nodes left empty.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_mut(level)?;
        }
        let removed = node.value.take()?;
        self.len -= 1;
        if node.children.is_empty() {
            self.prune(topic);
        }
        Some(removed)
    }

    /// Cuts off the chain of nodes ending at the (now empty) node for `topic` that exists only for
    /// it: everything below the deepest ancestor that is the root, holds a value, or branches.
    fn prune(&mut self, topic: &str) {
        let mut keep = 0;
        let mut node = &self.root;
        for (depth, level) in topic.split('/').enumerate() {
            if depth == 0 || node.value.is_some() || node.children.len() > 1 {
                keep = depth;
            }
            match node.children.get(level) {
                Some(next) => node = next,
                None => return,
            }
        }

        let mut levels = topic.split('/');
        let mut node = &mut self.root;
        for _ in 0..keep {
            match levels.next().and_then(|level| node.children.get_mut(level)) {
                Some(next) => node = next,
                None => return,
            }
        }
        if let Some(detached) = levels.next().and_then(|level| node.children.remove(level)) {
            dismantle(detached);
        }
        // A level that once held many topics should not keep its table at peak size forever.
        if node.children.capacity() > 16 && node.children.len() * 4 < node.children.capacity() {
            node.children.shrink_to_fit();
        }
    }

    /// Calls `f(topic, value)` once for each stored topic that the filter `filter` matches.
    ///
    /// The order of calls is unspecified. The topic name is only valid for the duration of the
    /// call.
    pub fn for_each_matching(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut name = String::new();
        let mut stack: Stack<Pending<'_, '_, V>, 32> = Stack::new();

        // The root has no level and no value, and it is the only node whose wildcard children must
        // skip `$` topics [MQTT-4.7.2-1], so it is expanded here rather than in the loop.
        let (level, next) = split_level(filter);
        let root_wildcard = match (level, next) {
            ("#", None) => Some(Todo::All),
            ("+", _) => Some(Todo::Filter(next)),
            _ => None,
        };
        match root_wildcard {
            Some(todo) => {
                for (level, node) in &self.root.children {
                    if !level.starts_with('$') {
                        stack.push(Pending {
                            node,
                            level,
                            parent_len: None,
                            todo,
                        });
                    }
                }
            }
            None => {
                if let Some((level, node)) = self.root.children.get_key_value(level) {
                    let todo = Todo::Filter(next);
                    stack.push(Pending {
                        node,
                        level,
                        parent_len: None,
                        todo,
                    });
                }
            }
        }

        // The stack is strictly LIFO, so when an entry is popped everything visited since it was
        // pushed lies under its parent, and the buffer still starts with the parent's name.
        while let Some(Pending {
            node,
            level,
            parent_len,
            todo,
        }) = stack.pop()
        {
            match parent_len {
                Some(len) => {
                    name.truncate(len);
                    name.push('/');
                }
                None => name.clear(),
            }
            name.push_str(level);
            let here = Some(name.len());

            match todo {
                Todo::All | Todo::Filter(None) => {
                    if let Some(v) = &node.value {
                        f(&name, v);
                    }
                    if let Todo::All = todo {
                        for (level, node) in &node.children {
                            stack.push(Pending {
                                node,
                                level,
                                parent_len: here,
                                todo,
                            });
                        }
                    }
                }
                Todo::Filter(Some(rest)) => match split_level(rest) {
                    ("#", None) => {
                        // `#` also matches its parent level: this node itself.
                        if let Some(v) = &node.value {
                            f(&name, v);
                        }
                        for (level, node) in &node.children {
                            stack.push(Pending {
                                node,
                                level,
                                parent_len: here,
                                todo: Todo::All,
                            });
                        }
                    }
                    ("+", next) => {
                        for (level, node) in &node.children {
                            let todo = Todo::Filter(next);
                            stack.push(Pending {
                                node,
                                level,
                                parent_len: here,
                                todo,
                            });
                        }
                    }
                    (level, next) => {
                        if let Some((level, node)) = node.children.get_key_value(level) {
                            let todo = Todo::Filter(next);
                            stack.push(Pending {
                                node,
                                level,
                                parent_len: here,
                                todo,
                            });
                        }
                    }
                },
            }
        }
    }

    /// Number of nodes, root included; lets tests check that removal prunes.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.values());
        }
        count
    }
}

/// Drops a subtree without recursion; the derived drop glue would recurse once per level.
fn dismantle<V>(node: Node<V>) {
    let mut stack = vec![node];
    while let Some(mut node) = stack.pop() {
        stack.extend(std::mem::take(&mut node.children).into_values());
    }
}

impl<V> Drop for RetainedIndex<V> {
    fn drop(&mut self) {
        dismantle(std::mem::take(&mut self.root));
    }
}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        self.for_each_matching("#", |topic, v| {
            map.entry(&topic, v);
        });
        // "#" skips `$` topics at the first level; list those too.
        for (level, _) in self
            .root
            .children
            .iter()
            .filter(|(l, _)| l.starts_with('$'))
        {
            self.for_each_matching(&format!("{level}/#"), |topic, v| {
                map.entry(&topic, v);
            });
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::trie::tests::{filter_strategy, naive_match, topic_strategy};
    use super::*;
    use proptest::prelude::*;

    fn index_of(topics: &[&str]) -> RetainedIndex<String> {
        let mut index = RetainedIndex::new();
        for topic in topics {
            index.insert(topic, topic.to_string());
        }
        index
    }

    /// The stored topics that `filter` matches, sorted, checking each name against its value.
    fn matching(index: &RetainedIndex<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        index.for_each_matching(filter, |topic, v| {
            assert_eq!(topic, v);
            out.push(topic.to_owned());
        });
        out.sort();
        out
    }

    #[test]
    fn spec_examples() {
        let index = index_of(&[
            "sport",
            "sport/",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
            "sport/tennis/player2",
            "/finance",
            "$SYS/monitor/Clients",
            "$SYS",
        ]);
        assert_eq!(
            matching(&index, "sport/tennis/player1/#"),
            [
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon"
            ]
        );
        assert_eq!(matching(&index, "sport/#").len(), 6);
        assert!(matching(&index, "sport/#").contains(&"sport".to_owned()));
        assert_eq!(
            matching(&index, "sport/tennis/+"),
            ["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(matching(&index, "sport/+"), ["sport/"]);
        assert_eq!(matching(&index, "+/+"), ["/finance", "sport/"]);
        assert_eq!(matching(&index, "/+"), ["/finance"]);
        assert_eq!(matching(&index, "+"), ["sport"]);
        // [MQTT-4.7.2-1]
        assert_eq!(matching(&index, "#").len(), 7);
        assert!(matching(&index, "+/monitor/Clients").is_empty());
        assert_eq!(matching(&index, "$SYS/#"), ["$SYS", "$SYS/monitor/Clients"]);
        assert_eq!(matching(&index, "$SYS/monitor/+"), ["$SYS/monitor/Clients"]);
        assert_eq!(
            matching(&index, "sport/tennis/player2"),
            ["sport/tennis/player2"]
        );
        assert!(matching(&index, "sport/tennis").is_empty());
    }

    #[test]
    fn insert_get_remove_prunes() {
        let mut index = RetainedIndex::new();
        assert_eq!(index.insert("a/b/c", 1), None);
        assert_eq!(index.insert("a/b/c", 2), Some(1));
        assert_eq!(index.insert("a", 3), None);
        assert_eq!(index.insert("a//x/y/z", 4), None);
        assert_eq!(index.len(), 3);
        assert_eq!(index.get("a/b/c"), Some(&2));
        assert_eq!(index.get("a/b"), None);
        let full = index.node_count();
        assert_eq!(index.remove("a//x/y/z"), Some(4));
        assert_eq!(index.node_count(), full - 4);
        assert_eq!(index.remove("a/b"), None);
        assert_eq!(index.remove("a"), Some(3));
        assert_eq!(index.get("a/b/c"), Some(&2));
        assert_eq!(index.remove("a/b/c"), Some(2));
        assert!(index.is_empty());
        assert_eq!(index.node_count(), 1);

        for i in 0..1000 {
            let topic = format!("devices/{i}/state");
            index.insert(&topic, i);
            index.remove(&topic);
        }
        assert_eq!(index.node_count(), 1);
    }

    #[test]
    fn debug_lists_everything() {
        let index = index_of(&["$SYS/x", "a"]);
        let text = format!("{index:?}");
        assert!(
            text.contains("\"$SYS/x\"") && text.contains("\"a\""),
            "{text}"
        );
    }

    #[test]
    fn very_deep_topics_do_not_overflow() {
        let deep = vec!["x"; 100_000].join("/");
        let mut index = RetainedIndex::new();
        index.insert(&deep, 1);
        index.insert("x", 2);
        let mut n = 0;
        index.for_each_matching("#", |_, _| n += 1);
        assert_eq!(n, 2);
        let mut found = Vec::new();
        index.for_each_matching(&vec!["+"; 100_000].join("/"), |topic, v| {
            found.push((topic.len(), *v));
        });
        assert_eq!(found, [(deep.len(), 1)]);
        assert_eq!(index.remove(&deep), Some(1));
        assert_eq!(index.node_count(), 2);
        index.insert(&deep, 1);
        drop(index);
    }

    proptest! {
        #[test]
        fn matches_like_naive(
            topics in prop::collection::vec(topic_strategy(), 0..24),
            filters in prop::collection::vec(filter_strategy(), 1..16),
            remove_mask in prop::collection::vec(any::<bool>(), 24),
        ) {
            let mut index = RetainedIndex::new();
            for topic in &topics {
                index.insert(topic, topic.clone());
            }
            let mut live = topics.clone();
            live.sort();
            live.dedup();
            prop_assert_eq!(index.len(), live.len());

            let check = |index: &RetainedIndex<String>,
                         live: &[String]|
             -> Result<(), TestCaseError> {
                for filter in &filters {
                    let want: Vec<String> =
                        live.iter().filter(|t| naive_match(filter, t)).cloned().collect();
                    prop_assert_eq!(matching(index, filter), want, "filter {:?}", filter);
                }
                Ok(())
            };
            check(&index, &live)?;

            for (topic, remove) in live.clone().iter().zip(&remove_mask) {
                if *remove {
                    prop_assert_eq!(index.remove(topic), Some(topic.clone()));
                    live.retain(|t| t != topic);
                }
            }
            prop_assert_eq!(index.len(), live.len());
            check(&index, &live)?;

            for topic in &live {
                prop_assert_eq!(index.remove(topic), Some(topic.clone()));
            }
            prop_assert!(index.is_empty());
            prop_assert_eq!(index.node_count(), 1);
        }

        #[test]
        fn arbitrary_strings_do_not_panic(topic in ".{0,40}", filter in ".{0,40}") {
            let mut index = RetainedIndex::new();
            index.insert(&topic, 1u8);
            prop_assert_eq!(index.get(&topic), Some(&1));
            index.for_each_matching(&filter, |_, _| {});
            // A filter equal to the topic (literally) always finds it, wildcard characters aside.
            if !topic.split('/').any(|l| l == "+" || l == "#") {
                let mut found = 0;
                index.for_each_matching(&topic, |t, _| {
                    found += 1;
                    assert_eq!(t, topic.as_str());
                });
                prop_assert_eq!(found, 1);
            }
            prop_assert_eq!(index.remove(&topic), Some(1));
            prop_assert_eq!(index.node_count(), 1);
        }
    }
}
