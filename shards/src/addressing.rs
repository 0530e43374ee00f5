//! Shard addressing: a stable hash from (tenant, key) to a shard index.
//!
//! The hash must be identical on every shard and across restarts (durable data is placed by it), so
//! it is a fixed FNV-1a rather than std's randomly seeded `DefaultHasher`.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The shard that owns `key` within `tenant`, for `shards` shards (`shards` of 0 is treated as 1).
pub fn shard_of(tenant: &str, key: &str, shards: usize) -> usize {
    let mut h = fnv1a(FNV_OFFSET, tenant.as_bytes());
    // A separator byte that cannot appear in UTF-8 keeps ("ab","c") and ("a","bc") apart.
    h = fnv1a(h, &[0xff]);
    h = fnv1a(h, key.as_bytes());
    // Fold the high bits in: FNV's low bits are weak for small moduli.
    let h = h ^ (h >> 32);
    (h % shards.max(1) as u64) as usize
}

/// The home shard of a client session: all of its state lives there.
pub fn home_shard(tenant: &str, client_id: &str, shards: usize) -> usize {
    shard_of(tenant, client_id, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_shard_and_within_range() {
        for n in 1..8 {
            for i in 0..200 {
                let id = format!("client-{i}");
                let s = home_shard("t", &id, n);
                assert!(s < n);
                assert_eq!(s, home_shard("t", &id, n));
            }
        }
    }

    #[test]
    fn clients_spread_over_shards() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[home_shard("default", &format!("c{i}"), 4)] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn tenant_is_part_of_the_key() {
        let differs = (0..100).any(|i| {
            let id = format!("c{i}");
            home_shard("a", &id, 16) != home_shard("b", &id, 16)
        });
        assert!(differs);
    }
}
