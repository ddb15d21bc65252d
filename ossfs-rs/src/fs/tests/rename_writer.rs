//! A rename that involves a file with an open writer, while the store's
//! CopyObject fails or is slow: the writer's data must reach the key it
//! holds when the rename is done (or the one it held, when it failed).
//!
//! Imports: the test harness (`super`), `store::layer` (the copy hooks).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::store::StoreResult;
use crate::store::layer::{Call, HookedStore, StoreHooks, StoreOp};

/// Fails or slows every CopyObject, as told.
#[derive(Debug, Default)]
struct Copies {
    fail: AtomicBool,
    delay_ms: AtomicU64,
}

impl StoreHooks for Copies {
    fn before(&self, call: &Call<'_>) -> StoreResult<()> {
        if !matches!(call.op, StoreOp::Copy | StoreOp::UploadPartCopy) {
            return Ok(());
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Connection("injected copy failure".into()));
        }
        // Blocks this runtime thread only (the tests run on several).
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        Ok(())
    }
}

async fn env_with(copies: Arc<Copies>) -> Env {
    Env::with_store_wrapper(
        |_| {},
        move |s| Arc::new(HookedStore::new(s, copies)) as Arc<dyn ObjectStore>,
    )
    .await
}

#[tokio::test]
async fn a_failed_rename_over_an_open_file_keeps_its_writer_uploading() {
    let copies = Arc::new(Copies::default());
    let env = env_with(copies.clone()).await;
    env.write_file("target", b"old target", 0o644).await;
    env.write_file("source", b"source", 0o644).await;
    let (ino, fh) = env.open_path("target", libc::O_WRONLY).await;
    env.fs
        .write(ino, fh, 0, Bytes::from_static(b"NEW TARGET"))
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));

    copies.fail.store(true, Ordering::SeqCst);
    let renamed = env
        .fs
        .rename(Fs::root(), os("source"), Fs::root(), os("target"), 0)
        .await;
    assert!(renamed.is_err(), "the copy failed, so must the rename");
    copies.fail.store(false, Ordering::SeqCst);

    // The rename did not happen: the writer still owns "target", and its
    // data (before and after the failed rename) must get there.
    env.fs
        .write(ino, fh, 10, Bytes::from_static(b" and more"))
        .await
        .unwrap_or_else(|e| panic!("write after: {e}"));
    env.fs
        .fsync(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("fsync: {e}"));
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
    assert_eq!(
        env.get("target").await.as_deref(),
        Some(&b"NEW TARGET and more"[..]),
        "the writer's data was dropped"
    );
    assert_eq!(env.get("source").await.as_deref(), Some(&b"source"[..]));
}

/// Write and fsync `fh` of `ino` while `from` is renamed to `to` (in the
/// root) with every copy 1.5 s slow; then the object at `at` must hold
/// both writes and `gone` must not exist.
async fn fsync_during_a_slow_rename(
    env: Arc<Env>,
    copies: &Copies,
    names: [&'static str; 4],
    ino: u64,
    fh: u64,
) {
    let [from, to, at, gone] = names;
    copies.delay_ms.store(1500, Ordering::SeqCst);
    let renaming = {
        let env = env.clone();
        tokio::spawn(async move {
            env.fs
                .rename(Fs::root(), os(from), Fs::root(), os(to), 0)
                .await
        })
    };
    // Write and fsync while the copy is under way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writing = {
        let env = env.clone();
        tokio::spawn(async move {
            env.fs
                .write(ino, fh, 5, Bytes::from_static(b" second"))
                .await?;
            env.fs.fsync(ino, fh).await
        })
    };
    let renamed = renaming.await.unwrap_or_else(|e| panic!("join: {e}"));
    assert!(renamed.is_ok(), "rename: {renamed:?}");
    let wrote = writing.await.unwrap_or_else(|e| panic!("join: {e}"));
    assert!(wrote.is_ok(), "write/fsync: {wrote:?}");
    copies.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(
        env.get(at).await.as_deref(),
        Some(&b"first second"[..]),
        "the fsynced data must be at the new name"
    );
    assert_eq!(env.get(gone).await, None, "the old name must be gone");
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
    assert_eq!(env.get(at).await.as_deref(), Some(&b"first second"[..]));
    assert_eq!(env.get(gone).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn an_fsync_during_a_slow_rename_reaches_the_new_name() {
    let copies = Arc::new(Copies::default());
    let env = Arc::new(env_with(copies.clone()).await);
    env.write_file("from", b"first", 0o644).await;
    let (ino, fh) = env.open_path("from", libc::O_WRONLY).await;
    fsync_during_a_slow_rename(env, &copies, ["from", "to", "to", "from"], ino, fh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn an_fsync_during_a_slow_directory_rename_reaches_the_new_name() {
    let copies = Arc::new(Copies::default());
    let env = Arc::new(env_with(copies.clone()).await);
    env.fs
        .mkdir(Fs::root(), os("d"), 0o755, caller())
        .await
        .unwrap_or_else(|e| panic!("mkdir: {e}"));
    env.write_file("d/f", b"first", 0o644).await;
    let (ino, fh) = env.open_path("d/f", libc::O_WRONLY).await;
    fsync_during_a_slow_rename(env, &copies, ["d", "e", "e/f", "d/f"], ino, fh).await;
}
