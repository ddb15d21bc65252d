//! Conditional requests and ranges: the preconditions of a GET or HEAD
//! (RFC 9110 order), the `Range` of a read, and the `If-Match` /
//! `If-None-Match: *` of a write, turned into the map's [`WriteCondition`].
//!
//! s3s parses these headers but leaves their meaning to the implementer;
//! the answers (`PreconditionFailed`, `NotModified`, `InvalidRange`) use
//! S3's codes so clients see what a real store would send.
//!
//! Imports: `crate::serve::memstore::{StoredObject, WriteCondition}`; `s3s`,
//! `time`. Nothing else of the crate: `serve` is an island whose only import
//! from the rest of the crate is `crate::store::Credentials`, in `server.rs`.

use std::ops::Range as StdRange;
use std::time::SystemTime;

use s3s::dto::{ETagCondition, Range, Timestamp};
use s3s::{S3Result, s3_error};

use crate::serve::memstore::{StoredObject, WriteCondition};

/// How a GET or HEAD's conditions came out.
pub(super) enum Conditional {
    Proceed,
    NotModified,
}

/// RFC 9110 section 13.2.2 order: If-Match, If-Unmodified-Since,
/// If-None-Match, If-Modified-Since (dates compared at second precision).
pub(super) fn evaluate_conditions(
    obj: &StoredObject,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<Conditional> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == obj.etag,
    };
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let modified = secs(obj.last_modified);
    let ts_secs = |t: &Timestamp| {
        let odt: time::OffsetDateTime = t.clone().into();
        u64::try_from(odt.unix_timestamp()).unwrap_or(0)
    };
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match does not match the object's ETag"
            ));
        }
    } else if let Some(t) = if_unmodified_since
        && modified > ts_secs(t)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "the object was modified since If-Unmodified-Since"
        ));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Ok(Conditional::NotModified);
        }
    } else if let Some(t) = if_modified_since
        && modified <= ts_secs(t)
    {
        return Ok(Conditional::NotModified);
    }
    Ok(Conditional::Proceed)
}

/// The byte range a `Range` header selects in an object of `size` bytes.
pub(super) fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<Option<StdRange<u64>>> {
    match range {
        None => Ok(None),
        Some(r) => r.check(size).map(Some).map_err(|_| {
            s3_error!(
                InvalidRange,
                "the range {} is not satisfiable for an object of {size} bytes",
                r.to_header_string()
            )
        }),
    }
}

/// The map's condition for a write with these `If-Match` / `If-None-Match`.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "If-Match and If-None-Match cannot be combined on a write"
        )),
        (Some(ETagCondition::Any), None) => Ok(WriteCondition::IfMatch(None)),
        (Some(ETagCondition::ETag(e)), None) => {
            Ok(WriteCondition::IfMatch(Some(e.value().to_owned())))
        }
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::IfNoneMatchAny),
        (None, Some(ETagCondition::ETag(_))) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on a write only supports '*'"
        )),
        (None, None) => Ok(WriteCondition::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    #[test]
    fn ranges_resolve_like_s3() {
        let r = |s: &str| Range::parse(s).unwrap();
        assert_eq!(resolve_range(Some(&r("bytes=0-9")), 5).unwrap(), Some(0..5));
        assert_eq!(resolve_range(Some(&r("bytes=-3")), 5).unwrap(), Some(2..5));
        assert_eq!(resolve_range(Some(&r("bytes=2-")), 5).unwrap(), Some(2..5));
        let e = resolve_range(Some(&r("bytes=5-")), 5).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidRange);
        assert_eq!(resolve_range(None, 5).unwrap(), None);
    }
}
