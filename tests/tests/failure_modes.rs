//! Failure modes, end to end: a real daemon-mode mount of Garage behind
//! the fault proxy, real `kill -9`, real faults of the store.
//!
//! Each test makes the store (or the host) fail in one way a user meets
//! and checks what the user sees: an errno on the affected file, never a
//! hang, and a mount that keeps answering. Waits are bounded by generous
//! deadlines so a hang fails the test instead of stalling the suite.
//!
//! **Needs root and `/dev/fuse`** (CI runs as root).

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::Duration;

use e2e::fault_proxy::{Fault, FaultProxy};
use e2e::mount::{Bucket, Mount, shared_garage};

/// How long an answer may take before the test calls it a hang.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// A fault proxy in front of Garage on a runtime of its own.
fn proxied() -> e2e::Hosted<FaultProxy> {
    e2e::hosted("proxy", FaultProxy::start(shared_garage().s3_addr()))
}

/// Run `f` on a thread of its own; its result, or `None` when it did not
/// answer within `limit` (the thread is left blocked in the kernel).
fn answered<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// `kill -9` the mount's worker (the supervisor starts another).
fn kill_worker(m: &Mount) {
    let old = m.worker_pid();
    assert!(old > 0, "no worker to kill\n{}", m.log_tail());
    // SAFETY: kill with a pid and a signal number.
    let rc = unsafe { libc::kill(old, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {old}: {}", std::io::Error::last_os_error());
}

#[test]
fn a_permanent_store_error_during_a_worker_restart_fails_only_the_open_writer() {
    let p = proxied();
    let mut m = Mount::builder(shared_garage(), "fail-restore")
        .option(&format!("url={}", p.proxy.endpoint()))
        .mount();
    fs::write(m.join("kept"), b"kept before\n").unwrap_or_else(|e| panic!("{e}"));
    let writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("open"))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .write_all_at(b"written before the kill\n", 0)
        .unwrap_or_else(|e| panic!("{e}"));

    // The key is refused from now on: every request answers 403.
    p.proxy.fail_next(usize::MAX / 2, Fault::AccessDenied);
    kill_worker(&m);

    let mnt = m.path().to_path_buf();
    let statfs = answered(ANSWER_LIMIT, move || e2e::sys::statvfs(&mnt).map(|_| ()));
    if statfs.is_none() {
        // Let the supervisor's retries succeed so the mount can go away.
        p.proxy.clear_plan();
        panic!(
            "statfs did not answer {ANSWER_LIMIT:?} after the worker kill \
             (the restore hangs on the store error)\n{}",
            m.log_tail()
        );
    }
    let statfs = statfs.unwrap_or_else(|| unreachable!());
    assert!(statfs.is_ok(), "statfs: {statfs:?}");
    let mnt = m.path().to_path_buf();
    let ls = answered(ANSWER_LIMIT, move || fs::read_dir(&mnt).map(|d| d.count()));
    assert!(ls.is_some(), "ls did not answer\n{}", m.log_tail());
    // The store refuses listing too: that is its answer, not a hang.
    if let Some(Err(e)) = &ls {
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "ls: {e}");
    }

    // The writer whose file could not be restored gets EIO, now and at
    // fsync: its data is not silently dropped.
    let w = writer.try_clone().unwrap_or_else(|e| panic!("dup: {e}"));
    let wrote = answered(ANSWER_LIMIT, move || {
        w.write_all_at(b"after\n", 24).and_then(|()| w.sync_all())
    });
    match wrote {
        Some(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "write/fsync: {e}"),
        Some(Ok(())) => panic!("a write to a file that was not restored succeeded"),
        None => panic!("the write hung\n{}", m.log_tail()),
    }

    // The store is back: the mount serves without another restart.
    p.proxy.clear_plan();
    assert_eq!(
        fs::read(m.join("kept")).unwrap_or_default(),
        b"kept before\n"
    );
    fs::write(m.join("after"), b"after\n").unwrap_or_else(|e| panic!("after: {e}"));
    assert_eq!(fs::read(m.join("after")).unwrap_or_default(), b"after\n");
    drop(writer);
    assert!(
        m.status()["supervisor"]["worker_restarts"].as_u64() == Some(1),
        "one restart, not a crash loop: {}\n{}",
        m.status(),
        m.log_tail()
    );
    m.unmount_ok();
}

/// The object at `name` under the mount's prefix, read from Garage.
fn object(m: &Mount, name: &str) -> Option<Vec<u8>> {
    let bucket = Bucket::garage();
    let key = format!("{}{name}", m.prefix());
    bucket.block_on(async {
        match bucket.store().get(&key, None).await {
            Ok(got) => Some(
                got.collect()
                    .await
                    .unwrap_or_else(|e| panic!("get {key}: {e}"))
                    .to_vec(),
            ),
            Err(ossfs_rs::store::StoreError::NotFound { .. }) => None,
            Err(e) => panic!("get {key}: {e}"),
        }
    })
}

#[test]
fn a_rename_over_an_open_file_whose_copy_fails_keeps_the_writers_data() {
    let p = proxied();
    let m = Mount::builder(shared_garage(), "fail-rename-copy")
        .option(&format!("url={}", p.proxy.endpoint()))
        .mount();
    fs::write(m.join("target"), b"old target").unwrap_or_else(|e| panic!("{e}"));
    fs::write(m.join("source"), b"source").unwrap_or_else(|e| panic!("{e}"));
    let writer = OpenOptions::new()
        .write(true)
        .open(m.join("target"))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .write_all_at(b"NEW TARGET", 0)
        .unwrap_or_else(|e| panic!("{e}"));
    // The rename's CopyObject (its first PUT) is refused.
    p.proxy.fail_next_method("PUT", 1, Fault::AccessDenied);
    let renamed = fs::rename(m.join("source"), m.join("target"));
    assert_eq!(
        renamed.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(libc::EACCES),
        "the rename must fail as its copy did: {renamed:?}"
    );
    p.proxy.clear_plan();
    writer
        .write_all_at(b" and more", 10)
        .unwrap_or_else(|e| panic!("write after the failed rename: {e}"));
    writer
        .sync_all()
        .unwrap_or_else(|e| panic!("fsync after the failed rename: {e}"));
    drop(writer);
    assert_eq!(
        object(&m, "target").as_deref(),
        Some(&b"NEW TARGET and more"[..]),
        "the writer's data was dropped\n{}",
        m.log_tail()
    );
    assert_eq!(object(&m, "source").as_deref(), Some(&b"source"[..]));
    assert_eq!(
        fs::read(m.join("target")).unwrap_or_default(),
        b"NEW TARGET and more"
    );
}

/// The kernel locks a renamed file against writes and fsyncs, but not the
/// files inside a renamed directory: those are what a slow rename's copy
/// can race with.
#[test]
fn an_fsync_during_a_slow_directory_rename_lands_at_the_new_name() {
    let p = proxied();
    let m = Mount::builder(shared_garage(), "slow-rename-copy")
        .option(&format!("url={}", p.proxy.endpoint()))
        .mount();
    fs::create_dir(m.join("d")).unwrap_or_else(|e| panic!("{e}"));
    let writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("d/f"))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .write_all_at(b"first", 0)
        .unwrap_or_else(|e| panic!("{e}"));
    writer.sync_all().unwrap_or_else(|e| panic!("fsync: {e}"));
    // The copies (of d/ and d/f) take effect at once, their answers come
    // 3 s later.
    p.proxy
        .fail_next_method("PUT", 2, Fault::DelayReply(Duration::from_secs(3)));
    let (from, to) = (m.join("d"), m.join("e"));
    let renaming = std::thread::spawn(move || fs::rename(from, to));
    std::thread::sleep(Duration::from_millis(1000));
    let w = writer.try_clone().unwrap_or_else(|e| panic!("dup: {e}"));
    let synced = answered(ANSWER_LIMIT, move || {
        w.write_all_at(b" second", 5).and_then(|()| w.sync_all())
    });
    assert!(
        matches!(synced, Some(Ok(()))),
        "write+fsync during the rename: {synced:?}"
    );
    let renamed = renaming
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("panicked")));
    assert!(renamed.is_ok(), "rename: {renamed:?}");
    assert_eq!(
        object(&m, "e/f").as_deref(),
        Some(&b"first second"[..]),
        "the fsynced data must be at the new name\n{}",
        m.log_tail()
    );
    assert_eq!(object(&m, "d/f"), None, "the old name must be gone");
    drop(writer);
    assert_eq!(fs::read(m.join("e/f")).unwrap_or_default(), b"first second");
    assert_eq!(object(&m, "e/f").as_deref(), Some(&b"first second"[..]));
}
