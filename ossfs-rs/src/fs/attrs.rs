//! Attributes: setattr (chmod, chown, utimens, truncate), xattrs, statfs.
//!
//! Metadata lives in the object's headers, and headers cannot be changed in
//! place, so changing them rewrites the object's metadata: a file is copied
//! onto itself with the REPLACE directive (a server-side copy, no data
//! through this host; part-copy above the single-copy limit), a native
//! symlink is re-created, a directory's marker is PUT again (an implied
//! directory gets a marker this way). While a writer has unflushed data,
//! the new metadata only goes into its staging state and travels with the
//! upload, saving a copy that the upload would replace anyway.
//!
//! atime is not stored (like ossfs without `-o atime`): an atime-only
//! change succeeds without a request. The root of the mount shows the
//! mount's defaults and cannot be chmod'ed or chown'ed (EPERM).
//!
//! A clean writer's copy whose object gets new metadata this way takes the
//! new ETag as its version (what a restarted worker compares the object
//! with, `adoption.rs`).
//!
//! Imports: `fs::{error, meta, xattr}` and the shared state of `fs/mod.rs`
//! (its staging files); `store`, `upload` (object copies).

use std::ffi::OsStr;
use std::time::SystemTime;

use super::error::FsError;
use super::meta::{Kind, NodeInfo, PosixMeta, stored_mode};
use super::xattr::{self, USER_NAMESPACE, XATTR_META};
use super::{Entry, Fs, StatFs, XattrReply};
use crate::store::{CopyOptions, MetadataDirective, UserMetadata};
use crate::upload::copy_object;

/// What a setattr asks to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (type bits ignored).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

/// statfs answers a large constant, as ossfs does: a bucket has no
/// capacity to report. 1 PiB in 4 KiB blocks.
const STATFS_BLOCK: u32 = 4096;
const STATFS_BLOCKS: u64 = (1u64 << 50) / STATFS_BLOCK as u64;
const STATFS_FILES: u64 = 1 << 32;

impl Fs {
    /// Change attributes of `ino`; returns the new attributes.
    pub async fn setattr(&self, ino: u64, changes: SetAttr) -> Result<Entry, FsError> {
        let meta_change = changes.mode.is_some()
            || changes.uid.is_some()
            || changes.gid.is_some()
            || changes.mtime.is_some();
        if meta_change || changes.size.is_some() || changes.atime.is_some() {
            self.check_writable()?;
        }
        if let Some(size) = changes.size {
            self.truncate(ino, size).await?;
        }
        if meta_change {
            self.rewrite_meta(ino, |kind, posix, _| {
                if let Some(mode) = changes.mode {
                    posix.mode = Some(stored_mode(kind, mode));
                }
                if let Some(uid) = changes.uid {
                    posix.uid = Some(uid);
                }
                if let Some(gid) = changes.gid {
                    posix.gid = Some(gid);
                }
                if let Some(mtime) = changes.mtime {
                    posix.mtime = Some(mtime);
                }
                Ok(())
            })
            .await?;
        }
        self.getattr(ino).await
    }

    /// Rewrite the metadata of `ino` after `change` edits it.
    async fn rewrite_meta<F>(&self, ino: u64, change: F) -> Result<NodeInfo, FsError>
    where
        F: FnOnce(Kind, &mut PosixMeta, &mut UserMetadata) -> Result<(), FsError>,
    {
        let (rec, info) = self.info_of(ino).await?;
        if rec.path.is_empty() {
            return Err(FsError::NotPermitted(
                "the attributes of the mount's root come from the mount options".into(),
            ));
        }
        let mut posix = info.posix.clone();
        let mut user_metadata = info.user_metadata.clone();
        change(info.kind, &mut posix, &mut user_metadata)?;
        posix.apply(&mut user_metadata);
        let limit = self.store.provider().max_user_metadata();
        let prefix_len = self.store.provider().meta_prefix().len();
        let size: usize = user_metadata
            .iter()
            .map(|(k, v)| prefix_len + k.len() + v.len())
            .sum();
        if size > limit {
            return Err(FsError::MetadataTooLarge {
                key: self.keys.object(&rec.path),
                size,
                limit,
            });
        }
        let mut new_info = NodeInfo {
            mtime: posix.mtime.unwrap_or(info.mtime),
            posix: posix.clone(),
            user_metadata: user_metadata.clone(),
            ..info.clone()
        };
        if let Some(st) = self.staging_of(ino) {
            let mut state = st.lock().await;
            state.base.posix = posix.clone();
            state.base.user_metadata = user_metadata.clone();
            if state.dirty {
                if let Some(mtime) = posix.mtime.filter(|m| Some(*m) != info.posix.mtime) {
                    state.mtime = Some(mtime);
                }
                // The upload on flush carries the new metadata.
                self.cache_put(&rec.path, &state.base);
                return Ok(state.base.clone());
            }
            // Clean: the store is updated below, and the open writer's
            // attributes (served from this state) show the change now. A
            // later write still stamps its own time, as POSIX wants.
            state.base.mtime = new_info.mtime;
        }
        let opts = new_info.put_options(&posix);
        match info.kind {
            Kind::Dir => {
                let key = self.keys.dir(&rec.path);
                let put = self
                    .store
                    .put(&key, bytes::Bytes::new(), &opts)
                    .await
                    .map_err(|e| FsError::store(format!("update marker {key}"), e))?;
                new_info.has_marker = true;
                new_info.etag = put.etag;
            }
            Kind::Symlink if info.native_symlink => {
                let key = self.keys.object(&rec.path);
                let target = self
                    .store
                    .get_symlink(&key)
                    .await
                    .map_err(|e| FsError::store(format!("readlink {key}"), e))?;
                self.store
                    .put_symlink(&key, &target, &opts)
                    .await
                    .map_err(|e| FsError::store(format!("update symlink {key}"), e))?;
            }
            Kind::File | Kind::Symlink => {
                let key = self.keys.object(&rec.path);
                let copy = CopyOptions {
                    metadata: MetadataDirective::Replace(opts),
                };
                let put = copy_object(self.store.as_ref(), &key, &key, &copy)
                    .await
                    .map_err(|e| FsError::store(format!("update metadata of {key}"), e))?;
                // A clean writer's copy is now this version (what a
                // restarted worker compares the object with).
                if let Some(st) = self.staging_of(ino) {
                    let mut state = st.lock().await;
                    if !state.dirty && state.etag == info.etag {
                        st.mark_uploaded(&mut state, &put.etag);
                    }
                }
                new_info.etag = put.etag;
            }
        }
        self.cache_put(&rec.path, &new_info);
        Ok(new_info)
    }

    /// The xattrs stored on `ino`.
    async fn xattrs_of(&self, ino: u64) -> Result<xattr::Xattrs, FsError> {
        let (_, info) = self.info_of(ino).await?;
        Ok(info
            .user_metadata
            .get(XATTR_META)
            .map(|v| xattr::decode(v))
            .unwrap_or_default())
    }

    /// getxattr: `size` 0 asks for the value's size.
    pub async fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply, FsError> {
        self.check_xattrs_on()?;
        let name = name.to_string_lossy();
        if !name.starts_with(USER_NAMESPACE) {
            // security.capability is asked on every write: answer at once.
            return Err(FsError::NoXattr(name.into_owned()));
        }
        let xattrs = self.xattrs_of(ino).await?;
        let value = xattrs
            .get(name.as_ref())
            .ok_or_else(|| FsError::NoXattr(name.to_string()))?;
        sized_reply(value.clone(), size)
    }

    /// listxattr: the names, NUL-terminated; `size` 0 asks for the length.
    pub async fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply, FsError> {
        self.check_xattrs_on()?;
        let xattrs = self.xattrs_of(ino).await?;
        sized_reply(xattr::list_names(&xattrs), size)
    }

    /// setxattr with XATTR_CREATE / XATTR_REPLACE `flags`.
    pub async fn setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), FsError> {
        self.check_xattrs_on()?;
        self.check_writable()?;
        let name = name
            .to_str()
            .ok_or_else(|| FsError::XattrNamespace(name.to_string_lossy().into_owned()))?
            .to_string();
        if !name.starts_with(USER_NAMESPACE) || name.len() == USER_NAMESPACE.len() {
            return Err(FsError::XattrNamespace(name));
        }
        let value = value.to_vec();
        self.rewrite_meta(ino, move |_, _, meta| {
            let mut xattrs = meta
                .get(XATTR_META)
                .map(|v| xattr::decode(v))
                .unwrap_or_default();
            let exists = xattrs.contains_key(&name);
            if flags & libc::XATTR_CREATE != 0 && exists {
                return Err(FsError::Exists(name));
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return Err(FsError::NoXattr(name));
            }
            xattrs.insert(name, value);
            set_xattr_meta(meta, &xattrs);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// removexattr.
    pub async fn removexattr(&self, ino: u64, name: &OsStr) -> Result<(), FsError> {
        self.check_xattrs_on()?;
        self.check_writable()?;
        let name = name.to_string_lossy().into_owned();
        if !name.starts_with(USER_NAMESPACE) {
            return Err(FsError::NoXattr(name));
        }
        self.rewrite_meta(ino, move |_, _, meta| {
            let mut xattrs = meta
                .get(XATTR_META)
                .map(|v| xattr::decode(v))
                .unwrap_or_default();
            if xattrs.remove(&name).is_none() {
                return Err(FsError::NoXattr(name));
            }
            set_xattr_meta(meta, &xattrs);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// With `noxattr` every xattr call fails with ENOSYS, after which the
    /// kernel stops sending that call at all: `ls -l` then costs no
    /// `getxattr` round trip per entry (`security.selinux`), and writes
    /// none for `security.capability`.
    fn check_xattrs_on(&self) -> Result<(), FsError> {
        if self.config.noxattr {
            return Err(FsError::XattrsOff);
        }
        Ok(())
    }

    /// statfs: a large constant capacity, all free.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: STATFS_BLOCKS,
            bfree: STATFS_BLOCKS,
            bavail: STATFS_BLOCKS,
            files: STATFS_FILES,
            ffree: STATFS_FILES,
            bsize: STATFS_BLOCK,
            namelen: super::name::NAME_MAX as u32,
            frsize: STATFS_BLOCK,
        }
    }
}

fn set_xattr_meta(meta: &mut UserMetadata, xattrs: &xattr::Xattrs) {
    match xattr::encode(xattrs) {
        Some(v) => {
            meta.insert(XATTR_META.to_string(), v);
        }
        None => {
            meta.remove(XATTR_META);
        }
    }
}

/// The xattr reply for a caller buffer of `size` bytes (0: just the size).
fn sized_reply(data: Vec<u8>, size: u32) -> Result<XattrReply, FsError> {
    let len = u32::try_from(data.len()).map_err(|_| FsError::Range {
        given: size,
        needed: data.len(),
    })?;
    if size == 0 {
        Ok(XattrReply::Size(len))
    } else if len > size {
        Err(FsError::Range {
            given: size,
            needed: data.len(),
        })
    } else {
        Ok(XattrReply::Data(data))
    }
}
