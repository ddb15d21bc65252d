//! Uploading a staged file to the store: one PUT when small, a multipart
//! upload when large.
//!
//! Writers stage their data in a local file (see `fs::staging`); on flush,
//! fsync or close the whole file is uploaded here. Objects are immutable, so
//! any change, even one byte in the middle, rewrites the whole object; this
//! module only decides *how* to send it:
//!
//! - below `multipart_size` bytes: one PUT (the body is read into memory,
//!   which `multipart_size` bounds);
//! - from `multipart_size` up: a multipart upload with parts of
//!   `multipart_size` (raised to the dialect's minimum part size), up to
//!   `parallel_count` parts in flight, each read from the staging file with
//!   `pread` when its turn comes, so memory stays at
//!   `parallel_count * part_size`; each part buffer (and a single PUT's
//!   body) also waits for room in the global memory budget
//!   ([`crate::memory`]), shared with read-ahead and the block cache.
//!
//! Nothing partial ever becomes visible: a PUT is atomic, and a multipart
//! upload is invisible until completed; when any part fails the upload is
//! aborted and the error returned, and the old object stays as it was. A
//! file that would need more than the dialect's 10000 parts is refused up
//! front with [`UploadError::TooManyParts`] (EFBIG), before any request.
//! [`max_file_size`] gives that limit so writes can be refused early too.
//!
//! Cancel safety: dropping the future of [`upload_file`] leaves at most an
//! unfinished multipart upload behind (invisible, and removed by the
//! bucket's lifecycle rule or `abort`); the object itself is unchanged.

pub mod stream;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

use crate::memory::{MemoryBudget, Reservation};
use crate::store::{CompletedPart, ObjectStore, Provider, PutOptions, PutResult, StoreError};

/// How staged files are uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// Files of this size and more go through a multipart upload, in parts
    /// of this size (raised to the dialect's minimum).
    pub multipart_size: u64,
    /// How many parts are uploaded at the same time.
    pub parallel_count: usize,
    /// Stream large files' parts while they are written
    /// ([`crate::upload::stream`]).
    pub stream: bool,
}

impl Default for UploadConfig {
    /// ossfs' defaults: 10 MiB parts, 5 in parallel.
    fn default() -> Self {
        Self {
            multipart_size: 10 * 1024 * 1024,
            parallel_count: 5,
            stream: true,
        }
    }
}

/// Why an upload failed. The staged data is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file is larger than `max_parts` parts of `part_size` bytes.
    #[error(
        "{size} bytes would need more than {max_parts} parts of {part_size} bytes; raise multipart_size"
    )]
    TooManyParts {
        size: u64,
        part_size: u64,
        max_parts: u32,
    },

    /// Reading the staging file failed.
    #[error("reading the staging file: {0}")]
    Io(#[from] io::Error),

    /// The store refused or failed a request.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a file of a given size is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadPlan {
    /// One PUT.
    Single,
    /// A multipart upload of `parts` parts of `part_size` bytes (the last one shorter).
    Multipart { part_size: u64, parts: u32 },
}

impl UploadConfig {
    /// The part size actually used: `multipart_size` clamped to what the dialect allows.
    pub fn part_size(&self, provider: Provider) -> u64 {
        self.multipart_size
            .max(provider.min_part_size())
            .min(provider.max_part_size())
    }

    /// The plan for `size` bytes, or `TooManyParts`.
    pub fn plan(&self, size: u64, provider: Provider) -> Result<UploadPlan, UploadError> {
        if size < self.multipart_size.max(1) {
            return Ok(UploadPlan::Single);
        }
        let part_size = self.part_size(provider);
        let parts = size.div_ceil(part_size);
        let max_parts = provider.max_parts();
        if parts > u64::from(max_parts) {
            return Err(UploadError::TooManyParts {
                size,
                part_size,
                max_parts,
            });
        }
        Ok(UploadPlan::Multipart {
            part_size,
            // parts <= max_parts, which is a u32.
            parts: parts as u32,
        })
    }
}

/// The largest file this configuration can upload.
pub fn max_file_size(config: &UploadConfig, provider: Provider) -> u64 {
    config
        .part_size(provider)
        .saturating_mul(u64::from(provider.max_parts()))
}

/// Read `len` bytes at `offset` of `file` on the blocking pool.
async fn read_range(file: Arc<File>, offset: u64, len: u64) -> io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(io::Error::other)?
}

/// Hold `bytes` of `budget` (if any) while a part buffer exists.
async fn reserve(budget: Option<&MemoryBudget>, bytes: u64) -> Reservation {
    match budget {
        Some(b) => b.reserve(bytes).await,
        None => Reservation::none(),
    }
}

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
            let result = upload_parts(
                store, key, &upload_id, file, size, part_size, parts, config, budget,
            )
            .await;
            let parts = match result {
                Ok(parts) => parts,
                Err(e) => {
                    if let Err(abort) = store.abort_multipart(key, &upload_id).await {
                        warn!(key, error = %abort, "could not abort the failed multipart upload");
                    }
                    return Err(e);
                }
            };
            match store.complete_multipart(key, &upload_id, &parts).await {
                Ok(put) => Ok(put),
                Err(e) => {
                    if let Err(abort) = store.abort_multipart(key, &upload_id).await {
                        warn!(key, error = %abort, "could not abort the failed multipart upload");
                    }
                    Err(e.into())
                }
            }
        }
    }
}

/// Upload every part, `parallel_count` at a time; returns them in order.
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
    let mut done: Vec<CompletedPart> = futures::stream::iter(1..=parts)
        .map(|number| {
            let start = u64::from(number - 1) * part_size;
            let part = FilePart {
                file: file.clone(),
                number,
                offset: start,
                len: part_size.min(size - start),
            };
            send_part(store, key, upload_id, part, budget)
        })
        .buffer_unordered(config.parallel_count.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|p| p.part_number);
    Ok(done)
}

/// Part `number` of an upload: `len` bytes at `offset` of `file`.
pub(crate) struct FilePart {
    pub file: Arc<File>,
    pub number: u32,
    pub offset: u64,
    pub len: u64,
}

/// Read `part` from its file (once its buffer has room in `budget`) and
/// upload it as a part of `upload_id`.
pub(crate) async fn send_part(
    store: &dyn ObjectStore,
    key: &str,
    upload_id: &str,
    part: FilePart,
    budget: Option<&MemoryBudget>,
) -> Result<CompletedPart, UploadError> {
    let _memory = reserve(budget, part.len).await;
    let body = read_range(part.file, part.offset, part.len).await?;
    let etag = store.upload_part(key, upload_id, part.number, body).await?;
    Ok(CompletedPart {
        part_number: part.number,
        etag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn small_files_are_one_put() {
        let c = UploadConfig {
            multipart_size: 10 * MIB,
            parallel_count: 4,
            stream: true,
        };
        assert_eq!(c.plan(0, Provider::S3).ok(), Some(UploadPlan::Single));
        assert_eq!(
            c.plan(10 * MIB - 1, Provider::S3).ok(),
            Some(UploadPlan::Single)
        );
        assert_eq!(
            c.plan(10 * MIB, Provider::S3).ok(),
            Some(UploadPlan::Multipart {
                part_size: 10 * MIB,
                parts: 1
            })
        );
        assert_eq!(
            c.plan(25 * MIB, Provider::Oss).ok(),
            Some(UploadPlan::Multipart {
                part_size: 10 * MIB,
                parts: 3
            })
        );
    }

    #[test]
    fn part_size_is_raised_to_the_dialect_minimum() {
        let c = UploadConfig {
            multipart_size: MIB,
            parallel_count: 4,
            stream: true,
        };
        assert_eq!(c.part_size(Provider::S3), 5 * MIB);
        assert_eq!(c.part_size(Provider::Cos), MIB);
        assert_eq!(
            c.plan(11 * MIB, Provider::S3).ok(),
            Some(UploadPlan::Multipart {
                part_size: 5 * MIB,
                parts: 3
            })
        );
    }

    #[test]
    fn more_than_ten_thousand_parts_is_refused() {
        let c = UploadConfig {
            multipart_size: 5 * MIB,
            parallel_count: 4,
            stream: true,
        };
        let max = max_file_size(&c, Provider::S3);
        assert_eq!(max, 5 * MIB * 10_000);
        assert!(c.plan(max, Provider::S3).is_ok());
        assert!(matches!(
            c.plan(max + 1, Provider::S3),
            Err(UploadError::TooManyParts {
                max_parts: 10_000,
                ..
            })
        ));
    }
}
