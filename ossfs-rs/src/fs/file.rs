//! Files opened and read: open, create, mknod, read.
//!
//! Reads of a file nobody is writing go through the handle's prefetching
//! [`Reader`] (read-ahead while sequential, exact block reads through the
//! shared block cache otherwise; see [`crate::prefetch`]), never a
//! whole-object download. A read-only open tells the kernel to keep its
//! page cache when the file's ETag is the one it was last opened with
//! ([`Fs::keep_cache`]); a reader notices when this mount uploaded a new
//! version or renamed the file, and switches to the current one. Opening
//! for writing attaches the inode's shared staging file
//! ([`super::staging`]); a file being written is read from that copy once
//! it holds the whole content. What happens to written data (write,
//! truncate, flush, fsync, release and the uploads) is `write.rs`.
//!
//! `create` PUTs an empty object with the new file's metadata right away,
//! so the file exists for other clients and for listings at once (as
//! ossfs does).
//!
//! Imports: `fs::{error, journal, meta, name, record, staging}` and the
//! shared state of `fs/mod.rs`; `prefetch` (readers), `store`.

use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::error::FsError;
use super::journal::JournalOp;
use super::meta::{Kind, NodeInfo};
use super::name::check_name;
use super::record::HandleKind;
use super::staging::Staging;
use super::{Caller, Created, Entry, Fs, ReaderSlot, StagingSlot, lock};
use crate::prefetch::Reader;
use crate::store::{ByteRange, StoreError};

impl Fs {
    /// Open the file `ino` with open(2) `flags`; returns the file handle.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        let rec = self.node(ino)?;
        match rec.kind {
            Kind::Dir => return Err(FsError::IsDir(rec.path)),
            Kind::Symlink => return Err(FsError::Invalid(format!("open of symlink {}", rec.path))),
            Kind::File => {}
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let truncate = flags & libc::O_TRUNC != 0;
        if write || truncate {
            self.check_writable()?;
        }
        if write {
            let (_, info) = self.info_of(ino).await?;
            let st = self.attach_staging(ino, info, false)?;
            if truncate {
                let mut state = st.lock().await;
                st.set_len(&mut state, 0).await?;
            }
        }
        let kind = HandleKind::File {
            write,
            append: flags & libc::O_APPEND != 0,
        };
        let fh = lock(&self.handles).insert(ino, flags, kind);
        if !write && let Err(e) = self.attach_reader(ino, fh).await {
            lock(&self.handles).remove(fh);
            return Err(e);
        }
        Ok(fh)
    }

    /// Give the read-only handle `fh` of `ino` its prefetching reader, and
    /// decide whether the kernel may keep its page cache of the file: only
    /// when nobody is writing it and its ETag is the one it was last
    /// opened with.
    async fn attach_reader(&self, ino: u64, fh: u64) -> Result<(), FsError> {
        let gen_before = self.content_gen.load(Ordering::Acquire);
        let (rec, mut info) = self.info_of(ino).await?;
        let writing = self.staging_of(ino).is_some();
        let key = self.keys.object(&rec.path);
        // The ETag decides whether the kernel may keep its cached pages and
        // which cached blocks are valid: check it with a HEAD unless it was
        // learnt within the attribute TTL (a lookup just before the open).
        let age = lock(&self.cache).age(&rec.path, Instant::now());
        if !writing && age.is_none_or(|a| a >= self.config.attr_ttl) {
            match self.store.head(&key).await {
                Ok(meta) if meta.etag != info.etag => {
                    info = NodeInfo::from_object(&meta);
                    self.cache_put(&rec.path, &info);
                }
                Ok(_) => self.cache_put(&rec.path, &info),
                // Gone or unreachable: the reads will say so.
                Err(e) => debug!(key, error = %e, "HEAD at open failed"),
            }
        }
        {
            let mut opened = lock(&self.opened);
            let same = opened.etags.get(&ino).is_some_and(|e| *e == info.etag);
            if writing || info.etag.is_empty() {
                opened.etags.remove(&ino);
            } else {
                if same {
                    opened.keep_cache.insert(fh);
                }
                opened.etags.insert(ino, info.etag.clone());
            }
        }
        if writing {
            return Ok(());
        }
        let reader = Reader::new(
            self.store.clone(),
            self.blocks.clone(),
            self.budget.clone(),
            self.prefetch,
            &key,
            &info.etag,
            info.size,
        );
        lock(&self.readers).insert(
            fh,
            Arc::new(ReaderSlot {
                reader: Arc::new(reader),
                content_gen: AtomicU64::new(gen_before),
            }),
        );
        Ok(())
    }

    /// Whether the kernel may keep its page cache for handle `fh` (the
    /// file has not changed since it was last opened).
    pub fn keep_cache(&self, fh: u64) -> bool {
        lock(&self.opened).keep_cache.contains(&fh)
    }

    /// Read through the prefetching reader of a read-only handle, after
    /// checking that it still reads the current version of the file.
    async fn read_prefetched(
        &self,
        ino: u64,
        slot: &ReaderSlot,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, FsError> {
        let rec = self.node(ino)?;
        let now = self.content_gen.load(Ordering::Acquire);
        let moved = *slot.reader.key() != *self.keys.object(&rec.path);
        if moved || slot.content_gen.load(Ordering::Acquire) != now {
            // This mount uploaded something, or the file was renamed:
            // read the current version from now on.
            let (rec, info) = self.info_of(ino).await?;
            let key = self.keys.object(&rec.path);
            if !slot.reader.is_reading(&key, &info.etag) {
                slot.reader.reset(&key, &info.etag, info.size);
            }
            slot.content_gen.store(now, Ordering::Release);
        }
        Ok(slot.reader.read(offset, u64::from(size)).await?)
    }

    /// The staging file of `ino`, created when this is its first writer;
    /// counts one more writer.
    fn attach_staging(&self, ino: u64, base: NodeInfo, new: bool) -> Result<Arc<Staging>, FsError> {
        let mut stagings = lock(&self.stagings);
        if let Some(slot) = stagings.get_mut(&ino) {
            slot.writers += 1;
            return Ok(slot.staging.clone());
        }
        let etag = base.etag.clone();
        let staging = Arc::new(self.new_staging(ino, base, new)?);
        if let Some(j) = &self.journal {
            j.record(&JournalOp::Stage {
                ino,
                path: staging.path().to_path_buf(),
                loaded: new,
                etag: Some(etag),
            });
            staging.set_journal(j.clone());
        }
        stagings.insert(
            ino,
            StagingSlot {
                staging: staging.clone(),
                writers: 1,
            },
        );
        Ok(staging)
    }

    /// A new staging file for `ino` in the staging directory; `loaded`
    /// says its content is known to be empty.
    pub(super) fn new_staging(
        &self,
        ino: u64,
        base: NodeInfo,
        loaded: bool,
    ) -> Result<Staging, FsError> {
        Staging::create(&self.staging_dir, ino, base, loaded).map_err(|source| FsError::Staging {
            path: self.config.staging_dir.display().to_string(),
            source,
        })
    }

    /// Create `name` in `parent` and open it with `flags`.
    pub async fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<Created, FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        if let Some(existing) = self.resolve(&path).await? {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::Exists(path));
            }
            if existing.kind == Kind::Dir {
                return Err(FsError::IsDir(path));
            }
            // The kernel thought it missing (another client made it): open it.
            let ino = self.child_ino(parent, name, existing.kind)?;
            let fh = self.open(ino, flags).await?;
            let (_, info) = self.info_of(ino).await?;
            return Ok(Created {
                entry: self.entry(ino, &info),
                fh,
            });
        }
        let info = self
            .put_new_node(&path, Kind::File, mode, caller, Bytes::new())
            .await?;
        let ino = self.child_ino(parent, name, Kind::File)?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if write {
            self.attach_staging(ino, info.clone(), true)?;
        }
        let kind = HandleKind::File {
            write,
            append: flags & libc::O_APPEND != 0,
        };
        let fh = lock(&self.handles).insert(ino, flags, kind);
        Ok(Created {
            entry: self.entry(ino, &info),
            fh,
        })
    }

    /// mknod: regular files only (what `create` does, without opening).
    pub async fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
            return Err(FsError::NotSupported("device nodes, FIFOs and sockets"));
        }
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        self.ensure_absent(&path).await?;
        let info = self
            .put_new_node(&path, Kind::File, mode, caller, Bytes::new())
            .await?;
        self.child_entry(parent, name, &info)
    }

    /// Read up to `size` bytes at `offset`.
    pub async fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let h = self.handle(fh)?;
        if h.ino != ino || !matches!(h.kind, HandleKind::File { .. }) {
            return Err(FsError::BadHandle(fh));
        }
        let staging = self.staging_of(ino);
        if let Some(st) = &staging
            && st.is_loaded()
        {
            return st.read(offset, size).await;
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let slot = lock(&self.readers).get(&fh).cloned();
        if let (Some(slot), None) = (slot, staging) {
            return self.read_prefetched(ino, &slot, offset, size).await;
        }
        let rec = self.node(ino)?;
        let key = self.keys.object(&rec.path);
        let range = ByteRange::new(offset, offset.saturating_add(u64::from(size)));
        match self.store.get(&key, Some(range)).await {
            Ok(object) => {
                let mut data = object
                    .collect()
                    .await
                    .map_err(|e| FsError::store(format!("read {key} {range}"), e))?;
                data.truncate(size as usize);
                Ok(data)
            }
            Err(StoreError::InvalidRange { .. }) => Ok(Bytes::new()),
            Err(e) => Err(FsError::store(format!("read {key} {range}"), e)),
        }
    }
}
