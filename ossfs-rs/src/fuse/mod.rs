//! The FUSE adapter: a thin `fuser::Filesystem` over [`Fs`].
//!
//! Each kernel request becomes one task on the tokio runtime: the callback
//! copies its arguments, spawns `Fs`'s async method inside a tracing span
//! named after the operation, and the task replies (fuser's reply objects
//! are `Send`). The fuser threads therefore never block on the network, and
//! any number of requests are in flight at once; with `Config { n_threads }`
//! several threads read the one `/dev/fuse` fd (never `clone_fd`, see
//! DESIGN.md section 5). There is no logic here: errors become errnos
//! through [`ToErrno`] (the one errno mapping, `fs::errno`), and are logged
//! at debug level when they are ordinary answers (ENOENT of a lookup) or at
//! warn level otherwise.
//!
//! The entry point is [`new`]: build the filesystem, then hand it to
//! `fuser::Session::new(fs, mountpoint, &config)` (or `fuser::mount`).

pub mod inflight;
pub mod ledger;

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use tokio::runtime::Handle;
use tracing::{Instrument, Span, debug, debug_span, warn};

use crate::fs::ToErrno;
use crate::fs::journal::Answer;
use crate::fs::{
    Caller, DirPlusSink, DirSink, Entry, Fs, FsConfig, FsError, Kind, SetAttr, XattrReply,
};
use crate::fuse::ledger::{Ledger, is_resent};
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

    /// Serve one request on the runtime. A draining worker (live
    /// upgrade) neither serves nor answers it: `work` (which owns the
    /// reply) is forgotten, because dropping a fuser reply answers EIO, and
    /// the next worker gets the request again from the kernel.
    fn spawn<F>(&self, req: &Request, span: Span, work: impl FnOnce(Arc<Fs>, Arc<Ledger>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(ticket) = self.ledger.begin(req.unique().0) else {
            std::mem::forget(work);
            return;
        };
        let task = work(self.fs.clone(), self.ledger.clone());
        let mut task = Box::pin(
            async move {
                task.await;
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
}

/// The errno of `e`, logged according to how surprising it is.
fn errno(e: &FsError) -> Errno {
    if e.is_expected() {
        debug!(error = %e, "answered with an error");
    } else {
        warn!(error = %e, errno = e.errno(), "operation failed");
    }
    Errno::from_i32(e.errno())
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn reply_entry(result: Result<Entry, FsError>, reply: ReplyEntry) {
    match result {
        Ok(e) => reply.entry(&e.ttl, &e.attr, Generation(0)),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_attr(result: Result<Entry, FsError>, reply: ReplyAttr) {
    match result {
        Ok(e) => reply.attr(&e.ttl, &e.attr),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_empty(result: Result<(), FsError>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_xattr(result: Result<XattrReply, FsError>, reply: ReplyXattr) {
    match result {
        Ok(XattrReply::Size(n)) => reply.size(n),
        Ok(XattrReply::Data(d)) => reply.data(&d),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Run a request that creates a node (mkdir, mknod, symlink) at most
/// once: a resent request whose first attempt finished gets that answer
/// again; one whose first attempt got as far as the store finds the node
/// there (EEXIST from itself), which is success too.
async fn entry_once(
    fs: &Fs,
    ledger: &Ledger,
    unique: u64,
    parent: u64,
    name: &OsStr,
    run: impl Future<Output = Result<Entry, FsError>>,
) -> Result<Entry, FsError> {
    if let Some(Answer::Entry { ino }) = ledger.replayed(unique) {
        return fs.getattr(ino).await;
    }
    let result = match run.await {
        Err(e) if is_resent(unique) && e.errno() == libc::EEXIST => fs.lookup(parent, name).await,
        other => other,
    };
    if let Ok(e) = &result {
        ledger.remember(unique, Answer::Entry { ino: e.attr.ino.0 });
    }
    result
}

/// Run a request that removes or moves a name (unlink, rmdir, rename) at
/// most once: a resent one whose first attempt already did it succeeds
/// instead of failing with `gone` (ENOENT).
async fn done_once(
    ledger: &Ledger,
    unique: u64,
    run: impl Future<Output = Result<(), FsError>>,
) -> Result<(), FsError> {
    if let Some(Answer::Done) = ledger.replayed(unique) {
        return Ok(());
    }
    let result = match run.await {
        Err(e) if is_resent(unique) && e.errno() == libc::ENOENT => Ok(()),
        other => other,
    };
    if result.is_ok() {
        ledger.remember(unique, Answer::Done);
    }
    result
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

struct DirReply(ReplyDirectory);

impl DirSink for DirReply {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        self.0.add(INodeNo(ino), offset, kind.file_type(), name)
    }
}

struct DirPlusReply(ReplyDirectoryPlus);

impl DirPlusSink for DirPlusReply {
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool {
        self.0.add(
            entry.attr.ino,
            offset,
            name,
            &entry.ttl,
            &entry.attr,
            Generation(0),
        )
    }
}

impl fuser::Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS;
        if let Err(missing) = config.add_capabilities(wanted) {
            debug!(?missing, "kernel lacks some FUSE capabilities");
        }
        if let Err(max) = config.set_max_readahead(MAX_WRITE) {
            debug!(max, "kernel caps the readahead size");
            let _ = config.set_max_readahead(max);
        }
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            debug!(max, "kernel caps the write size");
            let _ = config.set_max_write(max);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        // Unmounted with files still open (lazy unmount): upload what they
        // staged, as their release would have.
        let fs = self.fs.clone();
        let result = self.rt.block_on(async move { fs.flush_all().await });
        if let Err(e) = result {
            warn!(error = %e, "could not upload every staged file at unmount");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        let span = debug_span!("lookup", parent = parent.0, name = ?name);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_entry(fs.lookup(parent.0, &name).await, reply);
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let span = debug_span!("getattr", ino = ino.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_attr(fs.getattr(ino.0).await, reply);
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        let span = debug_span!("setattr", ino = ino.0, ?changes);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_attr(fs.setattr(ino.0, changes).await, reply);
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let span = debug_span!("readlink", ino = ino.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            match fs.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = name.to_owned();
        let who = caller(req);
        let unique = req.unique().0;
        let span = debug_span!("mknod", parent = parent.0, name = ?name, mode);
        self.spawn(req, span, move |fs, ledger| async move {
            let run = fs.mknod(parent.0, &name, mode, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply);
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name.to_owned();
        let who = caller(req);
        let unique = req.unique().0;
        let span = debug_span!("mkdir", parent = parent.0, name = ?name, mode);
        self.spawn(req, span, move |fs, ledger| async move {
            let run = fs.mkdir(parent.0, &name, mode, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let unique = req.unique().0;
        let span = debug_span!("unlink", parent = parent.0, name = ?name);
        self.spawn(req, span, move |fs, ledger| async move {
            let r = done_once(&ledger, unique, fs.unlink(parent.0, &name)).await;
            reply_empty(r, reply);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let unique = req.unique().0;
        let span = debug_span!("rmdir", parent = parent.0, name = ?name);
        self.spawn(req, span, move |fs, ledger| async move {
            let r = done_once(&ledger, unique, fs.rmdir(parent.0, &name)).await;
            reply_empty(r, reply);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let name = link_name.to_owned();
        let target = target.to_owned();
        let who = caller(req);
        let unique = req.unique().0;
        let span = debug_span!("symlink", parent = parent.0, name = ?name, target = ?target);
        self.spawn(req, span, move |fs, ledger| async move {
            let run = fs.symlink(parent.0, &name, &target, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply);
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let name = name.to_owned();
        let newname: OsString = newname.to_owned();
        let span = debug_span!(
            "rename",
            parent = parent.0,
            name = ?name,
            newparent = newparent.0,
            newname = ?newname,
            flags = flags.bits()
        );
        let unique = req.unique().0;
        self.spawn(req, span, move |fs, ledger| async move {
            let run = fs.rename(parent.0, &name, newparent.0, &newname, flags.bits());
            reply_empty(done_once(&ledger, unique, run).await, reply);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = debug_span!("open", ino = ino.0, flags = flags.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            match fs.open(ino.0, flags.0).await {
                Ok(fh) if fs.keep_cache(fh) => {
                    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
                }
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let span = debug_span!("read", ino = ino.0, fh = fh.0, offset, size);
        self.spawn(req, span, move |fs, _ledger| async move {
            match fs.read(ino.0, fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = Bytes::copy_from_slice(data);
        let span = debug_span!("write", ino = ino.0, fh = fh.0, offset, len = data.len());
        self.spawn(req, span, move |fs, _ledger| async move {
            match fs.write(ino.0, fh.0, offset, data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let span = debug_span!("flush", ino = ino.0, fh = fh.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_empty(fs.flush(ino.0, fh.0).await, reply);
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let span = debug_span!("release", ino = ino.0, fh = fh.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_empty(fs.release(ino.0, fh.0).await, reply);
        });
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let span = debug_span!("fsync", ino = ino.0, fh = fh.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_empty(fs.fsync(ino.0, fh.0).await, reply);
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = debug_span!("opendir", ino = ino.0);
        self.spawn(req, span, move |fs, _ledger| async move {
            match fs.opendir(ino.0, flags.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let span = debug_span!("readdir", ino = ino.0, fh = fh.0, offset);
        self.spawn(req, span, move |fs, _ledger| async move {
            let mut sink = DirReply(reply);
            match fs.readdir(ino.0, fh.0, offset, &mut sink).await {
                Ok(()) => sink.0.ok(),
                Err(e) => sink.0.error(errno(&e)),
            }
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let span = debug_span!("readdirplus", ino = ino.0, fh = fh.0, offset);
        self.spawn(req, span, move |fs, _ledger| async move {
            let mut sink = DirPlusReply(reply);
            match fs.readdirplus(ino.0, fh.0, offset, &mut sink).await {
                Ok(()) => sink.0.ok(),
                Err(e) => sink.0.error(errno(&e)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.fs.releasedir(fh.0), reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are requests already completed on the store.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let name = name.to_owned();
        let value = value.to_vec();
        let span = debug_span!("setxattr", ino = ino.0, name = ?name, len = value.len());
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_empty(fs.setxattr(ino.0, &name, &value, flags).await, reply);
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.to_owned();
        let span = debug_span!("getxattr", ino = ino.0, name = ?name, size);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_xattr(fs.getxattr(ino.0, &name, size).await, reply);
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let span = debug_span!("listxattr", ino = ino.0, size);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_xattr(fs.listxattr(ino.0, size).await, reply);
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let span = debug_span!("removexattr", ino = ino.0, name = ?name);
        self.spawn(req, span, move |fs, _ledger| async move {
            reply_empty(fs.removexattr(ino.0, &name).await, reply);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name.to_owned();
        let who = caller(req);
        let unique = req.unique().0;
        let span = debug_span!("create", parent = parent.0, name = ?name, mode, flags);
        self.spawn(req, span, move |fs, ledger| async move {
            let result = match ledger.replayed(unique) {
                Some(Answer::Created { ino, fh }) => fs
                    .getattr(ino)
                    .await
                    .map(|entry| crate::fs::Created { entry, fh }),
                _ => match fs.create(parent.0, &name, mode, flags, who).await {
                    // The first attempt made the file: open what it made.
                    Err(e) if is_resent(unique) && e.errno() == libc::EEXIST => {
                        fs.create(parent.0, &name, mode, flags & !libc::O_EXCL, who)
                            .await
                    }
                    other => other,
                },
            };
            if let Ok(c) = &result {
                ledger.remember(
                    unique,
                    Answer::Created {
                        ino: c.entry.attr.ino.0,
                        fh: c.fh,
                    },
                );
            }
            match result {
                Ok(c) => reply.created(
                    &c.entry.ttl,
                    &c.entry.attr,
                    Generation(0),
                    FileHandle(c.fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
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
