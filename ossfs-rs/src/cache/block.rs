//! The in-memory block cache: object bytes in fixed-size blocks, LRU by bytes.
//!
//! A block is `block_size` bytes of one object version, starting at a
//! multiple of `block_size` (the last block of an object is shorter). The
//! key holds the object key, its ETag and the block number, so a block of
//! an object that changed is never served: a new ETag is a different key,
//! and the old blocks age out. Blocks are `Bytes`, often slices of a larger
//! prefetched part, so inserting does not copy.
//!
//! Bounded two ways: by `capacity` bytes (the `-o cache_size=` option), and
//! by the global memory budget, from which every block reserves its size;
//! when either is short, the least recently used blocks are evicted first,
//! and a block that still does not fit is simply not cached. The use order
//! is kept by [`Lru`]. One `std` mutex, held for map operations only,
//! never across an await.
//!
//! With a [`DiskCache`] (`use_cache`) every inserted block is also queued
//! for the disk, and a block missing from memory is looked for there (a
//! local file read) and brought back into memory when found.
//!
//! Imports: `memory`, `metrics` and `cache::lru` of the crate, besides std
//! and external crates.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::DiskCache;
use super::lru::Lru;
use crate::memory::{MemoryBudget, Reservation};
use crate::metrics::{Cache, METRICS};

/// Which block of which object version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

/// A cached block and the budget it holds.
struct Slot {
    data: Bytes,
    _reservation: Reservation,
}

type Inner = Lru<BlockKey, Slot>;

/// A shared cache of object blocks.
pub struct BlockCache {
    block_size: u64,
    capacity: u64,
    budget: MemoryBudget,
    inner: Mutex<Inner>,
    disk: Option<Arc<DiskCache>>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("block_size", &self.block_size)
            .field("capacity", &self.capacity)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl BlockCache {
    /// A cache of blocks of `block_size` bytes (at least 4 KiB), holding at
    /// most `capacity` bytes, reserving them from `budget`. A capacity of 0
    /// disables it.
    pub fn new(block_size: u64, capacity: u64, budget: MemoryBudget) -> Self {
        Self {
            block_size: block_size.max(4096),
            capacity,
            budget,
            inner: Mutex::new(Inner::default()),
            disk: None,
        }
    }

    /// The same cache with `disk` as its second tier.
    pub fn with_disk(mut self, disk: Arc<DiskCache>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// The disk tier, if any.
    pub fn disk(&self) -> Option<&Arc<DiskCache>> {
        self.disk.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The block size.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Whether the cache holds nothing, ever (capacity 0 and no disk).
    pub fn is_disabled(&self) -> bool {
        self.capacity == 0 && self.disk.is_none()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes()
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block `key`, marking it recently used; from memory, else from
    /// the disk tier (a blocking file read).
    pub fn get(&self, key: &BlockKey) -> Option<Bytes> {
        if let Some(hit) = self.get_memory(key) {
            return Some(hit);
        }
        self.get_disk(key)
    }

    /// The block `key` from the disk tier only, brought back into memory.
    pub fn get_disk(&self, key: &BlockKey) -> Option<Bytes> {
        let data = self.disk.as_ref()?.get(key)?;
        self.insert_memory(key.clone(), data.clone());
        Some(data)
    }

    /// The block `key` if it is in memory (never touches the disk).
    pub fn get_memory(&self, key: &BlockKey) -> Option<Bytes> {
        let hit = self.lock().get(key).map(|slot| slot.data.clone());
        METRICS.cache(Cache::Block, hit.is_some());
        hit
    }

    /// Cache `data` as block `key` (in memory, and on disk when there is a
    /// disk tier), evicting older blocks to make room. Returns whether it
    /// was cached in memory.
    pub fn insert(&self, key: BlockKey, data: Bytes) -> bool {
        if let Some(disk) = &self.disk {
            disk.put(key.clone(), data.clone());
        }
        self.insert_memory(key, data)
    }

    fn insert_memory(&self, key: BlockKey, data: Bytes) -> bool {
        let len = data.len() as u64;
        if len == 0 || len > self.capacity {
            return false;
        }
        let mut inner = self.lock();
        inner.remove(&key);
        while inner.bytes() + len > self.capacity {
            if inner.pop_oldest().is_none() {
                break;
            }
        }
        let reservation = loop {
            if let Some(r) = self.budget.try_reserve(len) {
                break r;
            }
            // The budget is spent (by prefetch or uploads too): give back
            // our oldest blocks; if we hold none, do not cache.
            if inner.pop_oldest().is_none() {
                METRICS.set_cache_bytes(inner.bytes());
                return false;
            }
        };
        let slot = Slot {
            data,
            _reservation: reservation,
        };
        inner.insert(key, slot, len);
        METRICS.set_cache_bytes(inner.bytes());
        true
    }

    /// Forget every block of `key` (any version).
    pub fn remove_object(&self, key: &str) {
        let mut inner = self.lock();
        let doomed: Vec<BlockKey> = inner.keys().filter(|k| &*k.key == key).cloned().collect();
        for k in doomed {
            inner.remove(&k);
        }
        METRICS.set_cache_bytes(inner.bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_util::{block, key};

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let budget = MemoryBudget::new(1 << 30);
        let c = BlockCache::new(4096, 3 * 4096, budget.clone());
        assert!(c.insert(key("a", "e", 0), block(4096, 1)));
        assert!(c.insert(key("a", "e", 1), block(4096, 2)));
        assert!(c.insert(key("a", "e", 2), block(4096, 3)));
        // Touch block 0: block 1 is now the least recently used.
        assert_eq!(c.get(&key("a", "e", 0)), Some(block(4096, 1)));
        assert!(c.insert(key("b", "e", 0), block(4096, 4)));
        assert_eq!(c.get(&key("a", "e", 1)), None);
        assert!(c.get(&key("a", "e", 0)).is_some());
        assert!(c.get(&key("a", "e", 2)).is_some());
        assert_eq!(c.bytes(), 3 * 4096);
        assert_eq!(budget.used(), 3 * 4096);
        // A big block pushes out as many small ones as it needs.
        assert!(c.insert(key("c", "e", 0), block(2 * 4096 + 100, 5)));
        assert_eq!(c.len(), 1, "all three small blocks had to go");
        assert_eq!(budget.used(), c.bytes());
    }

    #[test]
    fn a_new_etag_is_a_different_block() {
        let c = BlockCache::new(4096, 1 << 20, MemoryBudget::new(1 << 30));
        c.insert(key("a", "v1", 0), block(10, 1));
        assert_eq!(c.get(&key("a", "v2", 0)), None);
        c.remove_object("a");
        assert_eq!(c.get(&key("a", "v1", 0)), None);
        assert!(c.is_empty());
    }

    #[test]
    fn respects_the_memory_budget() {
        let budget = MemoryBudget::new(10_000);
        let c = BlockCache::new(4096, 1 << 20, budget.clone());
        assert!(c.insert(key("a", "e", 0), block(4096, 1)));
        assert!(c.insert(key("a", "e", 1), block(4096, 1)));
        // Someone else takes most of the budget: our blocks make room.
        let _held = budget.try_reserve(1_000);
        assert!(c.insert(key("a", "e", 2), block(4096, 1)));
        assert!(budget.used() <= 10_000);
        assert_eq!(c.get(&key("a", "e", 0)), None, "oldest block evicted");
        // With the budget spent elsewhere nothing is cached.
        let all = budget.try_reserve(budget.limit() - budget.used());
        assert!(all.is_some());
        // Only our own blocks can make room.
        assert!(c.insert(key("z", "e", 0), block(4096, 1)));
        assert_eq!(budget.used(), budget.limit());
        assert_eq!(c.get(&key("a", "e", 1)), None);
        // A cache with nothing to give back caches nothing.
        let other = BlockCache::new(4096, 1 << 20, budget.clone());
        assert!(!other.insert(key("y", "e", 0), block(4096, 1)));
        assert!(other.is_empty());
        drop(all);
        assert_eq!(budget.used(), c.bytes() + 1_000);
    }

    #[test]
    fn zero_capacity_disables() {
        let c = BlockCache::new(4096, 0, MemoryBudget::new(1 << 20));
        assert!(!c.insert(key("a", "e", 0), block(1, 1)));
        assert!(c.get(&key("a", "e", 0)).is_none());
    }
}
