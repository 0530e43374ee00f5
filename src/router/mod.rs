//! Topic routing data structures: which subscriptions a published topic reaches, and which retained
//! messages a new subscription must be sent.
//!
//! Everything here is pure, synchronous and single-threaded; the shard that owns a structure
//! decides how it is shared. Both structures take topic names and filters as plain `&str` and never
//! panic on any UTF-8 input: validating filters and names against the MQTT rules is the protocol
//! layer's job.

mod retained;
mod trie;

pub use retained::RetainedIndex;
pub use trie::TopicTrie;
