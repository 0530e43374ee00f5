//! Thread-per-core runtime for ratatosk: one pinned glommio executor per shard, the SPSC channel mesh
//! between shards, and shard addressing (which shard owns a client, a topic, a tenant).
//!
//! This crate knows nothing of MQTT. It starts `N` executors, gives each one its index and its end
//! of a full mesh of bounded channels carrying the caller's message type, and runs the caller's
//! per-shard future until it returns.

// A test that unwraps reports the failure it was written to find.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod addressing;
mod latch;
mod memlock;
mod mesh;
mod nudge;
mod runtime;
mod shard_set;

pub use addressing::{home_shard, partition_of, Partition, Placement, PlacementError, DEFAULT_PARTITIONS};
pub use latch::{Latch, Opened};
pub use memlock::raise_memlock_limit;
pub use mesh::{Lane, LaneCapacity, Mesh, PeerReceivers};
pub use runtime::{allowed_cpus, run_shards, RuntimeError, ShardConfig, ShardContext};
pub use shard_set::ShardSet;
