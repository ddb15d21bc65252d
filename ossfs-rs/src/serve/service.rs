//! The S3 operations of the embedded endpoint: the `s3s::S3` trait over
//! the in-memory [`MemStore`].
//!
//! `s3s` owns the wire (routing, SigV4 verification, XML, headers); this
//! file only translates its typed inputs into map operations and back, and
//! adds what s3s leaves to the implementer: `Content-MD5` checks, range and
//! conditional-request handling, `encoding-type=url`, list tokens, and the
//! region check a real endpoint makes. Errors use S3's codes so clients see
//! exactly what a real store would send.
//!
//! GET bodies are streamed as zero-copy slices of the stored segments in
//! chunks of at most [`GET_CHUNK`] bytes, with an exact length so hyper sends
//! `Content-Length`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range as StdRange;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, StdError, s3_error};

use super::memstore::{
    CopyDirective, HashedBody, ListOutcome, ListQuery, MAX_LIST_KEYS, MemError, MemStore,
    ObjectAttrs, StoredObject, WriteCondition,
};

/// Largest chunk a GET body is cut into.
pub const GET_CHUNK: usize = 1 << 20;

/// Content type reported for objects stored without one (as S3 does).
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// The `s3s` service over the in-memory map.
#[derive(Debug, Clone)]
pub struct MemS3 {
    store: Arc<MemStore>,
    region: String,
}

impl MemS3 {
    /// Serve `store`, accepting requests signed for `region`.
    pub fn new(store: Arc<MemStore>, region: impl Into<String>) -> Self {
        Self {
            store,
            region: region.into(),
        }
    }

    /// A request signed for another region is refused the way S3 does, so a
    /// client's region bug shows up here and not first against a cloud.
    fn check_region<T>(&self, req: &S3Request<T>) -> S3Result<()> {
        match &req.region {
            Some(r) if r.as_str() != self.region => Err(s3_error!(
                AuthorizationHeaderMalformed,
                "the region '{}' is wrong; expecting '{}'",
                r.as_str(),
                self.region
            )),
            _ => Ok(()),
        }
    }
}

fn mem_err(e: MemError) -> S3Error {
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

fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

fn to_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    })
    .unwrap_or_default()
}

fn from_metadata(m: &BTreeMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Read a request body into one buffer and check its length.
async fn collect_body(body: Option<StreamingBlob>, content_length: Option<i64>) -> S3Result<Bytes> {
    let mut chunks: Vec<Bytes> = Vec::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(body_error)?;
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
        }
    }
    // A body that arrived in one chunk is kept without a copy.
    let out = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    };
    if let Some(n) = content_length
        && n >= 0
        && out.len() as u64 != n as u64
    {
        return Err(s3_error!(
            IncompleteBody,
            "the body has {} bytes but Content-Length says {n}",
            out.len()
        ));
    }
    Ok(out)
}

/// Bodies at least this large are hashed on a blocking thread.
const HASH_OFF_RUNTIME: usize = 256 * 1024;

/// Hash a body once (for the ETag) and check the client's `Content-MD5`.
async fn hash_body(body: Bytes, content_md5: Option<&str>) -> S3Result<HashedBody> {
    let want = match content_md5 {
        None => None,
        Some(md5) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(md5.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "Content-MD5 is not the base64 of 16 bytes")
                })?,
        ),
    };
    let hashed = if body.len() >= HASH_OFF_RUNTIME {
        tokio::task::spawn_blocking(move || HashedBody::new(body))
            .await
            .map_err(S3Error::internal_error)?
    } else {
        HashedBody::new(body)
    };
    if let Some(want) = want
        && want[..] != hashed.md5()[..]
    {
        return Err(s3_error!(
            BadDigest,
            "the Content-MD5 you specified did not match what we received"
        ));
    }
    Ok(hashed)
}

/// Read, length-check, hash and `Content-MD5`-check a request body.
async fn receive_body(
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    content_md5: Option<&str>,
) -> S3Result<HashedBody> {
    let bytes = collect_body(body, content_length).await?;
    hash_body(bytes, content_md5).await
}

fn body_error(e: StdError) -> S3Error {
    // s3s's payload-hash check reports through the body stream; its error
    // type is private, so it is recognised by its text.
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        s3_error!(
            BadDigest,
            "the body does not match the x-amz-content-sha256 the request was signed with"
        )
    } else {
        S3Error::with_source(S3ErrorCode::IncompleteBody, e)
    }
}

/// Zero-copy chunks of a GET body with an exact remaining length.
struct ChunkStream {
    segments: VecDeque<Bytes>,
    remaining: usize,
}

impl ChunkStream {
    fn new(segments: Vec<Bytes>) -> Self {
        let remaining = segments.iter().map(Bytes::len).sum();
        Self {
            segments: segments.into(),
            remaining,
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(mut seg) = self.segments.pop_front() else {
            return Poll::Ready(None);
        };
        if seg.len() > GET_CHUNK {
            let rest = seg.split_off(GET_CHUNK);
            self.segments.push_front(rest);
        }
        self.remaining -= seg.len();
        Poll::Ready(Some(Ok(seg)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining.div_ceil(GET_CHUNK);
        (n.max(self.segments.len()), Some(n + self.segments.len()))
    }
}

impl ByteStream for ChunkStream {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}

/// How a GET or HEAD's conditions came out.
enum Conditional {
    Proceed,
    NotModified,
}

/// RFC 9110 section 13.2.2 order: If-Match, If-Unmodified-Since,
/// If-None-Match, If-Modified-Since (dates compared at second precision).
fn evaluate_conditions(
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

fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<Option<StdRange<u64>>> {
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

fn write_condition(
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

fn copy_source(src: &CopySource) -> S3Result<(&str, &str)> {
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

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_LIST_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(usize::try_from(n)
            .unwrap_or(MAX_LIST_KEYS)
            .min(MAX_LIST_KEYS)),
    }
}

/// Percent-encode for `encoding-type=url`: everything but RFC 3986
/// unreserved characters and `/` (so `+` and space both survive any decoder).
const URL_ENCODE_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(encoding_type: Option<&EncodingType>) -> S3Result<Self> {
        match encoding_type.map(EncodingType::as_str) {
            None => Ok(Self(false)),
            Some(EncodingType::URL) => Ok(Self(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other:?}"
            )),
        }
    }

    fn enc(&self, s: &str) -> String {
        if self.0 {
            percent_encoding::utf8_percent_encode(s, URL_ENCODE_SET).to_string()
        } else {
            s.to_owned()
        }
    }

    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.enc(s))
    }
}

fn listing_parts(o: &ListOutcome, e: &Encoder) -> (Option<ObjectList>, Option<CommonPrefixList>) {
    let contents: ObjectList = o
        .objects
        .iter()
        .map(|x| Object {
            key: Some(e.enc(&x.key)),
            size: i64::try_from(x.size).ok(),
            e_tag: Some(etag(&x.etag)),
            last_modified: Some(timestamp(x.last_modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes: CommonPrefixList = o
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(e.enc(p)),
        })
        .collect();
    (
        (!contents.is_empty()).then_some(contents),
        (!prefixes.is_empty()).then_some(prefixes),
    )
}

/// V2 continuation tokens are the last returned name, base64url-encoded:
/// opaque to clients, stateless here.
fn encode_token(marker: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )
    })
}

#[async_trait::async_trait]
impl S3 for MemS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.check_region(&req)?;
        let name = &req.input.bucket;
        self.store.create_bucket(name).map_err(mem_err)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.check_region(&req)?;
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(mem_err(MemError::NoSuchBucket(req.input.bucket)));
        }
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.check_region(&req)?;
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(mem_err(MemError::NoSuchBucket(req.input.bucket)));
        }
        // S3 reports us-east-1 as an empty constraint.
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.check_region(&req)?;
        let prefix = req.input.prefix.unwrap_or_default();
        let buckets: Buckets = self
            .store
            .list_buckets()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("ossfs-rs".to_owned()),
                id: Some("ossfs-rs".to_owned()),
            }),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.check_region(&req)?;
        self.store
            .delete_bucket(&req.input.bucket)
            .map_err(mem_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.check_region(&req)?;
        let i = &req.input;
        if i.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "partNumber is not supported by this endpoint"
            ));
        }
        let obj = self.store.get_object(&i.bucket, &i.key).map_err(mem_err)?;
        let cond = evaluate_conditions(
            &obj,
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        if let Conditional::NotModified = cond {
            return Err(s3_error!(NotModified));
        }
        let range = resolve_range(i.range.as_ref(), obj.size())?;
        let (len, content_range) = match &range {
            Some(r) => (
                r.end - r.start,
                Some(format!("bytes {}-{}/{}", r.start, r.end - 1, obj.size())),
            ),
            None => (obj.size(), None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: i64::try_from(len).ok(),
            content_range,
            content_type: Some(
                obj.content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            e_tag: Some(etag(&obj.etag)),
            last_modified: Some(timestamp(obj.last_modified)),
            metadata: from_metadata(&obj.metadata),
            parts_count: obj.parts_count.and_then(|n| i32::try_from(n).ok()),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.check_region(&req)?;
        let i = &req.input;
        if i.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "partNumber is not supported by this endpoint"
            ));
        }
        let obj = self.store.get_object(&i.bucket, &i.key).map_err(mem_err)?;
        let cond = evaluate_conditions(
            &obj,
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        if let Conditional::NotModified = cond {
            return Err(s3_error!(NotModified));
        }
        let size = obj.size();
        let range = resolve_range(i.range.as_ref(), size)?;
        let (segments, content_range) = match &range {
            Some(r) => (
                obj.data.slice(r.clone()),
                Some(format!("bytes {}-{}/{size}", r.start, r.end - 1)),
            ),
            None => (obj.data.segments().to_vec(), None),
        };
        let body = ChunkStream::new(segments);
        let len = body.remaining;
        Ok(S3Response::new(GetObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            body: Some(StreamingBlob::new(body)),
            content_length: i64::try_from(len).ok(),
            content_range,
            content_type: Some(
                obj.content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            e_tag: Some(etag(&obj.etag)),
            last_modified: Some(timestamp(obj.last_modified)),
            metadata: from_metadata(&obj.metadata),
            parts_count: obj.parts_count.and_then(|n| i32::try_from(n).ok()),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let cond = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        if !self.store.bucket_exists(&i.bucket) {
            return Err(mem_err(MemError::NoSuchBucket(i.bucket)));
        }
        let body = receive_body(i.body, i.content_length, i.content_md5.as_deref()).await?;
        let size = body.len();
        let attrs = ObjectAttrs {
            content_type: i.content_type,
            metadata: to_metadata(i.metadata),
        };
        let obj = self
            .store
            .put_object(&i.bucket, &i.key, body, attrs, &cond)
            .map_err(mem_err)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&obj.etag)),
            size: i64::try_from(size).ok(),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.check_region(&req)?;
        self.store
            .delete_object(&req.input.bucket, &req.input.key)
            .map_err(mem_err)?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        if i.delete.objects.len() > MAX_LIST_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request may name at most 1000 keys"
            ));
        }
        if !self.store.bucket_exists(&i.bucket) {
            return Err(mem_err(MemError::NoSuchBucket(i.bucket)));
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in i.delete.objects {
            match self.store.delete_object(&i.bucket, &o.key) {
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

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let (src_bucket, src_key) = copy_source(&i.copy_source)?;
        let src = self
            .store
            .get_object(src_bucket, src_key)
            .map_err(mem_err)?;
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
        let obj = self
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

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after: i.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(i.max_keys)?,
        };
        let o = self.store.list(&i.bucket, &q).map_err(mem_err)?;
        let (contents, common_prefixes) = listing_parts(&o, &enc);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.enc(&q.prefix)),
            marker: Some(enc.opt(i.marker.as_deref()).unwrap_or_default()),
            max_keys: i32::try_from(q.max_keys).ok(),
            is_truncated: Some(o.is_truncated),
            contents,
            common_prefixes,
            delimiter: enc.opt(i.delimiter.as_deref()),
            next_marker: enc.opt(o.next_marker.as_deref()),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.check_region(&req)?;
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let after = match i.continuation_token.as_deref() {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after,
            max_keys: max_keys(i.max_keys)?,
        };
        let o = self.store.list(&i.bucket, &q).map_err(mem_err)?;
        let (mut contents, common_prefixes) = listing_parts(&o, &enc);
        if i.fetch_owner == Some(true)
            && let Some(list) = contents.as_mut()
        {
            for obj in list {
                obj.owner = Some(Owner {
                    display_name: Some("ossfs-rs".to_owned()),
                    id: Some("ossfs-rs".to_owned()),
                });
            }
        }
        let key_count = o.objects.len() + o.common_prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.enc(&q.prefix)),
            max_keys: i32::try_from(q.max_keys).ok(),
            key_count: i32::try_from(key_count).ok(),
            continuation_token: i.continuation_token,
            is_truncated: Some(o.is_truncated),
            next_continuation_token: o.next_marker.as_deref().map(encode_token),
            contents,
            common_prefixes,
            delimiter: enc.opt(i.delimiter.as_deref()),
            encoding_type: i.encoding_type,
            start_after: enc.opt(i.start_after.as_deref()),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let attrs = ObjectAttrs {
            content_type: i.content_type,
            metadata: to_metadata(i.metadata),
        };
        let upload_id = self
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

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let n = part_number(i.part_number)?;
        if !self.store.bucket_exists(&i.bucket) {
            return Err(mem_err(MemError::NoSuchBucket(i.bucket)));
        }
        let body = receive_body(i.body, i.content_length, i.content_md5.as_deref()).await?;
        let e = self
            .store
            .upload_part(&i.bucket, &i.key, &i.upload_id, n, body)
            .map_err(mem_err)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&e)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.check_region(&req)?;
        let i = req.input;
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
        let store = self.store.clone();
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

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.check_region(&req)?;
        let i = req.input;
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
        let obj = self
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

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.check_region(&req)?;
        let i = &req.input;
        self.store
            .abort_upload(&i.bucket, &i.key, &i.upload_id)
            .map_err(mem_err)?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.check_region(&req)?;
        let i = req.input;
        let marker = u32::try_from(i.part_number_marker.unwrap_or(0))
            .map_err(|_| s3_error!(InvalidArgument, "part-number-marker must be non-negative"))?;
        let max = match i.max_parts {
            None => MAX_LIST_KEYS,
            Some(n) => usize::try_from(n)
                .map_err(|_| s3_error!(InvalidArgument, "max-parts must be non-negative"))?
                .min(MAX_LIST_KEYS),
        };
        let page = self
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
}

#[cfg(test)]
mod tests {
    use super::super::memstore::md5_of;
    use super::*;

    #[tokio::test]
    async fn chunk_stream_slices_without_copy_and_counts_exactly() {
        let big = Bytes::from(vec![7u8; GET_CHUNK * 2 + 10]);
        let small = Bytes::from_static(b"tail");
        let mut s = ChunkStream::new(vec![big.clone(), small.clone()]);
        assert_eq!(s.remaining_length().exact(), Some(big.len() + 4));
        let mut sizes = Vec::new();
        let mut total = Vec::new();
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            sizes.push(c.len());
            total.extend_from_slice(&c);
        }
        assert_eq!(sizes, vec![GET_CHUNK, GET_CHUNK, 10, 4]);
        assert_eq!(total.len(), big.len() + 4);
        assert_eq!(&total[total.len() - 4..], b"tail");
        assert_eq!(s.remaining_length().exact(), Some(0));
    }

    #[tokio::test]
    async fn body_md5_and_length_are_checked() {
        let blob = |b: &'static [u8]| {
            Some(StreamingBlob::wrap(futures::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from_static(&b[..2])),
                Ok(Bytes::from_static(&b[2..])),
            ])))
        };
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(b"hello"));
        let got = receive_body(blob(b"hello"), Some(5), Some(&md5))
            .await
            .unwrap();
        assert_eq!(got.md5(), md5_of(b"hello"));
        assert_eq!(got.len(), 5);
        let e = receive_body(blob(b"hellx"), Some(5), Some(&md5))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::BadDigest);
        let e = receive_body(blob(b"hello"), Some(5), Some("bm9wZQ=="))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidDigest);
        let e = receive_body(blob(b"hello"), Some(6), None)
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::IncompleteBody);
        assert!(receive_body(None, None, None).await.unwrap().is_empty());
        // Large bodies are hashed on a blocking thread, with the same result.
        let big = Bytes::from(vec![3u8; HASH_OFF_RUNTIME + 1]);
        let h = hash_body(big.clone(), None).await.unwrap();
        assert_eq!(h.md5(), md5_of(&big));
    }

    #[test]
    fn url_encoding_keeps_slash_and_escapes_plus_and_space() {
        let e = Encoder::new(Some(&EncodingType::from_static(EncodingType::URL))).unwrap();
        assert_eq!(e.enc("a b+c/ü%~"), "a%20b%2Bc/%C3%BC%25~");
        assert_eq!(Encoder::new(None).unwrap().enc("a b"), "a b");
        assert!(Encoder::new(Some(&EncodingType::from("zip".to_owned()))).is_err());
    }

    #[test]
    fn tokens_round_trip() {
        for m in ["", "a/", "ünï code+%/x//y"] {
            assert_eq!(decode_token(&encode_token(m)).unwrap(), m);
        }
        assert!(decode_token("!!!").is_err());
    }

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

    // ---- the S3 operations, called directly (s3s's wire layer is covered
    // by the integration tests through the REST client) ----

    fn req<T>(input: T) -> S3Request<T> {
        S3Request {
            input,
            method: http::Method::GET,
            uri: http::Uri::from_static("/"),
            headers: http::HeaderMap::new(),
            extensions: http::Extensions::new(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        }
    }

    fn s3() -> MemS3 {
        let store = Arc::new(MemStore::new(0));
        store.create_bucket("bkt").unwrap();
        for k in ["a b", "a+b/1", "a+b/2", "c", "d/e/f"] {
            store
                .put_object(
                    "bkt",
                    k,
                    Bytes::from(k.to_owned()),
                    ObjectAttrs::default(),
                    &WriteCondition::None,
                )
                .unwrap();
        }
        MemS3::new(store, "us-east-1")
    }

    fn names(
        contents: &Option<ObjectList>,
        prefixes: &Option<CommonPrefixList>,
    ) -> (Vec<String>, Vec<String>) {
        (
            contents
                .iter()
                .flatten()
                .filter_map(|o| o.key.clone())
                .collect(),
            prefixes
                .iter()
                .flatten()
                .filter_map(|p| p.prefix.clone())
                .collect(),
        )
    }

    #[tokio::test]
    async fn list_v1_pages_with_marker_and_next_marker() {
        let s3 = s3();
        let mut marker: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let out = s3
                .list_objects(req(ListObjectsInput {
                    bucket: "bkt".into(),
                    delimiter: Some("/".into()),
                    marker: marker.clone(),
                    max_keys: Some(1),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .output;
            let (k, p) = names(&out.contents, &out.common_prefixes);
            seen.extend(k);
            seen.extend(p);
            if out.is_truncated != Some(true) {
                assert_eq!(out.next_marker, None);
                break;
            }
            marker = out.next_marker;
        }
        assert_eq!(seen, vec!["a b", "a+b/", "c", "d/"]);
    }

    #[tokio::test]
    async fn list_v2_url_encoding_and_start_after() {
        let s3 = s3();
        let out = s3
            .list_objects_v2(req(ListObjectsV2Input {
                bucket: "bkt".into(),
                delimiter: Some("/".into()),
                encoding_type: Some(EncodingType::from_static(EncodingType::URL)),
                start_after: Some("a b".into()),
                max_keys: Some(2),
                ..Default::default()
            }))
            .await
            .unwrap()
            .output;
        let (k, p) = names(&out.contents, &out.common_prefixes);
        assert_eq!(p, vec!["a%2Bb/"]);
        assert_eq!(k, vec!["c"]);
        assert_eq!(out.start_after.as_deref(), Some("a%20b"));
        assert_eq!(out.key_count, Some(2));
        assert_eq!(out.is_truncated, Some(true));
        let token = out.next_continuation_token.unwrap();
        let out = s3
            .list_objects_v2(req(ListObjectsV2Input {
                bucket: "bkt".into(),
                delimiter: Some("/".into()),
                continuation_token: Some(token.clone()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .output;
        assert_eq!(names(&out.contents, &out.common_prefixes).1, vec!["d/"]);
        assert_eq!(out.continuation_token, Some(token));
        assert_eq!(out.is_truncated, Some(false));
        let bad = s3
            .list_objects_v2(req(ListObjectsV2Input {
                bucket: "bkt".into(),
                continuation_token: Some("%%%".into()),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(*bad.code(), S3ErrorCode::InvalidArgument);
        let missing = s3
            .list_objects_v2(req(ListObjectsV2Input {
                bucket: "nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(*missing.code(), S3ErrorCode::NoSuchBucket);
    }

    #[tokio::test]
    async fn conditional_get_and_head() {
        let s3 = s3();
        let etag_c = ETag::Strong(hex::encode(md5_of(b"c")));
        let get = |if_match: Option<ETagCondition>, if_none_match: Option<ETagCondition>| {
            s3.get_object(req(GetObjectInput {
                bucket: "bkt".into(),
                key: "c".into(),
                if_match,
                if_none_match,
                ..Default::default()
            }))
        };
        assert!(
            get(Some(ETagCondition::ETag(etag_c.clone())), None)
                .await
                .is_ok()
        );
        let e = get(
            Some(ETagCondition::ETag(ETag::Strong("0".repeat(32)))),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
        let e = get(None, Some(ETagCondition::ETag(etag_c.clone())))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        assert!(
            get(None, Some(ETagCondition::ETag(ETag::Strong("x".into()))))
                .await
                .is_ok()
        );
        let future = Timestamp::from(SystemTime::now() + std::time::Duration::from_secs(3600));
        let e = s3
            .head_object(req(HeadObjectInput {
                bucket: "bkt".into(),
                key: "c".into(),
                if_modified_since: Some(future),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        let h = s3
            .head_object(req(HeadObjectInput {
                bucket: "bkt".into(),
                key: "d/e/f".into(),
                range: Some(Range::Int {
                    first: 1,
                    last: Some(2),
                }),
                ..Default::default()
            }))
            .await
            .unwrap()
            .output;
        assert_eq!(h.content_length, Some(2));
        assert_eq!(h.content_range.as_deref(), Some("bytes 1-2/5"));
        assert_eq!(h.content_type.as_deref(), Some(DEFAULT_CONTENT_TYPE));
    }

    #[tokio::test]
    async fn requests_signed_for_another_region_are_refused() {
        let s3 = s3();
        let mut r = req(HeadBucketInput {
            bucket: "bkt".into(),
            ..Default::default()
        });
        r.region = Some(s3s::region::Region::new("eu-west-1".into()).unwrap());
        let e = s3.head_bucket(r).await.unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::AuthorizationHeaderMalformed);
        let mut r = req(HeadBucketInput {
            bucket: "bkt".into(),
            ..Default::default()
        });
        r.region = Some(s3s::region::Region::new("us-east-1".into()).unwrap());
        assert!(s3.head_bucket(r).await.is_ok());
    }
}
