//! A set of shard indexes, for any shard count.
//!
//! Up to 64 shards it is one machine word and never allocates, which keeps the per-message
//! bookkeeping of a small host free; beyond that it grows a bitmap. (A `u64` mask used to stand
//! in for it, and brokers with more than 64 shards silently lost the shards past the 64th.)

/// Shard indexes, as a bitmap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSet {
    small: u64,
    /// Words for shards 64 and up: word `i` holds shards `64 × (i + 1)` ..
    large: Vec<u64>,
}

impl ShardSet {
    /// The empty set.
    pub const fn new() -> ShardSet {
        ShardSet { small: 0, large: Vec::new() }
    }

    /// Adds `shard`; returns whether it was new.
    pub fn insert(&mut self, shard: usize) -> bool {
        let (word, bit) = (shard / 64, 1u64 << (shard % 64));
        let w = if word == 0 {
            &mut self.small
        } else {
            if self.large.len() < word {
                self.large.resize(word, 0);
            }
            &mut self.large[word - 1]
        };
        let new = *w & bit == 0;
        *w |= bit;
        new
    }

    /// Removes `shard`; returns whether it was there.
    pub fn remove(&mut self, shard: usize) -> bool {
        let (word, bit) = (shard / 64, 1u64 << (shard % 64));
        let w = if word == 0 {
            &mut self.small
        } else {
            match self.large.get_mut(word - 1) {
                Some(w) => w,
                None => return false,
            }
        };
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }

    /// Whether `shard` is in the set.
    pub fn contains(&self, shard: usize) -> bool {
        let (word, bit) = (shard / 64, 1u64 << (shard % 64));
        let w = if word == 0 { self.small } else { self.large.get(word - 1).copied().unwrap_or(0) };
        w & bit != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.small == 0 && self.large.iter().all(|w| *w == 0)
    }

    /// The shards in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.small).chain(self.large.iter().copied()).enumerate().flat_map(|(i, mut w)| {
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + b)
            })
        })
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        (self.small.count_ones() + self.large.iter().map(|w| w.count_ones()).sum::<u32>()) as usize
    }
}

impl FromIterator<usize> for ShardSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut s = ShardSet::new();
        for x in iter {
            s.insert(x);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_shards_beyond_sixty_four() {
        let mut s = ShardSet::new();
        assert!(s.is_empty());
        for x in [0, 1, 63, 64, 65, 127, 128, 1023] {
            assert!(s.insert(x), "{x} is new");
            assert!(!s.insert(x), "{x} is there already");
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 63, 64, 65, 127, 128, 1023]);
        assert_eq!(s.len(), 8);
        assert!(s.contains(1023) && s.contains(64) && !s.contains(66) && !s.contains(5000));
        assert!(s.remove(64));
        assert!(!s.remove(64));
        assert!(!s.remove(4000), "removing past the end is a no-op");
        assert!(!s.contains(64));
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn small_sets_do_not_allocate() {
        let s: ShardSet = (0..64).collect();
        assert_eq!(s.large.capacity(), 0);
        assert_eq!(s.len(), 64);
    }
}
