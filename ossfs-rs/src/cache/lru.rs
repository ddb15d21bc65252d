//! A map that knows its least recently used entry and its total size: the
//! bookkeeping the caches share (the memory tier of the block cache keeps
//! the blocks in it, the disk tier only its file names, the stat cache its
//! entries with a size of one each).
//!
//! Recency is a sequence number per entry and a `BTreeMap` from sequence
//! number to key, so touching, inserting and evicting are `O(log n)` and the
//! oldest entry is the first of the tree. Not thread-safe by itself: each
//! cache keeps it behind its own mutex.
//!
//! Imports: nothing of the crate; std and external crates only.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

struct Slot<V> {
    value: V,
    size: u64,
    seq: u64,
}

/// Entries of `K` holding `V`, each with a size, in use order.
pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
    next_seq: u64,
    bytes: u64,
}

impl<K, V> Default for Lru<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
        }
    }
}

impl<K: Clone + Eq + Hash, V> Lru<K, V> {
    /// The sum of the entries' sizes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` is here (without marking it used).
    pub fn contains<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map.contains_key(key)
    }

    /// The value of `key`, leaving the use order as it is.
    pub fn peek<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key).map(|slot| &slot.value)
    }

    /// The value of `key`, marking it the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let seq = self.next_seq;
        let slot = self.map.get_mut(key)?;
        let old = std::mem::replace(&mut slot.seq, seq);
        self.order.remove(&old);
        self.order.insert(seq, key.clone());
        self.next_seq += 1;
        Some(&slot.value)
    }

    /// Add (or replace) `key`, as the most recently used.
    pub fn insert(&mut self, key: K, value: V, size: u64) {
        self.remove(&key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.bytes += size;
        self.map.insert(key, Slot { value, size, seq });
    }

    /// Take `key` out.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.seq);
        self.bytes -= slot.size;
        Some(slot.value)
    }

    /// Take the least recently used entry out.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let slot = self.map.remove(&key)?;
        self.bytes -= slot.size;
        Some((key, slot.value))
    }

    /// Every key (any order).
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_the_least_recently_used_and_sizes_add_up() {
        let mut l: Lru<&str, u32> = Lru::default();
        l.insert("a", 1, 10);
        l.insert("b", 2, 20);
        l.insert("c", 3, 30);
        assert_eq!((l.len(), l.bytes()), (3, 60));
        assert_eq!(l.peek(&"b"), Some(&2)); // peeking leaves b the oldest
        assert_eq!(l.get(&"a"), Some(&1));
        assert_eq!(l.pop_oldest(), Some(("b", 2)));
        l.insert("c", 4, 5); // replacing refreshes and resizes
        assert_eq!((l.len(), l.bytes()), (2, 15));
        assert_eq!(l.pop_oldest(), Some(("a", 1)));
        assert_eq!(l.remove(&"c"), Some(4));
        assert!(l.is_empty());
        assert_eq!(l.bytes(), 0);
        assert_eq!(l.pop_oldest(), None);
    }
}
