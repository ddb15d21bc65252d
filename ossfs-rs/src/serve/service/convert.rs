//! Conversions between s3s's types and the map's: [`mem_err`] (a
//! [`MemError`] as the S3 error with the same code), times, ETags,
//! user metadata, and the source of a copy.
//!
//! Each [`MemError`] becomes the S3 error of the same name, with the map's
//! message, so a client sees the code a real store would send.
//!
//! Imports: `crate::serve::memstore::MemError`; `s3s`. Nothing else of the
//! crate: `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use s3s::dto::{CopySource, ETag, Metadata, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::serve::memstore::MemError;

/// The S3 error with the code of `e`, and its message.
pub(super) fn mem_err(e: MemError) -> S3Error {
    let code = match &e {
        MemError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        MemError::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
        MemError::BucketAlreadyOwnedByYou(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
        MemError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
        MemError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
        MemError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        MemError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        MemError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        MemError::InvalidRange { .. } => S3ErrorCode::InvalidRange,
        MemError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        MemError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        MemError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
    };
    S3Error::with_message(code, e.to_string())
}

pub(super) fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

pub(super) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

pub(super) fn to_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn from_metadata(m: &BTreeMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The bucket and key of a copy's source (no versions, no access points).
pub(super) fn copy_source(src: &CopySource) -> S3Result<(&str, &str)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } => Ok((bucket, key)),
        CopySource::Bucket { .. } => Err(s3_error!(
            NotImplemented,
            "this endpoint keeps no versions: copy without versionId"
        )),
        _ => Err(s3_error!(
            NotImplemented,
            "access point and outpost copy sources are not supported"
        )),
    }
}
