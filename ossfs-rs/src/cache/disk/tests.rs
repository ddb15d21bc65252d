//! The disk cache against a real directory: blocks survive a reopen, a
//! damaged or mismatched file is never served, the size bound evicts the
//! least recently used, and a second owner is refused.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::cache::test_util::{block, key};

fn open(dir: &Path, capacity: u64) -> DiskCache {
    DiskCache::open(dir, "http://s3|bucket|prefix/", capacity).unwrap_or_else(|e| panic!("{e}"))
}

fn flushed(c: &DiskCache) {
    assert!(c.flush(Duration::from_secs(10)), "writer did not finish");
}

/// The files of blocks under the cache's root.
fn block_files(c: &DiskCache) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(&c.shared.root).unwrap_or_else(|e| panic!("{e}")) {
        let sub = sub.unwrap_or_else(|e| panic!("{e}")).path();
        if sub.is_dir() {
            for f in fs::read_dir(&sub).unwrap_or_else(|e| panic!("{e}")) {
                out.push(f.unwrap_or_else(|e| panic!("{e}")).path());
            }
        }
    }
    out
}

#[test]
fn blocks_survive_a_reopen_and_are_private() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = open(dir.path(), 1 << 20);
    c.put(key("a", "e1", 0), block(4096, 1));
    c.put(key("a", "e1", 1), block(100, 2));
    flushed(&c);
    assert_eq!(c.len(), 2);
    drop(c);
    let c = open(dir.path(), 1 << 20);
    assert_eq!(c.len(), 2, "indexed from the directory");
    assert_eq!(c.get(&key("a", "e1", 0)), Some(block(4096, 1)));
    assert_eq!(c.get(&key("a", "e1", 1)), Some(block(100, 2)));
    // Another version of the object, or another block, is a miss.
    assert_eq!(c.get(&key("a", "e2", 0)), None);
    assert_eq!(c.get(&key("a", "e1", 2)), None);
    let root_mode = fs::metadata(&c.shared.root).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(root_mode.ok(), Some(0o700));
    for f in block_files(&c) {
        let mode = fs::metadata(&f).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "{}", f.display());
    }
}

#[test]
fn a_damaged_block_is_deleted_not_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = open(dir.path(), 1 << 20);
    c.put(key("a", "e1", 0), block(4096, 7));
    flushed(&c);
    let files = block_files(&c);
    assert_eq!(files.len(), 1);
    let mut raw = fs::read(&files[0]).unwrap_or_else(|e| panic!("{e}"));
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    fs::write(&files[0], &raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.get(&key("a", "e1", 0)), None);
    assert!(!files[0].exists(), "the damaged file is removed");
    assert_eq!(c.len(), 0);
    // A truncated file (a torn write) is refused the same way.
    c.put(key("b", "e1", 0), block(4096, 8));
    flushed(&c);
    let files = block_files(&c);
    let raw = fs::read(&files[0]).unwrap_or_else(|e| panic!("{e}"));
    fs::write(&files[0], &raw[..raw.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.get(&key("b", "e1", 0)), None);
}

#[test]
fn a_file_of_another_block_under_this_name_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = open(dir.path(), 1 << 20);
    c.put(key("a", "e1", 0), block(10, 1));
    c.put(key("b", "e1", 0), block(10, 2));
    flushed(&c);
    // Put b's intact file where a's belongs: right checksum, wrong key.
    let a = c.shared.path_of(&file_name(&key("a", "e1", 0)));
    let b = c.shared.path_of(&file_name(&key("b", "e1", 0)));
    fs::copy(&b, &a).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.get(&key("a", "e1", 0)), None);
    assert_eq!(c.get(&key("b", "e1", 0)), Some(block(10, 2)));
}

#[test]
fn the_size_bound_evicts_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let one = encode(&key("k", "e", 0), &block(1000, 0)).len() as u64;
    let c = open(dir.path(), 3 * one);
    for i in 0..3 {
        c.put(key("k", "e", i), block(1000, i as u8));
    }
    flushed(&c);
    // Use block 0, so block 1 is now the oldest.
    assert!(c.get(&key("k", "e", 0)).is_some());
    c.put(key("k", "e", 3), block(1000, 3));
    flushed(&c);
    assert_eq!(c.len(), 3);
    assert!(c.bytes() <= 3 * one);
    assert_eq!(c.get(&key("k", "e", 1)), None);
    for i in [0, 2, 3] {
        assert_eq!(c.get(&key("k", "e", i)), Some(block(1000, i as u8)));
    }
    assert_eq!(block_files(&c).len(), 3, "the evicted file is gone");
    // A smaller bound at the next open evicts down to it.
    drop(c);
    let c = open(dir.path(), one);
    assert_eq!(c.len(), 1);
    assert_eq!(block_files(&c).len(), 1);
}

#[test]
fn objects_without_an_etag_are_not_cached() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = open(dir.path(), 1 << 20);
    c.put(key("a", "", 0), block(10, 1));
    flushed(&c);
    assert!(c.is_empty());
    assert_eq!(c.get(&key("a", "", 0)), None);
}

#[test]
fn a_second_owner_of_the_directory_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = open(dir.path(), 1 << 20);
    let second = DiskCache::open(dir.path(), "http://s3|bucket|prefix/", 1 << 20);
    assert!(matches!(second, Err(DiskCacheError::Busy { .. })));
    // Another bucket or prefix gets its own subdirectory.
    let other = DiskCache::open(dir.path(), "http://s3|bucket|other/", 1 << 20);
    assert!(other.is_ok());
    drop(first);
    assert!(DiskCache::open(dir.path(), "http://s3|bucket|prefix/", 1 << 20).is_ok());
}
