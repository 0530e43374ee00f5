//! Shard addressing: which shard owns a client session, a retained topic or any other keyed state.
//!
//! Keys are hashed into a fixed number of virtual **partitions**, and partitions are mapped to
//! shards by a [`Placement`]. Stored data is addressed by partition, so running with another
//! shard count re-maps whole partitions and never re-hashes a key: a session stored by a
//! 4-shard broker is found by an 8-shard one by asking which shard now holds its partition.
//!
//! The hash must be identical on every shard and across restarts, so it is a fixed FNV-1a rather
//! than std's randomly seeded `DefaultHasher`.

/// Virtual partitions of a broker unless its data directory says otherwise. At least the largest
/// shard count one process runs (1024), so every shard can own one.
pub const DEFAULT_PARTITIONS: u16 = 1024;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// One virtual partition: the unit in which stored data moves between shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition(pub u16);

/// The partition of `key` within `tenant`, among `partitions` partitions (0 is treated as 1).
pub fn partition_of(tenant: &str, key: &str, partitions: u16) -> Partition {
    let mut h = fnv1a(FNV_OFFSET, tenant.as_bytes());
    // A separator byte that cannot appear in UTF-8 keeps ("ab","c") and ("a","bc") apart.
    h = fnv1a(h, &[0xff]);
    h = fnv1a(h, key.as_bytes());
    // Fold the high bits in: FNV's low bits are weak for small moduli.
    let h = h ^ (h >> 32);
    Partition((h % u64::from(partitions.max(1))) as u16)
}

/// Why a partition map cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// There are fewer partitions than shards, so some shard would own nothing.
    #[error("{partitions} partitions cannot be spread over {shards} shards; use at most {partitions} shards")]
    TooFewPartitions {
        /// Partitions in the map.
        partitions: usize,
        /// Shards asked for.
        shards: usize,
    },
    /// A partition is mapped to a shard that does not exist.
    #[error("partition {partition} is mapped to shard {shard}, but there are only {shards} shards")]
    NoSuchShard {
        /// The partition.
        partition: usize,
        /// The shard it names.
        shard: usize,
        /// Shards there are.
        shards: usize,
    },
}

/// Which shard holds each partition.
///
/// Built evenly for a shard count ([`Placement::even`]: contiguous ranges of partitions per
/// shard), or from a stored map ([`Placement::from_map`]) so that a data directory keeps its
/// layout. Cheap to consult: a hash and one table lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    shard_of: Box<[u16]>,
    shards: usize,
}

impl Placement {
    /// `partitions` partitions spread over `shards` shards in contiguous, equal ranges.
    pub fn even(partitions: u16, shards: usize) -> Result<Placement, PlacementError> {
        let p = usize::from(partitions.max(1));
        let shards = shards.max(1);
        if shards > p {
            return Err(PlacementError::TooFewPartitions { partitions: p, shards });
        }
        // Partition i goes to shard floor(i × shards / p): ranges differ by at most one partition.
        let shard_of = (0..p).map(|i| (i * shards / p) as u16).collect();
        Ok(Placement { shard_of, shards })
    }

    /// A stored map: element `i` is the shard of partition `i`.
    pub fn from_map(map: Vec<u16>, shards: usize) -> Result<Placement, PlacementError> {
        if map.is_empty() || map.len() < shards {
            return Err(PlacementError::TooFewPartitions { partitions: map.len(), shards });
        }
        if let Some((partition, shard)) = map.iter().enumerate().find(|(_, s)| usize::from(**s) >= shards) {
            return Err(PlacementError::NoSuchShard { partition, shard: usize::from(*shard), shards });
        }
        Ok(Placement { shard_of: map.into_boxed_slice(), shards })
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u16 {
        self.shard_of.len() as u16
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The map itself, to be stored (element `i` is the shard of partition `i`).
    pub fn map(&self) -> &[u16] {
        &self.shard_of
    }

    /// The shard that holds `partition`.
    pub fn shard_of_partition(&self, partition: Partition) -> usize {
        usize::from(self.shard_of.get(usize::from(partition.0)).copied().unwrap_or(0))
    }

    /// The partition of `key` in `tenant`.
    pub fn partition(&self, tenant: &str, key: &str) -> Partition {
        partition_of(tenant, key, self.partitions())
    }

    /// The shard that owns `key` in `tenant`: a client's session, a retained topic.
    pub fn shard_of(&self, tenant: &str, key: &str) -> usize {
        self.shard_of_partition(self.partition(tenant, key))
    }

    /// The partitions `shard` holds.
    pub fn partitions_of(&self, shard: usize) -> impl Iterator<Item = Partition> + '_ {
        self.shard_of.iter().enumerate().filter(move |(_, s)| usize::from(**s) == shard).map(|(i, _)| Partition(i as u16))
    }
}

/// The home shard of a client session in a broker of `shards` shards with the default
/// partitions (what a broker without a stored map uses).
pub fn home_shard(tenant: &str, client_id: &str, shards: usize) -> usize {
    let p = partition_of(tenant, client_id, DEFAULT_PARTITIONS);
    let shards = shards.clamp(1, usize::from(DEFAULT_PARTITIONS));
    usize::from(p.0) * shards / usize::from(DEFAULT_PARTITIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_shard_and_within_range() {
        for n in 1..8 {
            let placement = Placement::even(DEFAULT_PARTITIONS, n).unwrap();
            for i in 0..200 {
                let id = format!("client-{i}");
                let s = placement.shard_of("t", &id);
                assert!(s < n);
                assert_eq!(s, placement.shard_of("t", &id));
                assert_eq!(s, home_shard("t", &id, n));
            }
        }
    }

    #[test]
    fn clients_spread_over_shards() {
        let placement = Placement::even(DEFAULT_PARTITIONS, 4).unwrap();
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[placement.shard_of("default", &format!("c{i}"))] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn tenant_is_part_of_the_key() {
        let differs = (0..100).any(|i| {
            let id = format!("c{i}");
            partition_of("a", &id, DEFAULT_PARTITIONS) != partition_of("b", &id, DEFAULT_PARTITIONS)
        });
        assert!(differs);
    }

    #[test]
    fn another_shard_count_moves_partitions_not_keys() {
        let four = Placement::even(DEFAULT_PARTITIONS, 4).unwrap();
        let seven = Placement::even(DEFAULT_PARTITIONS, 7).unwrap();
        for i in 0..1000 {
            let id = format!("c{i}");
            // The partition of a key never depends on the shard count ...
            assert_eq!(four.partition("t", &id), seven.partition("t", &id));
            // ... and the shard is always the one holding that partition.
            assert_eq!(seven.shard_of("t", &id), seven.shard_of_partition(seven.partition("t", &id)));
        }
        let owned: usize = (0..7).map(|s| seven.partitions_of(s).count()).sum();
        assert_eq!(owned, usize::from(DEFAULT_PARTITIONS), "every partition has exactly one shard");
        for s in 0..7 {
            let n = seven.partitions_of(s).count();
            assert!((146..=147).contains(&n), "shard {s} holds {n} partitions");
        }
    }

    #[test]
    fn a_stored_map_is_used_as_it_is_and_checked() {
        let map = vec![1u16, 0, 1, 0];
        let p = Placement::from_map(map.clone(), 2).unwrap();
        assert_eq!(p.map(), &map[..]);
        assert_eq!(p.shard_of_partition(Partition(0)), 1);
        assert_eq!(p.partitions_of(0).collect::<Vec<_>>(), vec![Partition(1), Partition(3)]);
        assert!(matches!(Placement::from_map(vec![0, 2], 2), Err(PlacementError::NoSuchShard { partition: 1, shard: 2, .. })));
        assert!(matches!(Placement::from_map(vec![0], 2), Err(PlacementError::TooFewPartitions { .. })));
        assert!(matches!(Placement::even(4, 5), Err(PlacementError::TooFewPartitions { .. })));
    }
}
