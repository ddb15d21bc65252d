//! The multipart operations: CreateMultipartUpload, UploadPart,
//! UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload and
//! ListParts.
//!
//! The map keeps the parts and checks their order, ETags and sizes; this
//! file checks what s3s leaves to the implementer (part numbers, the part
//! list's XML, `x-amz-copy-source-range`, `Content-MD5`). Hashing the range
//! of a part copy is the slow step, so it runs on a blocking thread.
//!
//! Imports: `super::{MemS3, OpResult}`, `super::{body, conditions, convert}`,
//! types of `crate::serve::memstore`; `s3s`, `tokio`. Nothing else of the
//! crate: `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use s3s::dto::*;
use s3s::{S3Error, S3Response, S3Result, s3_error};

use super::body::receive_body;
use super::conditions::write_condition;
use super::convert::{copy_source, etag, mem_err, timestamp, to_metadata};
use super::{MemS3, OpResult};
use crate::serve::memstore::{MAX_LIST_KEYS, ObjectAttrs};

/// A request's part number as the map's (the map checks its range).
fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )
    })
}

pub(super) async fn create_multipart_upload(
    s3: &MemS3,
    i: CreateMultipartUploadInput,
) -> OpResult<CreateMultipartUploadOutput> {
    let attrs = ObjectAttrs {
        content_type: i.content_type,
        metadata: to_metadata(i.metadata),
    };
    let upload_id = s3
        .store
        .create_upload(&i.bucket, &i.key, attrs)
        .map_err(mem_err)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(upload_id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(s3: &MemS3, i: UploadPartInput) -> OpResult<UploadPartOutput> {
    let n = part_number(i.part_number)?;
    s3.check_bucket(&i.bucket)?;
    let body = receive_body(i.body, i.content_length, i.content_md5.as_deref()).await?;
    let e = s3
        .store
        .upload_part(&i.bucket, &i.key, &i.upload_id, n, body)
        .map_err(mem_err)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&e)),
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    s3: &MemS3,
    i: UploadPartCopyInput,
) -> OpResult<UploadPartCopyOutput> {
    let n = part_number(i.part_number)?;
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let range = match i.copy_source_range.as_deref() {
        None => None,
        Some(r) => match Range::parse(r) {
            Ok(Range::Int {
                first,
                last: Some(last),
            }) => Some(first..last + 1),
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-copy-source-range must be bytes=first-last, got {r:?}"
                ));
            }
        },
    };
    // Hashing the copied range is the slow part: keep it off the runtime.
    let store = s3.store.clone();
    let (src_bucket, src_key) = (src_bucket.to_owned(), src_key.to_owned());
    let (bucket, key, upload_id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
    let (e, at) = tokio::task::spawn_blocking(move || {
        store.upload_part_copy(&bucket, &key, &upload_id, n, &src_bucket, &src_key, range)
    })
    .await
    .map_err(S3Error::internal_error)?
    .map_err(mem_err)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&e)),
            last_modified: Some(timestamp(at)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload(
    s3: &MemS3,
    i: CompleteMultipartUploadInput,
) -> OpResult<CompleteMultipartUploadOutput> {
    let cond = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    let mut parts = Vec::new();
    for p in i.multipart_upload.and_then(|m| m.parts).unwrap_or_default() {
        let (Some(n), Some(e)) = (p.part_number, p.e_tag) else {
            return Err(s3_error!(
                MalformedXML,
                "every part needs a PartNumber and an ETag"
            ));
        };
        parts.push((part_number(n)?, e.value().to_owned()));
    }
    if parts.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part"
        ));
    }
    let obj = s3
        .store
        .complete_upload(&i.bucket, &i.key, &i.upload_id, &parts, &cond)
        .map_err(mem_err)?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        bucket: Some(i.bucket),
        key: Some(i.key),
        e_tag: Some(etag(&obj.etag)),
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    s3: &MemS3,
    i: AbortMultipartUploadInput,
) -> OpResult<AbortMultipartUploadOutput> {
    s3.store
        .abort_upload(&i.bucket, &i.key, &i.upload_id)
        .map_err(mem_err)?;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(s3: &MemS3, i: ListPartsInput) -> OpResult<ListPartsOutput> {
    let marker = u32::try_from(i.part_number_marker.unwrap_or(0))
        .map_err(|_| s3_error!(InvalidArgument, "part-number-marker must be non-negative"))?;
    let max = match i.max_parts {
        None => MAX_LIST_KEYS,
        Some(n) => usize::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "max-parts must be non-negative"))?
            .min(MAX_LIST_KEYS),
    };
    let page = s3
        .store
        .list_parts(&i.bucket, &i.key, &i.upload_id, marker, max)
        .map_err(mem_err)?;
    let parts: Parts = page
        .parts
        .iter()
        .map(|p| Part {
            e_tag: Some(etag(&p.etag)),
            last_modified: Some(timestamp(p.last_modified)),
            part_number: i32::try_from(p.part_number).ok(),
            size: i64::try_from(p.size).ok(),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        is_truncated: Some(page.is_truncated),
        max_parts: i32::try_from(max).ok(),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: page.next_marker.and_then(|n| i32::try_from(n).ok()),
        parts: (!parts.is_empty()).then_some(parts),
        ..Default::default()
    }))
}
