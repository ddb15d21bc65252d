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
use e2e::mount::{Mount, shared_garage};

/// How long an answer may take before the test calls it a hang.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// A fault proxy in front of Garage on a runtime of its own.
struct Proxied {
    proxy: FaultProxy,
    _rt: tokio::runtime::Runtime,
}

fn proxied() -> Proxied {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let proxy = rt
        .block_on(FaultProxy::start(shared_garage().s3_addr()))
        .unwrap_or_else(|e| panic!("proxy: {e}"));
    Proxied { proxy, _rt: rt }
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
