//! The store conformance suite: one set of tests written against the
//! `ObjectStore` trait, run against a real Garage and the embedded endpoint
//! (each case is generated once per backend: `garage::NAME`,
//! `embedded::NAME`). Every case works under its own random prefix, so the
//! cases run in parallel on the shared Garage.
//!
//! The fault cases put a [`FaultProxy`] between the client and the server
//! and check that retried faults give the right data (and that the proxy
//! saw the retries), that a truncated body is an error and never short
//! data, and that a closed port is `Unreachable`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use e2e::backend::Backend;
use e2e::fault_proxy::{Fault, FaultProxy};
use e2e::unique_prefix;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest as _, Md5};
use ossfs_rs::fs::ToErrno;
use ossfs_rs::store::{
    ByteRange, CompletedPart, CopyOptions, Credentials, ListRequest, MetadataDirective,
    ObjectStore, PutOptions, StoreError, UserMetadata,
};
use rand::{RngCore, SeedableRng};
use sha2::Sha256;

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- helpers

fn meta(pairs: &[(&str, &str)]) -> UserMetadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn opts(content_type: Option<&str>, pairs: &[(&str, &str)]) -> PutOptions {
    PutOptions {
        content_type: content_type.map(str::to_string),
        user_metadata: meta(pairs),
    }
}

/// Deterministic pseudo-random bytes: one random MiB, repeated with every
/// MiB block stamped with its index and the seed, so that no two blocks
/// (parts) are alike. Generating 100 MiB with the RNG alone takes over ten
/// seconds in a debug build; this is a copy.
fn data(len: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut block = vec![0u8; MIB.min(len)];
    rng.fill_bytes(&mut block);
    let mut buf = Vec::with_capacity(len);
    for (i, start) in (0..len).step_by(MIB).enumerate() {
        let n = MIB.min(len - start);
        buf.extend_from_slice(&block[..n]);
        let stamp = [(i as u64).to_le_bytes(), seed.to_le_bytes()].concat();
        let m = stamp.len().min(n);
        buf[start..start + m].copy_from_slice(&stamp[..m]);
    }
    Bytes::from(buf)
}

async fn put(store: &dyn ObjectStore, key: &str, body: impl Into<Bytes>) {
    store
        .put(key, body.into(), &PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("PUT {key:?}: {e}"));
}

async fn get_all(store: &dyn ObjectStore, key: &str) -> Bytes {
    get_range(store, key, None)
        .await
        .unwrap_or_else(|e| panic!("GET {key:?}: {e}"))
}

async fn get_range(
    store: &dyn ObjectStore,
    key: &str,
    range: Option<ByteRange>,
) -> Result<Bytes, StoreError> {
    store.get(key, range).await?.collect().await
}

/// Every key and common prefix under `req`, following continuation tokens.
/// Fails on a repeated token or more than 100 pages (a client that loops).
async fn list_all(store: &dyn ObjectStore, req: &ListRequest) -> (Vec<String>, Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    let mut seen_tokens = BTreeSet::new();
    for page_no in 1..=100 {
        let page = store
            .list_page(req, token.as_deref())
            .await
            .unwrap_or_else(|e| panic!("list {:?} page {page_no}: {e}", req.prefix));
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.prefixes);
        match page.next_token {
            None => return (keys, prefixes, page_no),
            Some(t) => {
                assert!(
                    seen_tokens.insert(t.clone()),
                    "continuation token {t:?} repeated"
                );
                token = Some(t);
            }
        }
    }
    panic!("listing {:?} did not end within 100 pages", req.prefix);
}

fn list_req(prefix: &str, delimiter: Option<&str>) -> ListRequest {
    ListRequest {
        prefix: prefix.to_string(),
        delimiter: delimiter.map(str::to_string),
        ..ListRequest::default()
    }
}

fn strip<'a>(prefix: &str, keys: &'a [String]) -> Vec<&'a str> {
    keys.iter()
        .map(|k| {
            k.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{k:?} is not under {prefix:?}"))
        })
        .collect()
}

fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

// ---------------------------------------------------------------- the suite

/// Generate one `#[tokio::test]` per case and backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod garage {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&e2e::backend::Backend::garage().await).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&e2e::backend::Backend::embedded().await).await;
                }
            )*
        }
    };
}

suite!(
    put_head_get_with_metadata,
    missing_key_is_not_found,
    empty_object,
    range_reads_at_the_edges,
    list_with_delimiter_markers_and_siblings,
    pagination_across_2500_keys,
    pagination_with_prefixes_and_small_pages,
    delete_and_delete_missing,
    delete_multiple,
    copy_with_metadata_copy_and_replace,
    multipart_lifecycle,
    multipart_abort,
    upload_part_copy,
    special_keys,
    multipart_100_mib_round_trip,
    wrong_secret_is_access_denied,
    wrong_bucket_is_no_such_bucket,
    delays_are_survived,
    timeouts_are_retried,
    resets_are_retried,
    status_503_is_retried,
    retries_are_bounded,
    truncated_body_is_an_error,
    closed_port_is_unreachable,
);

async fn put_head_get_with_metadata(b: &Backend) {
    let store = b.store();
    let key = format!("{}obj.txt", unique_prefix("meta"));
    let body = Bytes::from_static(b"hello, object store");
    let o = opts(
        Some("text/plain"),
        &[
            ("mode", "33188"),
            ("uid", "1000"),
            ("gid", "1000"),
            ("mtime", "1700000000"),
        ],
    );
    let put = store.put(&key, body.clone(), &o).await.unwrap();
    assert_eq!(
        put.etag,
        md5_hex(&body),
        "a single PUT's ETag is the body's MD5"
    );

    let head = store.head(&key).await.unwrap();
    assert_eq!(head.key, key);
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.etag, put.etag);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.user_metadata, o.user_metadata);
    assert!(head.last_modified.is_some());

    let got = store.get(&key, None).await.unwrap();
    assert_eq!(got.meta.size, body.len() as u64);
    assert_eq!(got.meta.user_metadata, o.user_metadata);
    assert_eq!(got.range, ByteRange::new(0, body.len() as u64));
    assert_eq!(got.collect().await.unwrap(), body);

    // Overwrite replaces body and metadata.
    let body2 = Bytes::from_static(b"second version");
    store
        .put(&key, body2.clone(), &opts(None, &[("mode", "33261")]))
        .await
        .unwrap();
    assert_eq!(get_all(&*store, &key).await, body2);
    let head = store.head(&key).await.unwrap();
    assert_eq!(head.user_metadata, meta(&[("mode", "33261")]));
}

async fn missing_key_is_not_found(b: &Backend) {
    let store = b.store();
    let key = format!("{}missing", unique_prefix("missing"));
    let e = store.head(&key).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "HEAD: {e:?}");
    let e = store.get(&key, None).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "GET: {e:?}");
    assert_eq!(e.errno(), 2);
}

async fn empty_object(b: &Backend) {
    let store = b.store();
    let key = format!("{}empty", unique_prefix("empty"));
    store
        .put(&key, Bytes::new(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(store.head(&key).await.unwrap().size, 0);
    assert!(get_all(&*store, &key).await.is_empty());
}

async fn range_reads_at_the_edges(b: &Backend) {
    let store = b.store();
    let key = format!("{}ranged", unique_prefix("range"));
    let body = data(1000, 1);
    put(&*store, &key, body.clone()).await;

    let cases = [
        (ByteRange::new(0, 1), &body[0..1]),           // bytes=0-0
        (ByteRange::new(999, 1000), &body[999..1000]), // the last byte
        (ByteRange::new(100, 200), &body[100..200]),
        (ByteRange::from(990), &body[990..]),
        (ByteRange::from(0), &body[..]),
        (ByteRange::new(990, 5000), &body[990..]), // an end past the object is clamped
    ];
    for (range, want) in cases {
        let got = store.get(&key, Some(range)).await.unwrap();
        assert_eq!(got.range.start, range.start, "served range of {range}");
        assert_eq!(
            got.range.end,
            Some(range.start + want.len() as u64),
            "served range of {range}"
        );
        assert_eq!(got.collect().await.unwrap(), want, "bytes of {range}");
    }
    for range in [
        ByteRange::from(1000),
        ByteRange::new(1000, 1001),
        ByteRange::from(5000),
    ] {
        let e = get_range(&*store, &key, Some(range)).await.unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidRange { .. }),
            "{range}: {e:?}"
        );
    }
}

async fn list_with_delimiter_markers_and_siblings(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("list");
    for k in ["a", "a/b", "dir/", "dir/x", "dir/sub/y", "z"] {
        put(&*store, &format!("{p}{k}"), format!("body of {k}")).await;
    }
    // `a` beside `a/b`, `dir/` marker beside `dir/x`: all are distinct objects.
    assert_eq!(store.head(&format!("{p}a")).await.unwrap().size, 9);
    assert_eq!(store.head(&format!("{p}a/b")).await.unwrap().size, 11);
    assert_eq!(store.head(&format!("{p}dir/")).await.unwrap().size, 12);

    let (keys, prefixes, _) = list_all(&*store, &list_req(&p, Some("/"))).await;
    assert_eq!(strip(&p, &keys), ["a", "z"]);
    assert_eq!(strip(&p, &prefixes), ["a/", "dir/"]);

    let dir = format!("{p}dir/");
    let (keys, prefixes, _) = list_all(&*store, &list_req(&dir, Some("/"))).await;
    assert_eq!(
        strip(&dir, &keys),
        ["", "x"],
        "the marker lists as the prefix itself"
    );
    assert_eq!(strip(&dir, &prefixes), ["sub/"]);

    let (keys, prefixes, _) = list_all(&*store, &list_req(&p, None)).await;
    assert_eq!(
        strip(&p, &keys),
        ["a", "a/b", "dir/", "dir/sub/y", "dir/x", "z"]
    );
    assert!(prefixes.is_empty());

    // start-after skips up to and including the given key.
    let mut req = list_req(&p, None);
    req.start_after = Some(format!("{p}dir/sub/y"));
    let (keys, _, _) = list_all(&*store, &req).await;
    assert_eq!(strip(&p, &keys), ["dir/x", "z"]);

    // A prefix that matches nothing.
    let (keys, prefixes, _) =
        list_all(&*store, &list_req(&format!("{p}nothing/"), Some("/"))).await;
    assert!(keys.is_empty() && prefixes.is_empty());
}

async fn pagination_across_2500_keys(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("page");
    let keys: Vec<String> = (0..2500).map(|i| format!("{p}k{i:05}")).collect();
    futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let store = Arc::clone(&store);
            async move {
                store
                    .put(&k, Bytes::from(k.clone()), &PutOptions::default())
                    .await
                    .map_err(|e| format!("PUT {k}: {e}"))
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();

    let (listed, prefixes, pages) = list_all(&*store, &list_req(&p, None)).await;
    assert!(prefixes.is_empty());
    assert_eq!(listed.len(), 2500, "every key exactly once");
    assert_eq!(listed, keys, "in key order, no duplicates, none missing");
    assert!(
        pages >= 3,
        "2500 keys need at least 3 pages of 1000, got {pages}"
    );

    // Clean up with delete-multiple in batches of 1000.
    for batch in keys.chunks(1000) {
        let failed = store.delete_multiple(batch).await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let (listed, _, _) = list_all(&*store, &list_req(&p, None)).await;
    assert!(
        listed.is_empty(),
        "{} keys left after delete-multiple",
        listed.len()
    );
}

async fn pagination_with_prefixes_and_small_pages(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("smallpages");
    let mut want_keys = Vec::new();
    let mut want_prefixes = Vec::new();
    for i in 0..12 {
        put(&*store, &format!("{p}d{i:02}/x"), "x").await;
        put(&*store, &format!("{p}d{i:02}/y"), "y").await;
        want_prefixes.push(format!("{p}d{i:02}/"));
        put(&*store, &format!("{p}f{i:02}"), "f").await;
        want_keys.push(format!("{p}f{i:02}"));
    }
    let mut req = list_req(&p, Some("/"));
    req.max_keys = Some(5);
    let (keys, prefixes, pages) = list_all(&*store, &req).await;
    assert_eq!(keys, want_keys);
    assert_eq!(prefixes, want_prefixes, "every common prefix exactly once");
    assert!(pages >= 5, "24 entries in pages of 5: {pages} pages");
}

async fn delete_and_delete_missing(b: &Backend) {
    let store = b.store();
    let key = format!("{}gone", unique_prefix("delete"));
    put(&*store, &key, "bye").await;
    store.delete(&key).await.unwrap();
    let e = store.head(&key).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    store
        .delete(&key)
        .await
        .expect("deleting a missing key is success");
}

async fn delete_multiple(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("delmulti");
    for k in ["a", "b c", "d+e", "f/g", "keep"] {
        put(&*store, &format!("{p}{k}"), k.to_string()).await;
    }
    let doomed: Vec<String> = ["a", "b c", "d+e", "f/g", "never-existed"]
        .iter()
        .map(|k| format!("{p}{k}"))
        .collect();
    let failed = store.delete_multiple(&doomed).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let (keys, _, _) = list_all(&*store, &list_req(&p, None)).await;
    assert_eq!(strip(&p, &keys), ["keep"]);
    assert!(store.delete_multiple(&[]).await.unwrap().is_empty());
}

async fn copy_with_metadata_copy_and_replace(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("copy");
    let src = format!("{p}src dir/ü+%41 file.txt");
    let body = data(4096, 2);
    let o = opts(Some("text/plain"), &[("mode", "33188"), ("color", "blue")]);
    store.put(&src, body.clone(), &o).await.unwrap();

    let dst = format!("{p}copied/ü+%41 copy.txt");
    let r = store
        .copy(&src, &dst, &CopyOptions::default())
        .await
        .unwrap();
    let head = store.head(&dst).await.unwrap();
    assert_eq!(head.etag, r.etag);
    assert_eq!(head.etag, md5_hex(&body));
    assert_eq!(
        head.user_metadata, o.user_metadata,
        "COPY keeps the metadata"
    );
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(get_all(&*store, &dst).await, body);

    let replaced = format!("{p}replaced");
    let new = opts(Some("application/json"), &[("mode", "33261")]);
    let copy = CopyOptions {
        metadata: MetadataDirective::Replace(new.clone()),
    };
    store.copy(&src, &replaced, &copy).await.unwrap();
    let head = store.head(&replaced).await.unwrap();
    assert_eq!(
        head.user_metadata, new.user_metadata,
        "REPLACE sets new metadata"
    );
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(get_all(&*store, &replaced).await, body);

    // Copying onto itself with REPLACE updates metadata in place (how a
    // chmod is done on an object store).
    store
        .copy(
            &src,
            &src,
            &CopyOptions {
                metadata: MetadataDirective::Replace(opts(
                    Some("text/plain"),
                    &[("mode", "33152")],
                )),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.head(&src).await.unwrap().user_metadata,
        meta(&[("mode", "33152")])
    );
    assert_eq!(get_all(&*store, &src).await, body);

    let e = store
        .copy(
            &format!("{p}no-such-source"),
            &format!("{p}x"),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

async fn multipart_lifecycle(b: &Backend) {
    let store = b.store();
    let key = format!("{}multi part/ü.bin", unique_prefix("mpu"));
    let o = opts(Some("application/octet-stream"), &[("mode", "33188")]);
    let id = store.create_multipart(&key, &o).await.unwrap();
    assert!(!id.is_empty());
    let p1 = data(5 * MIB, 3);
    let p2 = data(MIB + 17, 4);
    let e1 = store.upload_part(&key, &id, 1, p1.clone()).await.unwrap();
    let e2 = store.upload_part(&key, &id, 2, p2.clone()).await.unwrap();
    assert_eq!(e1, md5_hex(&p1), "a part's ETag is its MD5");

    let parts = store.list_parts(&key, &id).await.unwrap();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!((parts[0].part_number, parts[0].size), (1, p1.len() as u64));
    assert_eq!((parts[1].part_number, parts[1].size), (2, p2.len() as u64));
    assert_eq!(parts[0].etag, e1);
    assert_eq!(parts[1].etag, e2);

    // Not visible before completion.
    let e = store.head(&key).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");

    let done = store
        .complete_multipart(
            &key,
            &id,
            &[
                CompletedPart {
                    part_number: 1,
                    etag: e1,
                },
                CompletedPart {
                    part_number: 2,
                    etag: e2,
                },
            ],
        )
        .await
        .unwrap();
    assert!(
        done.etag.ends_with("-2"),
        "a multipart ETag ends with -<parts>: {}",
        done.etag
    );
    let head = store.head(&key).await.unwrap();
    assert_eq!(head.size, (p1.len() + p2.len()) as u64);
    assert_eq!(head.user_metadata, o.user_metadata);
    let mut want = p1.to_vec();
    want.extend_from_slice(&p2);
    assert_eq!(get_all(&*store, &key).await, want);
}

async fn multipart_abort(b: &Backend) {
    let store = b.store();
    let key = format!("{}aborted", unique_prefix("abort"));
    let id = store
        .create_multipart(&key, &PutOptions::default())
        .await
        .unwrap();
    store
        .upload_part(&key, &id, 1, data(1024, 5))
        .await
        .unwrap();
    store.abort_multipart(&key, &id).await.unwrap();
    let e = store.list_parts(&key, &id).await.unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound { .. }),
        "parts of an aborted upload: {e:?}"
    );
    let e = store.head(&key).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    store
        .abort_multipart(&key, &id)
        .await
        .expect("aborting an unknown upload is success");
}

async fn upload_part_copy(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("partcopy");
    let src = format!("{p}source object");
    let body = data(6 * MIB + 5, 6);
    put(&*store, &src, body.clone()).await;

    let dst = format!("{p}dest+copy");
    let id = store
        .create_multipart(&dst, &PutOptions::default())
        .await
        .unwrap();
    let split = 5 * MIB as u64;
    let e1 = store
        .upload_part_copy(&src, ByteRange::new(0, split), &dst, &id, 1)
        .await
        .unwrap();
    let e2 = store
        .upload_part_copy(&src, ByteRange::new(split, body.len() as u64), &dst, &id, 2)
        .await
        .unwrap();
    store
        .complete_multipart(
            &dst,
            &id,
            &[
                CompletedPart {
                    part_number: 1,
                    etag: e1,
                },
                CompletedPart {
                    part_number: 2,
                    etag: e2,
                },
            ],
        )
        .await
        .unwrap();
    let got = get_all(&*store, &dst).await;
    assert_eq!(got.len(), body.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
}

async fn special_keys(b: &Backend) {
    let store = b.store();
    let p = unique_prefix("special");
    let names = [
        "with space",
        "plus+sign",
        "percent%",
        "percent%20encoded-looking",
        "unicode-ü-日本語-🎉",
        "double//slash",
        "trailing/",
        "question?mark",
        "hash#frag",
        "amp&eq=",
        "tilde~star*quote'comma,semi;colon:",
        "brackets[]{}()",
        "dollar$at@excl!",
    ];
    for name in names {
        let key = format!("{p}{name}");
        let body = Bytes::from(name.as_bytes().to_vec());
        put(&*store, &key, body.clone()).await;
        assert_eq!(
            store.head(&key).await.unwrap().size,
            body.len() as u64,
            "{key:?}"
        );
        assert_eq!(get_all(&*store, &key).await, body, "{key:?}");
    }
    let (keys, _, _) = list_all(&*store, &list_req(&p, None)).await;
    let mut want: Vec<String> = names.iter().map(|n| format!("{p}{n}")).collect();
    want.sort();
    assert_eq!(keys, want, "listed keys come back decoded and exact");

    // With a delimiter, `double//slash` yields the prefix `double/`.
    let (_, prefixes, _) = list_all(&*store, &list_req(&p, Some("/"))).await;
    assert_eq!(strip(&p, &prefixes), ["double/", "trailing/"]);
    let (keys, prefixes, _) = list_all(&*store, &list_req(&format!("{p}double/"), Some("/"))).await;
    assert!(keys.is_empty());
    assert_eq!(prefixes, [format!("{p}double//")]);

    // Copy between special keys, then delete them all.
    let src = format!("{p}{}", names[4]);
    let dst = format!("{p}copy of {}", names[1]);
    store
        .copy(&src, &dst, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(get_all(&*store, &dst).await, names[4].as_bytes());
    want.push(dst);
    assert!(store.delete_multiple(&want).await.unwrap().is_empty());
    let (keys, _, _) = list_all(&*store, &list_req(&p, None)).await;
    assert!(keys.is_empty(), "{keys:?}");
}

async fn multipart_100_mib_round_trip(b: &Backend) {
    let store = b.store();
    let key = format!("{}big.bin", unique_prefix("big"));
    let total = 100 * MIB;
    let part_size = 8 * MIB;
    let body = data(total, 7);
    let want_sha = sha256_hex(&body);

    let id = store
        .create_multipart(&key, &PutOptions::default())
        .await
        .unwrap();
    let parts: Vec<CompletedPart> = futures::stream::iter(body.chunks(part_size).enumerate())
        .map(|(i, _)| {
            let store = Arc::clone(&store);
            let (key, id) = (key.clone(), id.clone());
            let start = i * part_size;
            let chunk = body.slice(start..(start + part_size).min(total));
            async move {
                let n = i as u32 + 1;
                let etag = store.upload_part(&key, &id, n, chunk).await?;
                Ok::<_, StoreError>(CompletedPart {
                    part_number: n,
                    etag,
                })
            }
        })
        .buffered(4)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(parts.len(), 13);
    store.complete_multipart(&key, &id, &parts).await.unwrap();
    assert_eq!(store.head(&key).await.unwrap().size, total as u64);

    // Stream the object back, hashing as it arrives.
    let got = store.get(&key, None).await.unwrap();
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    let mut stream = got.body;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(len, total);
    assert_eq!(hex::encode(hasher.finalize()), want_sha);

    // A range across a part boundary.
    let r = ByteRange::new(part_size as u64 - 100, part_size as u64 + 100);
    let got = get_range(&*store, &key, Some(r)).await.unwrap();
    assert_eq!(got, body.slice(part_size - 100..part_size + 100));
    store.delete(&key).await.unwrap();
}

async fn wrong_secret_is_access_denied(b: &Backend) {
    let good = b.credentials();
    let bad = Credentials::new(
        good.access_key_id.clone(),
        "0".repeat(good.secret_access_key.len()),
    );
    let store = b.client(b.config(), bad);
    let p = unique_prefix("denied");
    for e in [
        store.head(&format!("{p}x")).await.unwrap_err(),
        store
            .list_page(&list_req(&p, None), None)
            .await
            .unwrap_err(),
        store
            .put(
                &format!("{p}x"),
                Bytes::from_static(b"x"),
                &PutOptions::default(),
            )
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::AccessDenied { .. }), "{e:?}");
        assert_eq!(e.errno(), 13);
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains(&"0".repeat(16)),
            "the secret leaks into {text}"
        );
    }
    let unknown = Credentials::new("GKunknownkey0000000000000", good.secret_access_key.clone());
    let store = b.client(b.config(), unknown);
    let e = store
        .list_page(&list_req(&p, None), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::AccessDenied { .. }),
        "unknown key id: {e:?}"
    );
}

async fn wrong_bucket_is_no_such_bucket(b: &Backend) {
    let mut config = b.config();
    config.bucket = format!("e2e-missing-{}", &unique_prefix("b")[6..14]);
    let store = b.client(config, b.credentials());
    let p = unique_prefix("nobucket");
    let e = store
        .list_page(&list_req(&p, None), None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSuchBucket { .. }), "list: {e:?}");
    let e = store
        .put(
            &format!("{p}x"),
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSuchBucket { .. }), "put: {e:?}");
}

// ---------------------------------------------------------------- faults

/// A store talking to `b` through a fresh fault proxy.
async fn through_proxy(b: &Backend) -> (FaultProxy, Arc<dyn ObjectStore>) {
    let proxy = FaultProxy::start(b.addr()).await.unwrap();
    let store = b.client(b.config_at(&proxy.endpoint()), b.credentials());
    (proxy, store)
}

/// The requests the proxy saw with `method` for a target containing `needle`.
fn seen(proxy: &FaultProxy, method: &str, needle: &str) -> Vec<Fault> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.target.contains(needle))
        .map(|r| r.fault)
        .collect()
}

async fn delays_are_survived(b: &Backend) {
    let (proxy, store) = through_proxy(b).await;
    let key = format!("{}slow", unique_prefix("delay"));
    let body = data(256 * 1024, 8);
    proxy.fail_next(4, Fault::Delay(Duration::from_millis(300)));
    store
        .put(&key, body.clone(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(store.head(&key).await.unwrap().size, body.len() as u64);
    assert_eq!(get_all(&*store, &key).await, body);
    assert_eq!(
        get_range(&*store, &key, Some(ByteRange::new(10, 20)))
            .await
            .unwrap(),
        body.slice(10..20)
    );
    assert_eq!(proxy.faulted_count(), 4, "{:?}", proxy.requests());
}

async fn timeouts_are_retried(b: &Backend) {
    let proxy = FaultProxy::start(b.addr()).await.unwrap();
    let mut config = b.config_at(&proxy.endpoint());
    // The stalled GET waits for its head: the time-to-first-byte bound.
    config.first_byte_timeout = Duration::from_secs(2);
    config.read_timeout = Duration::from_secs(2);
    let store = b.client(config, b.credentials());
    let key = format!("{}stalled", unique_prefix("timeout"));
    let body = data(10_000, 9);
    put(&*store, &key, body.clone()).await;
    proxy.fail_next_method("GET", 1, Fault::Delay(Duration::from_secs(6)));
    assert_eq!(get_all(&*store, &key).await, body);
    let gets = seen(&proxy, "GET", "stalled");
    assert_eq!(
        gets.first(),
        Some(&Fault::Delay(Duration::from_secs(6))),
        "{gets:?}"
    );
    assert!(gets.len() >= 2, "the stalled GET was retried: {gets:?}");
}

async fn resets_are_retried(b: &Backend) {
    let (proxy, store) = through_proxy(b).await;
    let key = format!("{}reset me", unique_prefix("reset"));
    let body = data(300_000, 10);

    // PUT reset before it reached the server, twice.
    proxy.fail_next_method("PUT", 2, Fault::Reset);
    store
        .put(&key, body.clone(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        seen(&proxy, "PUT", "reset")[..],
        [Fault::Reset, Fault::Reset, Fault::Pass]
    );

    // GET reset in the middle of the response head (after the server ran it).
    proxy.fail_next_method("GET", 1, Fault::ResetAfter(10));
    // GET reset before forwarding.
    proxy.fail_next_method("GET", 1, Fault::Reset);
    assert_eq!(get_all(&*store, &key).await, body);
    assert_eq!(
        seen(&proxy, "GET", "reset")[..],
        [Fault::ResetAfter(10), Fault::Reset, Fault::Pass]
    );

    // HEAD too.
    proxy.fail_next_method("HEAD", 1, Fault::Reset);
    assert_eq!(store.head(&key).await.unwrap().size, body.len() as u64);
    assert_eq!(seen(&proxy, "HEAD", "reset").len(), 2);

    // A PUT whose reply was lost after the server stored it: the retry must
    // still end with the right object.
    let body2 = data(1000, 11);
    proxy.fail_next_method("PUT", 1, Fault::ResetAfter(0));
    store
        .put(&key, body2.clone(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(get_all(&*store, &key).await, body2);
}

async fn status_503_is_retried(b: &Backend) {
    let (proxy, store) = through_proxy(b).await;
    let p = unique_prefix("busy");
    let key = format!("{p}obj");
    let body = data(100_000, 12);

    proxy.fail_next_method("PUT", 2, Fault::SlowDown);
    store
        .put(&key, body.clone(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        seen(&proxy, "PUT", "busy")[..],
        [Fault::SlowDown, Fault::SlowDown, Fault::Pass]
    );

    proxy.fail_next_method("GET", 1, Fault::SlowDown);
    proxy.fail_next_method("GET", 1, Fault::ServiceUnavailable);
    assert_eq!(get_all(&*store, &key).await, body);
    assert_eq!(
        seen(&proxy, "GET", "/obj")[..],
        [Fault::SlowDown, Fault::ServiceUnavailable, Fault::Pass]
    );

    proxy.fail_next_method("HEAD", 2, Fault::ServiceUnavailable);
    assert_eq!(store.head(&key).await.unwrap().size, body.len() as u64);

    // Listing and a multipart part upload under 503s.
    proxy.fail_next_method("GET", 1, Fault::SlowDown);
    let (keys, _, _) = list_all(&*store, &list_req(&p, None)).await;
    assert_eq!(keys, std::slice::from_ref(&key));

    let mkey = format!("{p}multi");
    let id = store
        .create_multipart(&mkey, &PutOptions::default())
        .await
        .unwrap();
    proxy.fail_next_method("PUT", 1, Fault::SlowDown);
    let part = data(5 * MIB, 13);
    let etag = store
        .upload_part(&mkey, &id, 1, part.clone())
        .await
        .unwrap();
    store
        .complete_multipart(
            &mkey,
            &id,
            &[CompletedPart {
                part_number: 1,
                etag,
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        sha256_hex(&get_all(&*store, &mkey).await),
        sha256_hex(&part)
    );
    assert_eq!(proxy.pending_faults(), 0);
}

async fn retries_are_bounded(b: &Backend) {
    let proxy = FaultProxy::start(b.addr()).await.unwrap();
    let config = b.config_at(&proxy.endpoint());
    let attempts = config.retry.max_attempts as usize;
    let store = b.client(config, b.credentials());
    let key = format!("{}never", unique_prefix("bounded"));
    proxy.fail_next(1000, Fault::SlowDown);
    let e = store
        .list_page(&list_req(&key, None), None)
        .await
        .unwrap_err();
    match &e {
        StoreError::Service { status, code, .. } => {
            assert_eq!(*status, 503);
            assert_eq!(code, "SlowDown");
        }
        other => panic!("expected the final SlowDown, got {other:?}"),
    }
    assert_eq!(
        proxy.request_count(),
        attempts,
        "max_attempts requests, then give up"
    );
}

async fn truncated_body_is_an_error(b: &Backend) {
    let store = b.store();
    let key = format!("{}cut", unique_prefix("truncate"));
    let body = data(200_000, 14);
    put(&*store, &key, body.clone()).await;

    let (proxy, via_proxy) = through_proxy(b).await;
    // Every GET is cut short, retries included: the reader must see an error.
    proxy.fail_next_method("GET", 1000, Fault::TruncateBody(50_000));
    match get_range(&*via_proxy, &key, None).await {
        Ok(got) => panic!(
            "a truncated body was returned as {} bytes of data instead of an error",
            got.len()
        ),
        Err(e) => assert_eq!(e.errno(), 5, "{e:?}"),
    }
    let range = ByteRange::new(1000, 150_000);
    match get_range(&*via_proxy, &key, Some(range)).await {
        Ok(got) => panic!("a truncated range came back as {} bytes of data", got.len()),
        Err(e) => assert_eq!(e.errno(), 5, "{e:?}"),
    }
    assert!(!seen(&proxy, "GET", "cut").is_empty());
}

async fn closed_port_is_unreachable(b: &Backend) {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut config = b.config_at(&format!("http://{closed}"));
    config.connect_timeout = Duration::from_secs(2);
    let store = b.client(config, b.credentials());
    let e = store.head("anything").await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&closed.to_string()),
        "names the endpoint: {e}"
    );
}
