//! The stat cache: what each path resolved to, for a while.
//!
//! Resolving a path costs a HEAD and a LIST; `ls -l` of a directory asks
//! for every entry, and the kernel asks again whenever its own attribute
//! cache expires. Like ossfs (`stat_cache_expire`, `max_stat_cache_size`)
//! we keep each path's [`NodeInfo`] for a TTL, up to a number of entries,
//! and optionally remember that a path does not exist (the negative cache,
//! off by default in ossfs, because another client creating the file would
//! stay invisible for the TTL).
//!
//! Every change made through this mount updates or invalidates the entries
//! it touches, so the cache only hides changes made by *other* clients, for
//! at most the TTL. Entries are evicted in insertion order when the cache is
//! full (an [`Lru`] that is never touched by a read, only by an insert, so
//! refreshing an entry moves it to the back), expired ones first as they
//! are met. A TTL of zero or a size of
//! zero disables the cache. Guarded by a plain mutex: every operation is a
//! few map operations and never awaits.
//!
//! Imports: `cache` and `fs::meta`, `fs::name` of the crate, besides std and
//! external crates.

use std::time::{Duration, Instant};

use crate::cache::lru::Lru;

use super::meta::NodeInfo;
use super::name::is_within;

/// What the cache knows about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    Found(NodeInfo),
    /// The path did not exist (negative cache).
    Missing,
}

struct Slot {
    value: Cached,
    expires: Instant,
}

/// A TTL- and size-bounded map from path to [`Cached`].
pub struct StatCache {
    ttl: Duration,
    capacity: usize,
    negative: bool,
    entries: Lru<String, Slot>,
}

impl StatCache {
    /// A cache of at most `capacity` entries kept for `ttl`; `negative`
    /// enables remembering missing paths.
    pub fn new(ttl: Duration, capacity: usize, negative: bool) -> Self {
        Self {
            ttl,
            capacity,
            negative,
            entries: Lru::default(),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    /// The cached state of `path`, if fresh at `now`.
    pub fn get(&mut self, path: &str, now: Instant) -> Option<Cached> {
        let slot = self.entries.peek(path)?;
        if slot.expires > now {
            return Some(slot.value.clone());
        }
        self.remove(path);
        None
    }

    /// How long ago `path`'s entry was stored (fresh or not), if held.
    pub fn age(&self, path: &str, now: Instant) -> Option<Duration> {
        let slot = self.entries.peek(path)?;
        let stored = slot.expires.checked_sub(self.ttl)?;
        Some(now.saturating_duration_since(stored))
    }

    /// Remember that `path` resolved to `info`.
    pub fn insert(&mut self, path: &str, info: NodeInfo, now: Instant) {
        self.put(path, Cached::Found(info), now);
    }

    /// Remember that `path` does not exist (if the negative cache is on).
    pub fn insert_missing(&mut self, path: &str, now: Instant) {
        if self.negative {
            self.put(path, Cached::Missing, now);
        } else {
            self.remove(path);
        }
    }

    fn put(&mut self, path: &str, value: Cached, now: Instant) {
        if !self.enabled() {
            return;
        }
        self.remove(path);
        while self.entries.len() >= self.capacity {
            if self.entries.pop_oldest().is_none() {
                break;
            }
        }
        let slot = Slot {
            value,
            expires: now + self.ttl,
        };
        self.entries.insert(path.to_string(), slot, 1);
    }

    /// Forget `path`.
    pub fn remove(&mut self, path: &str) {
        self.entries.remove(path);
    }

    /// Forget `path` and everything below it (after a directory rename or
    /// removal).
    pub fn remove_tree(&mut self, path: &str) {
        let doomed: Vec<String> = self
            .entries
            .keys()
            .filter(|k| is_within(k, path))
            .cloned()
            .collect();
        for k in doomed {
            self.remove(&k);
        }
    }

    /// Number of entries held (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn info(size: u64) -> NodeInfo {
        NodeInfo::listed_file(size, "e", Some(UNIX_EPOCH))
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = StatCache::new(Duration::from_secs(10), 100, false);
        c.insert("a", info(1), t0);
        assert_eq!(
            c.get("a", t0 + Duration::from_secs(9)),
            Some(Cached::Found(info(1)))
        );
        assert_eq!(c.get("a", t0 + Duration::from_secs(10)), None);
        assert!(c.is_empty());
    }

    #[test]
    fn age_counts_from_the_last_insert() {
        let t0 = Instant::now();
        let mut c = StatCache::new(Duration::from_secs(10), 10, false);
        assert_eq!(c.age("a", t0), None);
        c.insert("a", info(1), t0);
        assert_eq!(
            c.age("a", t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        c.insert("a", info(2), t0 + Duration::from_secs(4));
        assert_eq!(
            c.age("a", t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn size_bound_evicts_oldest_first() {
        let t0 = Instant::now();
        let mut c = StatCache::new(Duration::from_secs(10), 2, false);
        c.insert("a", info(1), t0);
        c.insert("b", info(2), t0);
        c.insert("a", info(3), t0); // refresh moves a to the back
        c.insert("c", info(4), t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b", t0), None);
        assert_eq!(c.get("a", t0), Some(Cached::Found(info(3))));
        assert_eq!(c.get("c", t0), Some(Cached::Found(info(4))));
    }

    #[test]
    fn negative_entries_only_when_enabled() {
        let t0 = Instant::now();
        let mut off = StatCache::new(Duration::from_secs(10), 10, false);
        off.insert_missing("x", t0);
        assert_eq!(off.get("x", t0), None);
        let mut on = StatCache::new(Duration::from_secs(10), 10, true);
        on.insert_missing("x", t0);
        assert_eq!(on.get("x", t0), Some(Cached::Missing));
    }

    #[test]
    fn remove_tree_and_disabled_cache() {
        let t0 = Instant::now();
        let mut c = StatCache::new(Duration::from_secs(10), 10, false);
        for p in ["d", "d/x", "d/x/y", "dd", "e"] {
            c.insert(p, info(0), t0);
        }
        c.remove_tree("d");
        assert_eq!(c.len(), 2);
        assert!(c.get("dd", t0).is_some());
        let mut off = StatCache::new(Duration::ZERO, 10, true);
        off.insert("a", info(0), t0);
        assert!(off.is_empty());
    }
}
