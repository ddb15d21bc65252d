//! The S3 operations of the embedded endpoint: the `s3s::S3` trait over
//! the in-memory [`MemStore`].
//!
//! `s3s` owns the wire (routing, SigV4 verification, XML, headers); this
//! module only translates its typed inputs into map operations and back, and
//! adds what s3s leaves to the implementer: `Content-MD5` checks, range and
//! conditional-request handling, `encoding-type=url`, list tokens, and the
//! region check a real endpoint makes. Errors use S3's codes so clients see
//! exactly what a real store would send.
//!
//! This file holds [`MemS3`], the checks every operation shares (region,
//! bucket existence) and the `S3` impl, which only routes: every operation
//! checks the region first and then runs in the file of its group, taking
//! the typed input and answering with the typed output, so the one table
//! below is the endpoint's whole surface (operations not in it get s3s's
//! default, `NotImplemented`). The table is a macro because `s3s::S3` is one
//! `async_trait` with a method per operation, all of the same shape. The
//! other files:
//! - `buckets`, `objects`, `listing`, `multipart`: the operations, a group
//!   each (listing also owns `encoding-type=url` and the V2 tokens);
//! - `body`: request bodies (length, MD5) and the streamed GET body;
//! - `conditions`: preconditions, ranges and write conditions;
//! - `convert`: map errors as S3 errors, times, ETags, metadata, copy sources.
//!
//! Dependencies: the operation files use [`MemS3`] from here and the three
//! helper files; the helper files use only the map and s3s, never each other
//! or an operation; only the table here calls the operations.
//!
//! Imports (this file): its child `convert`,
//! `crate::serve::memstore::{MemError, MemStore}`; `s3s`, `async_trait`.
//! Nothing else of the crate: `serve` is an island whose only import from the
//! rest of the crate is `crate::store::Credentials`, in `server.rs`.

mod body;
mod buckets;
mod conditions;
mod convert;
mod listing;
mod multipart;
mod objects;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::serve::memstore::{MemError, MemStore};

pub use body::GET_CHUNK;

/// What an operation answers: s3s's response, or the S3 error to send.
type OpResult<T> = S3Result<S3Response<T>>;

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

    /// `NoSuchBucket` unless `bucket` exists (for the operations that check
    /// before reading the body or touching the map).
    fn check_bucket(&self, bucket: &str) -> S3Result<()> {
        if self.store.bucket_exists(bucket) {
            Ok(())
        } else {
            Err(convert::mem_err(MemError::NoSuchBucket(bucket.to_owned())))
        }
    }
}

/// `impl S3 for MemS3`, one line per operation: `group::operation(Input) ->
/// Output;` checks the request's region, then answers with
/// `group::operation(self, input)`.
macro_rules! operations {
    ($($group:ident::$op:ident($input:ident) -> $output:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for MemS3 {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.check_region(&req)?;
                    $group::$op(self, req.input).await
                }
            )*
        }
    };
}

operations! {
    buckets::create_bucket(CreateBucketInput) -> CreateBucketOutput;
    buckets::head_bucket(HeadBucketInput) -> HeadBucketOutput;
    buckets::get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    buckets::list_buckets(ListBucketsInput) -> ListBucketsOutput;
    buckets::delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    objects::head_object(HeadObjectInput) -> HeadObjectOutput;
    objects::get_object(GetObjectInput) -> GetObjectOutput;
    objects::put_object(PutObjectInput) -> PutObjectOutput;
    objects::delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    objects::delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    objects::copy_object(CopyObjectInput) -> CopyObjectOutput;
    listing::list_objects(ListObjectsInput) -> ListObjectsOutput;
    listing::list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    multipart::create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    multipart::upload_part(UploadPartInput) -> UploadPartOutput;
    multipart::upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    multipart::complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    multipart::abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    multipart::list_parts(ListPartsInput) -> ListPartsOutput;
}

#[cfg(test)]
mod tests;
