//! The persistent disk block cache (`-o use_cache=DIR`, bounded by
//! `disk_cache_size=MiB`): the second tier under [`super::BlockCache`].
//!
//! Each block (the in-memory cache's unit: 128 KiB of one object version)
//! is one file, named by the SHA-256 of its object key, ETag and block
//! number, under `DIR/<mount id>/<2 hex digits>/`. A file holds a header
//! (magic, format version, CRC-32 of everything after it, block number,
//! lengths, the object key and the ETag) and then the bytes. A read checks
//! all of it: a file whose checksum, key, ETag or number does not match
//! (a torn write after a crash, disk corruption, a hash collision) is
//! deleted and counts as a miss, so a corrupt block is never served. The
//! ETag in the key is what makes the cache safe across remounts: a reader
//! asks for the blocks of the version it opened, and a changed object has
//! another ETag, so its old blocks are never served; they age out. Objects
//! without an ETag are not cached on disk.
//!
//! Bounded by bytes, least recently used first. The index (file, size, use
//! order) lives in memory; at start it is rebuilt from the directory, in
//! the order of the files' modification times, and a hit sets its file's
//! time, so the order survives a remount. Blocks are written by one
//! background thread through a bounded queue, to a temporary name and then
//! renamed: a reader never sees a half-written file, and when the disk is
//! slower than the network, blocks are dropped rather than slowing reads.
//!
//! One mount owns a cache directory at a time (an exclusive `flock` on
//! `DIR/<mount id>/.lock`); a second mount of the same bucket and prefix
//! on the same `DIR` waits a few seconds (a restarting worker's
//! predecessor may still be exiting) and then runs without the disk cache,
//! saying so in the log. Directories are created 0700 and files 0600: they
//! hold object data.
//!
//! Imports: `metrics`, `sys` and `cache::lru` of the crate, besides std and
//! external crates.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::BlockKey;
use super::lru::Lru;
use crate::metrics::{Cache, METRICS};
use crate::sys::private_dir::create_private_dir;

const MAGIC: &[u8; 8] = b"OSSFSBLK";
const VERSION: u32 = 1;
/// magic, version, crc, index, data length, key length, etag length.
const FIXED_HEADER: usize = 8 + 4 + 4 + 8 + 8 + 4 + 4;
/// Blocks waiting for the writer thread; more are dropped.
const QUEUE: usize = 256;
/// How long a new mount waits for the directory's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why the disk cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskCacheError {
    #[error("cannot use {path} as the disk cache: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the disk cache {path} is in use by another mount of the same bucket and prefix; give each mount its own use_cache directory"
    )]
    Busy { path: String },
}

/// Work for the writer thread.
enum Job {
    /// A block, with its file name (computed once, by [`DiskCache::put`]).
    Write(BlockKey, String, Bytes),
    /// Answer once every job before this one is done.
    Flush(SyncSender<()>),
}

/// Block files by name, in use order, with their sizes.
type Index = Lru<String, ()>;

/// Names to delete so that `index` fits in `capacity`.
fn evict_to(index: &mut Index, capacity: u64) -> Vec<String> {
    let mut doomed = Vec::new();
    while index.bytes() > capacity {
        let Some((name, ())) = index.pop_oldest() else {
            break;
        };
        doomed.push(name);
    }
    doomed
}

struct Shared {
    root: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(&name[..2]).join(name)
    }

    fn delete(&self, names: &[String]) {
        for name in names {
            if let Err(e) = fs::remove_file(self.path_of(name))
                && e.kind() != io::ErrorKind::NotFound
            {
                debug!(error = %e, "disk cache: cannot remove an evicted block");
            }
        }
    }

    /// Write block `key` as file `name` (on the writer thread). Its
    /// subdirectory is created the first time a block lands in it.
    fn write(&self, key: &BlockKey, name: String, data: &[u8]) -> io::Result<()> {
        let dir = self.root.join(&name[..2]);
        let tmp = dir.join(format!("{name}.tmp"));
        let encoded = encode(key, data);
        let create = || {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
        };
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&dir)?;
                create()?
            }
            other => other?,
        };
        file.write_all(&encoded)?;
        drop(file);
        fs::rename(&tmp, dir.join(&name))?;
        let doomed = {
            let mut index = self.index();
            index.insert(name, (), encoded.len() as u64);
            let doomed = evict_to(&mut index, self.capacity);
            METRICS.set_disk_cache_bytes(index.bytes());
            doomed
        };
        self.delete(&doomed);
        Ok(())
    }
}

/// The disk tier. Cheap to share behind an `Arc`.
pub struct DiskCache {
    shared: Arc<Shared>,
    queue: SyncSender<Job>,
    _lock: File,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("root", &self.shared.root)
            .field("capacity", &self.shared.capacity)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl DiskCache {
    /// Open (creating) the cache of mount `mount_id` (what identifies the
    /// bucket and prefix) under `dir`, holding at most `capacity` bytes,
    /// and index what earlier mounts left there.
    pub fn open(dir: &Path, mount_id: &str, capacity: u64) -> Result<Self, DiskCacheError> {
        let root = dir.join(hex::encode(&Sha256::digest(mount_id.as_bytes())[..8]));
        let shown = root.display().to_string();
        let io_err = |source| DiskCacheError::Io {
            path: shown.clone(),
            source,
        };
        create_private_dir(&root).map_err(|e| io_err(e.into()))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(root.join(".lock"))
            .map_err(io_err)?;
        lock_within(&lock, LOCK_WAIT).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => DiskCacheError::Busy {
                path: shown.clone(),
            },
            _ => io_err(e),
        })?;
        let index = scan(&root).map_err(io_err)?;
        let shared = Arc::new(Shared {
            root,
            capacity,
            index: Mutex::new(index),
        });
        let doomed = evict_to(&mut shared.index(), capacity);
        shared.delete(&doomed);
        METRICS.set_disk_cache_bytes(shared.index().bytes());
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("disk-cache".into())
            .spawn(move || write_loop(&writer, &rx))
            .map_err(io_err)?;
        Ok(Self {
            shared,
            queue,
            _lock: lock,
        })
    }

    /// Bytes held (as indexed; blocks still queued are not counted).
    pub fn bytes(&self) -> u64 {
        self.shared.index().bytes()
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.shared.index().len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block `key`, if it is on disk and intact.
    pub fn get(&self, key: &BlockKey) -> Option<Bytes> {
        if key.etag.is_empty() {
            return None;
        }
        let name = file_name(key);
        if !self.shared.index().contains(&name) {
            METRICS.cache(Cache::Disk, false);
            return None;
        }
        let path = self.shared.path_of(&name);
        let found = match read_file(&path) {
            Ok((file, raw)) => match decode(key, raw) {
                Some(data) => {
                    self.shared.index().get(&name);
                    // The use order survives a remount through the file's
                    // time (we own the file, so a read-only fd may set it).
                    let _ = file.set_modified(SystemTime::now());
                    Some(data)
                }
                None => {
                    warn!(path = %path.display(), "disk cache: a block failed its check; deleted");
                    self.forget(&name);
                    None
                }
            },
            Err(_) => {
                self.forget(&name);
                None
            }
        };
        METRICS.cache(Cache::Disk, found.is_some());
        found
    }

    /// Queue `data` to be written as block `key`; dropped when the writer
    /// is behind.
    pub fn put(&self, key: BlockKey, data: Bytes) {
        if key.etag.is_empty() || data.is_empty() {
            return;
        }
        let name = file_name(&key);
        if self.shared.index().contains(&name) {
            return; // already on disk (fetched again after leaving memory)
        }
        match self.queue.try_send(Job::Write(key, name, data)) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                debug!("disk cache: the writer thread is gone");
            }
        }
    }

    /// Wait until every block queued so far is written (tests use it to
    /// see what a mount left behind).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.queue.send(Job::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    fn forget(&self, name: &str) {
        let mut index = self.shared.index();
        index.remove(name);
        METRICS.set_disk_cache_bytes(index.bytes());
        drop(index);
        let _ = fs::remove_file(self.shared.path_of(name));
    }
}

fn write_loop(shared: &Shared, rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Write(key, name, data) => {
                if let Err(e) = shared.write(&key, name, &data) {
                    debug!(error = %e, "disk cache: a block was not written");
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The open file and its whole content.
fn read_file(path: &Path) -> io::Result<(File, Vec<u8>)> {
    let mut file = File::open(path)?;
    let mut raw = Vec::new();
    io::Read::read_to_end(&mut file, &mut raw)?;
    Ok((file, raw))
}

/// The file name of a block: hex SHA-256 of key, ETag and number.
fn file_name(key: &BlockKey) -> String {
    let mut h = Sha256::new();
    h.update(key.key.as_bytes());
    h.update([0]);
    h.update(key.etag.as_bytes());
    h.update([0]);
    h.update(key.index.to_le_bytes());
    hex::encode(h.finalize())
}

fn encode(key: &BlockKey, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_HEADER + key.key.len() + key.etag.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, filled in below
    out.extend_from_slice(&key.index.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&(key.key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(key.etag.len() as u32).to_le_bytes());
    out.extend_from_slice(key.key.as_bytes());
    out.extend_from_slice(key.etag.as_bytes());
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The block's bytes, if `raw` is an intact file of block `key`.
fn decode(key: &BlockKey, raw: Vec<u8>) -> Option<Bytes> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(raw.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(raw.get(at..at + 8)?.try_into().ok()?))
    };
    if raw.get(..8)? != MAGIC || u32_at(8)? != VERSION {
        return None;
    }
    let crc = u32_at(12)?;
    let index = u64_at(16)?;
    let len = usize::try_from(u64_at(24)?).ok()?;
    let key_len = u32_at(32)? as usize;
    let etag_len = u32_at(36)? as usize;
    let key_at = FIXED_HEADER;
    let etag_at = key_at + key_len;
    let data_at = etag_at + etag_len;
    if raw.len() != data_at.checked_add(len)?
        || index != key.index
        || raw.get(key_at..etag_at)? != key.key.as_bytes()
        || raw.get(etag_at..data_at)? != key.etag.as_bytes()
        || crc32fast::hash(&raw[16..]) != crc
    {
        return None;
    }
    Some(Bytes::from(raw).slice(data_at..))
}

/// Take an exclusive `flock` on `file`, trying until `wait` has passed.
fn lock_within(file: &File, wait: Duration) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock on a descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::WouldBlock || Instant::now() >= deadline {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Index the blocks under `root`, oldest use first (file times); delete
/// leftover temporary files.
fn scan(root: &Path) -> io::Result<Index> {
    let mut found: Vec<(SystemTime, String, u64)> = Vec::new();
    for sub in fs::read_dir(root)? {
        let sub = sub?;
        if !sub.file_type()?.is_dir() {
            continue;
        }
        for file in fs::read_dir(sub.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(file.path());
                continue;
            }
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let meta = file.metadata()?;
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((used, name, meta.len()));
        }
    }
    found.sort();
    let mut index = Index::default();
    for (_, name, size) in found {
        index.insert(name, (), size);
    }
    Ok(index)
}

#[cfg(test)]
mod tests;
