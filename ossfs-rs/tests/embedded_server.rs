//! The REST client against the embedded endpoint, over real loopback HTTP:
//! the demo end to end, then the object semantics the filesystem relies on
//! (odd keys, listing pages, ranges, multipart, copies, deletes, errors).
//!
//! No mock: each test starts its own `EmbeddedServer` on 127.0.0.1:0 with
//! random keys and talks to it through `RestClient` (S3 dialect, path style,
//! SigV4 verified by the server).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ossfs_rs::cli::demo::{DemoArgs, DemoError, exercise, run_demo};
use ossfs_rs::serve::{EmbeddedServer, ServeConfig};
use ossfs_rs::store::credentials::StaticProvider;
use ossfs_rs::store::{
    ByteRange, ClientConfig, CompletedPart, CopyOptions, Credentials, DeleteFailure, GetObject,
    ListPage, ListRequest, MetadataDirective, ObjectMeta, ObjectStore, PartInfo, Provider,
    PutOptions, PutResult, RestClient, StoreError, StoreResult,
};

const BUCKET: &str = "test-bucket";
const MIB: usize = 1024 * 1024;

async fn server() -> EmbeddedServer {
    EmbeddedServer::start(ServeConfig::with_random_keys().bucket(BUCKET))
        .await
        .expect("start the embedded endpoint")
}

fn client_with(server: &EmbeddedServer, bucket: &str, creds: Credentials) -> RestClient {
    let mut config = ClientConfig::new(Provider::S3, server.endpoint(), bucket);
    config.path_style = true;
    config.region = Some(server.region().to_owned());
    RestClient::new(config, Arc::new(StaticProvider::new(creds, "test"))).expect("client")
}

fn client(server: &EmbeddedServer) -> RestClient {
    client_with(server, BUCKET, server.credentials())
}

fn list_req(prefix: &str, delimiter: Option<&str>, max_keys: u32) -> ListRequest {
    ListRequest {
        prefix: prefix.to_owned(),
        delimiter: delimiter.map(str::to_owned),
        max_keys: Some(max_keys),
        start_after: None,
    }
}

/// Every page of a listing: (keys, prefixes, number of pages).
async fn list_all(store: &dyn ObjectStore, req: &ListRequest) -> (Vec<String>, Vec<String>, usize) {
    let (mut keys, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut token: Option<String> = None;
    loop {
        let page = store.list_page(req, token.as_deref()).await.expect("list");
        pages += 1;
        let max = req.max_keys.unwrap_or(1000) as usize;
        assert!(
            page.objects.len() + page.prefixes.len() <= max,
            "page larger than max-keys"
        );
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.prefixes);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return (keys, prefixes, pages),
        }
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

/// Runs the whole demo, FUSE mount included: needs root and /dev/fuse (CI is root).
#[tokio::test(flavor = "multi_thread")]
async fn demo_passes_against_the_embedded_endpoint() {
    let args = DemoArgs {
        size_mib: 12,
        part_mib: 5,
        parallel: 3,
        no_mount: false,
        ossfs_bin: Some(env!("CARGO_BIN_EXE_ossfs-rs").into()),
    };
    let mut out = Vec::new();
    let result = run_demo(&args, &mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(result.is_ok(), "demo failed: {result:?}\n{text}");
    assert!(text.contains("mounted/notes/greeting.txt"), "{text}");
    assert!(text.contains("unmounted"), "{text}");
    assert!(text.contains("demo passed"), "{text}");
    assert!(text.contains("kill -9 the worker"), "{text}");
    assert!(
        text.contains("multipart upload 12 MiB in 3 parts"),
        "{text}"
    );
}

#[tokio::test]
async fn odd_keys_keep_object_semantics() {
    let server = server().await;
    let c = client(&server);
    let keys = [
        "a",
        "a/b",
        "a/b/c",
        "dir/",
        "x//y",
        "/lead",
        "sp ace",
        "plus+sign",
        "pct%41",
        "ünï/códe",
        "q?x=1&y=2",
        "semi;colon",
        "tilde~",
        "star*",
        "emoji😀",
        "hash#tag",
    ];
    for (i, k) in keys.iter().enumerate() {
        let mut opts = PutOptions {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        opts.user_metadata
            .insert("mode".into(), format!("{}", 0o100644 + i));
        c.put(k, Bytes::from(format!("body of {k}")), &opts)
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e}"));
    }
    for (i, k) in keys.iter().enumerate() {
        let h = c
            .head(k)
            .await
            .unwrap_or_else(|e| panic!("head {k:?}: {e}"));
        let body = format!("body of {k}");
        assert_eq!(h.size, body.len() as u64, "{k:?}");
        assert_eq!(h.etag, hex_md5(body.as_bytes()), "{k:?}");
        assert_eq!(
            h.user_metadata.get("mode"),
            Some(&format!("{}", 0o100644 + i)),
            "{k:?}"
        );
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        let got = c.get(k, None).await.unwrap().collect().await.unwrap();
        assert_eq!(got, Bytes::from(body), "{k:?}");
    }
    // `a`, `a/` (implied) and `a/b` coexist; the marker `dir/` lists under its own prefix.
    let (top, prefixes, _) = list_all(&c, &list_req("", Some("/"), 1000)).await;
    assert!(top.contains(&"a".to_owned()) && !top.contains(&"a/b".to_owned()));
    for p in ["a/", "dir/", "x/", "/", "ünï/"] {
        assert!(
            prefixes.contains(&p.to_owned()),
            "{p:?} missing from {prefixes:?}"
        );
    }
    let (under_a, pre_a, _) = list_all(&c, &list_req("a/", Some("/"), 1000)).await;
    assert_eq!(under_a, vec!["a/b"]);
    assert_eq!(pre_a, vec!["a/b/"]);
    let (dir, _, _) = list_all(&c, &list_req("dir/", Some("/"), 1000)).await;
    assert_eq!(dir, vec!["dir/"]);
    let (xx, _, _) = list_all(&c, &list_req("x//", Some("/"), 1000)).await;
    assert_eq!(xx, vec!["x//y"]);
    let (all, _, _) = list_all(&c, &list_req("", None, 1000)).await;
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    assert_eq!(all, want);
    server.shutdown().await;
}

fn hex_md5(data: &[u8]) -> String {
    ossfs_rs::serve::memstore::md5_of(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn listing_pages_with_and_without_delimiter() {
    let server = server().await;
    let c = client(&server);
    let mut files = Vec::new();
    for d in 0..4 {
        c.put(
            &format!("d{d}"),
            Bytes::from_static(b"f"),
            &PutOptions::default(),
        )
        .await
        .unwrap();
        files.push(format!("d{d}"));
        for f in 0..5 {
            c.put(&format!("d{d}/f{f}"), Bytes::new(), &PutOptions::default())
                .await
                .unwrap();
        }
    }
    for page in [1, 2, 3, 7, 1000] {
        let (keys, prefixes, pages) = list_all(&c, &list_req("", Some("/"), page)).await;
        assert_eq!(keys, files, "page size {page}");
        assert_eq!(
            prefixes,
            vec!["d0/", "d1/", "d2/", "d3/"],
            "page size {page}"
        );
        assert_eq!(
            pages,
            8usize.div_ceil(page as usize).max(1),
            "page size {page}"
        );
        let (keys, _, _) = list_all(&c, &list_req("d2/", Some("/"), page)).await;
        assert_eq!(keys, (0..5).map(|f| format!("d2/f{f}")).collect::<Vec<_>>());
        let (keys, prefixes, _) = list_all(&c, &list_req("", None, page)).await;
        assert_eq!(keys.len(), 24);
        assert!(prefixes.is_empty());
    }
    // start-after skips everything up to and including the named key.
    let mut req = list_req("d1/", None, 1000);
    req.start_after = Some("d1/f2".into());
    let (keys, _, _) = list_all(&c, &req).await;
    assert_eq!(keys, vec!["d1/f3", "d1/f4"]);
    // An empty prefix level and a prefix with nothing under it.
    let (keys, prefixes, _) = list_all(&c, &list_req("nothing/", Some("/"), 10)).await;
    assert!(keys.is_empty() && prefixes.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn ranges_and_not_found() {
    let server = server().await;
    let c = client(&server);
    let body = pattern(1000, 7);
    c.put("r", body.clone(), &PutOptions::default())
        .await
        .unwrap();
    let g = c.get("r", Some(ByteRange::new(100, 200))).await.unwrap();
    assert_eq!(g.range, ByteRange::new(100, 200));
    assert_eq!(g.collect().await.unwrap(), body.slice(100..200));
    let tail = c
        .get("r", Some(ByteRange::from(990)))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(tail, body.slice(990..));
    // A range running past the end is cut at the end, as on S3.
    let cut = c
        .get("r", Some(ByteRange::new(900, 5000)))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(cut, body.slice(900..));
    let past = c.get("r", Some(ByteRange::from(1000))).await;
    assert!(
        matches!(past, Err(StoreError::InvalidRange { .. })),
        "{past:?}"
    );
    assert!(matches!(
        c.head("missing").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        c.get("missing", None).await,
        Err(StoreError::NotFound { .. })
    ));
    // Deleting a missing key is success.
    c.delete("missing").await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn large_get_streams_in_chunks() {
    let server = server().await;
    let c = client(&server);
    let body = pattern(6 * MIB + 123, 1);
    c.put("big", body.clone(), &PutOptions::default())
        .await
        .unwrap();
    let g = c.get("big", None).await.unwrap();
    assert_eq!(g.meta.size, body.len() as u64);
    let got = g.collect().await.unwrap();
    assert!(got == body, "content differs");
    server.shutdown().await;
}

#[tokio::test]
async fn multipart_with_part_copy_and_list_parts() {
    let server = server().await;
    let c = client(&server);
    let src = pattern(3000, 9);
    c.put("src", src.clone(), &PutOptions::default())
        .await
        .unwrap();

    let mut opts = PutOptions {
        content_type: Some("application/x-test".into()),
        ..Default::default()
    };
    opts.user_metadata
        .insert("mtime".into(), "1700000000".into());
    let id = c.create_multipart("mp", &opts).await.unwrap();
    let p1 = pattern(5 * MIB, 3);
    let e1 = c.upload_part("mp", &id, 1, p1.clone()).await.unwrap();
    let e2 = c
        .upload_part_copy("src", ByteRange::new(1000, 2000), "mp", &id, 2)
        .await
        .unwrap();
    let e3 = c
        .upload_part("mp", &id, 3, Bytes::from_static(b"end"))
        .await
        .unwrap();
    let parts = c.list_parts("mp", &id).await.unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        vec![(1, 5 * MIB as u64), (2, 1000), (3, 3)]
    );
    assert!(
        matches!(c.head("mp").await, Err(StoreError::NotFound { .. })),
        "invisible until completed"
    );

    // The middle part is below S3's 5 MiB minimum: completing with it fails.
    let all = [(1, &e1), (2, &e2), (3, &e3)].map(|(n, e)| CompletedPart {
        part_number: n,
        etag: e.clone(),
    });
    assert!(c.complete_multipart("mp", &id, &all).await.is_err());
    let two = [all[0].clone(), all[2].clone()];
    let done = c.complete_multipart("mp", &id, &two).await.unwrap();
    assert!(done.etag.ends_with("-2"), "{}", done.etag);
    let h = c.head("mp").await.unwrap();
    assert_eq!(h.size, 5 * MIB as u64 + 3);
    assert_eq!(h.etag, done.etag);
    assert_eq!(h.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(
        h.user_metadata.get("mtime").map(String::as_str),
        Some("1700000000")
    );
    let got = c.get("mp", None).await.unwrap().collect().await.unwrap();
    assert!(got[..5 * MIB] == p1[..] && &got[5 * MIB..] == b"end");

    // Part copy into a second upload, then abort; aborting again is success.
    let id2 = c
        .create_multipart("mp2", &PutOptions::default())
        .await
        .unwrap();
    c.upload_part_copy("mp", ByteRange::new(0, 10), "mp2", &id2, 1)
        .await
        .unwrap();
    c.abort_multipart("mp2", &id2).await.unwrap();
    c.abort_multipart("mp2", &id2).await.unwrap();
    assert!(c.upload_part("mp2", &id2, 2, Bytes::new()).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn copies_and_bulk_delete() {
    let server = server().await;
    let c = client(&server);
    let mut opts = PutOptions {
        content_type: Some("text/a".into()),
        ..Default::default()
    };
    opts.user_metadata.insert("uid".into(), "1000".into());
    let put = c
        .put("orig", Bytes::from_static(b"data"), &opts)
        .await
        .unwrap();
    let copied = c
        .copy("orig", "kept", &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(copied.etag, put.etag);
    let h = c.head("kept").await.unwrap();
    assert_eq!(h.user_metadata, opts.user_metadata);
    assert_eq!(h.content_type.as_deref(), Some("text/a"));

    // Replacing metadata in place (what chmod/chown/utimens do).
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    meta.insert("uid".into(), "0".into());
    meta.insert("mode".into(), "33261".into());
    let replace = CopyOptions {
        metadata: MetadataDirective::Replace(PutOptions {
            content_type: Some("text/b".into()),
            user_metadata: meta.clone(),
        }),
    };
    c.copy("orig", "orig", &replace).await.unwrap();
    let h = c.head("orig").await.unwrap();
    assert_eq!(h.user_metadata, meta);
    assert_eq!(h.content_type.as_deref(), Some("text/b"));
    assert_eq!(
        c.get("orig", None).await.unwrap().collect().await.unwrap(),
        Bytes::from_static(b"data")
    );
    assert!(matches!(
        c.copy("missing", "x", &CopyOptions::default()).await,
        Err(StoreError::NotFound { .. })
    ));

    let keys: Vec<String> = ["orig", "kept", "never-existed"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let failures = c.delete_multiple(&keys).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let (left, _, _) = list_all(&c, &list_req("", None, 1000)).await;
    assert!(left.is_empty(), "{left:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn auth_and_bucket_errors() {
    let server = server().await;
    let good = server.credentials();

    // HEAD replies carry no error document: the status alone says 403.
    let wrong_secret = client_with(
        &server,
        BUCKET,
        Credentials::new(good.access_key_id.clone(), "not-the-secret"),
    );
    assert!(matches!(
        wrong_secret.head("k").await,
        Err(StoreError::AccessDenied { .. })
    ));
    match wrong_secret.list_page(&list_req("", None, 10), None).await {
        Err(StoreError::AccessDenied { code, .. }) => assert_eq!(code, "SignatureDoesNotMatch"),
        other => panic!("wrong secret gave {other:?}"),
    }
    let wrong_key = client_with(
        &server,
        BUCKET,
        Credentials::new("OSSFSNOSUCHKEY000000", "x"),
    );
    match wrong_key.list_page(&list_req("", None, 10), None).await {
        Err(StoreError::AccessDenied { code, .. }) => assert_eq!(code, "InvalidAccessKeyId"),
        other => panic!("unknown access key gave {other:?}"),
    }
    let no_bucket = client_with(&server, "no-such-bucket", good.clone());
    assert!(matches!(
        no_bucket.list_page(&list_req("", None, 10), None).await,
        Err(StoreError::NoSuchBucket { .. })
    ));
    assert!(matches!(
        no_bucket
            .put("k", Bytes::from_static(b"v"), &PutOptions::default())
            .await,
        Err(StoreError::NoSuchBucket { .. })
    ));
    // Signed for the wrong region: refused like a real endpoint.
    let mut config = ClientConfig::new(Provider::S3, server.endpoint(), BUCKET);
    config.path_style = true;
    config.region = Some("eu-west-1".into());
    let wrong_region =
        RestClient::new(config, Arc::new(StaticProvider::new(good, "test"))).unwrap();
    assert!(wrong_region.head("k").await.is_err());
    server.shutdown().await;
}

/// A store that flips one byte of every GET chunk of `victim`: the demo
/// must notice, so its "every step checked out" cannot pass vacuously.
struct CorruptingStore {
    inner: RestClient,
    victim: String,
}

#[async_trait::async_trait]
impl ObjectStore for CorruptingStore {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<GetObject> {
        use futures::StreamExt;
        let mut g = self.inner.get(key, range).await?;
        if key == self.victim {
            g.body = g
                .body
                .map(|c| {
                    c.map(|c| {
                        let mut v = c.to_vec();
                        if let Some(b) = v.last_mut() {
                            *b ^= 0x55;
                        }
                        Bytes::from(v)
                    })
                })
                .boxed();
        }
        Ok(g)
    }
    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> StoreResult<PutResult> {
        self.inner.put(key, body, opts).await
    }
    async fn list_page(&self, req: &ListRequest, token: Option<&str>) -> StoreResult<ListPage> {
        self.inner.list_page(req, token).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn delete_multiple(&self, keys: &[String]) -> StoreResult<Vec<DeleteFailure>> {
        self.inner.delete_multiple(keys).await
    }
    async fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> StoreResult<PutResult> {
        self.inner.copy(src, dst, opts).await
    }
    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> StoreResult<String> {
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        body: Bytes,
    ) -> StoreResult<String> {
        self.inner.upload_part(key, upload_id, n, body).await
    }
    async fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        n: u32,
    ) -> StoreResult<String> {
        self.inner
            .upload_part_copy(src, range, key, upload_id, n)
            .await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<PutResult> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64> {
        self.inner.append(key, position, body, opts).await
    }
    async fn put_symlink(&self, key: &str, target: &str, opts: &PutOptions) -> StoreResult<()> {
        self.inner.put_symlink(key, target, opts).await
    }
    async fn get_symlink(&self, key: &str) -> StoreResult<String> {
        self.inner.get_symlink(key).await
    }
}

#[tokio::test]
async fn demo_steps_detect_a_wrong_answer_and_a_failing_store() {
    let server = server().await;
    let args = DemoArgs {
        size_mib: 5,
        part_mib: 5,
        parallel: 2,
        no_mount: true,
        ossfs_bin: None,
    };
    let corrupt = CorruptingStore {
        inner: client(&server),
        victim: "p/big.bin".into(),
    };
    let mut out = Vec::new();
    match exercise(&corrupt, &args, "p/", &mut out).await {
        Err(DemoError::Check { step, .. }) => assert_eq!(step, "read back"),
        other => panic!("a corrupted read went unnoticed: {other:?}"),
    }
    let no_bucket = client_with(&server, "no-such-bucket", server.credentials());
    match exercise(&no_bucket, &args, "", &mut out).await {
        Err(DemoError::Store { step, source }) => {
            assert_eq!(step, "put objects");
            assert!(
                matches!(source, StoreError::NoSuchBucket { .. }),
                "{source:?}"
            );
        }
        other => panic!("a missing bucket went unnoticed: {other:?}"),
    }
    assert!(matches!(
        run_demo(
            &DemoArgs {
                part_mib: 1,
                ..DemoArgs::default()
            },
            &mut out
        )
        .await,
        Err(DemoError::Args(_))
    ));
    server.shutdown().await;
}
