//! Listing loops against a scripted server on loopback that does not
//! advance: `opendir` (which lists to the last page) must fail with EIO and
//! a message naming the problem, after a few requests, never loop.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::fs::{Fs, FsConfig, ToErrno};
use crate::store::credentials::{Credentials, StaticProvider};
use crate::store::{ClientConfig, ObjectStore, Provider, RestClient};

/// A ListObjectsV2 page: truncated, with key `key` and token `token`.
fn page(key: &str, token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>{token}</NextContinuationToken>
  <Contents><Key>{key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>
  <ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"#
    )
}

/// A server answering request `n` with `reply(n)`; returns its URL and the
/// count of requests so far.
async fn listing_server(reply: fn(usize) -> String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            let service = service_fn(move |_request| {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let body = reply(n);
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(200)
                            .header("content-type", "application/xml")
                            .body(Full::new(Bytes::from(body)))
                            .expect("a valid response"),
                    )
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, requests)
}

/// `opendir /` over `reply`: its errno and how many requests were made.
async fn opendir_against(reply: fn(usize) -> String) -> (Result<u64, i32>, usize) {
    let (url, requests) = listing_server(reply).await;
    let mut config = ClientConfig::new(Provider::S3, url, "b");
    config.path_style = true;
    let creds = StaticProvider::new(Credentials::new("ak", "sk"), "test keys");
    let store: Arc<dyn ObjectStore> =
        Arc::new(RestClient::new(config, Arc::new(creds)).expect("client"));
    let staging = tempfile::tempdir().expect("tempdir");
    let fs = Fs::new(
        store,
        FsConfig {
            staging_dir: staging.path().to_path_buf(),
            ..FsConfig::default()
        },
    )
    .expect("fs");
    let got = tokio::time::timeout(Duration::from_secs(60), fs.opendir(Fs::root(), 0))
        .await
        .expect("opendir ends instead of looping")
        .map_err(|e| {
            let text = e.to_string();
            assert!(text.contains("does not advance"), "{text}");
            e.errno()
        });
    (got, requests.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_repeated_continuation_token_fails_readdir_with_eio() {
    // New keys on every page, but always the same token.
    let (got, requests) = opendir_against(|n| page(&format!("k{n:06}"), "same-token")).await;
    assert_eq!(got, Err(libc::EIO));
    assert_eq!(requests, 2, "the second page repeats the token");
}

#[tokio::test]
async fn a_page_that_adds_nothing_fails_readdir_with_eio() {
    // Fresh tokens, but the same key on every page.
    let (got, requests) = opendir_against(|n| page("k", &format!("token-{n}"))).await;
    assert_eq!(got, Err(libc::EIO));
    assert_eq!(requests, 2, "the second page adds nothing");
}
