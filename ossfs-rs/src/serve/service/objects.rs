//! The object operations: HeadObject, GetObject, PutObject, DeleteObject,
//! DeleteObjects and CopyObject.
//!
//! GET and HEAD answer the same way, GET only adding the body: one
//! [`read_object`] makes the checks both make, in the same order
//! (`partNumber`, the object, its preconditions, the range), and one
//! `object_output!` fills the headers both send. s3s gives the two
//! operations separate input and output types whose fields have the same
//! names, which is why those two are macros over the field names
//! (`read_request!`, `object_output!`) and not generic functions. The
//! GET body is a [`ChunkStream`] of zero-copy slices of the stored segments.
//! Objects stored without a content type are reported with
//! [`DEFAULT_CONTENT_TYPE`], as S3 does.
//!
//! Imports: `super::{MemS3, OpResult}`, `super::{body, conditions, convert}`,
//! types of `crate::serve::memstore`; `s3s`. Nothing else of the crate: `serve`
//! is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::ops::Range as StdRange;
use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Response, S3Result, s3_error};

use super::body::{ChunkStream, receive_body};
use super::conditions::{Conditional, evaluate_conditions, resolve_range, write_condition};
use super::convert::{copy_source, etag, from_metadata, mem_err, timestamp, to_metadata};
use super::{MemS3, OpResult};
use crate::serve::memstore::{CopyDirective, MAX_LIST_KEYS, ObjectAttrs, StoredObject};

/// Content type reported for objects stored without one (as S3 does).
pub(super) const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// What a GET or a HEAD decides its answer by.
struct ReadRequest<'a> {
    bucket: &'a str,
    key: &'a str,
    part_number: Option<PartNumber>,
    range: Option<&'a Range>,
    if_match: Option<&'a ETagCondition>,
    if_unmodified_since: Option<&'a Timestamp>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
}

/// The [`ReadRequest`] of a `GetObjectInput` or a `HeadObjectInput`.
macro_rules! read_request {
    ($input:expr) => {
        ReadRequest {
            bucket: &$input.bucket,
            key: &$input.key,
            part_number: $input.part_number,
            range: $input.range.as_ref(),
            if_match: $input.if_match.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
        }
    };
}

/// A `GetObjectOutput` or `HeadObjectOutput` with the headers both send for
/// `$obj` (`$len` bytes, `$content_range` when ranged), plus the fields given.
macro_rules! object_output {
    ($output:ident { $($field:ident: $value:expr,)* }, $obj:expr, $len:expr, $content_range:expr) => {
        $output {
            accept_ranges: Some("bytes".to_owned()),
            $($field: $value,)*
            content_length: i64::try_from($len).ok(),
            content_range: $content_range,
            content_type: Some(
                $obj.content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            e_tag: Some(etag(&$obj.etag)),
            last_modified: Some(timestamp($obj.last_modified)),
            metadata: from_metadata(&$obj.metadata),
            parts_count: $obj.parts_count.and_then(|n| i32::try_from(n).ok()),
            ..Default::default()
        }
    };
}

/// The object a GET or HEAD reads and the range it asks for, after the
/// checks both make: `partNumber` is refused, the object must exist, its
/// preconditions must hold (`NotModified` is an error here, as in s3s),
/// and the range must be satisfiable.
fn read_object(
    s3: &MemS3,
    r: ReadRequest<'_>,
) -> S3Result<(Arc<StoredObject>, Option<StdRange<u64>>)> {
    if r.part_number.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "partNumber is not supported by this endpoint"
        ));
    }
    let obj = s3.store.get_object(r.bucket, r.key).map_err(mem_err)?;
    let cond = evaluate_conditions(
        &obj,
        r.if_match,
        r.if_unmodified_since,
        r.if_none_match,
        r.if_modified_since,
    )?;
    if let Conditional::NotModified = cond {
        return Err(s3_error!(NotModified));
    }
    let range = resolve_range(r.range, obj.size())?;
    Ok((obj, range))
}

pub(super) async fn head_object(s3: &MemS3, i: HeadObjectInput) -> OpResult<HeadObjectOutput> {
    let (obj, range) = read_object(s3, read_request!(i))?;
    let (len, content_range) = match &range {
        Some(r) => (
            r.end - r.start,
            Some(format!("bytes {}-{}/{}", r.start, r.end - 1, obj.size())),
        ),
        None => (obj.size(), None),
    };
    Ok(S3Response::new(object_output!(
        HeadObjectOutput {},
        obj,
        len,
        content_range
    )))
}

pub(super) async fn get_object(s3: &MemS3, i: GetObjectInput) -> OpResult<GetObjectOutput> {
    let (obj, range) = read_object(s3, read_request!(i))?;
    let size = obj.size();
    let (segments, content_range) = match &range {
        Some(r) => (
            obj.data.slice(r.clone()),
            Some(format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        ),
        None => (obj.data.segments().to_vec(), None),
    };
    let body = ChunkStream::new(segments);
    let len = body.remaining;
    Ok(S3Response::new(object_output!(
        GetObjectOutput {
            body: Some(StreamingBlob::new(body)),
        },
        obj,
        len,
        content_range
    )))
}

pub(super) async fn put_object(s3: &MemS3, i: PutObjectInput) -> OpResult<PutObjectOutput> {
    let cond = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    s3.check_bucket(&i.bucket)?;
    let body = receive_body(i.body, i.content_length, i.content_md5.as_deref()).await?;
    let size = body.len();
    let attrs = ObjectAttrs {
        content_type: i.content_type,
        metadata: to_metadata(i.metadata),
    };
    let obj = s3
        .store
        .put_object(&i.bucket, &i.key, body, attrs, &cond)
        .map_err(mem_err)?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&obj.etag)),
        size: i64::try_from(size).ok(),
        ..Default::default()
    }))
}

pub(super) async fn delete_object(
    s3: &MemS3,
    i: DeleteObjectInput,
) -> OpResult<DeleteObjectOutput> {
    s3.store.delete_object(&i.bucket, &i.key).map_err(mem_err)?;
    Ok(S3Response::with_status(
        DeleteObjectOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn delete_objects(
    s3: &MemS3,
    i: DeleteObjectsInput,
) -> OpResult<DeleteObjectsOutput> {
    if i.delete.objects.len() > MAX_LIST_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "a DeleteObjects request may name at most 1000 keys"
        ));
    }
    s3.check_bucket(&i.bucket)?;
    let quiet = i.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for o in i.delete.objects {
        match s3.store.delete_object(&i.bucket, &o.key) {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject {
                key: Some(o.key),
                ..Default::default()
            }),
            Err(e) => {
                let s3e = mem_err(e);
                errors.push(Error {
                    code: Some(s3e.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: s3e.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!deleted.is_empty()).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(super) async fn copy_object(s3: &MemS3, i: CopyObjectInput) -> OpResult<CopyObjectOutput> {
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let src = s3.store.get_object(src_bucket, src_key).map_err(mem_err)?;
    if let Some(c) = &i.copy_source_if_match {
        let ok = match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) => e.value() == src.etag,
        };
        if !ok {
            return Err(s3_error!(
                PreconditionFailed,
                "x-amz-copy-source-if-match does not match"
            ));
        }
    }
    if let Some(c) = &i.copy_source_if_none_match {
        let hit = match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) => e.value() == src.etag,
        };
        if hit {
            return Err(s3_error!(
                PreconditionFailed,
                "x-amz-copy-source-if-none-match matches"
            ));
        }
    }
    let directive = match i.metadata_directive.as_ref().map(MetadataDirective::as_str) {
        None | Some(MetadataDirective::COPY) => CopyDirective::Copy,
        Some(MetadataDirective::REPLACE) => CopyDirective::Replace(ObjectAttrs {
            content_type: i.content_type,
            metadata: to_metadata(i.metadata),
        }),
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown metadata directive {other:?}"
            ));
        }
    };
    let obj = s3
        .store
        .copy_object(src_bucket, src_key, &i.bucket, &i.key, directive)
        .map_err(mem_err)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&obj.etag)),
            last_modified: Some(timestamp(obj.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
