//! The filesystem: POSIX operations on top of an [`ObjectStore`].
//!
//! [`Fs`] holds the logic as async methods returning `Result<_, FsError>`;
//! it knows nothing of FUSE's wire protocol, so it is tested by calling the
//! methods directly (`tests.rs`, against the embedded S3 endpoint). The
//! `fuse` layer is the thin adapter the kernel talks to; it turns an
//! `FsError` into the kernel's errno with [`ToErrno`].
//!
//! How a tree of objects looks as a filesystem (see `docs/semantics.md`):
//!
//! - A file at path `p` is the object `prefix + p`. A directory is everything
//!   under `prefix + p + "/"`: it exists if it has a zero-byte marker object
//!   of that key (what `mkdir` writes) or any key below it (an *implied*
//!   directory, as other tools leave them).
//! - A name that is both (`a` and `a/b`) is a directory, every time, in
//!   lookups and listings alike, as in Mountpoint. The file stays in the
//!   bucket, hidden, until the directory is gone.
//! - Mode, owner and mtime come from ossfs/s3fs-compatible metadata, else
//!   the mount's defaults ([`meta`]). Xattrs are kept the s3fs way ([`xattr`]).
//! - Reads of a file nobody writes go through a per-handle prefetching
//!   reader and the shared block cache ([`crate::prefetch`],
//!   [`crate::cache`]): ranged GETs, never a whole-object download.
//! - Writes go to a local staging file per inode ([`staging`]) and are
//!   uploaded whole on flush/fsync/close, or part by part while a file is
//!   written in order ([`crate::upload`]).
//! - Node ids and file handles are plain numbers mapping to serialisable
//!   records ([`record`]), and every change the kernel can see is journaled
//!   ([`journal`]) so a restarted worker continues the same tables
//!   ([`replay`], `restore.rs`).
//!
//! The files, and what each owns:
//!
//! - `mod.rs`: [`Fs`], [`FsConfig`], the shared state and its small helpers.
//! - Operations, each an `impl Fs` block: `lookup.rs` (lookup, getattr,
//!   forget, path resolution), `readdir.rs` (opendir, readdir, readdirplus),
//!   `file.rs` (open, create, mknod, read), `write.rs` (write, truncate,
//!   flush, fsync, release, uploads), `namespace.rs` (mkdir, rmdir, unlink,
//!   rename, symlink, readlink), `attrs.rs` (setattr, xattrs, statfs),
//!   `restore.rs` (taking over from a dead worker), [`adoption`] (whether
//!   an adopted staging file may be uploaded).
//! - Object-store model: [`name`] (names and keys), [`meta`] (POSIX
//!   attributes in metadata), [`xattr`] (the s3fs xattr form), [`dir`]
//!   (merging LIST pages into a snapshot), [`cache`] (the stat cache).
//! - Tables and restart: [`record`] (the plain records), [`inode`] (node
//!   ids), [`handle`] (file handles), [`staging`] (staging files),
//!   [`journal`] (the journal's vocabulary), [`replay`] (tables rebuilt from
//!   a journal). They import one way: record, then journal, then the
//!   tables, then replay.
//! - Errors: [`error`] (`FsError`) and [`errno`] (`ToErrno`, the one errno
//!   mapping, store errors included).
//!
//! Imports: `store`, `memory`, `metrics`, `cache`, `prefetch`, `upload` and
//! `sys` (the layers below); never `fuse` or anything above it.
//!
//! Concurrency: the kernel calls in from many threads; each table sits
//! behind its own `std::sync::Mutex`, held only for map operations, never
//! across an `.await`. Only a staging file's state uses an async mutex, held
//! across its download and upload on purpose (see [`staging`]).

pub mod adoption;
mod attrs;
pub mod cache;
pub mod dir;
pub mod errno;
pub mod error;
mod file;
pub mod handle;
pub mod inode;
pub mod journal;
mod lookup;
pub mod meta;
pub mod name;
mod namespace;
mod readdir;
pub mod record;
pub mod replay;
mod restore;
pub mod staging;
mod write;
pub mod xattr;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

pub use attrs::SetAttr;
pub use errno::ToErrno;
pub use error::FsError;
pub use meta::Kind;
pub use readdir::{DirPlusSink, DirSink};
pub use write::Attempt;

use cache::{Cached, StatCache};
use dir::WarnOnce;
use handle::HandleTable;
use inode::{InodeTable, ROOT_INO};
use journal::{JournalOp, JournalSink};
use meta::{AttrPolicy, NodeInfo};
use name::Keys;
use record::{HandleKind, HandleRecord, InodeRecord};
use staging::{Staging, StagingRecord};

use crate::cache::{BlockCache, DiskCache, DiskCacheError};
use crate::memory::MemoryBudget;
use crate::prefetch::{PrefetchConfig, Reader};
use crate::store::ObjectStore;
use crate::upload::{UploadConfig, max_file_size};

/// Size of a block of the block cache, and the unit of random reads.
pub const BLOCK_SIZE: u64 = 128 * 1024;

/// How a bucket (or a prefix of one) is mounted. Every field has an
/// ossfs counterpart, named in its doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsConfig {
    /// Key prefix the mount shows (`bucket:/prefix`): `""` for the whole
    /// bucket, else ending in `/` (added when missing).
    pub prefix: String,
    /// Show every node as owned by this user (`-o uid=`), whatever its metadata says.
    pub uid: Option<u32>,
    /// Show every node as owned by this group (`-o gid=`).
    pub gid: Option<u32>,
    /// Owner of objects without `uid`/`gid` metadata (the mounting user by default).
    pub default_uid: u32,
    pub default_gid: u32,
    /// Bits cleared from every mode shown (`-o umask=`; 0 by default).
    pub umask: u32,
    /// Permission bits of objects without `mode` metadata.
    pub file_mode: u32,
    /// Permission bits of directories without `mode` metadata (and of the
    /// root, unless `mp_umask` is set).
    pub dir_mode: u32,
    /// The root shows `0777 & !mp_umask` (`-o mp_umask=`).
    pub mp_umask: Option<u32>,
    /// Refuse every change with EROFS (`-o ro`).
    pub read_only: bool,
    /// How long a resolved path is trusted (`stat_cache_expire`, 900 s).
    pub stat_cache_ttl: Duration,
    /// How many paths the stat cache holds (`max_stat_cache_size`, 100000).
    pub stat_cache_size: usize,
    /// Also remember that a path does not exist (`enable_noobj_cache`).
    pub negative_cache: bool,
    /// How long a directory listing is reused by the next opendir of the
    /// same directory (`list_cache_expire`, 1 s; 0 = always list). Any
    /// change of names through this mount drops every cached listing.
    pub list_cache_ttl: Duration,
    /// How long the kernel may keep attributes and names without asking (1 s).
    pub attr_ttl: Duration,
    /// Where staging files of open writers live (`tmpdir`).
    pub staging_dir: PathBuf,
    /// Files from this size up are uploaded in parts of this size
    /// (`multipart_size`, 10 MiB).
    pub multipart_size: u64,
    /// Parts uploaded, and keys copied by a directory rename, at once
    /// (`parallel_count`, 5).
    pub parallel_count: usize,
    /// Bytes of data buffers at most: read-ahead, cached blocks, upload
    /// parts (`memory_limit`, 512 MiB).
    pub memory_limit: u64,
    /// Bytes of the shared block cache (`cache_size`, 256 MiB; 0 = off).
    pub cache_size: u64,
    /// Largest read-ahead of one open file (`prefetch_window`, 64 MiB).
    pub prefetch_window: u64,
    /// Upload a large file's parts while it is written sequentially
    /// (on; `nostream_upload` turns it off), see [`crate::upload::stream`].
    pub stream_upload: bool,
    /// `readdirplus` answers entries not in the stat cache from the
    /// listing alone (`readdir_optimize`), see [`readdir`].
    pub readdir_optimize: bool,
    /// Answer every xattr call with ENOSYS (`noxattr`, as in s3fs).
    pub noxattr: bool,
    /// The persistent disk tier of the block cache (`use_cache`).
    pub disk_cache: Option<DiskCacheConfig>,
}

/// Where the disk cache lives and how much it may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskCacheConfig {
    pub dir: PathBuf,
    pub capacity: u64,
    /// What this mount reads (endpoint, bucket, prefix): mounts of
    /// different data get different subdirectories.
    pub id: String,
}

impl Default for FsConfig {
    fn default() -> Self {
        // SAFETY: geteuid and getegid cannot fail and touch no memory of ours.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Self {
            prefix: String::new(),
            uid: None,
            gid: None,
            default_uid: uid,
            default_gid: gid,
            umask: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            mp_umask: None,
            read_only: false,
            stat_cache_ttl: Duration::from_secs(900),
            stat_cache_size: 100_000,
            negative_cache: false,
            list_cache_ttl: Duration::from_secs(1),
            attr_ttl: Duration::from_secs(1),
            staging_dir: std::env::temp_dir(),
            multipart_size: UploadConfig::default().multipart_size,
            parallel_count: UploadConfig::default().parallel_count,
            memory_limit: crate::memory::DEFAULT_MEMORY_LIMIT,
            cache_size: 256 * 1024 * 1024,
            prefetch_window: PrefetchConfig::default().max_window,
            stream_upload: true,
            readdir_optimize: false,
            noxattr: false,
            disk_cache: None,
        }
    }
}

/// The user and group a request runs as (new nodes are owned by them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// A node the kernel learns about (lookup, create, mkdir, symlink), or the
/// attributes of one (getattr, setattr).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub attr: fuser::FileAttr,
    /// How long the kernel may cache the attributes and the name.
    pub ttl: Duration,
}

/// A file created and opened at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub entry: Entry,
    pub fh: u64,
}

/// The answer of getxattr/listxattr: the size asked for (when the caller
/// passed size 0), or the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

/// statfs numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// A staging file and how many writable handles use it.
struct StagingSlot {
    staging: Arc<Staging>,
    writers: usize,
}

/// A directory listing kept for the next opendir.
struct CachedListing {
    made: Instant,
    generation: u64,
    snapshot: Arc<dir::DirSnapshot>,
}

/// Marks a change of names: bumps the namespace generation when made and
/// when dropped, so no listing taken during the change is reused.
struct NamespaceChange(Arc<std::sync::atomic::AtomicU64>);

impl Drop for NamespaceChange {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A read-only handle's reader and the upload generation it checked last.
struct ReaderSlot {
    reader: Arc<Reader>,
    content_gen: std::sync::atomic::AtomicU64,
}

/// Which object version each file was last opened with, and which handles
/// may keep the kernel's page cache.
#[derive(Debug, Default)]
struct OpenedVersions {
    etags: HashMap<u64, String>,
    keep_cache: std::collections::HashSet<u64>,
}

/// The filesystem. Share it behind an `Arc`; every method takes `&self`.
pub struct Fs {
    store: Arc<dyn ObjectStore>,
    config: FsConfig,
    keys: Keys,
    policy: AttrPolicy,
    upload: UploadConfig,
    max_file_size: u64,
    inodes: Mutex<InodeTable>,
    handles: Mutex<HandleTable>,
    stagings: Mutex<HashMap<u64, StagingSlot>>,
    /// Writer handles whose staging file a restarted worker could not take
    /// over (`restore.rs`): fh -> (ino, the file, left on disk).
    lost: Mutex<HashMap<u64, (u64, PathBuf)>>,
    /// The staging directory, held by descriptor (`config.staging_dir`).
    staging_dir: Arc<crate::sys::dirfd::HeldDir>,
    cache: Mutex<StatCache>,
    /// The global budget for data buffers.
    budget: MemoryBudget,
    /// Object blocks shared by every reader.
    blocks: Arc<BlockCache>,
    prefetch: PrefetchConfig,
    /// The read side of open handles, by file handle.
    readers: Mutex<HashMap<u64, Arc<ReaderSlot>>>,
    /// The ETag each file was last opened with (the kernel may keep its
    /// page cache when it is unchanged), and handles opened that way.
    opened: Mutex<OpenedVersions>,
    /// Bumped whenever this mount uploads new content, so readers check
    /// that their object version is still current.
    content_gen: std::sync::atomic::AtomicU64,
    /// Recent directory listings, by directory node id, with when they
    /// were made and the namespace generation they belong to.
    listings: Mutex<HashMap<u64, CachedListing>>,
    /// Bumped before and after every change of names through this mount.
    namespace_gen: Arc<std::sync::atomic::AtomicU64>,
    warned: WarnOnce,
    mounted_at: SystemTime,
    /// Where table changes are recorded for a restarted worker (none when
    /// the filesystem runs without a supervisor, as in tests and the demo).
    journal: Option<Arc<dyn JournalSink>>,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("bucket", &self.store.bucket())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Lock a table, even if a thread panicked while holding it (the tables
/// stay consistent: every critical section is a few map operations).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Fs {
    /// A filesystem over `store` configured by `config`. Creates the
    /// staging directory when missing; fails when it cannot, or when it is
    /// not private (`staging::open_dir`).
    pub fn new(store: Arc<dyn ObjectStore>, config: FsConfig) -> Result<Self, FsError> {
        let staging_dir = staging::open_dir(&config.staging_dir)?;
        let keys = Keys::new(&config.prefix);
        let policy = AttrPolicy {
            force_uid: config.uid,
            force_gid: config.gid,
            default_uid: config.default_uid,
            default_gid: config.default_gid,
            file_mode: config.file_mode & 0o7777,
            dir_mode: config.dir_mode & 0o7777,
            umask: config.umask & 0o7777,
        };
        let upload = UploadConfig {
            multipart_size: config.multipart_size.max(1),
            parallel_count: config.parallel_count.max(1),
            stream: config.stream_upload,
        };
        let max_file_size = max_file_size(&upload, store.provider());
        let cache = StatCache::new(
            config.stat_cache_ttl,
            config.stat_cache_size,
            config.negative_cache,
        );
        let budget = MemoryBudget::new(config.memory_limit);
        let mut blocks = BlockCache::new(BLOCK_SIZE, config.cache_size, budget.clone());
        if let Some(dc) = &config.disk_cache {
            match DiskCache::open(&dc.dir, &dc.id, dc.capacity) {
                Ok(disk) => blocks = blocks.with_disk(Arc::new(disk)),
                // Another mount (or a worker still exiting) holds it: run
                // without it rather than fail the mount.
                Err(e @ DiskCacheError::Busy { .. }) => {
                    tracing::warn!(error = %e, "running without the disk cache");
                }
                Err(e) => return Err(FsError::DiskCache(e)),
            }
        }
        Ok(Self {
            store,
            keys,
            policy,
            upload,
            max_file_size,
            inodes: Mutex::new(InodeTable::new()),
            handles: Mutex::new(HandleTable::new()),
            stagings: Mutex::new(HashMap::new()),
            lost: Mutex::new(HashMap::new()),
            staging_dir,
            cache: Mutex::new(cache),
            blocks: Arc::new(blocks),
            budget,
            prefetch: PrefetchConfig {
                max_window: config.prefetch_window,
                ..PrefetchConfig::default()
            },
            readers: Mutex::new(HashMap::new()),
            opened: Mutex::new(OpenedVersions::default()),
            content_gen: std::sync::atomic::AtomicU64::new(0),
            listings: Mutex::new(HashMap::new()),
            namespace_gen: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            warned: WarnOnce::new(100_000),
            mounted_at: SystemTime::now(),
            config,
            journal: None,
        })
    }

    fn journal(&self, op: JournalOp) {
        if let Some(j) = &self.journal {
            j.record(&op);
        }
    }

    /// The configuration this filesystem runs with.
    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    /// The global memory budget of data buffers.
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Bytes held by the block cache now.
    pub fn block_cache_bytes(&self) -> u64 {
        self.blocks.bytes()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The inode, handle and staging records, for the restart journal.
    pub async fn records(&self) -> (Vec<InodeRecord>, Vec<HandleRecord>, Vec<StagingRecord>) {
        let inodes = lock(&self.inodes).records();
        let handles = lock(&self.handles).records();
        let stagings: Vec<Arc<Staging>> = lock(&self.stagings)
            .values()
            .map(|s| s.staging.clone())
            .collect();
        let mut staged = Vec::with_capacity(stagings.len());
        for s in stagings {
            let state = s.lock().await;
            staged.push(s.record(&state));
        }
        (inodes, handles, staged)
    }

    /// Known nodes, open handles and open writers' staging files (for
    /// `ossfs-rs status`).
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        (
            lock(&self.inodes).len(),
            lock(&self.handles).len(),
            lock(&self.stagings).len(),
        )
    }

    // ---- shared helpers -------------------------------------------------

    /// Start a change of names (see [`NamespaceChange`]).
    fn namespace_change(&self) -> NamespaceChange {
        self.namespace_gen
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        NamespaceChange(self.namespace_gen.clone())
    }

    fn check_writable(&self) -> Result<(), FsError> {
        if self.config.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The record of `ino`.
    fn node(&self, ino: u64) -> Result<InodeRecord, FsError> {
        lock(&self.inodes)
            .get(ino)
            .cloned()
            .ok_or(FsError::UnknownInode(ino))
    }

    /// The directory record of `parent` and the path of `name` inside it.
    fn child_path(&self, parent: u64, name: &str) -> Result<(InodeRecord, String), FsError> {
        let rec = self.node(parent)?;
        if rec.kind != Kind::Dir {
            return Err(FsError::NotDir(rec.path));
        }
        let path = name::join(&rec.path, name);
        self.keys.check_len(&path)?;
        Ok((rec, path))
    }

    /// The handle record of `fh`.
    fn handle(&self, fh: u64) -> Result<HandleRecord, FsError> {
        lock(&self.handles)
            .get(fh)
            .cloned()
            .ok_or(FsError::BadHandle(fh))
    }

    fn staging_of(&self, ino: u64) -> Option<Arc<Staging>> {
        lock(&self.stagings).get(&ino).map(|s| s.staging.clone())
    }

    fn root_info(&self) -> NodeInfo {
        let mut info = NodeInfo::implied_dir(self.mounted_at);
        if let Some(mask) = self.config.mp_umask {
            info.posix.mode = Some(meta::stored_mode(Kind::Dir, 0o777 & !mask));
        }
        info
    }

    fn cache_get(&self, path: &str) -> Option<Cached> {
        let got = lock(&self.cache).get(path, Instant::now());
        crate::metrics::METRICS.cache(crate::metrics::Cache::Stat, got.is_some());
        got
    }

    fn cache_put(&self, path: &str, info: &NodeInfo) {
        lock(&self.cache).insert(path, info.clone(), Instant::now());
    }

    fn cache_missing(&self, path: &str) {
        lock(&self.cache).insert_missing(path, Instant::now());
    }

    fn cache_remove_tree(&self, path: &str) {
        lock(&self.cache).remove_tree(path);
    }

    /// The attributes of `info` as `ino`. An open writer's state wins
    /// (staged size, metadata changes not uploaded yet), whatever a HEAD or
    /// the stat cache said: lookups and readdirplus must not show the
    /// store's older mode or mtime once the cache entry is gone.
    fn attr(&self, ino: u64, info: &NodeInfo) -> fuser::FileAttr {
        let staged = self.staged_info(ino);
        let mut attr = self.policy.attr(ino, staged.as_ref().unwrap_or(info));
        if let Some(st) = self.staging_of(ino)
            && st.is_loaded()
        {
            attr.size = st.size();
            attr.blocks = attr.size.div_ceil(512);
        }
        attr
    }

    fn entry(&self, ino: u64, info: &NodeInfo) -> Entry {
        Entry {
            attr: self.attr(ino, info),
            ttl: self.config.attr_ttl,
        }
    }

    /// Warn once about a key that cannot be shown.
    fn warn_skipped(&self, skipped: &[dir::Skipped]) {
        for s in skipped {
            if self.warned.first(&s.key) {
                warn!(key = %s.key, reason = %s.reason, "object key cannot be a file name; not shown");
            }
        }
    }

    /// Whether a handle record is a file opened for writing.
    fn is_writer(rec: &HandleRecord) -> bool {
        matches!(rec.kind, HandleKind::File { write: true, .. })
    }

    /// The node id of the root.
    pub fn root() -> u64 {
        ROOT_INO
    }
}

#[cfg(test)]
mod tests;
