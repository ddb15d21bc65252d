//! The FUSE adapter: a thin `fuser::Filesystem` over [`Fs`].
//!
//! Each kernel request becomes one task on the tokio runtime: the callback
//! copies its arguments, spawns `Fs`'s async method inside a tracing span
//! named after the operation, and the task replies (fuser's reply objects
//! are `Send`). The fuser threads therefore never block on the network, and
//! any number of requests are in flight at once; with `Config { n_threads }`
//! several threads read the one `/dev/fuse` fd (never `clone_fd`, see
//! DESIGN.md section 5). There is no logic here: errors become errnos
//! through `fs::ToErrno` (the one errno mapping, in `fs/errno.rs`), and are logged
//! at debug level when they are ordinary answers (ENOENT of a lookup) or at
//! warn level otherwise.
//!
//! Every request is counted in the metrics (`ossfs_fuse_*`: requests,
//! latency, errors by errno, bytes) in one place, `FuseFs::spawn` (or
//! `FuseFs::answer_now` for the few answered on the FUSE thread): each
//! operation's task returns how it replied ([`Replied`]), and the wrapper
//! records it with the time since the request arrived.
//!
//! The parts:
//! - this file: [`FuseFs`], the entry point [`new`], and the wrapper that
//!   runs, times and counts each request;
//! - `ops`: the `impl fuser::Filesystem`, one short method per operation;
//! - `reply`: replies, errno conversion, the readdir sinks;
//! - `once`: at-most-once semantics of resent requests;
//! - [`ledger`], [`inflight`]: the resend bookkeeping of a supervised worker.
//!
//! The entry point is [`new`]: build the filesystem, then hand it to
//! `fuser::Session::new(fs, mountpoint, &config)` (or `fuser::mount`).
//!
//! Imports: `crate::fs`, `crate::store` (the trait), `crate::metrics`,
//! `crate::sys` (the request size); this file imports only `ledger` of its
//! children, which import it and each other without a cycle.

pub mod inflight;
pub mod ledger;
mod once;
mod ops;
mod reply;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use fuser::Request;
use tokio::runtime::Handle;
use tracing::{Instrument, Span};

use crate::fs::{Fs, FsConfig, FsError};
use crate::fuse::ledger::Ledger;
use crate::metrics::{FuseOp, METRICS, Replied};
use crate::store::ObjectStore;

/// Largest write the kernel sends in one request (this kernel's cap is
/// 256 pages, see DESIGN.md section 2).
pub const MAX_WRITE: u32 = crate::sys::FUSE_MAX_REQUEST;

/// Build the filesystem the mount command serves: `store` addressed
/// through `config`, its async work run on `runtime`. Fails when the
/// staging directory cannot be created.
///
/// Then, from a plain thread (not inside the runtime: the session loop
/// blocks), `fuser::Session::new(fs, mountpoint, &fuser_config)?.run()`
/// or `.spawn()`. Keep `runtime` alive until the session has ended: the
/// unmount (`destroy`) still uploads what open files staged.
pub fn new(
    store: Arc<dyn ObjectStore>,
    config: FsConfig,
    runtime: Handle,
) -> Result<FuseFs, FsError> {
    Ok(FuseFs::new(Arc::new(Fs::new(store, config)?), runtime))
}

/// The `fuser::Filesystem` of ossfs-rs.
pub struct FuseFs {
    fs: Arc<Fs>,
    rt: Handle,
    ledger: Arc<Ledger>,
}

impl std::fmt::Debug for FuseFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseFs").field("fs", &self.fs).finish()
    }
}

impl FuseFs {
    /// Serve `fs`, running its work on `rt`.
    pub fn new(fs: Arc<Fs>, rt: Handle) -> Self {
        Self::supervised(fs, rt, Arc::new(Ledger::standalone()))
    }

    /// Serve `fs` as a supervised worker: requests are tracked in `ledger`
    /// (in flight, drained on upgrade, answers of non-idempotent ones).
    pub fn supervised(fs: Arc<Fs>, rt: Handle, ledger: Arc<Ledger>) -> Self {
        Self { fs, rt, ledger }
    }

    /// The filesystem behind this adapter.
    pub fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }

    /// Serve one request of `op` on the runtime; `work` replies and says
    /// how ([`Replied`]), which is counted with the time since now. A
    /// draining worker (live upgrade) neither serves nor answers it:
    /// `work` (which owns the reply) is forgotten, because dropping a fuser
    /// reply answers EIO, and the next worker gets the request again from
    /// the kernel (and counts it).
    fn spawn<F>(
        &self,
        op: FuseOp,
        req: &Request,
        span: Span,
        work: impl FnOnce(Arc<Fs>, Arc<Ledger>) -> F,
    ) where
        F: Future<Output = Replied> + Send + 'static,
    {
        let started = Instant::now();
        let Some(ticket) = self.ledger.begin(req.unique().0) else {
            std::mem::forget(work);
            return;
        };
        let task = work(self.fs.clone(), self.ledger.clone());
        let mut task = Box::pin(
            async move {
                let replied = task.await;
                METRICS.fuse(op, started.elapsed(), replied);
                drop(ticket);
            }
            .instrument(span),
        );
        // Answer here, on the FUSE thread, whatever needs no waiting (a
        // block or attributes already cached): handing every request to a
        // runtime thread and the reply back costs two context switches,
        // far more than a cache hit itself (4 KiB random reads went from
        // about 5,000 to tens of thousands a second). A request that has
        // to wait is moved, as it is, onto the runtime; a future must take
        // the waker of its latest poll, so the runtime's poll takes over
        // from this one's no-op waker.
        let _runtime = self.rt.enter();
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if task.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(task);
        }
    }

    /// Serve one request of `op` that never waits, here on the FUSE
    /// thread, and count it as `spawn` does.
    fn answer_now(&self, op: FuseOp, work: impl FnOnce(&Fs) -> Replied) {
        let started = Instant::now();
        let replied = work(&self.fs);
        METRICS.fuse(op, started.elapsed(), replied);
    }
}

#[cfg(test)]
mod tests {
    //! A real mount: needs root (or fusermount3 rights) and /dev/fuse, as CI has.

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    use super::*;
    use crate::store::StoreError;
    use crate::test_support::{random_prefix, test_server};

    #[test]
    fn mount_write_read_rename_unmount() {
        let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
        let server = rt.block_on(test_server());
        let store = server.store.clone();
        let prefix = random_prefix("fuse-test");
        let staging = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mnt = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = FsConfig {
            prefix: prefix.clone(),
            staging_dir: staging.path().to_path_buf(),
            ..FsConfig::default()
        };
        let fs =
            new(store.clone(), config, rt.handle().clone()).unwrap_or_else(|e| panic!("fs: {e}"));
        let mut options = fuser::Config::default();
        options.mount_options = vec![
            fuser::MountOption::FSName("ossfs-rs-test".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        options.n_threads = Some(4);
        let session = fuser::Session::new(fs, mnt.path(), &options)
            .unwrap_or_else(|e| panic!("mount (needs root and /dev/fuse): {e}"));
        let background = session.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
        let root: PathBuf = mnt.path().to_path_buf();

        std::fs::create_dir(root.join("docs")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(root.join("docs/a.txt"), b"hello fuse").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(root.join("docs/a.txt")).ok().as_deref(),
            Some(&b"hello fuse"[..])
        );
        let meta = std::fs::metadata(root.join("docs/a.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.len(), 10);
        // Overwrite (the kernel truncates through setattr), append, truncate.
        std::fs::write(root.join("docs/c.txt"), b"first version").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("docs/c.txt"), b"second").unwrap_or_else(|e| panic!("{e}"));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(root.join("docs/c.txt"))
                .unwrap_or_else(|e| panic!("open append: {e}"));
            f.write_all(b" and more")
                .unwrap_or_else(|e| panic!("append: {e}"));
        }
        assert_eq!(
            std::fs::read(root.join("docs/c.txt")).ok().as_deref(),
            Some(&b"second and more"[..])
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("docs/c.txt"))
            .and_then(|f| f.set_len(6))
            .unwrap_or_else(|e| panic!("truncate: {e}"));
        assert_eq!(
            std::fs::metadata(root.join("docs/c.txt"))
                .map(|m| m.len())
                .ok(),
            Some(6)
        );
        std::fs::remove_file(root.join("docs/c.txt")).unwrap_or_else(|e| panic!("unlink: {e}"));
        std::fs::set_permissions(
            root.join("docs/a.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap_or_else(|e| panic!("chmod: {e}"));
        std::fs::rename(root.join("docs/a.txt"), root.join("docs/b.txt"))
            .unwrap_or_else(|e| panic!("rename: {e}"));
        std::fs::rename(root.join("docs"), root.join("papers"))
            .unwrap_or_else(|e| panic!("rename dir: {e}"));
        std::os::unix::fs::symlink("b.txt", root.join("papers/link"))
            .unwrap_or_else(|e| panic!("symlink: {e}"));
        assert_eq!(
            std::fs::read(root.join("papers/link")).ok().as_deref(),
            Some(&b"hello fuse"[..])
        );
        let mut names: Vec<String> = std::fs::read_dir(root.join("papers"))
            .unwrap_or_else(|e| panic!("readdir: {e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        assert_eq!(names, vec!["b.txt", "link"]);
        let b = std::fs::metadata(root.join("papers/b.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.mode() & 0o7777, 0o600);
        let err = std::fs::remove_dir(root.join("papers"))
            .err()
            .and_then(|e| e.raw_os_error());
        assert_eq!(err, Some(libc::ENOTEMPTY));
        let err = std::fs::read(root.join("nope"))
            .err()
            .and_then(|e| e.raw_os_error());
        assert_eq!(err, Some(libc::ENOENT));

        background
            .umount_and_join()
            .unwrap_or_else(|e| panic!("unmount: {e}"));

        // What the mount wrote is in the bucket, with ossfs metadata.
        rt.block_on(async {
            let head = store
                .head(&format!("{prefix}papers/b.txt"))
                .await
                .unwrap_or_else(|e| panic!("head: {e}"));
            assert_eq!(
                head.user_metadata.get("mode").map(String::as_str),
                Some("33152")
            );
            let old = store.head(&format!("{prefix}docs/a.txt")).await;
            assert!(matches!(old, Err(StoreError::NotFound { .. })));
        });
    }
}
