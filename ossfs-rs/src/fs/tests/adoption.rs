//! A worker "killed" with open writers and a next one adopting their
//! staging files from the journal: what each close then uploads.
//!
//! Imports: the test harness (`super`), `fs::{journal, replay}` and
//! `store::layer` (counting uploads).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::fs::journal::JournalOp;
use crate::fs::replay::Restored;
use crate::fs::replay::tests::Collect;
use crate::store::layer::{Call, HookedStore, StoreHooks, StoreOp};
use crate::store::{StoreError, StoreResult};

/// Counts the uploads a worker makes; refuses every HEAD (a revoked key)
/// once `refuse_heads` is set.
#[derive(Debug, Default)]
struct Puts(AtomicUsize, AtomicBool);

impl StoreHooks for Puts {
    fn before(&self, call: &Call<'_>) -> StoreResult<()> {
        if matches!(call.op, StoreOp::Put | StoreOp::CompleteMultipart) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        if call.op == StoreOp::Head && self.1.load(Ordering::SeqCst) {
            return Err(StoreError::AccessDenied {
                code: "AccessDenied".into(),
                message: "refused by the test".into(),
                request_id: None,
            });
        }
        Ok(())
    }
}

/// The state a next worker starts from `sink`, through JSON as in the file.
fn restored(sink: &Collect) -> Restored {
    let mut r = Restored::default();
    for op in sink.0.lock().map(|v| v.clone()).unwrap_or_default() {
        let line = serde_json::to_string(&op).unwrap_or_default();
        let back: JournalOp = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        r.apply(back);
    }
    r
}

/// A journaled worker over `env`'s bucket area and staging directory,
/// its uploads counted in `puts`.
async fn worker(env: &Env, sink: Arc<Collect>, from: Restored, puts: Arc<Puts>) -> Fs {
    let (fs, adoptions) = Fs::with_journal(
        Arc::new(HookedStore::new(env.store.clone(), puts)),
        env.fs.config().clone(),
        sink,
        from,
    )
    .unwrap_or_else(|e| panic!("with_journal: {e}"));
    fs.adopt(adoptions)
        .await
        .unwrap_or_else(|e| panic!("adopt: {e}"));
    fs
}

/// Create `name` for writing and write `data`; returns (ino, fh).
async fn writer(fs: &Fs, name: &str, data: &[u8]) -> (u64, u64) {
    let c = fs
        .create(Fs::root(), os(name), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let ino = c.entry.attr.ino.0;
    fs.write(ino, c.fh, 0, Bytes::copy_from_slice(data))
        .await
        .unwrap_or_else(|e| panic!("write {name}: {e}"));
    (ino, c.fh)
}

#[tokio::test]
async fn an_adopted_copy_uploads_only_what_the_old_worker_had_not() {
    let env = Env::new().await;
    let sink = Arc::new(Collect::default());
    let old = worker(&env, sink.clone(), Restored::default(), Arc::default()).await;

    // Clean: fsynced, then another client writes a newer version.
    let clean = writer(&old, "clean", b"mine").await;
    old.fsync(clean.0, clean.1)
        .await
        .unwrap_or_else(|e| panic!("fsync: {e}"));
    env.put("clean", b"theirs", &[]).await;
    // Unlinked while open, then re-created by someone else.
    let gone = writer(&old, "gone", b"stale").await;
    old.unlink(Fs::root(), os("gone"))
        .await
        .unwrap_or_else(|e| panic!("unlink: {e}"));
    env.put("gone", b"the new one", &[]).await;
    // Replaced by a rename over it.
    let replaced = writer(&old, "replaced", b"stale").await;
    env.write_file("tmp", b"replacement", 0o644).await;
    old.rename(Fs::root(), os("tmp"), Fs::root(), os("replaced"), 0)
        .await
        .unwrap_or_else(|e| panic!("rename: {e}"));
    // Dirty, the object unchanged since: uploaded.
    let dirty = writer(&old, "dirty", b"unsent").await;
    // Dirty, the object changed by another client since: a conflict.
    let conflict = writer(&old, "conflict", b"unsent").await;
    env.put("conflict", b"theirs", &[]).await;

    // The worker dies: nothing of it runs again, its files stay on disk.
    std::mem::forget(old);
    let puts = Arc::new(Puts::default());
    let new = worker(&env, Arc::default(), restored(&sink), puts.clone()).await;

    for (ino, fh) in [clean, gone, replaced, dirty] {
        new.release(ino, fh)
            .await
            .unwrap_or_else(|e| panic!("release {ino}: {e}"));
    }
    assert_eq!(env.get("clean").await.as_deref(), Some(&b"theirs"[..]));
    assert_eq!(env.get("gone").await.as_deref(), Some(&b"the new one"[..]));
    assert_eq!(
        env.get("replaced").await.as_deref(),
        Some(&b"replacement"[..])
    );
    assert_eq!(env.get("dirty").await.as_deref(), Some(&b"unsent"[..]));
    assert_eq!(
        puts.0.load(Ordering::SeqCst),
        1,
        "only the dirty copy is sent"
    );
    let err = new
        .flush(conflict.0, conflict.1)
        .await
        .err()
        .unwrap_or_else(|| panic!("a conflicting upload must fail"));
    assert!(matches!(err, FsError::Conflict { .. }), "{err}");
    assert_eq!(err.errno(), libc::EIO);
    let staging = new.staging_of(conflict.0).map(|s| s.path().to_path_buf());
    assert!(new.release(conflict.0, conflict.1).await.is_err());
    assert_eq!(env.get("conflict").await.as_deref(), Some(&b"theirs"[..]));
    let kept = staging.and_then(|p| std::fs::read(p).ok());
    assert_eq!(kept.as_deref(), Some(&b"unsent"[..]), "the writes are kept");
}

/// A writer of `f` that wrote `data`, whose upload reached the store but
/// whose journal line the kill cut off, taken over by a next worker:
/// (next worker, its uploads, ino, fh).
async fn unjournaled_upload(env: &Env, data: &[u8]) -> (Fs, Arc<Puts>, u64, u64) {
    let sink = Arc::new(Collect::default());
    let old = worker(env, sink.clone(), Restored::default(), Arc::default()).await;
    let (ino, fh) = writer(&old, "f", data).await;
    env.put("f", data, &[]).await;
    std::mem::forget(old);
    let puts = Arc::new(Puts::default());
    let new = worker(env, Arc::default(), restored(&sink), puts.clone()).await;
    (new, puts, ino, fh)
}

#[tokio::test]
async fn a_copy_the_old_worker_uploaded_without_journaling_it_is_clean() {
    let env = Env::new().await;
    let (new, puts, ino, fh) = unjournaled_upload(&env, b"uploaded, not journaled").await;
    new.flush(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("flush: {e}"));
    new.release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
    assert_eq!(puts.0.load(Ordering::SeqCst), 0, "nothing is sent again");
    assert_eq!(
        env.get("f").await.as_deref(),
        Some(&b"uploaded, not journaled"[..])
    );
}

#[tokio::test]
async fn a_writer_whose_head_is_refused_at_restart_gets_eio_and_the_rest_is_restored() {
    let env = Env::new().await;
    let sink = Arc::new(Collect::default());
    let old = worker(&env, sink.clone(), Restored::default(), Arc::default()).await;
    let refused = writer(&old, "refused", b"unsent").await;
    std::mem::forget(old);

    let puts = Arc::new(Puts::default());
    puts.1.store(true, Ordering::SeqCst);
    // `worker` panics when `adopt` fails (before the fix it did, and the
    // supervisor retried the restart forever).
    let new = worker(&env, Arc::default(), restored(&sink), puts.clone()).await;
    for err in [
        new.write(refused.0, refused.1, 6, Bytes::from_static(b"more"))
            .await
            .err(),
        new.fsync(refused.0, refused.1).await.err(),
    ] {
        let err = err.unwrap_or_else(|| panic!("a writer that was not restored must fail"));
        assert!(matches!(err, FsError::NotRestored { .. }), "{err}");
        assert_eq!(err.errno(), libc::EIO);
    }
    puts.1.store(false, Ordering::SeqCst);
    let closed = new.release(refused.0, refused.1).await;
    assert!(
        matches!(closed, Err(FsError::NotRestored { .. })),
        "{closed:?}"
    );
    assert_eq!(
        puts.0.load(Ordering::SeqCst),
        0,
        "nothing partial is uploaded"
    );
    // Other files are served as usual.
    env.write_file("other", b"fine", 0o644).await;
    assert_eq!(env.get("other").await.as_deref(), Some(&b"fine"[..]));
}

#[tokio::test]
async fn a_lost_journal_line_of_an_own_upload_survives_a_resent_write() {
    let env = Env::new().await;
    let (new, puts, ino, fh) = unjournaled_upload(&env, b"one\n").await;
    // The kernel resends a write the old worker never got to: it grows
    // the copy before any flush compares it with the object.
    new.write_attempt(ino, fh, 4, Bytes::from_static(b"two\n"), Attempt::Resent)
        .await
        .unwrap_or_else(|e| panic!("resent write: {e}"));
    new.release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
    assert_eq!(env.get("f").await.as_deref(), Some(&b"one\ntwo\n"[..]));
    assert_eq!(puts.0.load(Ordering::SeqCst), 1);
}
