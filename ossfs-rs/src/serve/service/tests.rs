//! Tests of the S3 operations, called directly through the `S3` trait as
//! the router exposes them: listing pages and encoding, conditional GET and
//! HEAD, and the region check. (The helpers' own tests are beside them.)
//!
//! Imports: `super` (the service and s3s's types),
//! `super::objects::DEFAULT_CONTENT_TYPE`, `crate::serve::memstore`; `bytes`,
//! `s3s`, `http`, `hex`, `tokio`. Nothing else of the crate: `serve` is an
//! island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::time::SystemTime;

use bytes::Bytes;
use s3s::S3ErrorCode;

use super::objects::DEFAULT_CONTENT_TYPE;
use super::*;
use crate::serve::memstore::{ObjectAttrs, WriteCondition, md5_of};

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
