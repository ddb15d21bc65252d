//! Why an operation on the object map failed: [`MemError`] and [`MemResult`].
//!
//! One variant per S3 error code the map can produce, so the service maps
//! each to its S3 code one to one and clients see what a real store sends.
//! It is its own file so every part of the map can name it without
//! depending on the others.
//!
//! Imports: only the `thiserror` derive. Nothing else of the crate: `serve` is
//! an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

/// Why an operation on the map failed; the service maps each to an S3 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    #[error("the bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("the key {0:?} does not exist")]
    NoSuchKey(String),
    #[error("the bucket {0:?} already exists")]
    BucketAlreadyOwnedByYou(String),
    #[error("the bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("the upload {0:?} does not exist (it was completed, aborted or never started)")]
    NoSuchUpload(String),
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(u32),
    #[error("the parts are not in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes; every part but the last must be at least {min} bytes")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    #[error("the range is not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("a precondition does not hold")]
    PreconditionFailed,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
}

/// A result of a map operation.
pub type MemResult<T> = Result<T, MemError>;
