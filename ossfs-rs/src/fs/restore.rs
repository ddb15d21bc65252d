//! Continuing where a dead worker stopped: tables, staging files and
//! directory handles rebuilt from the journal.
//!
//! The tables come back as they were ([`super::replay::Restored`]). Two
//! things the journal does not carry are rebuilt here before the new worker
//! serves: the upload metadata of each adopted staging file (a HEAD of its
//! object, as an open would do) and the listing of each open directory
//! handle (listed again; a directory that changed in between shows its new
//! entries, as a rewinddir would). Each staging file is adopted with what
//! the dead worker knew of it (`record::StagedFile`: unlinked, dirty, the
//! ETag it came from), which `adoption.rs` turns into upload or not.
//!
//! Imports: `fs::{replay, journal, record, meta, staging}` and the shared
//! state of `fs/mod.rs`; `store`, `upload::stream` (aborting orphaned
//! streamed uploads).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};

use super::journal::{JournalOp, JournalSink};
use super::meta::NodeInfo;
use super::record::{HandleKind, HandleRecord, StagedFile};
use super::replay::Restored;
use super::staging::Staging;
use super::{Fs, FsConfig, FsError, StagingSlot, lock};
use crate::store::{ObjectStore, StoreError};

/// What a new worker takes over from the dead one before serving.
#[derive(Debug, Default)]
pub struct Adoptions {
    /// Staging files of open writers, with what the journal knew of each.
    pub stagings: BTreeMap<u64, StagedFile>,
    /// Uploads it was streaming: ino -> (key, upload id). They are aborted;
    /// the adopted staging file is uploaded whole at its close.
    pub streams: BTreeMap<u64, (String, String)>,
}

impl Fs {
    /// A filesystem whose every change is recorded in `journal`, starting
    /// from the `restored` tables (empty ones for a first start). Call
    /// [`Fs::adopt`] with the returned staging files before serving.
    pub fn with_journal(
        store: Arc<dyn ObjectStore>,
        config: FsConfig,
        journal: Arc<dyn JournalSink>,
        restored: Restored,
    ) -> Result<(Self, Adoptions), FsError> {
        let mut fs = Self::new(store, config)?;
        let Restored {
            mut inodes,
            mut handles,
            stagings,
            answers: _,
            streams,
        } = restored;
        inodes.set_journal(journal.clone());
        handles.set_journal(journal.clone());
        fs.inodes = Mutex::new(inodes);
        fs.handles = Mutex::new(handles);
        fs.journal = Some(journal);
        Ok((fs, Adoptions { stagings, streams }))
    }

    /// Take over the staging files of open writers and list open
    /// directories again. A staging file that cannot be taken over (it
    /// vanished, or the store refused its object's HEAD) is logged and
    /// skipped: its writers' handles answer EIO from then on
    /// ([`FsError::NotRestored`]) rather than uploading a partial file or
    /// dropping writes silently, and the file stays on disk. Nothing here
    /// fails the restart: a worker that cannot serve one file still serves
    /// the others. Each copy keeps what the dead worker knew of it
    /// (unlinked, dirty, the version it came from), which decides whether
    /// it is ever uploaded (`adoption.rs`).
    pub async fn adopt(&self, adoptions: Adoptions) -> Result<(), FsError> {
        for (ino, (key, upload_id)) in adoptions.streams {
            crate::upload::stream::abort_orphan(self.store.as_ref(), &key, &upload_id).await;
            self.journal(JournalOp::StreamEnd { ino });
        }
        let handles = lock(&self.handles).records();
        for (ino, staged) in adoptions.stagings {
            let path = &staged.path;
            let writers = handles
                .iter()
                .filter(|h| h.ino == ino && Self::is_writer(h))
                .count();
            let Ok(rec) = self.node(ino) else {
                warn!(ino, path = %path.display(), "staging file of an unknown node; left on disk");
                continue;
            };
            let key = self.keys.object(&rec.path);
            let base = match self.store.head(&key).await {
                Ok(meta) => NodeInfo::from_object(&meta),
                Err(StoreError::NotFound { .. }) => NodeInfo::listed_file(0, "", None),
                Err(e) => {
                    // A store that refuses (a revoked key, say) must not
                    // keep the whole mount from serving: only this
                    // file's writers fail.
                    error!(ino, key, path = %path.display(), error = %e,
                        "cannot restore an open writer (its object's HEAD failed); its handles answer EIO, its staging file is kept");
                    self.lose_writers(ino, path, &handles);
                    continue;
                }
            };
            let current_info = base.clone();
            let staging =
                match Staging::adopt(&self.staging_dir, &staged, ino, base, &current_info.etag) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        error!(ino, path = %path.display(), error = %e,
                        "cannot adopt a staging file; its writers' handles answer EIO");
                        self.lose_writers(ino, path, &handles);
                        continue;
                    }
                };
            if let Some(j) = &self.journal {
                staging.set_journal(j.clone());
            }
            self.settle_adopted(&key, &staging, &current_info).await;
            info!(
                ino,
                key,
                writers,
                loaded = staged.loaded,
                dirty = staged.dirty,
                unlinked = staged.unlinked,
                size = staging.size(),
                "adopted an open writer's staging file"
            );
            lock(&self.stagings).insert(ino, StagingSlot { staging, writers });
        }
        for h in handles {
            if matches!(h.kind, HandleKind::Dir(_)) {
                match self.list_dir(h.ino).await {
                    Ok(snapshot) => lock(&self.handles).set_snapshot(h.fh, snapshot),
                    Err(e) => {
                        warn!(fh = h.fh, ino = h.ino, error = %e, "cannot list an open directory again")
                    }
                }
            }
        }
        Ok(())
    }

    /// Mark every writer handle of `ino` as not restored (its staging file
    /// `path` could not be taken over).
    fn lose_writers(&self, ino: u64, path: &Path, handles: &[HandleRecord]) {
        let mut lost = lock(&self.lost);
        for h in handles
            .iter()
            .filter(|h| h.ino == ino && Self::is_writer(h))
        {
            lost.insert(h.fh, (ino, path.to_path_buf()));
        }
    }

    /// Err ([`FsError::NotRestored`], EIO) when `fh` is a writer whose
    /// staging file a restarted worker could not take over.
    pub(super) fn check_restored(&self, fh: u64) -> Result<(), FsError> {
        match lock(&self.lost).get(&fh) {
            Some((ino, path)) => Err(FsError::NotRestored {
                ino: *ino,
                staging: path.display().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The release of `fh`: when it was a writer that was not restored,
    /// forget it, and once no such writer of its file remains drop the
    /// journal's record of the staging file (unless a new writer staged
    /// the file again); the file stays on disk for an operator.
    pub(super) fn release_lost(&self, fh: u64) -> Result<(), FsError> {
        let mut lost = lock(&self.lost);
        let Some((ino, path)) = lost.remove(&fh) else {
            return Ok(());
        };
        let last = !lost.values().any(|(other, _)| *other == ino);
        drop(lost);
        if last && !lock(&self.stagings).contains_key(&ino) {
            self.journal(JournalOp::Unstage { ino });
        }
        error!(ino, path = %path.display(),
            "an open writer that was not restored closed; its unsent writes are in this staging file");
        Err(FsError::NotRestored {
            ino,
            staging: path.display().to_string(),
        })
    }
}
