//! Uploading a staged file at flush, fsync or close: one PUT when small, a
//! multipart upload when large.
//!
//! Writers stage their data in a local file (see `fs::staging`); on flush,
//! fsync or close the whole file is uploaded here. Objects are immutable, so
//! any change, even one byte in the middle, rewrites the whole object; this
//! module only decides *how* to send it (the plan of the sibling `part`):
//!
//! - below `multipart_size` bytes: one PUT (the body is read into memory,
//!   which `multipart_size` bounds, after it got room in the memory budget);
//! - from `multipart_size` up: a multipart upload with parts of
//!   `multipart_size` (raised to the dialect's minimum part size), up to
//!   `parallel_count` parts in flight (fewer once parts are slow: the
//!   sibling `part`'s `Lanes`), each read from the staging file when its
//!   turn comes (`part::send_part`).
//!
//! Nothing partial ever becomes visible: a PUT is atomic, and a multipart
//! upload is invisible until completed; when any part fails the upload is
//! aborted and the error returned, and the old object stays as it was. A
//! file that would need more than the dialect's 10000 parts is refused up
//! front, before any request.
//!
//! Cancel safety: dropping the future of [`upload_file`] leaves at most an
//! unfinished multipart upload behind (invisible, and removed by the
//! bucket's lifecycle rule or `abort`); the object itself is unchanged.
//!
//! Imports: `memory`, `metrics` (the uploads-in-flight gauge), `store`, and
//! the siblings `error` and `part`.

use std::fs::File;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tracing::debug;

use super::error::UploadError;
use super::part::{
    FilePart, Lanes, UploadConfig, UploadPlan, abort_failed, read_range, reserve, send_part,
};
use crate::memory::MemoryBudget;
use crate::store::{CompletedPart, ObjectStore, PutOptions, PutResult};

/// Upload the first `size` bytes of `file` as `key` with `opts`; part
/// buffers wait for room in `budget` (the global memory budget).
pub async fn upload_file(
    store: &dyn ObjectStore,
    key: &str,
    file: Arc<File>,
    size: u64,
    opts: &PutOptions,
    config: &UploadConfig,
    budget: Option<&MemoryBudget>,
) -> Result<PutResult, UploadError> {
    let _in_flight = crate::metrics::METRICS.upload();
    match config.plan(size, store.provider())? {
        UploadPlan::Single => {
            let _memory = reserve(budget, size).await;
            let body = read_range(file, 0, size).await?;
            Ok(store.put(key, body, opts).await?)
        }
        UploadPlan::Multipart { part_size, parts } => {
            debug!(key, size, part_size, parts, "multipart upload");
            let upload_id = store.create_multipart(key, opts).await?;
            let result = async {
                let parts = upload_parts(
                    store, key, &upload_id, file, size, part_size, parts, config, budget,
                )
                .await?;
                Ok(store.complete_multipart(key, &upload_id, &parts).await?)
            }
            .await;
            if result.is_err() {
                abort_failed(store, key, &upload_id).await;
            }
            result
        }
    }
}

/// Upload every part, up to `parallel_count` at a time (fewer once parts
/// are slow); returns them in order.
#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    store: &dyn ObjectStore,
    key: &str,
    upload_id: &str,
    file: Arc<File>,
    size: u64,
    part_size: u64,
    parts: u32,
    config: &UploadConfig,
    budget: Option<&MemoryBudget>,
) -> Result<Vec<CompletedPart>, UploadError> {
    let mut lanes = Lanes::new(config.parallel_count);
    let mut in_flight = FuturesUnordered::new();
    let mut done: Vec<CompletedPart> = Vec::with_capacity(parts as usize);
    let mut next = 1u32;
    while next <= parts || !in_flight.is_empty() {
        while next <= parts && in_flight.len() < lanes.limit() {
            let start = u64::from(next - 1) * part_size;
            let part = FilePart {
                file: file.clone(),
                number: next,
                offset: start,
                len: part_size.min(size - start),
            };
            in_flight.push(send_part(store, key, upload_id, part, budget));
            next += 1;
        }
        if let Some(finished) = in_flight.next().await {
            let (part, took) = finished?;
            lanes.part_took(key, took);
            done.push(part);
        }
    }
    done.sort_by_key(|p| p.part_number);
    Ok(done)
}
