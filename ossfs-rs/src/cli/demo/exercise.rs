//! The store half of `ossfs-rs demo`: every [`ObjectStore`] call the
//! filesystem relies on, against any store: PUT with user metadata, listing
//! with a delimiter, a ranged GET (and an unsatisfiable one), a parallel
//! multipart upload read back and compared byte for byte, server-side
//! copies, and deletes. Each step prints what it did and how fast and
//! checks its result, so the same steps double as an integration test of
//! the client against the embedded server.
//!
//! Imports: [`super::args`], [`super::error`], [`super::progress`] and
//! `store`.

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

use super::args::DemoArgs;
use super::error::DemoError;
use super::progress::report;
use crate::store::{
    ByteRange, CompletedPart, CopyOptions, ListProgress, ListRequest, MetadataDirective,
    ObjectStore, PutOptions, StoreError,
};

const MIB: u64 = 1024 * 1024;

fn store_err(step: &'static str) -> impl FnOnce(StoreError) -> DemoError {
    move |source| DemoError::Store { step, source }
}

fn check(step: &'static str, ok: bool, detail: impl FnOnce() -> String) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Check {
            step,
            detail: detail(),
        })
    }
}

/// Every key and common prefix under `prefix` with `delimiter`, all pages.
async fn list_all(
    store: &dyn ObjectStore,
    prefix: &str,
    delimiter: Option<&str>,
    step: &'static str,
) -> Result<(Vec<String>, Vec<String>), DemoError> {
    let req = ListRequest {
        prefix: prefix.to_owned(),
        delimiter: delimiter.map(str::to_owned),
        max_keys: Some(1000),
        start_after: None,
    };
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut token: Option<String> = None;
    let mut progress = ListProgress::new(prefix);
    loop {
        let page = store
            .list_page(&req, token.as_deref())
            .await
            .map_err(store_err(step))?;
        progress.check(&page).map_err(store_err(step))?;
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.prefixes);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok((keys, prefixes)),
        }
    }
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The demo's steps against any store, with every key under `prefix`
/// (`""` on the embedded endpoint). Leaves nothing behind when it succeeds.
pub async fn exercise(
    store: &dyn ObjectStore,
    args: &DemoArgs,
    prefix: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), DemoError> {
    args.validate()?;
    let k = |name: &str| format!("{prefix}{name}");

    // 1. Small objects with user metadata, a directory marker among them.
    let step = "put objects";
    let hello = Bytes::from_static(b"Hello from ossfs-rs! This object came from the demo.\n");
    let mut meta = PutOptions {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    meta.user_metadata.insert("mode".into(), "33188".into());
    meta.user_metadata.insert("demo".into(), "yes".into());
    let small: Vec<(String, Bytes, PutOptions)> = vec![
        (k("hello.txt"), hello.clone(), meta.clone()),
        (k("docs/"), Bytes::new(), PutOptions::default()),
        (
            k("docs/readme.md"),
            Bytes::from_static(b"# readme\n"),
            PutOptions::default(),
        ),
        (
            k("docs/guide/intro.md"),
            Bytes::from_static(b"intro\n"),
            PutOptions::default(),
        ),
        (
            k("photos/cat.jpg"),
            Bytes::from(vec![0xFFu8; 4096]),
            PutOptions::default(),
        ),
    ];
    let t = Instant::now();
    let mut total = 0u64;
    for (key, body, opts) in &small {
        total += body.len() as u64;
        let r = store
            .put(key, body.clone(), opts)
            .await
            .map_err(store_err(step))?;
        check(step, r.etag == md5_hex(body), || {
            format!(
                "ETag of {key:?} is {:?}, expected the body's MD5 {}",
                r.etag,
                md5_hex(body)
            )
        })?;
    }
    report(
        out,
        &format!(
            "put {} small objects ({total} bytes; user metadata, a dir/ marker)",
            small.len()
        ),
        t.elapsed(),
        None,
    );

    let step = "head with metadata";
    let t = Instant::now();
    let h = store.head(&k("hello.txt")).await.map_err(store_err(step))?;
    check(step, h.size == hello.len() as u64, || {
        format!("size {} != {}", h.size, hello.len())
    })?;
    check(step, h.user_metadata == meta.user_metadata, || {
        format!("metadata {:?} != {:?}", h.user_metadata, meta.user_metadata)
    })?;
    check(
        step,
        h.content_type.as_deref() == Some("text/plain"),
        || format!("content type {:?}", h.content_type),
    )?;
    report(
        out,
        "head hello.txt: size, content type and x-amz-meta-* match",
        t.elapsed(),
        None,
    );

    // 2. Listing with a delimiter, one level at a time.
    let step = "list with delimiter";
    let t = Instant::now();
    let (keys, prefixes) = list_all(store, prefix, Some("/"), step).await?;
    check(
        step,
        keys == vec![k("hello.txt")] && prefixes == vec![k("docs/"), k("photos/")],
        || format!("top level: keys {keys:?}, prefixes {prefixes:?}"),
    )?;
    let (dkeys, dprefixes) = list_all(store, &k("docs/"), Some("/"), step).await?;
    check(
        step,
        dkeys == vec![k("docs/"), k("docs/readme.md")] && dprefixes == vec![k("docs/guide/")],
        || format!("docs/: keys {dkeys:?}, prefixes {dprefixes:?}"),
    )?;
    report(
        out,
        &format!(
            "list \"/\": {} object, {} prefixes; docs/: {} objects, {} prefix",
            keys.len(),
            prefixes.len(),
            dkeys.len(),
            dprefixes.len()
        ),
        t.elapsed(),
        None,
    );

    // 3. Ranged reads.
    let step = "ranged get";
    let t = Instant::now();
    let g = store
        .get(&k("hello.txt"), Some(ByteRange::new(6, 10)))
        .await
        .map_err(store_err(step))?;
    let got = g.collect().await.map_err(store_err(step))?;
    check(step, got.as_ref() == &hello[6..10], || {
        format!("bytes [6, 10) are {got:?}")
    })?;
    let beyond = store
        .get(
            &k("hello.txt"),
            Some(ByteRange::from(hello.len() as u64 + 10)),
        )
        .await;
    check(
        step,
        matches!(beyond, Err(StoreError::InvalidRange { .. })),
        || format!("a range past the end gave {beyond:?} instead of InvalidRange"),
    )?;
    report(
        out,
        &format!(
            "get [6, 10) of hello.txt = {:?}; past the end: InvalidRange",
            String::from_utf8_lossy(&got)
        ),
        t.elapsed(),
        None,
    );

    // 4. Multipart upload, parts in parallel, read back and compared.
    let step = "multipart upload";
    let size = args.size_mib * MIB;
    let part_size = args.part_mib * MIB;
    let data = {
        let mut v = vec![0u8; size as usize];
        rand::rngs::SmallRng::from_rng(&mut rand::rng()).fill_bytes(&mut v);
        Bytes::from(v)
    };
    let big = k("big.bin");
    let mut big_opts = PutOptions::default();
    big_opts
        .user_metadata
        .insert("demo".into(), "multipart".into());
    let t = Instant::now();
    let upload_id = store
        .create_multipart(&big, &big_opts)
        .await
        .map_err(store_err(step))?;
    let ranges: Vec<(u32, std::ops::Range<usize>)> = (0..size.div_ceil(part_size))
        .map(|i| {
            let start = (i * part_size) as usize;
            let end = ((i + 1) * part_size).min(size) as usize;
            (i as u32 + 1, start..end)
        })
        .collect();
    let uploads = futures::stream::iter(ranges.iter().cloned())
        .map(|(n, r)| {
            let body = data.slice(r);
            let (big, upload_id) = (&big, &upload_id);
            async move {
                let etag = store.upload_part(big, upload_id, n, body).await?;
                Ok::<_, StoreError>(CompletedPart {
                    part_number: n,
                    etag,
                })
            }
        })
        .buffer_unordered(args.parallel)
        .try_collect::<Vec<_>>()
        .await;
    let mut parts = match uploads {
        Ok(p) => p,
        Err(e) => {
            let _ = store.abort_multipart(&big, &upload_id).await;
            return Err(store_err(step)(e));
        }
    };
    parts.sort_by_key(|p| p.part_number);
    let listed = store
        .list_parts(&big, &upload_id)
        .await
        .map_err(store_err(step))?;
    check(step, listed.len() == parts.len(), || {
        format!(
            "ListParts reports {} parts, {} were uploaded",
            listed.len(),
            parts.len()
        )
    })?;
    let done = store
        .complete_multipart(&big, &upload_id, &parts)
        .await
        .map_err(store_err(step))?;
    let elapsed = t.elapsed();
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for (_, r) in &ranges {
        md5s.extend_from_slice(&Md5::digest(&data[r.clone()]));
    }
    let want_etag = format!("{}-{}", md5_hex(&md5s), parts.len());
    check(step, done.etag == want_etag, || {
        format!("multipart ETag {:?}, expected {want_etag:?}", done.etag)
    })?;
    report(
        out,
        &format!(
            "multipart upload {} MiB in {} parts ({} in parallel)",
            args.size_mib,
            parts.len(),
            args.parallel
        ),
        elapsed,
        Some(size),
    );

    let step = "read back";
    let t = Instant::now();
    let g = store.get(&big, None).await.map_err(store_err(step))?;
    let mut offset = 0usize;
    let mut body = g.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(store_err(step))?;
        let end = offset + chunk.len();
        check(
            step,
            end <= data.len() && chunk[..] == data[offset..end],
            || format!("bytes [{offset}, {end}) differ from what was uploaded"),
        )?;
        offset = end;
    }
    check(step, offset == data.len(), || {
        format!("read {offset} bytes of {}", data.len())
    })?;
    report(
        out,
        &format!(
            "read back {} MiB, content matches byte for byte",
            args.size_mib
        ),
        t.elapsed(),
        Some(size),
    );

    let step = "ranged get across a part boundary";
    let (from, to) = (
        part_size.saturating_sub(1000).min(size - 1),
        (part_size + 1000).min(size),
    );
    let t = Instant::now();
    let got = store
        .get(&big, Some(ByteRange::new(from, to)))
        .await
        .map_err(store_err(step))?
        .collect()
        .await
        .map_err(store_err(step))?;
    check(step, got[..] == data[from as usize..to as usize], || {
        format!("bytes [{from}, {to}) differ")
    })?;
    report(
        out,
        &format!("get bytes [{from}, {to}) across a part boundary"),
        t.elapsed(),
        None,
    );

    // 5. Server-side copies.
    let step = "server-side copy";
    let t = Instant::now();
    let copy = k("big-copy.bin");
    let c = store
        .copy(&big, &copy, &CopyOptions::default())
        .await
        .map_err(store_err(step))?;
    let ch = store.head(&copy).await.map_err(store_err(step))?;
    check(
        step,
        ch.size == size && ch.user_metadata.get("demo").map(String::as_str) == Some("multipart"),
        || {
            format!(
                "copy has size {} and metadata {:?}",
                ch.size, ch.user_metadata
            )
        },
    )?;
    check(step, ch.etag == c.etag, || {
        format!(
            "HEAD of the copy reports ETag {:?}, the copy returned {:?}",
            ch.etag, c.etag
        )
    })?;
    report(
        out,
        &format!(
            "server-side copy of {} MiB (no data through the client)",
            args.size_mib
        ),
        t.elapsed(),
        Some(size),
    );

    let t = Instant::now();
    let renamed = k("docs/hello-copy.md");
    let mut replaced = PutOptions {
        content_type: Some("text/markdown".into()),
        ..Default::default()
    };
    replaced
        .user_metadata
        .insert("demo".into(), "replaced".into());
    store
        .copy(
            &k("hello.txt"),
            &renamed,
            &CopyOptions {
                metadata: MetadataDirective::Replace(replaced.clone()),
            },
        )
        .await
        .map_err(store_err(step))?;
    let rh = store.head(&renamed).await.map_err(store_err(step))?;
    check(
        step,
        rh.user_metadata == replaced.user_metadata
            && rh.content_type.as_deref() == Some("text/markdown"),
        || {
            format!(
                "replaced copy has metadata {:?}, content type {:?}",
                rh.user_metadata, rh.content_type
            )
        },
    )?;
    report(
        out,
        "copy hello.txt with replaced metadata and content type",
        t.elapsed(),
        None,
    );

    // 6. Deletes: one, then the rest in one request.
    let step = "delete";
    let t = Instant::now();
    store
        .delete(&k("hello.txt"))
        .await
        .map_err(store_err(step))?;
    let gone = store.head(&k("hello.txt")).await;
    check(
        step,
        matches!(gone, Err(StoreError::NotFound { .. })),
        || format!("HEAD after DELETE gave {gone:?}"),
    )?;
    let (rest, _) = list_all(store, prefix, None, step).await?;
    let failures = store
        .delete_multiple(&rest)
        .await
        .map_err(store_err(step))?;
    check(step, failures.is_empty(), || {
        format!("delete-multiple failures: {failures:?}")
    })?;
    let (left, _) = list_all(store, prefix, None, step).await?;
    check(step, left.is_empty(), || {
        format!("still listed after delete: {left:?}")
    })?;
    report(
        out,
        &format!(
            "delete 1 object, then {} in one request; nothing left",
            rest.len()
        ),
        t.elapsed(),
        None,
    );
    Ok(())
}
