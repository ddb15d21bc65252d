//! Names: mkdir, rmdir, unlink, rename, symlink, readlink.
//!
//! Object stores have no rename and no directories, so:
//!
//! - A new node (mkdir here, create and mknod in `file.rs`, a symlink
//!   without native symlinks) is one PUT with its metadata, stored by
//!   `put_new_node`; the stat cache learns it at once.
//! - `mkdir` PUTs a zero-byte marker `dir/` (content type
//!   `application/x-directory`, metadata with the mode), as ossfs does;
//!   `rmdir` deletes it after checking with a two-key LIST that nothing
//!   else lives below (ENOTEMPTY otherwise).
//! - Renaming a file is a server-side copy (metadata kept; part-copy above
//!   the dialect's single-copy limit, via [`copy_object`]) then a delete;
//!   dirty data of an open writer is uploaded first so the copy carries it.
//! - Renaming a directory copies every key under its prefix, up to
//!   `parallel_count` at a time, and only when all copies succeeded deletes
//!   the sources with delete-multiple. If a copy fails, the copies made so
//!   far are deleted again and the source is untouched. The rename is not
//!   atomic: another client listing in between sees both trees.
//! - Symlinks are native symlink objects where the dialect has them (OSS,
//!   COS), else an object whose body is the target, with mode `S_IFLNK` in
//!   its metadata (what s3fs writes); readlink reads either.
//! - An open writer's staging file whose name is unlinked or replaced is
//!   orphaned: never uploaded again, journaled so (`JournalOp::Orphan`)
//!   for a restarted worker.
//!
//! Imports: `fs::{error, journal, meta, name}` and the shared state of
//! `fs/mod.rs`; `store`, `upload` (object copies).

use std::ffi::OsStr;
use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tracing::warn;

use super::error::FsError;
use super::journal::JournalOp;
use super::meta::{Kind, NodeInfo};
use super::name::{check_name, is_within};
use super::{Caller, Entry, Fs, lock};
use crate::store::{CopyOptions, ListRequest};
use crate::upload::copy_object;

/// Longest symlink target (Linux `PATH_MAX` minus the NUL).
const SYMLINK_MAX: usize = 4095;

impl Fs {
    /// Create the directory `name` in `parent`.
    pub async fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        self.ensure_absent(&path).await?;
        let info = self
            .put_new_node(&path, Kind::Dir, mode, caller, Bytes::new())
            .await?;
        self.child_entry(parent, name, &info)
    }

    /// Store a new node at `path` (see [`NodeInfo::new_node`]) with `body`
    /// as its content, and let the stat cache know. `caller` owns it.
    pub(super) async fn put_new_node(
        &self,
        path: &str,
        kind: Kind,
        perm: u32,
        caller: Caller,
        body: Bytes,
    ) -> Result<NodeInfo, FsError> {
        let (key, op) = match kind {
            Kind::Dir => (self.keys.dir(path), "mkdir"),
            Kind::File => (self.keys.object(path), "create"),
            Kind::Symlink => (self.keys.object(path), "symlink"),
        };
        let mut info = NodeInfo::new_node(kind, perm, caller.uid, caller.gid, Self::now());
        info.size = body.len() as u64;
        let put = self
            .store
            .put(&key, body, &info.put_options(&info.posix))
            .await
            .map_err(|e| FsError::store(format!("{op} {key}"), e))?;
        info.etag = put.etag;
        self.cache_put(path, &info);
        Ok(info)
    }

    /// Whether nothing but the marker lives under the directory at `path`.
    async fn dir_is_empty(&self, path: &str) -> Result<bool, FsError> {
        let prefix = self.keys.dir(path);
        let req = ListRequest::keys_under(prefix.clone(), 2);
        let page = self
            .store
            .list_page(&req, None)
            .await
            .map_err(|e| FsError::store(format!("list {prefix}"), e))?;
        let other_object = page.objects.iter().any(|o| o.key != prefix);
        Ok(!other_object && page.prefixes.is_empty())
    }

    /// Every key under `prefix`, all pages.
    async fn list_all(&self, prefix: &str) -> Result<Vec<String>, FsError> {
        let mut keys = Vec::new();
        self.list_pages(&ListRequest::keys_under(prefix, 1000), |page| {
            keys.extend(page.objects.into_iter().map(|o| o.key));
        })
        .await?;
        Ok(keys)
    }

    /// Remove the empty directory `name` from `parent`.
    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        let info = self.resolve_existing(&path).await?;
        if info.kind != Kind::Dir {
            return Err(FsError::NotDir(path));
        }
        if !self.dir_is_empty(&path).await? {
            return Err(FsError::NotEmpty(path));
        }
        let key = self.keys.dir(&path);
        self.store
            .delete(&key)
            .await
            .map_err(|e| FsError::store(format!("rmdir {key}"), e))?;
        lock(&self.inodes).detach(parent, name);
        self.cache_remove_tree(&path);
        Ok(())
    }

    /// Mark the staging file of the node at `(parent, name)`, if any, as
    /// unlinked, so its writer's later flush does not bring it back. Its
    /// writers keep the content the name had, as on a local filesystem, so
    /// a staging file not filled yet is filled now, before the object goes.
    /// Returns the node whose staging file this was; the caller journals
    /// it ([`Fs::journal_orphan`]) once the object is gone.
    async fn orphan_staging(
        &self,
        parent: u64,
        name: &str,
        unlinked: bool,
    ) -> Result<Option<u64>, FsError> {
        let Some(ino) = lock(&self.inodes).child(parent, name) else {
            return Ok(None);
        };
        let Some(st) = self.staging_of(ino) else {
            return Ok(None);
        };
        let mut state = st.lock().await;
        if unlinked {
            self.ensure_loaded(ino, &st, &mut state).await?;
        }
        state.unlinked = unlinked;
        Ok(Some(ino))
    }

    /// Journal that the staging file of `orphaned` (if any) is never to be
    /// uploaded again: its name is gone from the store (a restarted worker
    /// must not bring it back, `adoption.rs`). Journaled after the store
    /// changed, so a kill before that leaves the file uploadable.
    fn journal_orphan(&self, orphaned: Option<u64>) {
        if let Some(ino) = orphaned {
            self.journal(JournalOp::Orphan { ino });
        }
    }

    /// Remove the file or symlink `name` from `parent`.
    pub async fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        let info = self.resolve_existing(&path).await?;
        if info.kind == Kind::Dir {
            return Err(FsError::IsDir(path));
        }
        // Waits for an upload in progress, then stops further ones.
        let orphaned = self.orphan_staging(parent, name, true).await?;
        let key = self.keys.object(&path);
        if let Err(e) = self.store.delete(&key).await {
            // Un-orphaning never loads, so it cannot fail.
            let _ = self.orphan_staging(parent, name, false).await;
            return Err(FsError::store(format!("unlink {key}"), e));
        }
        self.journal_orphan(orphaned);
        lock(&self.inodes).detach(parent, name);
        self.cache_remove_tree(&path);
        self.cache_missing(&path);
        Ok(())
    }

    /// Create the symlink `name` in `parent` pointing at `target`.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let name = check_name(name)?;
        let target = target
            .to_str()
            .ok_or_else(|| FsError::InvalidName(target.to_string_lossy().into_owned()))?;
        if target.len() > SYMLINK_MAX {
            return Err(FsError::NameTooLong(target.to_string()));
        }
        let (_, path) = self.child_path(parent, name)?;
        self.ensure_absent(&path).await?;
        let info = if self.store.provider().supports_native_symlink() {
            let mut info =
                NodeInfo::new_node(Kind::Symlink, 0o777, caller.uid, caller.gid, Self::now());
            let key = self.keys.object(&path);
            self.store
                .put_symlink(&key, target, &info.put_options(&info.posix))
                .await
                .map_err(|e| FsError::store(format!("symlink {key}"), e))?;
            info.size = target.len() as u64;
            info.native_symlink = true;
            self.cache_put(&path, &info);
            info
        } else {
            let body = Bytes::copy_from_slice(target.as_bytes());
            self.put_new_node(&path, Kind::Symlink, 0o777, caller, body)
                .await?
        };
        self.child_entry(parent, name, &info)
    }

    /// The target of the symlink `ino`.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let (rec, info) = self.info_of(ino).await?;
        if info.kind != Kind::Symlink {
            return Err(FsError::Invalid(format!("{} is not a symlink", rec.path)));
        }
        let key = self.keys.object(&rec.path);
        if info.native_symlink {
            let target = self
                .store
                .get_symlink(&key)
                .await
                .map_err(|e| FsError::store(format!("readlink {key}"), e))?;
            return Ok(target.into_bytes());
        }
        let body = self
            .store
            .get(&key, None)
            .await
            .map_err(|e| FsError::store(format!("readlink {key}"), e))?
            .collect()
            .await
            .map_err(|e| FsError::store(format!("readlink {key}"), e))?;
        if body.len() > SYMLINK_MAX {
            return Err(FsError::NameTooLong(rec.path));
        }
        Ok(body.to_vec())
    }

    /// Rename `name` in `parent` to `new_name` in `new_parent`. `flags` are
    /// renameat2's: RENAME_NOREPLACE is honoured, RENAME_EXCHANGE and
    /// RENAME_WHITEOUT are refused with EINVAL.
    pub async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<(), FsError> {
        self.check_writable()?;
        let _listings = self.namespace_change();
        let noreplace = libc::RENAME_NOREPLACE;
        if flags & !noreplace != 0 {
            return Err(FsError::Invalid(format!(
                "rename flags {flags:#x} (only RENAME_NOREPLACE is supported)"
            )));
        }
        let name = check_name(name)?;
        let new_name = check_name(new_name)?;
        let (_, src) = self.child_path(parent, name)?;
        let (_, dst) = self.child_path(new_parent, new_name)?;
        let src_info = self.resolve_existing(&src).await?;
        // Checks in renameat2's order: RENAME_NOREPLACE, then the no-op,
        // then ancestry (the kernel answers those itself; kept for callers
        // without it), then the kinds.
        let dst_info = if src == dst {
            Some(src_info.clone())
        } else {
            self.resolve(&dst).await?
        };
        if dst_info.is_some() && flags & noreplace != 0 {
            return Err(FsError::Exists(dst));
        }
        if src == dst {
            return Ok(());
        }
        if src_info.kind == Kind::Dir && is_within(&dst, &src) {
            return Err(FsError::Invalid(format!("cannot move {src} into itself")));
        }
        if is_within(&src, &dst) {
            // The target is an ancestor of the source: never empty.
            return Err(FsError::NotEmpty(dst));
        }
        let mut orphaned = None;
        if let Some(existing) = &dst_info {
            match (src_info.kind, existing.kind) {
                (Kind::Dir, Kind::Dir) if !self.dir_is_empty(&dst).await? => {
                    return Err(FsError::NotEmpty(dst));
                }
                (Kind::Dir, Kind::Dir) => {}
                (Kind::Dir, _) => return Err(FsError::NotDir(dst)),
                (_, Kind::Dir) => return Err(FsError::IsDir(dst)),
                _ => {}
            }
            // An open writer of the replaced file must not bring it back.
            orphaned = self.orphan_staging(new_parent, new_name, true).await?;
        }
        let names = Renamed {
            parent,
            name,
            new_parent,
            new_name,
        };
        match src_info.kind {
            // A directory can only replace an empty directory: no writer
            // was orphaned.
            Kind::Dir => self.rename_dir(&names, &src, &dst).await?,
            Kind::File | Kind::Symlink => {
                self.rename_object(&names, &src, &dst, &src_info, orphaned)
                    .await?
            }
        }
        self.cache_remove_tree(&src);
        self.cache_remove_tree(&dst);
        Ok(())
    }

    /// Copy the file or symlink at `src` to `dst`, delete `src`, and give
    /// the node its new name. The source's staging file (an open writer)
    /// stays locked throughout: its staged writes are uploaded first so the
    /// copy carries them, and a flush or write meanwhile waits and then
    /// goes to the new name (it would otherwise upload to `src` just before
    /// `src` is deleted). When the copy fails nothing changed, and the
    /// replaced file's writer (`orphaned`) gets its name back.
    async fn rename_object(
        &self,
        names: &Renamed<'_>,
        src: &str,
        dst: &str,
        info: &NodeInfo,
        orphaned: Option<u64>,
    ) -> Result<(), FsError> {
        let staging = lock(&self.inodes)
            .child(names.parent, names.name)
            .and_then(|ino| self.staging_of(ino).map(|st| (ino, st)));
        let mut held = match &staging {
            Some((ino, st)) => Some((*ino, st, st.lock().await)),
            None => None,
        };
        let copied = match held.as_mut() {
            Some((ino, st, state)) => match self.sync_locked(*ino, st, state).await {
                Ok(()) => self.copy_node(src, dst, info).await,
                Err(e) => Err(e),
            },
            None => self.copy_node(src, dst, info).await,
        };
        if let Err(e) = copied {
            drop(held);
            self.unorphan(orphaned).await;
            return Err(e);
        }
        // `dst` holds the copy now: the replaced file is gone.
        self.journal_orphan(orphaned);
        let src_key = self.keys.object(src);
        self.store
            .delete(&src_key)
            .await
            .map_err(|e| FsError::store(format!("delete {src_key} after copying it"), e))?;
        names.apply(self);
        drop(held);
        Ok(())
    }

    /// Copy the object of the file or symlink at `src` to `dst`.
    async fn copy_node(&self, src: &str, dst: &str, info: &NodeInfo) -> Result<(), FsError> {
        let src_key = self.keys.object(src);
        let dst_key = self.keys.object(dst);
        if info.native_symlink {
            let target = self
                .store
                .get_symlink(&src_key)
                .await
                .map_err(|e| FsError::store(format!("readlink {src_key}"), e))?;
            self.store
                .put_symlink(&dst_key, &target, &info.put_options(&info.posix))
                .await
                .map_err(|e| FsError::store(format!("symlink {dst_key}"), e))?;
        } else {
            copy_object(
                self.store.as_ref(),
                &src_key,
                &dst_key,
                &CopyOptions::default(),
            )
            .await
            .map_err(|e| FsError::store(format!("copy {src_key} to {dst_key}"), e))?;
        }
        Ok(())
    }

    /// Undo [`Fs::orphan_staging`] for a rename that failed before the
    /// replaced file's object changed: its writer still owns the name, and
    /// its later flushes upload there.
    async fn unorphan(&self, orphaned: Option<u64>) {
        if let Some(st) = orphaned.and_then(|ino| self.staging_of(ino)) {
            st.lock().await.unlinked = false;
        }
    }

    /// Copy every key under the directory `src` to `dst`, delete them, and
    /// give the directory its new name. The staging files of open writers
    /// below stay locked throughout (in inode order, so two renames never
    /// wait for each other), as in [`Fs::rename_object`]: their staged
    /// writes are uploaded first so the copies carry them, and a flush
    /// meanwhile goes to the new name once the rename is done.
    async fn rename_dir(&self, names: &Renamed<'_>, src: &str, dst: &str) -> Result<(), FsError> {
        let mut below: Vec<u64> = lock(&self.inodes)
            .records()
            .into_iter()
            .filter(|r| r.kind == Kind::File && is_within(&r.path, src))
            .map(|r| r.ino)
            .collect();
        below.sort_unstable();
        let stagings: Vec<(u64, std::sync::Arc<super::staging::Staging>)> = below
            .into_iter()
            .filter_map(|ino| self.staging_of(ino).map(|st| (ino, st)))
            .collect();
        let mut held = Vec::with_capacity(stagings.len());
        for (ino, st) in &stagings {
            let mut state = st.lock().await;
            self.sync_locked(*ino, st, &mut state).await?;
            held.push(state);
        }
        self.copy_dir(src, dst).await?;
        names.apply(self);
        drop(held);
        Ok(())
    }

    /// Copy every key under the directory `src` to `dst`, then delete them;
    /// a failed copy deletes the copies made so far again.
    async fn copy_dir(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let src_prefix = self.keys.dir(src);
        let dst_prefix = self.keys.dir(dst);
        let keys = self.list_all(&src_prefix).await?;
        let pairs: Vec<(String, String)> = keys
            .iter()
            .map(|key| {
                let new_key = format!("{dst_prefix}{}", &key[src_prefix.len()..]);
                (key.clone(), new_key)
            })
            .collect();
        let results: Vec<Result<String, FsError>> = futures::stream::iter(pairs)
            .map(|(key, new_key)| async move {
                copy_object(self.store.as_ref(), &key, &new_key, &CopyOptions::default())
                    .await
                    .map(|_| new_key)
                    .map_err(|e| FsError::store(format!("copy {key}"), e))
            })
            .buffer_unordered(self.upload.parallel_count)
            .collect()
            .await;
        let mut copied = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(k) => copied.push(k),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            // Undo: the source is intact, remove the partial copy.
            if let Err(undo) = self.delete_keys(&copied).await {
                warn!(src, dst, error = %undo, "could not remove the partial copy of a failed directory rename");
            }
            return Err(e);
        }
        self.delete_keys(&keys).await
    }

    /// Delete `keys` with delete-multiple, 1000 per request.
    async fn delete_keys(&self, keys: &[String]) -> Result<(), FsError> {
        let failures: Vec<Vec<crate::store::DeleteFailure>> =
            futures::stream::iter(keys.chunks(1000).map(<[String]>::to_vec))
                .map(|chunk| async move {
                    self.store
                        .delete_multiple(&chunk)
                        .await
                        .map_err(|e| FsError::store("delete-multiple", e))
                })
                .buffer_unordered(self.upload.parallel_count)
                .try_collect()
                .await?;
        match failures.into_iter().flatten().next() {
            None => Ok(()),
            Some(f) => Err(FsError::DeleteFailed {
                key: f.key,
                code: f.code,
                message: f.message,
            }),
        }
    }
}

/// The names of a rename: `name` in `parent` becomes `new_name` in
/// `new_parent`.
struct Renamed<'a> {
    parent: u64,
    name: &'a str,
    new_parent: u64,
    new_name: &'a str,
}

impl Renamed<'_> {
    /// Give the node its new name in the inode table.
    fn apply(&self, fs: &Fs) {
        lock(&fs.inodes).rename(self.parent, self.name, self.new_parent, self.new_name);
    }
}
