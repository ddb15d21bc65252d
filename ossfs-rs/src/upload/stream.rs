//! Uploading a file while it is being written: a multipart upload whose
//! parts go out as soon as the writer has written past them.
//!
//! Without it a large `cp` first writes the whole file to the staging file
//! and only then, at close, uploads it, so the copy takes the write time
//! plus the upload time. A [`StreamUpload`] overlaps the two: once the
//! bytes written sequentially from offset 0 cover a whole part, that part
//! is read back from the staging file and uploaded on a task of its own,
//! `parallel_count` parts at a time, fewer once parts are slow (the sibling
//! `part`'s `Lanes`; a writer that outruns the store waits
//! for the oldest part: bounded memory, backpressure instead of a growing
//! queue). Close then only uploads the last parts and completes.
//!
//! The staging file stays the source of truth, so every fallback is the
//! plain whole-file upload at close ([`super::whole`]):
//!
//! - a write or truncate below [`StreamUpload::frozen`] (bytes already sent)
//!   makes the stream stale; it is aborted and the close uploads the whole
//!   file;
//! - so does metadata that changed after the upload was created (chmod,
//!   chown, utimens, xattrs, a rename: the key differs), and any failed part;
//! - dropping an unfinished stream (unlink while open, errors, shutdown)
//!   aborts its tasks and the multipart upload, which was never visible.
//!
//! Nothing partial becomes visible: a multipart upload shows nothing until
//! it is completed, which happens only in [`StreamUpload::finish`], with
//! every part of the final content.
//!
//! The stored modification time of a streamed file is the time its upload
//! was created (object metadata is fixed then), not the time of its last
//! write.
//!
//! Imports: `memory`, `metrics` (the uploads-in-flight gauge), `store`, and
//! the siblings `error` and `part` (each part goes out through
//! `send_part`, as in the whole-file upload).

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::error::UploadError;
use super::part::{FilePart, Lanes, send_part};
use crate::memory::MemoryBudget;
use crate::metrics::UploadGuard;
use crate::store::{CompletedPart, ObjectStore, PutOptions, PutResult};

/// One part on its way.
type PartTask = JoinHandle<Result<(CompletedPart, std::time::Duration), UploadError>>;

/// A multipart upload fed while its file is written; see the module docs.
pub struct StreamUpload {
    store: Arc<dyn ObjectStore>,
    key: String,
    upload_id: String,
    /// The metadata the upload was created with.
    opts: PutOptions,
    mtime: SystemTime,
    part_size: u64,
    lanes: Lanes,
    budget: MemoryBudget,
    /// Parts `1..=started` are uploaded or on their way.
    started: u32,
    in_flight: VecDeque<PartTask>,
    done: Vec<CompletedPart>,
    finished: bool,
    _metric: UploadGuard,
}

impl std::fmt::Debug for StreamUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamUpload")
            .field("key", &self.key)
            .field("upload_id", &self.upload_id)
            .field("started", &self.started)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// What a stream is created with.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub key: String,
    pub opts: PutOptions,
    pub mtime: SystemTime,
    pub part_size: u64,
    pub parallel: usize,
}

impl StreamUpload {
    /// Create the multipart upload.
    pub async fn begin(
        store: Arc<dyn ObjectStore>,
        spec: StreamSpec,
        budget: MemoryBudget,
    ) -> Result<Self, UploadError> {
        let upload_id = store.create_multipart(&spec.key, &spec.opts).await?;
        debug!(
            key = spec.key,
            upload_id, "streaming the upload while the file is written"
        );
        Ok(Self {
            store,
            key: spec.key,
            upload_id,
            opts: spec.opts,
            mtime: spec.mtime,
            part_size: spec.part_size.max(1),
            lanes: Lanes::new(spec.parallel),
            budget,
            started: 0,
            in_flight: VecDeque::new(),
            done: Vec::new(),
            finished: false,
            _metric: crate::metrics::METRICS.upload(),
        })
    }

    /// The object key this stream uploads.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The multipart upload id (journaled, so a next worker can abort it).
    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// The metadata the upload carries.
    pub fn opts(&self) -> &PutOptions {
        &self.opts
    }

    /// The modification time stored with the object.
    pub fn mtime(&self) -> SystemTime {
        self.mtime
    }

    /// Bytes `[0, frozen)` are sent (or being sent): they must not change.
    pub fn frozen(&self) -> u64 {
        u64::from(self.started) * self.part_size
    }

    /// Start every whole part of `[frozen, written)`; waits for the oldest
    /// part whenever the upload's limit of parts is in flight.
    pub async fn advance(&mut self, file: &Arc<File>, written: u64) -> Result<(), UploadError> {
        while self.frozen() + self.part_size <= written {
            self.start_part(file, self.part_size).await?;
        }
        Ok(())
    }

    async fn start_part(&mut self, file: &Arc<File>, len: u64) -> Result<(), UploadError> {
        while self.in_flight.len() >= self.lanes.limit() {
            self.settle_oldest().await?;
        }
        let number = self.started + 1;
        let offset = self.frozen();
        let (store, key, upload_id) =
            (self.store.clone(), self.key.clone(), self.upload_id.clone());
        let budget = self.budget.clone();
        let part = FilePart {
            file: file.clone(),
            number,
            offset,
            len,
        };
        self.in_flight.push_back(tokio::spawn(async move {
            send_part(store.as_ref(), &key, &upload_id, part, Some(&budget)).await
        }));
        self.started = number;
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<(), UploadError> {
        if let Some(task) = self.in_flight.pop_front() {
            let (part, took) = task
                .await
                .map_err(|e| UploadError::Io(std::io::Error::other(e)))??;
            self.lanes.part_took(&self.key, took);
            self.done.push(part);
        }
        Ok(())
    }

    /// Send the rest of the file's `size` bytes, wait for every part and
    /// complete the upload: the object appears, whole.
    pub async fn finish(mut self, file: &Arc<File>, size: u64) -> Result<PutResult, UploadError> {
        self.advance(file, size).await?;
        let rest = size.saturating_sub(self.frozen());
        if rest > 0 || self.started == 0 {
            self.start_part(file, rest).await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number);
        let put = self
            .store
            .complete_multipart(&self.key, &self.upload_id, &parts)
            .await?;
        self.finished = true;
        Ok(put)
    }
}

impl Drop for StreamUpload {
    fn drop(&mut self) {
        for task in &self.in_flight {
            task.abort();
        }
        if self.finished {
            return;
        }
        let (store, key, upload_id) =
            (self.store.clone(), self.key.clone(), self.upload_id.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = store.abort_multipart(&key, &upload_id).await {
                        warn!(key, upload_id, error = %e, "could not abort a streamed upload; the bucket's lifecycle rule will remove it");
                    }
                });
            }
            Err(_) => warn!(
                key = self.key,
                upload_id = self.upload_id,
                "a streamed upload was left unfinished (no runtime to abort it)"
            ),
        }
    }
}

/// Abort the multipart upload `upload_id` of `key`, which a dead worker
/// was streaming (its file is uploaded whole by the next worker).
pub async fn abort_orphan(store: &dyn ObjectStore, key: &str, upload_id: &str) {
    match store.abort_multipart(key, upload_id).await {
        Ok(()) => debug!(
            key,
            upload_id, "aborted the streamed upload of a dead worker"
        ),
        Err(e) => {
            debug!(key, upload_id, error = %e, "streamed upload of a dead worker not aborted (finished or gone)")
        }
    }
}
