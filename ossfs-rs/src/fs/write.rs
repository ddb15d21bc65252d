//! Written data: write, truncate, flush, fsync, release, and the uploads.
//!
//! A writer works on the inode's staging file ([`super::staging`],
//! attached at open by `file.rs`); the first write or truncate fills it
//! from the object, unless the content is known to be empty (a new file,
//! O_TRUNC, truncate to 0). A file written in order from offset 0 has its
//! parts uploaded while it is written ([`crate::upload::stream`]). Flush
//! and fsync upload the copy when it is dirty and report a failed upload
//! with its store error's errno (`errno.rs`), keeping the data staged so a
//! later flush can retry; the last release uploads too and then removes
//! the staging file (or keeps it on disk when even that upload failed).
//! A truncate without an open writer stages privately, uploads and drops
//! the copy.
//!
//! A write the kernel resent to a restarted worker is served again, except
//! an append the dead worker had already applied (see
//! [`Fs::write_attempt`]).
//!
//! A staging file a restarted worker adopted with a dead worker's writes
//! is uploaded only as `adoption.rs` decides (never over another client's
//! newer version).
//!
//! Imports: `fs::{adoption, error, journal, meta, record, staging}` and the shared
//! state of `fs/mod.rs`; `upload` (whole and streamed uploads), `store`.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tracing::{debug, error, warn};

use super::error::FsError;
use super::journal::JournalOp;
use super::meta::{Kind, NodeInfo, PosixMeta, stored_mode};
use super::record::HandleKind;
use super::staging::{Staging, StagingState};
use super::{Fs, lock};
use crate::store::{PutOptions, PutResult};
use crate::upload::stream::{StreamSpec, StreamUpload};
use crate::upload::upload_file;

/// Whether a write request is its first attempt or one the kernel resent
/// to a new worker (FUSE_NOTIFY_RESEND) because the old one died before
/// answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Sent once so far.
    First,
    /// Resent: a dead worker may have applied it already.
    Resent,
}

/// What a dead worker applied of a resent append.
enum Applied {
    Whole,
    Prefix,
    Nothing,
}

impl Fs {
    /// Write `data` at `offset` (at the end for O_APPEND handles), a
    /// request's first attempt.
    pub async fn write(&self, ino: u64, fh: u64, offset: u64, data: Bytes) -> Result<u32, FsError> {
        self.write_attempt(ino, fh, offset, data, Attempt::First)
            .await
    }

    /// [`Fs::write`] for a request that may be a resent one (`attempt`).
    /// A write at an offset is the same whether it ran before or not; an
    /// append that a dead worker already applied must not be applied
    /// again: a resent append finds its bytes at the kernel's `offset`
    /// (the file size when it was first sent: the kernel serialises the
    /// writes of an inode and resends the same arguments) and is answered
    /// without writing them again. One the dead worker applied in part
    /// is completed in place.
    pub async fn write_attempt(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        data: Bytes,
        attempt: Attempt,
    ) -> Result<u32, FsError> {
        self.check_writable()?;
        let h = self.handle(fh)?;
        let append = match h.kind {
            HandleKind::File {
                write: true,
                append,
            } if h.ino == ino => append,
            _ => return Err(FsError::BadHandle(fh)),
        };
        self.check_restored(fh)?;
        let st = self.staging_of(ino).ok_or(FsError::BadHandle(fh))?;
        let len = u32::try_from(data.len())
            .map_err(|_| FsError::Invalid(format!("write of {} bytes", data.len())))?;
        let mut state = st.lock().await;
        self.ensure_loaded(ino, &st, &mut state).await?;
        let offset = match (append, attempt) {
            (false, _) => offset,
            (true, Attempt::First) => st.size(),
            (true, Attempt::Resent) => match Self::applied_before(&st, offset, &data, len).await? {
                Applied::Whole => {
                    debug!(
                        ino,
                        offset, len, "a resent append was applied before the restart"
                    );
                    return Ok(len);
                }
                Applied::Prefix => offset,
                Applied::Nothing => st.size(),
            },
        };
        let end = offset.saturating_add(u64::from(len));
        if end > self.max_file_size {
            return Err(FsError::TooLarge {
                size: end,
                max: self.max_file_size,
            });
        }
        st.write(&mut state, offset, data).await?;
        self.stream_ahead(ino, &st, &mut state).await;
        Ok(len)
    }

    /// How much of a resent append of `data`, first sent at `offset`, the
    /// staging file already holds: all of it, a beginning that ends the
    /// file (a write cut by the kill), or nothing. `len` is `data`'s length.
    async fn applied_before(
        st: &Staging,
        offset: u64,
        data: &Bytes,
        len: u32,
    ) -> Result<Applied, FsError> {
        let size = st.size();
        if data.is_empty() || offset >= size {
            return Ok(Applied::Nothing);
        }
        let held = st.read(offset, len).await?;
        if held.len() == data.len() && held == *data {
            return Ok(Applied::Whole);
        }
        let ends_file = offset.saturating_add(held.len() as u64) == size;
        if !held.is_empty() && ends_file && data.starts_with(&held) {
            return Ok(Applied::Prefix);
        }
        Ok(Applied::Nothing)
    }

    /// Send the parts a sequential writer has written past, creating the
    /// streamed upload once the first part is whole (see
    /// [`crate::upload::stream`]). Never fails the write: a stream that
    /// cannot go on is marked stale and the close uploads the whole file.
    async fn stream_ahead(&self, ino: u64, st: &Staging, state: &mut StagingState) {
        let Some(written) = state.written_in_order else {
            return;
        };
        if !self.upload.stream || state.stream_stale || state.unlinked {
            return;
        }
        if state.stream.is_none() {
            let part_size = self.upload.part_size(self.store.provider());
            if written < part_size.max(self.upload.multipart_size) {
                return;
            }
            let Ok(rec) = self.node(ino) else {
                return;
            };
            let mtime = Self::now();
            let (_, opts) = self.upload_meta(state, mtime);
            let spec = StreamSpec {
                key: self.keys.object(&rec.path),
                opts,
                mtime,
                part_size,
                parallel: self.upload.parallel_count,
            };
            match StreamUpload::begin(self.store.clone(), spec, self.budget.clone()).await {
                Ok(stream) => {
                    self.journal(JournalOp::Stream {
                        ino,
                        key: stream.key().to_string(),
                        upload_id: stream.upload_id().to_string(),
                    });
                    state.stream = Some(stream);
                }
                Err(e) => {
                    warn!(ino, error = %e, "cannot start a streamed upload; the file is uploaded at close");
                    state.stream_stale = true;
                    return;
                }
            }
        }
        if let Some(stream) = state.stream.as_mut()
            && let Err(e) = stream.advance(&st.file(), written).await
        {
            warn!(ino, key = stream.key(), error = %e, "a streamed part failed; the file is uploaded whole at close");
            state.stream_stale = true;
        }
    }

    /// Fill the staging file of `ino` from its object, once.
    pub(super) async fn ensure_loaded(
        &self,
        ino: u64,
        st: &Staging,
        state: &mut StagingState,
    ) -> Result<(), FsError> {
        if state.loaded {
            return Ok(());
        }
        let rec = self.node(ino)?;
        let key = self.keys.object(&rec.path);
        st.load(state, self.store.as_ref(), &key).await
    }

    /// close(2) of one descriptor: upload if this handle may have written.
    pub async fn flush(&self, ino: u64, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        if Self::is_writer(&h) {
            self.check_restored(fh)?;
            self.sync_staging(ino).await?;
        }
        Ok(())
    }

    /// fsync(2): upload staged data now.
    pub async fn fsync(&self, ino: u64, fh: u64) -> Result<(), FsError> {
        self.flush(ino, fh).await
    }

    /// The last close of a handle: upload what is left, drop the staging
    /// file when no writer remains.
    pub async fn release(&self, ino: u64, fh: u64) -> Result<(), FsError> {
        let h = lock(&self.handles)
            .remove(fh)
            .ok_or(FsError::BadHandle(fh))?;
        lock(&self.readers).remove(&fh);
        lock(&self.opened).keep_cache.remove(&fh);
        if !Self::is_writer(&h) {
            return Ok(());
        }
        self.release_lost(fh)?;
        let last = {
            let mut stagings = lock(&self.stagings);
            match stagings.get_mut(&ino) {
                Some(slot) => {
                    slot.writers = slot.writers.saturating_sub(1);
                    slot.writers == 0
                }
                None => false,
            }
        };
        if !last {
            return Ok(());
        }
        let result = self.sync_staging(ino).await;
        let removed = {
            let mut stagings = lock(&self.stagings);
            // A new writer may have attached while we uploaded: keep it then.
            if stagings.get(&ino).is_some_and(|slot| slot.writers == 0) {
                self.journal(JournalOp::Unstage { ino });
                stagings.remove(&ino)
            } else {
                None
            }
        };
        if let (Err(e), Some(slot)) = (&result, removed) {
            // Nobody will see this error (close already returned): keep the
            // only copy of the data where an operator can find it.
            slot.staging.keep_on_disk();
            error!(
                ino,
                path = %slot.staging.path().display(),
                error = %e,
                "the last close could not upload the file; its data is kept in the staging file"
            );
        }
        result
    }

    /// Upload every dirty staging file (at unmount); the first error is
    /// returned after trying them all.
    pub async fn flush_all(&self) -> Result<(), FsError> {
        let inos: Vec<u64> = lock(&self.stagings).keys().copied().collect();
        let mut first = None;
        for ino in inos {
            if let Err(e) = self.sync_staging(ino).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Upload the staging file of `ino` if it is dirty.
    pub(super) async fn sync_staging(&self, ino: u64) -> Result<(), FsError> {
        let Some(st) = self.staging_of(ino) else {
            return Ok(());
        };
        let mut state = st.lock().await;
        self.sync_locked(ino, &st, &mut state).await
    }

    /// [`Fs::sync_staging`] with the staging file `st` of `ino` locked
    /// already (a rename holds it until the node has its new name).
    pub(super) async fn sync_locked(
        &self,
        ino: u64,
        st: &Staging,
        state: &mut StagingState,
    ) -> Result<(), FsError> {
        if !state.dirty || state.unlinked {
            return Ok(());
        }
        let rec = self.node(ino)?;
        if !self.adopted_may_upload(&rec.path, st, state).await? {
            return Ok(());
        }
        let info = self.upload_staging(&rec.path, st, state).await?;
        self.cache_put(&rec.path, &info);
        Ok(())
    }

    /// Upload a staging file as the object at `path`; on success it is
    /// clean and its base describes the new object.
    async fn upload_staging(
        &self,
        path: &str,
        st: &Staging,
        state: &mut StagingState,
    ) -> Result<NodeInfo, FsError> {
        let key = self.keys.object(path);
        let size = st.size();
        let (put, posix, opts, mtime) = match self.finish_stream(&key, st, state).await {
            Some(done) => done,
            None => {
                let mtime = state.mtime.unwrap_or_else(Self::now);
                let (posix, opts) = self.upload_meta(state, mtime);
                debug!(key, size, "uploading staged file");
                let put = upload_file(
                    self.store.as_ref(),
                    &key,
                    st.file(),
                    size,
                    &opts,
                    &self.upload,
                    Some(&self.budget),
                )
                .await
                .map_err(|source| {
                    warn!(key, error = %source, "upload failed; the data stays staged");
                    FsError::Upload {
                        key: key.clone(),
                        source,
                    }
                })?;
                (put, posix, opts, mtime)
            }
        };
        let info = NodeInfo {
            kind: Kind::File,
            size,
            mtime,
            posix,
            etag: put.etag,
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            has_marker: false,
            native_symlink: false,
        };
        state.base = info.clone();
        st.mark_uploaded(state, &info.etag);
        state.mtime = None;
        state.stream_stale = false;
        self.content_gen.fetch_add(1, Ordering::AcqRel);
        Ok(info)
    }

    /// The metadata a staging file is uploaded with, for modification
    /// time `mtime`. Files written through the mount always carry all four
    /// entries (ossfs does the same); absent ones take what is shown now.
    fn upload_meta(
        &self,
        state: &StagingState,
        mtime: std::time::SystemTime,
    ) -> (PosixMeta, PutOptions) {
        let base = &state.base;
        let shown = self.policy.attr(0, base);
        let posix = PosixMeta {
            mode: Some(
                base.posix
                    .mode
                    .unwrap_or_else(|| stored_mode(Kind::File, self.policy.perm(base))),
            ),
            uid: Some(base.posix.uid.unwrap_or(shown.uid)),
            gid: Some(base.posix.gid.unwrap_or(shown.gid)),
            mtime: Some(mtime),
        };
        let opts = base.put_options(&posix);
        (posix, opts)
    }

    /// Complete the streamed upload of `st` as `key` when it still matches
    /// the file: same key, same metadata, no sent byte changed, no explicit
    /// mtime. Returns the upload with the metadata and mtime it stored;
    /// `None` when there was no usable stream (an unusable one is dropped,
    /// which aborts it) and the whole file must be uploaded.
    async fn finish_stream(
        &self,
        key: &str,
        st: &Staging,
        state: &mut StagingState,
    ) -> Option<(PutResult, PosixMeta, PutOptions, std::time::SystemTime)> {
        let stream = state.stream.take()?;
        let stale = std::mem::take(&mut state.stream_stale);
        self.journal(JournalOp::StreamEnd { ino: st.ino() });
        let (posix, opts) = self.upload_meta(state, stream.mtime());
        let usable = !stale
            && state.mtime.is_none()
            && stream.key() == key
            && stream.opts().content_type == opts.content_type
            && stream.opts().user_metadata == opts.user_metadata;
        if !usable {
            debug!(
                key,
                "the streamed upload no longer matches the file; uploading it whole"
            );
            return None;
        }
        let mtime = stream.mtime();
        match stream.finish(&st.file(), st.size()).await {
            Ok(put) => Some((put, posix, opts, mtime)),
            Err(e) => {
                warn!(key, error = %e, "the streamed upload failed; uploading the whole file");
                None
            }
        }
    }

    /// Truncate (or extend) the file `ino` to `size` bytes. With an open
    /// writer the staging file changes and is uploaded on its flush;
    /// otherwise the object is rewritten now (truncate to 0 is one empty
    /// PUT, any other size downloads, cuts and uploads the whole object).
    pub(super) async fn truncate(&self, ino: u64, size: u64) -> Result<NodeInfo, FsError> {
        let (rec, info) = self.info_of(ino).await?;
        match rec.kind {
            Kind::File => {}
            Kind::Dir => return Err(FsError::IsDir(rec.path)),
            Kind::Symlink => {
                return Err(FsError::Invalid(format!(
                    "truncate of symlink {}",
                    rec.path
                )));
            }
        }
        if size > self.max_file_size {
            return Err(FsError::TooLarge {
                size,
                max: self.max_file_size,
            });
        }
        if let Some(st) = self.staging_of(ino) {
            let mut state = st.lock().await;
            if size > 0 {
                self.ensure_loaded(ino, &st, &mut state).await?;
            }
            st.set_len(&mut state, size).await?;
            let mut shown = state.base.clone();
            shown.size = size;
            return Ok(shown);
        }
        // No writer: stage privately, upload, drop.
        let st = self.new_staging(ino, info, size == 0)?;
        let mut state = st.lock().await;
        if size > 0 {
            self.ensure_loaded(ino, &st, &mut state).await?;
        }
        st.set_len(&mut state, size).await?;
        let info = self.upload_staging(&rec.path, &st, &mut state).await?;
        self.cache_put(&rec.path, &info);
        Ok(info)
    }
}
