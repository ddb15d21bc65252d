//! The `impl fuser::Filesystem` of [`FuseFs`]: one short method per
//! operation.
//!
//! Each method copies its arguments out of the kernel's buffers, opens a
//! tracing span named after the operation and hands an async block to
//! `FuseFs::spawn` (which runs, times and counts it); the block calls
//! `Fs`'s method and replies through `super::reply`, returning how it
//! replied. Resent requests that change the namespace go through
//! `super::once`; a resent write tells `Fs` so (an append must not be
//! applied twice). No method holds logic of its own.
//!
//! Imports: `super` (`FuseFs`, `MAX_WRITE`), `super::{reply, once, ledger}`,
//! `crate::fs` (argument types), `crate::metrics::{FuseOp, Replied}`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use fuser::{
    FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tracing::{debug, debug_span, warn};

use super::ledger::is_resent;
use super::once::{created_once, done_once, entry_once};
use super::reply::{
    DirPlusReply, DirReply, answer, answer_bytes, reply_attr, reply_empty, reply_entry, reply_xattr,
};
use super::{FuseFs, MAX_WRITE};
use crate::fs::{Attempt, Caller, SetAttr};
use crate::metrics::{FuseOp, Replied};

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
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
        self.spawn(FuseOp::Lookup, req, span, move |fs, _ledger| async move {
            reply_entry(fs.lookup(parent.0, &name).await, reply)
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.answer_now(FuseOp::Forget, |fs| {
            fs.forget(ino.0, nlookup);
            Replied::Ok(0)
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let span = debug_span!("getattr", ino = ino.0);
        self.spawn(FuseOp::Getattr, req, span, move |fs, _ledger| async move {
            reply_attr(fs.getattr(ino.0).await, reply)
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
        self.spawn(FuseOp::Setattr, req, span, move |fs, _ledger| async move {
            reply_attr(fs.setattr(ino.0, changes).await, reply)
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let span = debug_span!("readlink", ino = ino.0);
        self.spawn(FuseOp::Readlink, req, span, move |fs, _ledger| async move {
            answer(fs.readlink(ino.0).await, reply, |reply, target| {
                reply.data(&target)
            })
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
        self.spawn(FuseOp::Mknod, req, span, move |fs, ledger| async move {
            let run = fs.mknod(parent.0, &name, mode, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply)
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
        self.spawn(FuseOp::Mkdir, req, span, move |fs, ledger| async move {
            let run = fs.mkdir(parent.0, &name, mode, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply)
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let unique = req.unique().0;
        let span = debug_span!("unlink", parent = parent.0, name = ?name);
        self.spawn(FuseOp::Unlink, req, span, move |fs, ledger| async move {
            let r = done_once(&ledger, unique, fs.unlink(parent.0, &name)).await;
            reply_empty(r, reply)
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let unique = req.unique().0;
        let span = debug_span!("rmdir", parent = parent.0, name = ?name);
        self.spawn(FuseOp::Rmdir, req, span, move |fs, ledger| async move {
            let r = done_once(&ledger, unique, fs.rmdir(parent.0, &name)).await;
            reply_empty(r, reply)
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
        self.spawn(FuseOp::Symlink, req, span, move |fs, ledger| async move {
            let run = fs.symlink(parent.0, &name, &target, who);
            let r = entry_once(&fs, &ledger, unique, parent.0, &name, run).await;
            reply_entry(r, reply)
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
        self.spawn(FuseOp::Rename, req, span, move |fs, ledger| async move {
            let run = fs.rename(parent.0, &name, newparent.0, &newname, flags.bits());
            reply_empty(done_once(&ledger, unique, run).await, reply)
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = debug_span!("open", ino = ino.0, flags = flags.0);
        self.spawn(FuseOp::Open, req, span, move |fs, _ledger| async move {
            answer(fs.open(ino.0, flags.0).await, reply, |reply, fh| {
                let keep = if fs.keep_cache(fh) {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), keep)
            })
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
        self.spawn(FuseOp::Read, req, span, move |fs, _ledger| async move {
            let result = fs.read(ino.0, fh.0, offset, size).await;
            answer_bytes(result, reply, |reply, data| {
                reply.data(&data);
                data.len() as u64
            })
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
        let attempt = if is_resent(req.unique().0) {
            Attempt::Resent
        } else {
            Attempt::First
        };
        let span = debug_span!("write", ino = ino.0, fh = fh.0, offset, len = data.len());
        self.spawn(FuseOp::Write, req, span, move |fs, _ledger| async move {
            let result = fs.write_attempt(ino.0, fh.0, offset, data, attempt).await;
            answer_bytes(result, reply, |reply, n| {
                reply.written(n);
                u64::from(n)
            })
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
        self.spawn(FuseOp::Flush, req, span, move |fs, _ledger| async move {
            reply_empty(fs.flush(ino.0, fh.0).await, reply)
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
        self.spawn(FuseOp::Release, req, span, move |fs, _ledger| async move {
            reply_empty(fs.release(ino.0, fh.0).await, reply)
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
        self.spawn(FuseOp::Fsync, req, span, move |fs, _ledger| async move {
            reply_empty(fs.fsync(ino.0, fh.0).await, reply)
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = debug_span!("opendir", ino = ino.0);
        self.spawn(FuseOp::Opendir, req, span, move |fs, _ledger| async move {
            answer(fs.opendir(ino.0, flags.0).await, reply, |reply, fh| {
                reply.opened(FileHandle(fh), FopenFlags::empty())
            })
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
        self.spawn(FuseOp::Readdir, req, span, move |fs, _ledger| async move {
            let mut sink = DirReply(reply);
            let result = fs.readdir(ino.0, fh.0, offset, &mut sink).await;
            answer(result, sink.0, |reply, ()| reply.ok())
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
        self.spawn(
            FuseOp::Readdirplus,
            req,
            span,
            move |fs, _ledger| async move {
                let mut sink = DirPlusReply(reply);
                let result = fs.readdirplus(ino.0, fh.0, offset, &mut sink).await;
                answer(result, sink.0, |reply, ()| reply.ok())
            },
        );
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.answer_now(FuseOp::Releasedir, |fs| {
            reply_empty(fs.releasedir(fh.0), reply)
        });
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
        self.answer_now(FuseOp::Fsyncdir, |_fs| {
            reply.ok();
            Replied::Ok(0)
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.answer_now(FuseOp::Statfs, |fs| {
            let s = fs.statfs();
            reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            );
            Replied::Ok(0)
        });
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
        self.spawn(FuseOp::Setxattr, req, span, move |fs, _ledger| async move {
            reply_empty(fs.setxattr(ino.0, &name, &value, flags).await, reply)
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.to_owned();
        let span = debug_span!("getxattr", ino = ino.0, name = ?name, size);
        self.spawn(FuseOp::Getxattr, req, span, move |fs, _ledger| async move {
            reply_xattr(fs.getxattr(ino.0, &name, size).await, reply)
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let span = debug_span!("listxattr", ino = ino.0, size);
        self.spawn(
            FuseOp::Listxattr,
            req,
            span,
            move |fs, _ledger| async move { reply_xattr(fs.listxattr(ino.0, size).await, reply) },
        );
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        let span = debug_span!("removexattr", ino = ino.0, name = ?name);
        self.spawn(FuseOp::Removexattr, req, span, move |fs, _ledger| async move {
            reply_empty(fs.removexattr(ino.0, &name).await, reply)
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
        self.spawn(FuseOp::Create, req, span, move |fs, ledger| async move {
            let create = |flags| fs.create(parent.0, &name, mode, flags, who);
            let result = created_once(&fs, &ledger, unique, flags, create).await;
            answer(result, reply, |reply, c| {
                reply.created(
                    &c.entry.ttl,
                    &c.entry.attr,
                    Generation(0),
                    FileHandle(c.fh),
                    FopenFlags::empty(),
                )
            })
        });
    }
}
