//! A persistent hash map made of plain hash tables: the keys are spread
//! over shards by hash, each shard a `HashMap` behind an `Arc`. Copying the
//! map copies one `Arc`; changing it copies the table of shard pointers and
//! the one shard the key falls in.
//!
//! It replaces `imbl::HashMap` in the compiled tenant, whose trie nodes
//! (32 slots allocated whatever their use) cost about 160 bytes over each
//! 24-byte entry of a 100,000-user tenant (measured with
//! `benches/memory.rs`); a hash table costs under 2 bytes of control and
//! its free slots. A shard grows to at most [`MAX_SHARD`] entries before
//! the map doubles its shard count, so a change copies at most that many
//! entries, and a lookup is one hash and one probe.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use foldhash::fast::RandomState;

/// Entries a shard may hold before the map splits every shard in two.
pub(crate) const MAX_SHARD: usize = 2048;
/// Entries a shard of a map built whole gets on average: 75% of a
/// 1,024-bucket table, so that even the fullest of thousands of shards
/// stays under the 896 entries that fit one before hashbrown doubles it
/// (a power-of-two shard count left the 10,000-user tenants' tables 61%
/// full).
const FILL: usize = 768;
/// The most shards: beyond this a shard simply grows.
const MAX_SHARDS: usize = 1 << 14;

type Shard<K, V> = Arc<HashMap<K, V, RandomState>>;

/// A persistent hash map: O(1) to copy, O(shard) to change.
#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    hasher: RandomState,
    /// Shard `i` holds the keys whose hash [`shard_index`] maps to `i`.
    shards: Arc<[Shard<K, V>]>,
    len: usize,
}

impl<K, V> Clone for Sharded<K, V> {
    fn clone(&self) -> Self {
        Self {
            hasher: self.hasher.clone(),
            shards: Arc::clone(&self.shards),
            len: self.len,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Sharded<K, V> {
    fn default() -> Self {
        Self::with_shards(1, RandomState::default())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    fn with_shards(count: usize, hasher: RandomState) -> Self {
        let shards = (0..count)
            .map(|_| Arc::new(HashMap::with_hasher(hasher.clone())))
            .collect();
        Self {
            hasher,
            shards,
            len: 0,
        }
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        shard_index(hash, self.shards.len())
    }

    /// How many entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(self.hasher.hash_one(key));
        self.shards.get(shard)?.get(key)
    }

    /// Whether `key` has a value.
    #[cfg(test)]
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The shard `hash` falls in, made this map's own.
    fn shard_mut(&mut self, hash: u64) -> Option<&mut HashMap<K, V, RandomState>> {
        let shard = self.shard_of(hash);
        Some(Arc::make_mut(
            Arc::make_mut(&mut self.shards).get_mut(shard)?,
        ))
    }

    /// Sets `key` to `value`, returning the value it had.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(&key);
        let shard = self.shard_mut(hash)?;
        let old = shard.insert(key, value);
        let full = shard.len() > MAX_SHARD;
        if old.is_none() {
            self.len += 1;
        }
        if full && self.shards.len() < MAX_SHARDS {
            self.reshard(self.shards.len() * 2);
        }
        old
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        // Not made our own unless it holds the key.
        let shard = self.shard_of(hash);
        if !self.shards.get(shard)?.contains_key(key) {
            return None;
        }
        let old = self.shard_mut(hash)?.remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Every key, in no particular order.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    /// Whether both are the same map, shared (a cheap test of "not copied").
    #[cfg(test)]
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shards, &other.shards)
    }

    /// The same entries over `count` shards.
    fn reshard(&mut self, count: usize) {
        let entries = self.iter().map(|(k, v)| (k.clone(), v.clone()));
        *self = Self::build(self.hasher.clone(), count, entries);
    }

    /// A map of `entries` over `count` shards (a later key twice replaces
    /// the earlier).
    fn build(hasher: RandomState, count: usize, entries: impl Iterator<Item = (K, V)>) -> Self {
        let mut shards: Vec<HashMap<K, V, RandomState>> = (0..count)
            .map(|_| HashMap::with_hasher(hasher.clone()))
            .collect();
        let mut len = 0;
        for (k, v) in entries {
            let i = shard_index(hasher.hash_one(&k), count);
            if let Some(shard) = shards.get_mut(i)
                && shard.insert(k, v).is_none()
            {
                len += 1;
            }
        }
        for shard in &mut shards {
            shard.shrink_to_fit();
        }
        Self {
            hasher,
            shards: shards.into_iter().map(Arc::new).collect(),
            len,
        }
    }
}

/// The shard of `count` a hash falls in, from its bits 32 to 55: below
/// them hashbrown picks the bucket, above them it keeps its 7-bit tags, so
/// the entries of one shard still spread over every bucket and tag.
/// (`count` need not be a power of two: multiply and shift.)
#[inline]
fn shard_index(hash: u64, count: usize) -> usize {
    let mid = (hash >> 32) & 0xFF_FFFF;
    ((mid * count as u64) >> 24) as usize
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for Sharded<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let entries: Vec<(K, V)> = iter.into_iter().collect();
        let count = entries.len().div_ceil(FILL).clamp(1, MAX_SHARDS);
        Self::build(RandomState::default(), count, entries.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_built_whole_fills_its_tables() {
        for n in [10_000u32, 100_000] {
            let map: Sharded<u32, u32> = (0..n).map(|i| (i, i)).collect();
            // Every shard fits one 1,024-bucket table (896 entries).
            assert!(map.shards.iter().all(|s| s.capacity() <= 896), "{n}");
            let capacity: usize = map.shards.iter().map(|s| s.capacity()).sum();
            assert!(n as usize * 100 / capacity >= 75, "{n}: {capacity}");
            assert!((0..n).all(|i| map.get(&i) == Some(&i)));
        }
    }

    #[test]
    fn behaves_as_a_map_through_splits_and_copies() {
        let mut map: Sharded<u32, u32> = Sharded::default();
        let mut model = std::collections::BTreeMap::new();
        let mut copies = Vec::new();
        for i in 0..(MAX_SHARD as u32 * 5) {
            let k = i.wrapping_mul(2_654_435_761) % 20_000;
            assert_eq!(map.insert(k, i), model.insert(k, i));
            if i % 3 == 0 {
                let r = (i * 7) % 20_000;
                assert_eq!(map.remove(&r), model.remove(&r));
            }
            if i % 2_000 == 0 {
                copies.push((map.clone(), model.clone()));
            }
        }
        assert!(map.shards.len() > 1, "it split");
        for (m, want) in copies.iter().chain([(map.clone(), model.clone())].iter()) {
            assert_eq!(m.len(), want.len());
            let mut got: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
            got.sort_unstable();
            let want: Vec<_> = want.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, want, "a copy kept what it held");
            for (k, v) in &want {
                assert_eq!(m.get(k), Some(v));
            }
        }
        let built: Sharded<u32, u32> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(built.len(), model.len());
        assert!(model.iter().all(|(k, v)| built.get(k) == Some(v)));
        assert_eq!(built.get(&20_001), None);
    }

    #[test]
    fn a_change_to_a_copy_leaves_the_original() {
        let a: Sharded<String, u8> = (0..5_000).map(|i| (format!("u{i}"), 1)).collect();
        let mut b = a.clone();
        assert!(a.ptr_eq(&b));
        b.insert("u1".into(), 2);
        b.remove("u2");
        assert!(!a.ptr_eq(&b));
        assert_eq!((a.get("u1"), a.get("u2")), (Some(&1), Some(&1)));
        assert_eq!((b.get("u1"), b.get("u2")), (Some(&2), None));
        assert_eq!((a.len(), b.len()), (5_000, 4_999));
    }
}
