//! Why an upload failed: [`UploadError`], shared by the whole-file and the
//! streamed uploads (a copy fails with the store's own error). The
//! filesystem maps it to an errno; the staged data is untouched in every
//! case.
//!
//! Imports: `store` (the store's error).

use std::io;

use crate::store::StoreError;

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
