//! Durable per-shard storage for ratatosk (one fjall database per shard).
//!
//! The broker core keeps sessions, subscriptions, in-flight and queued messages and retained
//! messages in memory on each shard (`ratatosk::session`, `ratatosk::broker::retained`); the durable
//! storage issue adds `SessionStore`, `RetainedStore` and `QueueStore` here behind those types.

// A test that unwraps reports the failure it was written to find.
#![cfg_attr(test, allow(clippy::unwrap_used))]
