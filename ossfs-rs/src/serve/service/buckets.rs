//! The bucket operations: CreateBucket, HeadBucket, GetBucketLocation,
//! ListBuckets and DeleteBucket.
//!
//! Every bucket is in the endpoint's one region and owned by its one key
//! (reported as owner `ossfs-rs`); S3 reports `us-east-1` as an empty
//! location constraint, and so does this endpoint.
//!
//! Imports: `super::{MemS3, OpResult}`, `super::convert`; `s3s`. Nothing else
//! of the crate: `serve` is an island whose only import from the rest of the
//! crate is `crate::store::Credentials`, in `server.rs`.

use s3s::S3Response;
use s3s::dto::*;

use super::convert::{mem_err, timestamp};
use super::{MemS3, OpResult};

pub(super) async fn create_bucket(
    s3: &MemS3,
    i: CreateBucketInput,
) -> OpResult<CreateBucketOutput> {
    let name = &i.bucket;
    s3.store.create_bucket(name).map_err(mem_err)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(super) async fn head_bucket(s3: &MemS3, i: HeadBucketInput) -> OpResult<HeadBucketOutput> {
    s3.check_bucket(&i.bucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s3.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location(
    s3: &MemS3,
    i: GetBucketLocationInput,
) -> OpResult<GetBucketLocationOutput> {
    s3.check_bucket(&i.bucket)?;
    // S3 reports us-east-1 as an empty constraint.
    let location_constraint =
        (s3.region != "us-east-1").then(|| BucketLocationConstraint::from(s3.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

pub(super) async fn list_buckets(s3: &MemS3, i: ListBucketsInput) -> OpResult<ListBucketsOutput> {
    let prefix = i.prefix.unwrap_or_default();
    let buckets: Buckets = s3
        .store
        .list_buckets()
        .into_iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(name, created)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp(created)),
            bucket_region: Some(s3.region.clone()),
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

pub(super) async fn delete_bucket(
    s3: &MemS3,
    i: DeleteBucketInput,
) -> OpResult<DeleteBucketOutput> {
    s3.store.delete_bucket(&i.bucket).map_err(mem_err)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}
