//! Directory handles: opendir, readdir, readdirplus, releasedir.
//!
//! `opendir` lists the whole directory (paged LIST with delimiter `/`, run
//! to the last page by `list_pages`, which rename's listing uses too,
//! merged by [`super::dir::ListingMerge`]) into a snapshot held by the
//! handle, or reuses the snapshot of an opendir less than
//! `list_cache_ttl` ago when no name changed through this mount since (a
//! generation counter, bumped around every create, mkdir, unlink, rmdir,
//! symlink and rename, says so); `readdir` offsets index that snapshot (`.` is 0, `..` is 1, entry
//! `i` is `i + 2`, and each entry carries the offset of the next one), so
//! seekdir/telldir work and a directory changing during `rm -r` is not
//! read twice.
//!
//! `readdirplus` also returns each entry's attributes, which saves the
//! kernel one LOOKUP per entry (`ls -l`). Attributes must be right, and a
//! listing lacks the metadata (mode, owner, mtime), so each entry not in the
//! stat cache gets one targeted HEAD (the object for a file, the marker for
//! a directory: the listing already settled which it is). The kernel asks
//! for about 30 entries per call, one call at a time, so when the next
//! entries are not cached the uncached ones of the next 512 are resolved
//! in one burst, 64 HEADs at once: a round trip per 64 entries instead of
//! one per call. Every result lands in the stat cache. An entry counts as a kernel reference only if it fit in the
//! reply (see [`DirPlusSink`]); `.` and `..` never do, as the kernel does
//! not link them.
//!
//! With `readdir_optimize` (ossfs's option of the same name) an entry not
//! in the stat cache is answered from the listing alone: size, ETag and
//! LastModified, with the mount's default mode and owner, a file for every
//! object (a symlink object shows as a file) and a plain directory for
//! every prefix. One LIST pass and no per-entry request, which is what a
//! large read-mostly data set wants. These attributes are partial, so they
//! go only into the reply (the kernel keeps them for `attr_timeout`) and
//! never into the stat cache: anything that needs the full metadata
//! (`chmod`, xattrs, an open for writing, the next `getattr` after the
//! kernel's timeout) still HEADs the object and sees its real mode.
//!
//! Imports: `fs::{dir, error, meta, name, record, cache}` and the shared
//! state of `fs/mod.rs`; `store`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;

use super::dir::{DirEntry, DirSnapshot, ListingMerge};
use super::error::FsError;
use super::meta::{Kind, NodeInfo};
use super::name::join;
use super::record::HandleKind;
use super::{Entry, Fs, lock};
use crate::store::{ListPage, ListProgress, ListRequest, StoreError};

/// Entries resolved per readdirplus call.
const PLUS_WINDOW: usize = 32;
/// HEADs in flight for one readdirplus call.
const PLUS_PARALLEL: usize = 64;
/// Entries resolved ahead, in one burst, when the next window is not
/// cached yet: the kernel asks for about 30 entries per call, one call at
/// a time, so resolving only those would cost a round trip per call.
const PLUS_AHEAD: usize = 512;

/// Receives readdir entries; `add` returns true when the reply is full and
/// the entry was *not* added.
pub trait DirSink: Send {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool;
}

/// Receives readdirplus entries; `add` returns true when the reply is full
/// and the entry was *not* added.
pub trait DirPlusSink: Send {
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool;
}

/// A stable placeholder inode number for a readdir entry the kernel has
/// not looked up (only shown as `d_ino`; never used as a node id). The top
/// bit keeps it apart from real node ids, and it is never 0 (which some
/// libcs treat as a deleted entry).
fn placeholder_ino(parent: u64, name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    name.hash(&mut h);
    h.finish() | (1 << 63)
}

impl Fs {
    /// Open the directory `ino`: list it into a snapshot.
    pub async fn opendir(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        let snapshot = self.list_dir(ino).await?;
        Ok(lock(&self.handles).insert(ino, flags, HandleKind::Dir(snapshot)))
    }

    /// Run `req` to its last page, handing each page to `each`; a server
    /// that does not advance (a repeated token, a page that adds nothing)
    /// ends it with an error ([`ListProgress`]), never a loop.
    pub(super) async fn list_pages(
        &self,
        req: &ListRequest,
        mut each: impl FnMut(ListPage),
    ) -> Result<(), FsError> {
        let mut token: Option<String> = None;
        let mut progress = ListProgress::new(req.prefix.clone());
        loop {
            let mut page = self
                .store
                .list_page(req, token.as_deref())
                .await
                .map_err(|e| FsError::store(format!("list {}", req.prefix), e))?;
            progress
                .check(&page)
                .map_err(|e| FsError::store(format!("list {}", req.prefix), e))?;
            token = page.next_token.take();
            each(page);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// List the directory `ino` into a snapshot.
    pub(super) async fn list_dir(&self, ino: u64) -> Result<Arc<DirSnapshot>, FsError> {
        let rec = self.node(ino)?;
        if rec.kind != Kind::Dir {
            return Err(FsError::NotDir(rec.path));
        }
        let generation = self.namespace_gen.load(Ordering::Acquire);
        let started = Instant::now();
        let cached = lock(&self.listings).get(&ino).and_then(|l| {
            (l.generation == generation
                && l.made.elapsed() < self.config.list_cache_ttl
                && l.snapshot.parent == rec.parent)
                .then(|| l.snapshot.clone())
        });
        if let Some(snapshot) = cached {
            return Ok(snapshot);
        }
        let prefix = self.keys.dir(&rec.path);
        let mut merge = ListingMerge::new(&prefix);
        self.list_pages(&ListRequest::dir_level(prefix.clone(), 1000), |page| {
            merge.add_page(&page)
        })
        .await?;
        let (entries, skipped) = merge.finish();
        self.warn_skipped(&skipped);
        let snapshot = Arc::new(DirSnapshot {
            ino,
            parent: rec.parent,
            entries,
        });
        if !self.config.list_cache_ttl.is_zero() {
            let mut listings = lock(&self.listings);
            listings.retain(|_, l| l.made.elapsed() < self.config.list_cache_ttl);
            listings.insert(
                ino,
                super::CachedListing {
                    made: started,
                    generation,
                    snapshot: snapshot.clone(),
                },
            );
        }
        Ok(snapshot)
    }

    fn snapshot(&self, ino: u64, fh: u64) -> Result<Arc<DirSnapshot>, FsError> {
        match self.handle(fh)? {
            super::record::HandleRecord {
                ino: h_ino,
                kind: HandleKind::Dir(snapshot),
                ..
            } if h_ino == ino => Ok(snapshot),
            _ => Err(FsError::BadHandle(fh)),
        }
    }

    /// Entries of the snapshot from `offset` on, until `sink` is full.
    pub async fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> Result<(), FsError> {
        let snapshot = self.snapshot(ino, fh)?;
        let total = snapshot.entries.len() as u64 + 2;
        for pos in offset..total {
            let full = match pos {
                0 => sink.add(ino, 1, Kind::Dir, "."),
                1 => sink.add(snapshot.parent, 2, Kind::Dir, ".."),
                _ => {
                    let e = &snapshot.entries[(pos - 2) as usize];
                    let known = lock(&self.inodes).child(ino, &e.name);
                    let child = known.unwrap_or_else(|| placeholder_ino(ino, &e.name));
                    let kind = match self.cache_get(&self.child_path_str(ino, &e.name)) {
                        Some(super::cache::Cached::Found(info)) => info.kind,
                        _ => e.kind,
                    };
                    sink.add(child, pos + 1, kind, &e.name)
                }
            };
            if full {
                break;
            }
        }
        Ok(())
    }

    fn child_path_str(&self, parent: u64, name: &str) -> String {
        let parent_path = lock(&self.inodes)
            .get(parent)
            .map(|r| r.path.clone())
            .unwrap_or_default();
        join(&parent_path, name)
    }

    /// What a listed entry is, with full attributes: from the cache, else
    /// one HEAD of the object (file) or the marker (directory). `None` when
    /// it vanished since the listing.
    async fn resolve_listed(
        &self,
        dir_path: &str,
        e: &DirEntry,
    ) -> Result<Option<NodeInfo>, FsError> {
        let path = join(dir_path, &e.name);
        if let Some(super::cache::Cached::Found(info)) = self.cache_get(&path) {
            return Ok(Some(info));
        }
        if self.config.readdir_optimize {
            return Ok(Some(self.listed_info(e)));
        }
        let info = match e.kind {
            Kind::Dir => {
                let key = self.keys.dir(&path);
                match self.store.head(&key).await {
                    Ok(meta) => NodeInfo::dir(Some(&meta)),
                    Err(StoreError::NotFound { .. }) => {
                        NodeInfo::implied_dir(e.last_modified.unwrap_or(self.mounted_at))
                    }
                    Err(err) => return Err(FsError::store(format!("head {key}"), err)),
                }
            }
            _ => {
                let key = self.keys.object(&path);
                match self.store.head(&key).await {
                    Ok(meta) => NodeInfo::from_object(&meta),
                    Err(StoreError::NotFound { .. }) => return Ok(None),
                    Err(err) => return Err(FsError::store(format!("head {key}"), err)),
                }
            }
        };
        self.cache_put(&path, &info);
        Ok(Some(info))
    }

    /// The attributes a listing alone gives (`readdir_optimize`).
    fn listed_info(&self, e: &DirEntry) -> NodeInfo {
        match e.kind {
            Kind::Dir => NodeInfo::implied_dir(e.last_modified.unwrap_or(self.mounted_at)),
            _ => NodeInfo::listed_file(e.size, &e.etag, e.last_modified),
        }
    }

    /// When an entry of the window at `start` is not in the stat cache,
    /// resolve the uncached ones of the next [`PLUS_AHEAD`] entries at once
    /// (their results land in the stat cache; errors are left for the
    /// window's own resolution to report).
    async fn resolve_ahead(&self, dir_path: &str, entries: &[DirEntry], start: usize) {
        let uncached = |e: &DirEntry| {
            !matches!(
                self.cache_get(&join(dir_path, &e.name)),
                Some(super::cache::Cached::Found(_))
            )
        };
        let near = &entries[start..(start + PLUS_WINDOW).min(entries.len())];
        if self.config.readdir_optimize || !near.iter().any(uncached) {
            return;
        }
        let ahead: Vec<(DirEntry, String)> = entries
            [start..(start + PLUS_AHEAD).min(entries.len())]
            .iter()
            .filter(|e| uncached(e))
            .map(|e| (e.clone(), dir_path.to_string()))
            .collect();
        futures::stream::iter(ahead)
            .map(|(e, dir_path)| async move {
                let _ = self.resolve_listed(&dir_path, &e).await;
            })
            .buffer_unordered(PLUS_PARALLEL)
            .collect::<Vec<()>>()
            .await;
    }

    /// Entries of the snapshot from `offset` on, with attributes, until
    /// `sink` is full or a window of entries is done.
    pub async fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<(), FsError> {
        let snapshot = self.snapshot(ino, fh)?;
        let (rec, dir_info) = self.info_of(ino).await?;
        let mut pos = offset;
        if pos == 0 {
            if sink.add(1, ".", &self.entry(ino, &dir_info)) {
                return Ok(());
            }
            pos = 1;
        }
        if pos == 1 {
            let mut parent = self.entry(ino, &dir_info);
            parent.attr.ino = fuser::INodeNo(snapshot.parent);
            if sink.add(2, "..", &parent) {
                return Ok(());
            }
            pos = 2;
        }
        let mut start = (pos - 2) as usize;
        // Windows until something was added or the snapshot ends: an empty
        // reply would tell the kernel the directory ended.
        while start < snapshot.entries.len() {
            self.resolve_ahead(&rec.path, &snapshot.entries, start)
                .await;
            let window: Vec<(usize, DirEntry, String)> = snapshot
                .entries
                .iter()
                .enumerate()
                .skip(start)
                .take(PLUS_WINDOW)
                .map(|(i, e)| (i, e.clone(), rec.path.clone()))
                .collect();
            let resolved: Vec<(usize, DirEntry, Result<Option<NodeInfo>, FsError>)> =
                futures::stream::iter(window)
                    .map(|(i, e, dir_path)| async move {
                        let info = self.resolve_listed(&dir_path, &e).await;
                        (i, e, info)
                    })
                    .buffered(PLUS_PARALLEL)
                    .collect()
                    .await;
            let mut added = 0usize;
            for (i, e, info) in resolved {
                let info = match info {
                    Ok(Some(info)) => info,
                    Ok(None) => continue, // deleted since opendir
                    Err(err) if added == 0 => return Err(err),
                    // Reported when the kernel asks for this entry first.
                    Err(_) => return Ok(()),
                };
                let Some(child) = lock(&self.inodes).peek_or_insert(ino, &e.name, info.kind) else {
                    return Err(FsError::UnknownInode(ino));
                };
                let entry = self.entry(child, &info);
                if sink.add(i as u64 + 3, &e.name, &entry) {
                    lock(&self.inodes).prune(child);
                    return Ok(());
                }
                lock(&self.inodes).add_ref(child);
                added += 1;
            }
            if added > 0 {
                return Ok(());
            }
            start += PLUS_WINDOW;
        }
        Ok(())
    }

    /// Close a directory handle.
    pub fn releasedir(&self, fh: u64) -> Result<(), FsError> {
        lock(&self.handles)
            .remove(fh)
            .map(|_| ())
            .ok_or(FsError::BadHandle(fh))
    }
}
