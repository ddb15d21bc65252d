//! Whether an adopted staging file may be uploaded: the rule that keeps a
//! restart from resurrecting, reverting or overwriting data.
//!
//! A worker that dies leaves open writers' staging files; the next one
//! adopts them with what the journal knew (`record::StagedFile`): unlinked
//! or replaced, clean or dirty, and the ETag of the object version the copy
//! was loaded from or last uploaded as. Then, at its flush or close:
//!
//! - an unlinked or replaced copy is never uploaded (the name now belongs
//!   to nothing, or to the file that replaced it);
//! - a clean copy uploads nothing (the store has it, or something newer
//!   another client wrote since);
//! - a dirty copy, holding writes the dead worker had not uploaded, is
//!   uploaded only while the object is still the version it started from.
//!   When the object changed (another client wrote or deleted it), the
//!   upload is refused as a conflict: flush and close fail with EIO and the
//!   copy stays in the staging directory. One exception: an object holding
//!   exactly the copy's bytes is the dead worker's own upload whose journal
//!   line was lost to the kill, and the copy is simply clean.
//!
//! Writes after the restart to a clean copy are a writer's ordinary writes
//! (last close wins, as without a restart); the rule above holds for a copy
//! adopted dirty until its first successful upload. `docs/semantics.md`
//! ("Restarts") states it for users.
//!
//! [`decide`] is the rule as a pure function (unit-tested here);
//! [`Fs::adopted_may_upload`] applies it with a HEAD of the object.
//!
//! Imports: `fs::{error, meta, staging}` and the shared state of `fs/mod.rs`;
//! `store`.

use futures::StreamExt;
use tracing::{info, warn};

use super::Fs;
use super::error::FsError;
use super::meta::NodeInfo;
use super::staging::{Staging, StagingState};
use crate::store::StoreError;

/// Bytes compared at a time when an object's content is checked.
const COMPARE_CHUNK: u32 = 1 << 20;

/// What the journal and the staging state say of a copy at its upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadFacts<'a> {
    /// Unlinked, or replaced by a rename over it.
    pub unlinked: bool,
    /// Written since it was loaded or last uploaded.
    pub dirty: bool,
    /// Its writes were made by a dead worker and not uploaded since.
    pub adopted_dirty: bool,
    /// The object version it was loaded from or last uploaded as (`""`:
    /// no object).
    pub etag: &'a str,
}

/// What a flush does with a staging file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to send (clean), or never to send (unlinked, replaced).
    Skip,
    /// Upload it.
    Upload,
    /// The object changed since the dead worker's writes were based on it:
    /// do not overwrite it.
    Conflict,
}

impl UploadFacts<'_> {
    /// Whether [`decide`] needs the object's current ETag.
    pub fn needs_current(&self) -> bool {
        !self.unlinked && self.dirty && self.adopted_dirty
    }
}

/// The rule: given the facts of a copy and the object's current ETag
/// (`None`: there is no object; only looked at when
/// [`UploadFacts::needs_current`]), upload or not.
pub fn decide(facts: &UploadFacts<'_>, current: Option<&str>) -> Decision {
    if facts.unlinked || !facts.dirty {
        return Decision::Skip;
    }
    if !facts.adopted_dirty {
        return Decision::Upload;
    }
    let unchanged = match current {
        Some(etag) => !etag.is_empty() && etag == facts.etag,
        None => facts.etag.is_empty(),
    };
    if unchanged {
        Decision::Upload
    } else {
        Decision::Conflict
    }
}

impl Fs {
    /// Whether the staging file `st` of the file at `path` may be uploaded
    /// now, by [`decide`]. `Ok(false)` when there is nothing to send (the
    /// store already holds its bytes: the copy is marked clean); a
    /// conflict is an error, and the copy stays staged.
    pub(super) async fn adopted_may_upload(
        &self,
        path: &str,
        st: &Staging,
        state: &mut StagingState,
    ) -> Result<bool, FsError> {
        let facts = UploadFacts {
            unlinked: state.unlinked,
            dirty: state.dirty,
            adopted_dirty: state.adopted_dirty,
            etag: &state.etag,
        };
        if !facts.needs_current() {
            return Ok(decide(&facts, None) == Decision::Upload);
        }
        let key = self.keys.object(path);
        let current = match self.store.head(&key).await {
            Ok(meta) => Some(meta),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(FsError::store(format!("head {key}"), e)),
        };
        match decide(&facts, current.as_ref().map(|m| m.etag.as_str())) {
            Decision::Upload => return Ok(true),
            Decision::Skip => return Ok(false),
            Decision::Conflict => {}
        }
        if let Some(meta) = current
            && meta.size == st.size()
            && self.holds_copy(&key, st).await?
        {
            info!(
                key,
                etag = meta.etag,
                "the object already holds an adopted copy (uploaded before the restart)"
            );
            st.mark_uploaded(state, &meta.etag);
            return Ok(false);
        }
        warn!(
            key,
            staging = %st.path().display(),
            "the object changed while this mount's worker restarted; its unsent writes are kept in the staging file"
        );
        st.keep_on_disk();
        Err(FsError::Conflict {
            key,
            staging: st.path().display().to_string(),
        })
    }

    /// At adoption, before any request is served: a dirty copy whose object
    /// is no longer the version the journal names but holds exactly the
    /// copy's bytes is the dead worker's own upload whose journal line the
    /// kill cut off, and the copy is clean (as that version). Settled here
    /// and not only at the upload: a write the kernel resends to the new
    /// worker grows the copy first, and the bytes would no longer match.
    /// A failed comparison is logged and left to the upload's check.
    pub(super) async fn settle_adopted(&self, key: &str, st: &Staging, current: &NodeInfo) {
        let mut state = st.lock().await;
        let facts = UploadFacts {
            unlinked: state.unlinked,
            dirty: state.dirty,
            adopted_dirty: state.adopted_dirty,
            etag: &state.etag,
        };
        let moved = !current.etag.is_empty() && current.etag != state.etag;
        if !facts.needs_current() || !moved || current.size != st.size() {
            return;
        }
        match self.holds_copy(key, st).await {
            Ok(true) => {
                info!(
                    key,
                    etag = current.etag,
                    "the object already holds an adopted copy (uploaded before the restart)"
                );
                st.mark_uploaded(&mut state, &current.etag);
            }
            Ok(false) => {}
            Err(e) => {
                warn!(key, error = %e, "cannot compare an adopted copy with its object; its upload decides")
            }
        }
    }

    /// Whether the object at `key` holds exactly the bytes of `st`.
    async fn holds_copy(&self, key: &str, st: &Staging) -> Result<bool, FsError> {
        let object = match self.store.get(key, None).await {
            Ok(o) => o,
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(FsError::store(format!("download {key}"), e)),
        };
        let mut body = object.body;
        let mut offset = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FsError::store(format!("download {key}"), e))?;
            let mut done = 0usize;
            while done < chunk.len() {
                let want = u32::try_from(chunk.len() - done)
                    .unwrap_or(COMPARE_CHUNK)
                    .min(COMPARE_CHUNK);
                let mine = st.read(offset, want).await?;
                if mine.is_empty() || mine[..] != chunk[done..done + mine.len()] {
                    return Ok(false);
                }
                done += mine.len();
                offset += mine.len() as u64;
            }
        }
        Ok(offset == st.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(unlinked: bool, dirty: bool, adopted_dirty: bool, etag: &str) -> UploadFacts<'_> {
        UploadFacts {
            unlinked,
            dirty,
            adopted_dirty,
            etag,
        }
    }

    #[test]
    fn an_unlinked_or_replaced_copy_is_never_uploaded() {
        for current in [None, Some("e1"), Some("e2")] {
            for (dirty, adopted) in [(true, true), (true, false), (false, false)] {
                let f = facts(true, dirty, adopted, "e1");
                assert!(!f.needs_current());
                assert_eq!(decide(&f, current), Decision::Skip, "{f:?} {current:?}");
            }
        }
    }

    #[test]
    fn a_clean_adopted_copy_uploads_nothing() {
        // Another client's newer version, the copy's own, or none at all.
        for current in [Some("theirs"), Some("e1"), None] {
            let f = facts(false, false, false, "e1");
            assert!(!f.needs_current());
            assert_eq!(decide(&f, current), Decision::Skip);
        }
    }

    #[test]
    fn a_dirty_adopted_copy_uploads_only_over_its_own_version() {
        let f = facts(false, true, true, "e1");
        assert!(f.needs_current());
        assert_eq!(decide(&f, Some("e1")), Decision::Upload);
        assert_eq!(decide(&f, Some("theirs")), Decision::Conflict);
        // Deleted by another client since: not brought back.
        assert_eq!(decide(&f, None), Decision::Conflict);
        assert_eq!(decide(&f, Some("")), Decision::Conflict);
        // Loaded when there was no object: only while there still is none.
        let new = facts(false, true, true, "");
        assert_eq!(decide(&new, None), Decision::Upload);
        assert_eq!(decide(&new, Some("theirs")), Decision::Conflict);
    }

    #[test]
    fn writes_after_the_restart_upload_as_any_writer_does() {
        // A clean adopted copy written again is an ordinary dirty copy:
        // last close wins, whatever the store holds now.
        let f = facts(false, true, false, "e1");
        assert!(!f.needs_current());
        for current in [Some("theirs"), Some("e1"), None] {
            assert_eq!(decide(&f, current), Decision::Upload);
        }
    }
}
