//! Directory listings: merging paged LIST results into one sorted snapshot.
//!
//! A directory `d` is everything under the key prefix `d/`. One level of it
//! is listed with delimiter `/`: objects directly inside are files, common
//! prefixes are subdirectories (whether or not they have a marker object),
//! and the object `d/` itself is the directory's own marker, which is not an
//! entry. The pages are merged here into a map by name, so:
//!
//! - a name that is both an object and a prefix (`d/x` beside `d/x/y`) is a
//!   directory, the same answer lookup gives ("directory wins", as in
//!   Mountpoint), whichever page each half arrived on;
//! - names come out sorted by bytes, deduplicated;
//! - keys that cannot be names (see [`super::name::check_listed_name`]) are
//!   collected as skipped, for the caller to warn about once per key
//!   ([`WarnOnce`]).
//!
//! `opendir` builds the whole snapshot, and `readdir` offsets index it, so a
//! listing is stable for the life of the handle even while the directory
//! changes (POSIX allows either, and `rm -r`, which deletes while reading,
//! depends on not seeing entries twice).
//!
//! Imports: `store` and `fs::meta`, `fs::name` of the crate, besides std and
//! external crates.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::meta::Kind;
use super::name::{BadName, check_listed_name};
use crate::store::ListPage;

/// One entry of a directory snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    /// `File` or `Dir` (a listing cannot tell symlinks from files).
    pub kind: Kind,
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// A key that cannot be shown, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub key: String,
    pub reason: BadName,
}

/// Accumulates the pages of one directory's listing.
#[derive(Debug)]
pub struct ListingMerge {
    dir_prefix: String,
    entries: BTreeMap<String, DirEntry>,
    skipped: Vec<Skipped>,
}

impl ListingMerge {
    /// Merge a listing of the key prefix `dir_prefix` (`""` or ending in `/`).
    pub fn new(dir_prefix: &str) -> Self {
        Self {
            dir_prefix: dir_prefix.to_string(),
            entries: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    /// Add one page.
    pub fn add_page(&mut self, page: &ListPage) {
        for obj in &page.objects {
            let Some(rest) = obj.key.strip_prefix(&self.dir_prefix) else {
                continue;
            };
            if rest.is_empty() {
                continue; // the directory's own marker
            }
            match rest.split_once('/') {
                // A deeper key (a server that ignored the delimiter): its
                // first segment is a directory.
                Some((name, _)) => self.add_dir(name, &obj.key),
                None => self.add(
                    &obj.key,
                    DirEntry {
                        name: rest.to_string(),
                        kind: Kind::File,
                        size: obj.size,
                        etag: obj.etag.clone(),
                        last_modified: obj.last_modified,
                    },
                ),
            }
        }
        for prefix in &page.prefixes {
            let Some(rest) = prefix.strip_prefix(&self.dir_prefix) else {
                continue;
            };
            let name = rest.split_once('/').map(|(n, _)| n).unwrap_or(rest);
            self.add_dir(name, prefix);
        }
    }

    fn add_dir(&mut self, name: &str, key: &str) {
        self.add(
            key,
            DirEntry {
                name: name.to_string(),
                kind: Kind::Dir,
                size: 0,
                etag: String::new(),
                last_modified: None,
            },
        );
    }

    fn add(&mut self, key: &str, entry: DirEntry) {
        if let Err(reason) = check_listed_name(&entry.name) {
            self.skipped.push(Skipped {
                key: key.to_string(),
                reason,
            });
            return;
        }
        match self.entries.get(&entry.name) {
            // Directory wins over a file of the same name.
            Some(existing) if existing.kind == Kind::Dir => {}
            _ => {
                self.entries.insert(entry.name.clone(), entry);
            }
        }
    }

    /// The sorted entries and the keys skipped.
    pub fn finish(self) -> (Vec<DirEntry>, Vec<Skipped>) {
        (self.entries.into_values().collect(), self.skipped)
    }
}

/// A directory's entries as of `opendir`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirSnapshot {
    pub ino: u64,
    pub parent: u64,
    pub entries: Vec<DirEntry>,
}

/// Remembers which keys were already warned about, so each unshowable key
/// is logged once per mount, not on every readdir. Bounded: past `cap`
/// keys it stops remembering (and stops warning) rather than grow forever.
#[derive(Debug)]
pub struct WarnOnce {
    seen: Mutex<HashSet<String>>,
    cap: usize,
}

impl WarnOnce {
    /// Remember at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            cap,
        }
    }

    /// True the first time `key` is seen.
    pub fn first(&self, key: &str) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.contains(key) || seen.len() >= self.cap {
            return false;
        }
        seen.insert(key.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ListEntry;

    fn obj(key: &str, size: u64) -> ListEntry {
        ListEntry {
            key: key.to_string(),
            size,
            etag: "e".into(),
            last_modified: None,
        }
    }

    fn page(objects: &[(&str, u64)], prefixes: &[&str]) -> ListPage {
        ListPage {
            objects: objects.iter().map(|(k, s)| obj(k, *s)).collect(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            next_token: None,
        }
    }

    fn names(entries: &[DirEntry]) -> Vec<(String, Kind)> {
        entries.iter().map(|e| (e.name.clone(), e.kind)).collect()
    }

    #[test]
    fn marker_skipped_files_and_dirs_merged_sorted() {
        let mut m = ListingMerge::new("d/");
        m.add_page(&page(&[("d/", 0), ("d/b", 3)], &["d/c/"]));
        m.add_page(&page(&[("d/a", 1)], &["d/0/"]));
        let (entries, skipped) = m.finish();
        assert!(skipped.is_empty());
        assert_eq!(
            names(&entries),
            vec![
                ("0".into(), Kind::Dir),
                ("a".into(), Kind::File),
                ("b".into(), Kind::File),
                ("c".into(), Kind::Dir),
            ]
        );
        assert_eq!(entries[1].size, 1);
    }

    #[test]
    fn directory_wins_in_either_order() {
        for order in [false, true] {
            let mut m = ListingMerge::new("");
            let files = page(&[("x", 5)], &[]);
            let dirs = page(&[], &["x/"]);
            if order {
                m.add_page(&files);
                m.add_page(&dirs);
            } else {
                m.add_page(&dirs);
                m.add_page(&files);
            }
            let (entries, _) = m.finish();
            assert_eq!(names(&entries), vec![("x".into(), Kind::Dir)]);
        }
    }

    #[test]
    fn unshowable_keys_are_skipped_with_a_reason() {
        let long = format!("d/{}", "n".repeat(256));
        let mut m = ListingMerge::new("d/");
        m.add_page(&page(
            &[
                ("d/ok", 1),
                ("d/.", 0),
                ("d/..", 0),
                (long.as_str(), 1),
                ("d/nul\0", 1),
            ],
            &["d//", "d/./"],
        ));
        let (entries, skipped) = m.finish();
        assert_eq!(names(&entries), vec![("ok".into(), Kind::File)]);
        let reasons: Vec<BadName> = skipped.iter().map(|s| s.reason).collect();
        assert_eq!(
            reasons,
            vec![
                BadName::Dot,
                BadName::Dot,
                BadName::TooLong,
                BadName::Nul,
                BadName::Empty,
                BadName::Dot
            ]
        );
        assert_eq!(skipped[4].key, "d//");
    }

    #[test]
    fn deeper_keys_without_delimiter_become_dirs() {
        let mut m = ListingMerge::new("");
        m.add_page(&page(&[("a/b/c", 1), ("f", 2)], &[]));
        let (entries, _) = m.finish();
        assert_eq!(
            names(&entries),
            vec![("a".into(), Kind::Dir), ("f".into(), Kind::File)]
        );
    }

    #[test]
    fn warn_once_per_key_and_bounded() {
        let w = WarnOnce::new(2);
        assert!(w.first("a"));
        assert!(!w.first("a"));
        assert!(w.first("b"));
        assert!(!w.first("c"));
    }
}
