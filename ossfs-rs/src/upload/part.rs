//! The pieces every multipart upload shares: how a file of a given size is
//! cut into parts (the [`UploadConfig`] and its [`UploadPlan`]), and the
//! part-upload step itself ([`send_part`]), used by the whole-file upload
//! at close and by the upload streamed while a file is written.
//!
//! Part sizes follow the dialect: `multipart_size` is raised to the
//! dialect's minimum part size and lowered to its maximum, and a file that
//! would need more than the dialect's parts (10000) is refused up front
//! with [`UploadError::TooManyParts`] (EFBIG), before any request;
//! [`max_file_size`] gives that limit so writes can be refused early too.
//!
//! A part is read from the staging file with `pread` only when its turn
//! comes, on the blocking pool, after its buffer got room in the global
//! memory budget ([`crate::memory`]), shared with read-ahead and the block
//! cache; so memory stays at `parallel_count * part_size`.
//!
//! Parts in flight adapt to the link ([`Lanes`]): an upload starts with
//! `parallel_count` parts at a time and halves that (down to one) for the
//! rest of the upload each time a part takes longer than [`SLOW_PART`].
//! On a link that cannot carry `parallel_count` parts of this size in
//! that time, parts in flight share it, so each crawls; fewer parts each
//! finish sooner, hold memory for less time, and a broken connection
//! costs less to send again.
//!
//! Imports: `memory` (the budget), `store` (the part primitives, the
//! dialect's limits) and the sibling `error`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::error::UploadError;
use crate::memory::{MemoryBudget, Reservation};
use crate::store::{CompletedPart, ObjectStore, Provider};

/// How staged files are uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// Files of this size and more go through a multipart upload, in parts
    /// of this size (raised to the dialect's minimum).
    pub multipart_size: u64,
    /// How many parts are uploaded at the same time.
    pub parallel_count: usize,
    /// Stream large files' parts while they are written (the `stream`
    /// module of this folder).
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

/// A part slower than this halves the parts in flight of its upload.
pub const SLOW_PART: Duration = Duration::from_secs(20);

/// How many parts one upload keeps in flight; see the module docs.
#[derive(Debug)]
pub(super) struct Lanes {
    limit: usize,
}

impl Lanes {
    pub fn new(parallel_count: usize) -> Self {
        Self {
            limit: parallel_count.max(1),
        }
    }

    /// Parts that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A part of `key` took `took`: fewer parts from now on if it was slow.
    pub fn part_took(&mut self, key: &str, took: Duration) {
        if took > SLOW_PART && self.limit > 1 {
            self.limit /= 2;
            info!(
                key,
                seconds = took.as_secs(),
                parts_in_flight = self.limit,
                "a part was slow: fewer parts in flight for the rest of this upload"
            );
        }
    }
}

/// Read `len` bytes at `offset` of `file` on the blocking pool.
pub(super) async fn read_range(file: Arc<File>, offset: u64, len: u64) -> io::Result<Bytes> {
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
pub(super) async fn reserve(budget: Option<&MemoryBudget>, bytes: u64) -> Reservation {
    match budget {
        Some(b) => b.reserve(bytes).await,
        None => Reservation::none(),
    }
}

/// Part `number` of an upload: `len` bytes at `offset` of `file`.
pub(super) struct FilePart {
    pub file: Arc<File>,
    pub number: u32,
    pub offset: u64,
    pub len: u64,
}

/// Read `part` from its file (once its buffer has room in `budget`) and
/// upload it as a part of `upload_id`; also says how long the upload
/// itself took (for [`Lanes`]).
pub(super) async fn send_part(
    store: &dyn ObjectStore,
    key: &str,
    upload_id: &str,
    part: FilePart,
    budget: Option<&MemoryBudget>,
) -> Result<(CompletedPart, Duration), UploadError> {
    let _memory = reserve(budget, part.len).await;
    let body = read_range(part.file, part.offset, part.len).await?;
    let started = Instant::now();
    let etag = store.upload_part(key, upload_id, part.number, body).await?;
    let part = CompletedPart {
        part_number: part.number,
        etag,
    };
    Ok((part, started.elapsed()))
}

/// Abort the multipart upload `upload_id` of `key` after a failure. A
/// failed abort is only logged: the upload was never visible, and the
/// bucket's lifecycle rule removes it.
pub(super) async fn abort_failed(store: &dyn ObjectStore, key: &str, upload_id: &str) {
    if let Err(e) = store.abort_multipart(key, upload_id).await {
        warn!(key, error = %e, "could not abort the failed multipart upload");
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn slow_parts_halve_the_parts_in_flight_down_to_one() {
        let mut lanes = Lanes::new(5);
        lanes.part_took("k", SLOW_PART / 2);
        assert_eq!(lanes.limit(), 5, "a part in time changes nothing");
        lanes.part_took("k", SLOW_PART * 2);
        assert_eq!(lanes.limit(), 2);
        lanes.part_took("k", SLOW_PART * 2);
        assert_eq!(lanes.limit(), 1);
        lanes.part_took("k", SLOW_PART * 2);
        assert_eq!(lanes.limit(), 1, "never below one");
        assert_eq!(Lanes::new(0).limit(), 1);
    }

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
