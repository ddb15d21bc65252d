//! Streamed uploads ([`crate::upload::stream`]) through the filesystem, on
//! the embedded S3 server: parts go out while a file is written, and every
//! way a stream can go wrong falls back to uploading the whole file.

use std::sync::Arc;

use bytes::Bytes;

use super::harness::{self, Env, caller};
use super::os;
use crate::fs::{Fs, ToErrno};

const MIB: usize = 1024 * 1024;

fn body(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i * 7 + seed) % 251) as u8)
        .collect()
}

/// Create `name` and write `data` in 1 MiB writes; returns (ino, fh).
async fn write_in_order(env: &Env, name: &str, data: &[u8]) -> (u64, u64) {
    let c = env
        .fs
        .create(Fs::root(), os(name), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let ino = c.entry.attr.ino.0;
    for (i, chunk) in data.chunks(MIB).enumerate() {
        env.fs
            .write(ino, c.fh, (i * MIB) as u64, Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
    (ino, c.fh)
}

/// Bytes the stream of `ino` has sent or is sending (0: no stream).
async fn streamed(env: &Env, ino: u64) -> u64 {
    let st = env
        .fs
        .staging_of(ino)
        .unwrap_or_else(|| panic!("no staging"));
    let state = st.lock().await;
    state.stream.as_ref().map_or(0, |s| s.frozen())
}

async fn close(env: &Env, ino: u64, fh: u64) -> Result<(), i32> {
    let flushed = env.fs.flush(ino, fh).await.map_err(|e| e.errno());
    let released = env.fs.release(ino, fh).await.map_err(|e| e.errno());
    flushed.and(released)
}

/// Wait until `done` holds, for at most 30 s: parts and the abort of a
/// failed stream run on their own tasks, which a loaded machine (CI with 2
/// cores) may start late; the callers assert what they waited for.
async fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn wait_for_an_abort(faults: &harness::FailingParts) {
    wait_until(|| faults.aborted() >= 1).await;
}

fn small_parts(c: &mut crate::fs::FsConfig) {
    c.multipart_size = 5 * MIB as u64;
    c.parallel_count = 2;
}

#[tokio::test]
async fn a_sequential_writer_sends_parts_before_close() {
    let env = Env::with(small_parts).await;
    let data = body(23 * MIB, 1);
    let (ino, fh) = write_in_order(&env, "seq", &data).await;
    // 23 MiB written in order: parts 1 to 4 (20 MiB) are on their way.
    assert_eq!(streamed(&env, ino).await, 20 * MIB as u64);
    // Until close the object is the empty one create made.
    assert_eq!(env.get("seq").await.map(|b| b.len()), Some(0));
    close(&env, ino, fh)
        .await
        .unwrap_or_else(|e| panic!("close: errno {e}"));
    let head = env.head("seq").await.unwrap_or_else(|| panic!("missing"));
    assert!(head.etag.ends_with("-5"), "5 parts, etag {}", head.etag);
    assert!(env.get("seq").await.as_deref() == Some(&data[..]));
    // What stat shows is what was stored (mode and mtime metadata).
    let entry = env
        .lookup_path("seq")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entry.attr.size, data.len() as u64);
    assert_eq!(entry.attr.perm, 0o644);
    assert!(
        head.user_metadata.contains_key("mtime"),
        "{:?}",
        head.user_metadata
    );
}

#[tokio::test]
async fn small_and_gappy_files_are_not_streamed() {
    let env = Env::with(small_parts).await;
    let (ino, fh) = write_in_order(&env, "small", &body(4 * MIB, 2)).await;
    assert_eq!(streamed(&env, ino).await, 0);
    close(&env, ino, fh).await.unwrap_or_else(|e| panic!("{e}"));
    // A write past the end leaves a gap: the file is uploaded at close.
    let c = env
        .fs
        .create(Fs::root(), os("gap"), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = c.entry.attr.ino.0;
    let tail = Bytes::from(body(12 * MIB, 3));
    env.fs
        .write(ino, c.fh, 1, tail.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(streamed(&env, ino).await, 0);
    close(&env, ino, c.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = env.get("gap").await.unwrap_or_default();
    assert_eq!(got.len(), 1 + tail.len());
    assert!(got[0] == 0 && got[1..] == tail[..]);
}

#[tokio::test]
async fn rewriting_sent_bytes_uploads_the_whole_file() {
    let env = Env::with(small_parts).await;
    let mut data = body(16 * MIB, 4);
    let (ino, fh) = write_in_order(&env, "rewritten", &data).await;
    assert_eq!(streamed(&env, ino).await, 15 * MIB as u64);
    // Change a byte of part 1, already sent.
    env.fs
        .write(ino, fh, 100, Bytes::from_static(b"XYZ"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    data[100..103].copy_from_slice(b"XYZ");
    close(&env, ino, fh).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(env.get("rewritten").await.as_deref() == Some(&data[..]));
    // Truncating below the sent bytes, then writing on, too.
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = body(12 * MIB, 5);
    for (i, chunk) in again.chunks(MIB).enumerate() {
        env.fs
            .write(ino, fh, (i * MIB) as u64, Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(streamed(&env, ino).await, 10 * MIB as u64);
    env.fs
        .setattr(
            ino,
            super::SetAttr {
                size: Some(3 * MIB as u64),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    close(&env, ino, fh).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(env.get("rewritten").await.as_deref() == Some(&again[..3 * MIB]));
}

#[tokio::test]
async fn metadata_changed_while_streaming_is_kept() {
    let env = Env::with(small_parts).await;
    let data = body(11 * MIB, 6);
    let (ino, fh) = write_in_order(&env, "chmodded", &data).await;
    assert!(streamed(&env, ino).await > 0);
    env.fs
        .setattr(
            ino,
            super::SetAttr {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    close(&env, ino, fh).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(env.get("chmodded").await.as_deref() == Some(&data[..]));
    let head = env
        .head("chmodded")
        .await
        .unwrap_or_else(|| panic!("missing"));
    let mode = head.user_metadata.get("mode").cloned().unwrap_or_default();
    assert_eq!(
        mode.parse::<u32>().map(|m| m & 0o7777).ok(),
        Some(0o600),
        "metadata {:?}",
        head.user_metadata
    );
}

#[tokio::test]
async fn a_failed_part_falls_back_to_the_whole_file() {
    let faults = harness::FailingParts::new();
    let env = Env::with_store_wrapper(small_parts, |inner| {
        Arc::new(harness::Faulty::new(inner, faults.clone()))
    })
    .await;
    faults.fail_part(1);
    let data = body(12 * MIB, 7);
    let (ino, fh) = write_in_order(&env, "flaky", &data).await;
    // Part 1 goes out on its own task: heal only once it has failed, or it
    // may be sent after the heal and succeed.
    wait_until(|| faults.failed() >= 1).await;
    assert!(
        faults.failed() >= 1,
        "part 1 must have been sent and failed"
    );
    faults.heal();
    close(&env, ino, fh)
        .await
        .unwrap_or_else(|e| panic!("close: errno {e}"));
    assert!(env.get("flaky").await.as_deref() == Some(&data[..]));
    // The failed stream was aborted (in the background).
    wait_for_an_abort(&faults).await;
    assert!(faults.aborted() >= 1, "the failed stream must be aborted");
}

#[tokio::test]
async fn an_unlinked_writer_leaves_nothing() {
    let faults = harness::FailingParts::new();
    let env = Env::with_store_wrapper(small_parts, |inner| {
        Arc::new(harness::Faulty::new(inner, faults.clone()))
    })
    .await;
    let (ino, fh) = write_in_order(&env, "gone", &body(12 * MIB, 8)).await;
    assert!(streamed(&env, ino).await > 0);
    env.fs
        .unlink(Fs::root(), os("gone"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    close(&env, ino, fh).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("gone").await, None);
    wait_for_an_abort(&faults).await;
    assert_eq!(
        faults.aborted(),
        1,
        "the stream of an unlinked file is aborted"
    );
}
