//! Resolving paths: lookup, getattr, forget.
//!
//! A path is resolved with two requests sent at once: HEAD of the file key
//! `p` and a one-key LIST of the directory prefix `p/`. Any key under `p/`
//! makes `p` a directory (directory wins over a file of the same name, so
//! the answer does not depend on which request is faster or which tool
//! wrote the keys); only then, and only when the first listed key is the
//! marker `p/` itself, a second HEAD fetches the marker's metadata (the
//! marker is always the first key of its prefix, since keys list in byte
//! order). Otherwise the HEAD decides: a file or symlink, or nothing.
//! Results go through the stat cache ([`super::cache`]).
//!
//! The operations that take a name share the steps from here: a path that
//! must exist (`resolve_existing`) or must not (`ensure_absent`), and the
//! node id and entry of a child (`child_ino`, `child_entry`).
//!
//! Imports: `fs::{error, meta, name}` and the shared state of `fs/mod.rs`; `store`.

use std::time::SystemTime;

use futures::future::join;

use super::error::FsError;
use super::meta::{Kind, NodeInfo};
use super::name::check_name;
use super::{Entry, Fs, lock};
use crate::store::{ListRequest, StoreError};

impl Fs {
    /// What `path` is now (through the stat cache); `None` when nothing.
    pub(super) async fn resolve(&self, path: &str) -> Result<Option<NodeInfo>, FsError> {
        if path.is_empty() {
            return Ok(Some(self.root_info()));
        }
        match self.cache_get(path) {
            Some(super::cache::Cached::Found(info)) => return Ok(Some(info)),
            Some(super::cache::Cached::Missing) => return Ok(None),
            None => {}
        }
        let found = self.stat_remote(path).await?;
        match &found {
            Some(info) => self.cache_put(path, info),
            None => self.cache_missing(path),
        }
        Ok(found)
    }

    /// Resolve `path` against the store, bypassing the cache.
    async fn stat_remote(&self, path: &str) -> Result<Option<NodeInfo>, FsError> {
        let key = self.keys.object(path);
        let dir_key = self.keys.dir(path);
        let list = ListRequest::keys_under(dir_key.clone(), 1);
        let (head, listed) = join(self.store.head(&key), self.store.list_page(&list, None)).await;
        let listed = listed.map_err(|e| FsError::store(format!("list {dir_key}"), e))?;
        let first = listed
            .objects
            .first()
            .map(|o| o.key.as_str())
            .or(listed.prefixes.first().map(String::as_str));
        if let Some(first) = first {
            if first == dir_key {
                return match self.store.head(&dir_key).await {
                    Ok(meta) => Ok(Some(NodeInfo::dir(Some(&meta)))),
                    // Deleted between the two requests: show it as an
                    // implied directory until the cache entry expires.
                    Err(StoreError::NotFound { .. }) => Ok(Some(NodeInfo::dir(None))),
                    Err(e) => Err(FsError::store(format!("head {dir_key}"), e)),
                };
            }
            let mtime = listed
                .objects
                .first()
                .and_then(|o| o.last_modified)
                .unwrap_or(self.mounted_at);
            return Ok(Some(NodeInfo::implied_dir(mtime)));
        }
        match head {
            Ok(meta) => Ok(Some(NodeInfo::from_object(&meta))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(FsError::store(format!("head {key}"), e)),
        }
    }

    /// Look `name` up in the directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &std::ffi::OsStr) -> Result<Entry, FsError> {
        let name = check_name(name)?;
        let (_, path) = self.child_path(parent, name)?;
        let info = self.resolve_existing(&path).await?;
        self.child_entry(parent, name, &info)
    }

    /// What `path` is now; NotFound when nothing.
    pub(super) async fn resolve_existing(&self, path: &str) -> Result<NodeInfo, FsError> {
        self.resolve(path)
            .await?
            .ok_or_else(|| FsError::NotFound(path.to_string()))
    }

    /// Exists when something is at `path` now (for the operations that
    /// make a new name).
    pub(super) async fn ensure_absent(&self, path: &str) -> Result<(), FsError> {
        match self.resolve(path).await? {
            Some(_) => Err(FsError::Exists(path.to_string())),
            None => Ok(()),
        }
    }

    /// The node id of `name` in `parent`, a `kind` (a new id when the
    /// kernel has not seen it yet).
    pub(super) fn child_ino(&self, parent: u64, name: &str, kind: Kind) -> Result<u64, FsError> {
        lock(&self.inodes)
            .lookup(parent, name, kind)
            .ok_or(FsError::UnknownInode(parent))
    }

    /// The entry of `name` in `parent`, which is `info`.
    pub(super) fn child_entry(
        &self,
        parent: u64,
        name: &str,
        info: &NodeInfo,
    ) -> Result<Entry, FsError> {
        let ino = self.child_ino(parent, name, info.kind)?;
        Ok(self.entry(ino, info))
    }

    /// An open writer's state of `ino`, unless an upload holds it (then
    /// the cache, which the upload refreshes, is as good and does not wait).
    pub(super) fn staged_info(&self, ino: u64) -> Option<NodeInfo> {
        let st = self.staging_of(ino)?;
        let state = st.try_lock()?;
        let mut info = state.base.clone();
        if state.dirty {
            info.mtime = state.mtime.unwrap_or(state.last_write);
        }
        Some(info)
    }

    /// The current state of `ino`: from its staging file when open for
    /// writing, else resolved by path.
    pub(super) async fn info_of(
        &self,
        ino: u64,
    ) -> Result<(super::InodeRecord, NodeInfo), FsError> {
        let rec = self.node(ino)?;
        if rec.path.is_empty() {
            return Ok((rec, self.root_info()));
        }
        if let Some(info) = self.staged_info(ino) {
            return Ok((rec, info));
        }
        if !rec.linked {
            return Err(FsError::NotFound(rec.path));
        }
        let info = self.resolve_existing(&rec.path).await?;
        if info.kind != rec.kind {
            // Replaced by another client with something of another kind:
            // this node id is gone; a new lookup gets a new one.
            return Err(FsError::NotFound(rec.path));
        }
        Ok((rec, info))
    }

    /// The attributes of `ino`.
    pub async fn getattr(&self, ino: u64) -> Result<Entry, FsError> {
        let (_, info) = self.info_of(ino).await?;
        Ok(self.entry(ino, &info))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        lock(&self.inodes).forget(ino, n);
    }

    /// The kind of `ino` as recorded.
    pub fn kind_of(&self, ino: u64) -> Result<Kind, FsError> {
        Ok(self.node(ino)?.kind)
    }

    /// Time used for new nodes.
    pub(super) fn now() -> SystemTime {
        SystemTime::now()
    }
}
