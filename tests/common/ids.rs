//! Client ids: unique per test process, and placed on a chosen shard so a test can put clients on
//! the same shard or on different ones.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::broker::SHARDS;

static UNIQ: AtomicUsize = AtomicUsize::new(0);

/// A unique client id with the given prefix.
pub fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id() % 10000, UNIQ.fetch_add(1, Ordering::Relaxed))
}

/// The home shard of a client id in the default tenant.
pub fn shard_of(client_id: &str) -> usize {
    ratatosk_shards::home_shard("default", client_id, SHARDS)
}

/// A unique client id whose home is `shard`.
pub fn id_on_shard(prefix: &str, shard: usize) -> String {
    for _ in 0..1000 {
        let id = uniq(prefix);
        if shard_of(&id) == shard {
            return id;
        }
    }
    panic!("no client id found for shard {shard}");
}

/// `n` unique client ids alternating between the shards, so both shards hold some.
pub fn ids_on_both_shards(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| id_on_shard(prefix, i % SHARDS)).collect()
}
