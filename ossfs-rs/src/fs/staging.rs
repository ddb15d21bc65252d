//! Staging files: where a file's new content lives until it is uploaded.
//!
//! Objects cannot be modified in place, so a writer works on a local copy:
//! a file under the mount's staging directory (ossfs' `tmpdir`), created on
//! open-for-write and filled lazily, on the first write or truncate, with the
//! object's current content (skipped for new files and O_TRUNC, whose content
//! is known to be empty). From then on reads of that inode are served from
//! the copy, so a process reads back what it wrote before any upload. Flush,
//! fsync and close upload the whole copy (see [`crate::upload`]) when it is
//! dirty.
//!
//! There is one [`Staging`] per inode, shared by all of that inode's
//! writable handles (the table lives in [`super::Fs`]), so two descriptors of
//! one file see each other's writes, like on a local disk. Its mutable state
//! sits behind an async mutex held across the download and the upload, so an
//! upload sends a consistent snapshot and writes wait for it; the current
//! size is also kept in an atomic so `stat` never waits for an upload.
//!
//! The state is plain data ([`StagingRecord`]: path, size, flags) so the
//! supervised-restart journal can hand an open writer's staging file to a
//! new worker. What that worker must know is journaled as it changes: the
//! copy becoming whole (with the ETag it was loaded from), becoming dirty
//! (the first write after a load or an upload, not every write) and being
//! uploaded (with the new ETag); [`Staging::adopt`] takes those facts back
//! and `adoption.rs` decides what an adopted copy may upload. The file is
//! removed when the last handle is released.
//!
//! The staging directory is private and held by descriptor
//! ([`crate::sys::dirfd::HeldDir`]: ours, mode 0700, not a symlink, made
//! again if it vanishes); staging files are created in it under fresh
//! names and opened again (by an adopting worker) by name, never through
//! a symlink.
//!
//! Imports: `fs::{error, journal, meta, record}`; `store` (the download),
//! `upload::stream` (a streamed upload's handle), `sys::dirfd`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};
use tracing::{debug, warn};

use super::error::FsError;
use super::journal::{JournalOp, JournalSink};
use super::meta::NodeInfo;
use super::record::StagedFile;
use crate::store::{ObjectStore, StoreError};
use crate::sys::dirfd::HeldDir;
use crate::upload::stream::StreamUpload;

/// Download buffer: chunks are gathered up to this size per disk write.
const LOAD_BUFFER: usize = 4 * 1024 * 1024;

/// The mutable part of a staging file.
#[derive(Debug)]
pub struct StagingState {
    /// The copy holds the file's whole content (downloaded, or known empty).
    pub loaded: bool,
    /// The copy differs from the object.
    pub dirty: bool,
    /// The file was unlinked while open: never upload it again.
    pub unlinked: bool,
    /// The ETag of the object version the copy was loaded from or last
    /// uploaded as (`""`: there was no object).
    pub etag: String,
    /// The copy holds writes a dead worker had not uploaded: they go up
    /// only while the object is still `etag` (see `adoption.rs`); cleared
    /// by the first upload.
    pub adopted_dirty: bool,
    /// Metadata the object is uploaded with (chmod/chown/xattrs while open
    /// update it, so an upload does not undo them).
    pub base: NodeInfo,
    /// A modification time set explicitly after the last write (utimens).
    pub mtime: Option<SystemTime>,
    /// When the copy was last written.
    pub last_write: SystemTime,
    /// End of the bytes written in order from offset 0 of an initially
    /// empty copy; `None` once a write left a gap (or the copy started
    /// with content): only such a prefix is streamed.
    pub written_in_order: Option<u64>,
    /// The upload streamed while the file is written, if any.
    pub stream: Option<StreamUpload>,
    /// Bytes the stream already sent changed (or streaming failed): the
    /// next upload drops the stream and sends the whole file.
    pub stream_stale: bool,
}

impl StagingState {
    /// Note a change of `[offset, end)` for the streamed upload.
    fn note_write(&mut self, offset: u64, end: u64) {
        self.written_in_order = self
            .written_in_order
            .and_then(|w| (offset <= w).then_some(w.max(end)));
        if self.stream.as_ref().is_some_and(|s| offset < s.frozen()) {
            self.stream_stale = true;
        }
    }

    /// Note a truncate (or extension) to `len` bytes.
    fn note_set_len(&mut self, len: u64) {
        // Cut to nothing, the copy is known to be empty: in order again.
        self.written_in_order = if len == 0 {
            Some(0)
        } else {
            self.written_in_order.map(|w| w.min(len))
        };
        if self.stream.as_ref().is_some_and(|s| len < s.frozen()) {
            self.stream_stale = true;
        }
    }
}

/// The staging state as plain data, for the restart journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub ino: u64,
    pub path: PathBuf,
    pub size: u64,
    pub loaded: bool,
    pub dirty: bool,
    pub unlinked: bool,
}

/// The staging directory at `path`, made if missing and checked (ours,
/// 0700, not a symlink: [`HeldDir`]).
pub fn open_dir(path: &Path) -> Result<Arc<HeldDir>, FsError> {
    HeldDir::open(path)
        .map(Arc::new)
        .map_err(|e| FsError::Staging {
            path: path.display().to_string(),
            source: io::Error::other(e),
        })
}

/// One inode's staging file.
#[derive(Debug)]
pub struct Staging {
    ino: u64,
    path: PathBuf,
    /// The staging directory, by descriptor, and the file's name in it.
    dir: Arc<HeldDir>,
    name: String,
    file: Arc<File>,
    size: AtomicU64,
    /// Mirrors `StagingState::loaded` (it only ever goes from false to
    /// true), so reads need not wait for the lock.
    loaded: AtomicBool,
    /// Leave the file on disk when dropped (its data could not be uploaded).
    keep: AtomicBool,
    state: Mutex<StagingState>,
    /// Told when the copy becomes whole (a restarted worker must not fill
    /// it from the object again, over what was written).
    journal: OnceLock<Arc<dyn JournalSink>>,
}

impl Staging {
    /// Create an empty staging file for `ino` in `dir` (a fresh name, never
    /// through a symlink; the directory is made again if it vanished).
    /// `loaded` says the file's content is known to be empty (a new file,
    /// O_TRUNC).
    pub fn create(dir: &Arc<HeldDir>, ino: u64, base: NodeInfo, loaded: bool) -> io::Result<Self> {
        let (file, name) = dir.create_file(&format!("ossfs-{ino}-"))?;
        let st = Self::with_file(ino, (dir.clone(), name), file, 0, base, loaded, false);
        Ok(st)
    }

    /// Take over the staging file a dead worker left (journal replay),
    /// with what the journal knew of it: unlinked, dirty, the version it
    /// came from. `current` is the ETag of the object now (`""`: none), the
    /// version an older build's journal (which knew no ETag) is taken to
    /// have started from. The file is opened in `dir` by name, never
    /// through a symlink; a journaled path outside `dir` is refused.
    pub fn adopt(
        dir: &Arc<HeldDir>,
        staged: &StagedFile,
        ino: u64,
        base: NodeInfo,
        current: &str,
    ) -> io::Result<Self> {
        let name = match (staged.path.parent(), staged.path.file_name()) {
            (Some(parent), Some(name)) if parent == dir.path() => name.to_string_lossy(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("not in the staging directory {}", dir.path().display()),
                ));
            }
        };
        let file = dir.open_file(&name)?;
        let size = file.metadata()?.len();
        let dirty = staged.loaded && staged.dirty;
        let mut st = Self::with_file(
            ino,
            (dir.clone(), name.into_owned()),
            file,
            size,
            base,
            staged.loaded,
            dirty,
        );
        let state = st.state.get_mut();
        state.unlinked = staged.unlinked;
        state.etag = staged.etag.clone().unwrap_or_else(|| current.to_string());
        state.adopted_dirty = dirty;
        Ok(st)
    }

    fn with_file(
        ino: u64,
        (dir, name): (Arc<HeldDir>, String),
        file: File,
        size: u64,
        base: NodeInfo,
        loaded: bool,
        dirty: bool,
    ) -> Self {
        let etag = base.etag.clone();
        Self {
            ino,
            path: dir.path().join(&name),
            dir,
            name,
            file: Arc::new(file),
            size: AtomicU64::new(size),
            loaded: AtomicBool::new(loaded),
            keep: AtomicBool::new(false),
            state: Mutex::new(StagingState {
                loaded,
                dirty,
                unlinked: false,
                etag,
                adopted_dirty: false,
                base,
                mtime: None,
                last_write: SystemTime::now(),
                written_in_order: (loaded && size == 0).then_some(0),
                stream: None,
                stream_stale: false,
            }),
            journal: OnceLock::new(),
        }
    }

    /// Journal this file's loading from now on.
    pub fn set_journal(&self, journal: Arc<dyn JournalSink>) {
        let _ = self.journal.set(journal);
    }

    fn journal(&self, op: JournalOp) {
        if let Some(j) = self.journal.get() {
            j.record(&op);
        }
    }

    fn mark_loaded(&self, state: &mut StagingState) {
        if !state.loaded {
            self.journal(JournalOp::Loaded {
                ino: self.ino,
                etag: Some(state.etag.clone()),
            });
        }
        state.loaded = true;
        self.loaded.store(true, Ordering::Release);
    }

    /// The copy changes (journaled when it was clean, before the change).
    fn mark_dirty(&self, state: &mut StagingState) {
        if !state.dirty {
            self.journal(JournalOp::Dirty { ino: self.ino });
        }
        state.dirty = true;
    }

    /// The copy was uploaded as the object version `etag`: it is clean.
    pub fn mark_uploaded(&self, state: &mut StagingState, etag: &str) {
        self.journal(JournalOp::Uploaded {
            ino: self.ino,
            etag: etag.to_string(),
        });
        state.etag = etag.to_string();
        state.dirty = false;
        state.adopted_dirty = false;
    }

    /// The inode this file stages.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Where the copy lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open copy, for uploads.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// The current length of the copy (without waiting for the lock).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Whether the copy holds the whole content (reads go to it).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Lock the state (waits for a running download or upload).
    pub async fn lock(&self) -> MutexGuard<'_, StagingState> {
        self.state.lock().await
    }

    /// Keep the file on disk after the last handle goes: its data could not
    /// be uploaded, and this is the only copy.
    pub fn keep_on_disk(&self) {
        self.keep.store(true, Ordering::Release);
    }

    /// Lock the state if nobody holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, StagingState>> {
        self.state.try_lock().ok()
    }

    /// The journal record of this file.
    pub fn record(&self, state: &StagingState) -> StagingRecord {
        StagingRecord {
            ino: self.ino,
            path: self.path.clone(),
            size: self.size(),
            loaded: state.loaded,
            dirty: state.dirty,
            unlinked: state.unlinked,
        }
    }

    fn io_error(&self, source: io::Error) -> FsError {
        FsError::Staging {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Fill the copy with the object at `key`, once. A missing object
    /// (deleted by another client) counts as empty.
    pub async fn load(
        &self,
        state: &mut StagingState,
        store: &dyn ObjectStore,
        key: &str,
    ) -> Result<(), FsError> {
        if state.loaded {
            return Ok(());
        }
        debug!(key, ino = self.ino, "filling staging file from the object");
        let mut written = 0u64;
        match store.get(key, None).await {
            Ok(object) => {
                state.etag = object.meta.etag.clone();
                let mut body = object.body;
                let mut buf: Vec<u8> = Vec::new();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| FsError::store(format!("download {key}"), e))?;
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= LOAD_BUFFER {
                        let data = std::mem::take(&mut buf);
                        let len = data.len() as u64;
                        self.write_blocking(written, Bytes::from(data)).await?;
                        written += len;
                    }
                }
                if !buf.is_empty() {
                    let len = buf.len() as u64;
                    self.write_blocking(written, Bytes::from(buf)).await?;
                    written += len;
                }
            }
            Err(StoreError::NotFound { .. }) => {
                state.etag.clear();
                warn!(
                    key,
                    "object vanished before it could be staged; starting empty"
                );
            }
            Err(e) => return Err(FsError::store(format!("download {key}"), e)),
        }
        self.set_len_blocking(written).await?;
        self.size.store(written, Ordering::Release);
        self.mark_loaded(state);
        Ok(())
    }

    async fn write_blocking(&self, offset: u64, data: Bytes) -> Result<(), FsError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| self.io_error(e))
    }

    async fn set_len_blocking(&self, len: u64) -> Result<(), FsError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.set_len(len))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| self.io_error(e))
    }

    /// Write `data` at `offset` of the (loaded) copy.
    pub async fn write(
        &self,
        state: &mut StagingState,
        offset: u64,
        data: Bytes,
    ) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        state.note_write(offset, end);
        self.mark_dirty(state);
        self.write_blocking(offset, data).await?;
        self.size.fetch_max(end, Ordering::AcqRel);
        state.mtime = None;
        state.last_write = SystemTime::now();
        Ok(())
    }

    /// Cut or extend (with zeros) the (loaded) copy to `len` bytes.
    pub async fn set_len(&self, state: &mut StagingState, len: u64) -> Result<(), FsError> {
        state.note_set_len(len);
        self.mark_dirty(state);
        self.set_len_blocking(len).await?;
        self.size.store(len, Ordering::Release);
        self.mark_loaded(state);
        state.mtime = None;
        state.last_write = SystemTime::now();
        Ok(())
    }

    /// Read up to `len` bytes at `offset` of the (loaded) copy.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, FsError> {
        let size = self.size();
        if offset >= size {
            return Ok(Bytes::new());
        }
        let len = u64::from(len).min(size - offset);
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len as usize];
            let mut done = 0usize;
            while done < buf.len() {
                let n = file.read_at(&mut buf[done..], offset + done as u64)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            buf.truncate(done);
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(|e| self.io_error(e))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.keep.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.dir.remove_file(&self.name)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!(path = %self.path.display(), error = %e, "could not remove staging file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_read_truncate_and_cleanup() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let dir = open_dir(&base.path().join("staging")).unwrap_or_else(|e| panic!("{e}"));
        let s = Staging::create(&dir, 7, NodeInfo::implied_dir(SystemTime::now()), true)
            .unwrap_or_else(|e| panic!("create: {e}"));
        let path = s.path().to_path_buf();
        assert!(path.exists());
        {
            let mut st = s.lock().await;
            s.write(&mut st, 0, Bytes::from_static(b"hello"))
                .await
                .unwrap_or_else(|e| panic!("write: {e}"));
            s.write(&mut st, 10, Bytes::from_static(b"!"))
                .await
                .unwrap_or_else(|e| panic!("write: {e}"));
            assert!(st.dirty);
        }
        assert_eq!(s.size(), 11);
        let all = s.read(0, 100).await.unwrap_or_default();
        assert_eq!(&all[..], b"hello\0\0\0\0\0!");
        assert_eq!(s.read(11, 5).await.unwrap_or_default().len(), 0);
        {
            let mut st = s.lock().await;
            s.set_len(&mut st, 2)
                .await
                .unwrap_or_else(|e| panic!("set_len: {e}"));
        }
        assert_eq!(&s.read(0, 100).await.unwrap_or_default()[..], b"he");
        let rec = s.record(&*s.lock().await);
        assert_eq!(rec.size, 2);
        assert!(rec.dirty && rec.loaded && !rec.unlinked);
        drop(s);
        assert!(!path.exists());
    }
}
