//! Replaying the journal: the tables a next worker starts from.
//!
//! [`Restored`] is the state a journal describes: the node and handle
//! tables, the staging files of open writers, the streamed uploads in
//! flight and the remembered answers of non-idempotent requests.
//! [`Restored::apply`] applies one [`JournalOp`] in journal order; table
//! operations go to [`InodeTable::apply`], the same code that ran them the
//! first time, so the rebuilt tables are the same tables, node ids
//! included. [`Restored::snapshot`] is the inverse, the operations that
//! rebuild the state from nothing, which is how the supervisor's journal
//! file compacts itself (`supervisor::journal`, which also keeps a
//! `Restored` as its in-memory mirror).
//!
//! Kept apart from the vocabulary (`journal.rs`) because it needs the
//! tables, and the tables emit the vocabulary: this module sits above
//! both, so no file of `fs` imports another in a circle.
//!
//! Imports: `fs::journal`, `fs::record`, `fs::inode`, `fs::handle` and
//! `fs::dir`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::dir::DirSnapshot;
use super::handle::{HandleTable, journal_open};
use super::inode::InodeTable;
use super::journal::{Answer, JournalHandle, JournalOp};
use super::record::{HandleKind, HandleRecord, StagedFile};

/// Tables rebuilt from a journal, for the next worker.
#[derive(Debug, Default)]
pub struct Restored {
    pub inodes: InodeTable,
    pub handles: HandleTable,
    /// Staging files of open writers, with what is known of each.
    pub stagings: BTreeMap<u64, StagedFile>,
    /// Remembered answers by `unique` (without the resend bit).
    pub answers: BTreeMap<u64, Answer>,
    /// Streamed uploads a dead worker left: ino -> (key, upload id).
    pub streams: BTreeMap<u64, (String, String)>,
}

/// Answers kept across compactions: a resent request is one that was in
/// flight when a worker died, so only the most recent ones can be asked for.
pub const ANSWERS_KEPT: usize = 4096;

impl Restored {
    /// Apply one journaled operation.
    pub fn apply(&mut self, op: JournalOp) {
        match op {
            JournalOp::Node(rec) => self.inodes.restore(rec),
            JournalOp::Open {
                fh,
                ino,
                flags,
                handle,
            } => {
                let kind = match handle {
                    JournalHandle::File { write, append } => HandleKind::File { write, append },
                    JournalHandle::Dir => HandleKind::Dir(Arc::new(DirSnapshot {
                        ino,
                        parent: ino,
                        entries: Vec::new(),
                    })),
                };
                self.handles.restore(HandleRecord {
                    fh,
                    ino,
                    flags,
                    kind,
                });
            }
            JournalOp::Close { fh } => {
                self.handles.remove(fh);
            }
            JournalOp::Stage {
                ino,
                path,
                loaded,
                etag,
            } => {
                // An older build's journal says nothing of uploads: a whole
                // copy may hold writes (what that build assumed).
                let dirty = loaded && etag.is_none();
                self.stagings.insert(
                    ino,
                    StagedFile {
                        path,
                        loaded,
                        dirty,
                        unlinked: false,
                        etag,
                    },
                );
            }
            JournalOp::Loaded { ino, etag } => {
                if let Some(s) = self.stagings.get_mut(&ino) {
                    s.loaded = true;
                    match etag {
                        Some(etag) => s.etag = Some(etag),
                        None if s.etag.is_none() => s.dirty = true,
                        None => {}
                    }
                }
            }
            JournalOp::Dirty { ino } => {
                if let Some(s) = self.stagings.get_mut(&ino) {
                    s.dirty = true;
                }
            }
            JournalOp::Uploaded { ino, etag } => {
                if let Some(s) = self.stagings.get_mut(&ino) {
                    s.dirty = false;
                    s.etag = Some(etag);
                }
            }
            JournalOp::Orphan { ino } => {
                if let Some(s) = self.stagings.get_mut(&ino) {
                    s.unlinked = true;
                }
            }
            JournalOp::Unstage { ino } => {
                self.stagings.remove(&ino);
                self.streams.remove(&ino);
            }
            JournalOp::Stream {
                ino,
                key,
                upload_id,
            } => {
                self.streams.insert(ino, (key, upload_id));
            }
            JournalOp::StreamEnd { ino } => {
                self.streams.remove(&ino);
            }
            JournalOp::Answer { unique, answer } => {
                self.answers.insert(unique, answer);
                while self.answers.len() > ANSWERS_KEPT {
                    self.answers.pop_first();
                }
            }
            table_op => self.inodes.apply(table_op),
        }
    }

    /// The operations that rebuild this state from nothing (compaction).
    pub fn snapshot(&self) -> Vec<JournalOp> {
        let mut ops: Vec<JournalOp> = self
            .inodes
            .records()
            .into_iter()
            .map(JournalOp::Node)
            .collect();
        ops.extend(self.handles.records().into_iter().map(journal_open));
        for (ino, s) in &self.stagings {
            ops.extend(staged_ops(*ino, s));
        }
        ops.extend(
            self.streams
                .iter()
                .map(|(ino, (key, upload_id))| JournalOp::Stream {
                    ino: *ino,
                    key: key.clone(),
                    upload_id: upload_id.clone(),
                }),
        );
        ops.extend(
            self.answers
                .iter()
                .map(|(unique, answer)| JournalOp::Answer {
                    unique: *unique,
                    answer: *answer,
                }),
        );
        ops
    }
}

/// The operations that rebuild the facts `s` of the staging file of `ino`.
fn staged_ops(ino: u64, s: &StagedFile) -> Vec<JournalOp> {
    let mut ops = vec![JournalOp::Stage {
        ino,
        path: s.path.clone(),
        loaded: s.loaded,
        etag: s.etag.clone(),
    }];
    // Stage of an older build's whole copy already says dirty.
    if s.dirty && !(s.loaded && s.etag.is_none()) {
        ops.push(JournalOp::Dirty { ino });
    }
    if s.unlinked {
        ops.push(JournalOp::Orphan { ino });
    }
    ops
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::fs::inode::ROOT_INO;
    use crate::fs::journal::JournalSink;
    use crate::fs::meta::Kind;
    use crate::fs::record::InodeRecord;

    /// A journal that keeps every operation (also used by
    /// `fs/tests/adoption.rs`).
    #[derive(Debug, Default)]
    pub(crate) struct Collect(pub(crate) Mutex<Vec<JournalOp>>);

    impl JournalSink for Collect {
        fn record(&self, op: &JournalOp) {
            if let Ok(mut v) = self.0.lock() {
                v.push(op.clone());
            }
        }
    }

    fn replay(ops: &[JournalOp]) -> Restored {
        let mut r = Restored::default();
        for op in ops {
            r.apply(op.clone());
        }
        r
    }

    #[test]
    fn replaying_the_log_rebuilds_the_same_tables() {
        let sink = Arc::new(Collect::default());
        let mut t = InodeTable::new();
        t.set_journal(sink.clone());
        let d = t.lookup(ROOT_INO, "d", Kind::Dir).unwrap_or(0);
        let f = t.lookup(d, "f", Kind::File).unwrap_or(0);
        t.lookup(d, "f", Kind::File);
        let x = t.peek_or_insert(ROOT_INO, "x", Kind::File).unwrap_or(0);
        t.prune(x);
        t.lookup(ROOT_INO, "g", Kind::File);
        t.rename(ROOT_INO, "d", ROOT_INO, "e");
        t.forget(f, 1);
        t.lookup(ROOT_INO, "g", Kind::Dir); // kind change: new id, old detached
        t.detach(ROOT_INO, "e");

        let ops = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(!ops.is_empty());
        let restored = replay(&ops);
        // The same nodes, each referenced once (counts are not journaled).
        let referenced_once = |recs: Vec<InodeRecord>| -> Vec<InodeRecord> {
            recs.into_iter()
                .map(|mut r| {
                    r.lookups = r.lookups.min(1);
                    r
                })
                .collect()
        };
        assert_eq!(restored.inodes.records(), referenced_once(t.records()));
        // Ids keep counting from where the dead worker stopped.
        let mut again = restored.inodes;
        let n = again.lookup(ROOT_INO, "new", Kind::File).unwrap_or(0);
        assert!(n > x, "{n} must not reuse an id up to {x}");

        // A compacted journal rebuilds the same state too.
        let snap = replay(&ops).snapshot();
        assert_eq!(replay(&snap).inodes.records(), referenced_once(t.records()));
        // A FORGET of the kernel's whole count removes a restored node.
        let mut again = replay(&snap).inodes;
        let d = again.child(ROOT_INO, "e").unwrap_or(0);
        again.forget(d, 2);
        assert!(again.get(d).is_none());
    }

    #[test]
    fn handles_stagings_and_answers_replay() {
        let sink = Arc::new(Collect::default());
        let mut h = HandleTable::new();
        h.set_journal(sink.clone());
        let a = h.insert(
            5,
            libc::O_WRONLY,
            HandleKind::File {
                write: true,
                append: false,
            },
        );
        let b = h.insert(
            6,
            0,
            HandleKind::File {
                write: false,
                append: false,
            },
        );
        h.remove(b);
        let mut ops = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
        ops.push(JournalOp::Stage {
            ino: 5,
            path: "/s/1".into(),
            loaded: false,
            etag: None,
        });
        ops.push(JournalOp::Loaded { ino: 5, etag: None });
        ops.push(JournalOp::Stage {
            ino: 7,
            path: "/s/2".into(),
            loaded: true,
            etag: None,
        });
        ops.push(JournalOp::Unstage { ino: 7 });
        for (ino, id) in [(5, "u5"), (7, "u7"), (8, "u8")] {
            ops.push(JournalOp::Stream {
                ino,
                key: format!("k{ino}"),
                upload_id: id.into(),
            });
        }
        ops.push(JournalOp::StreamEnd { ino: 7 });
        ops.push(JournalOp::Unstage { ino: 8 });
        ops.push(JournalOp::Answer {
            unique: 42,
            answer: Answer::Created { ino: 5, fh: a },
        });
        let r = replay(&ops);
        assert_eq!(r.handles.records(), h.records());
        assert_eq!(
            r.stagings.get(&5).map(|s| (s.path.clone(), s.loaded)),
            Some((PathBuf::from("/s/1"), true))
        );
        assert!(!r.stagings.contains_key(&7));
        // Only the stream of a file still staged and not ended is left.
        let left: Vec<_> = r.streams.iter().collect();
        assert_eq!(left, [(&5, &("k5".to_string(), "u5".to_string()))]);
        assert_eq!(replay(&r.snapshot()).streams, r.streams);
        assert_eq!(r.answers.get(&42), Some(&Answer::Created { ino: 5, fh: a }));
        // Through JSON, as the journal file stores them.
        let text: Vec<String> = ops
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect();
        let back: Vec<JournalOp> = text
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(back, ops);
    }

    #[test]
    fn staging_facts_replay_and_survive_compaction() {
        let stage = |ino: u64, etag: &str| JournalOp::Stage {
            ino,
            path: format!("/s/{ino}").into(),
            loaded: true,
            etag: Some(etag.into()),
        };
        let ops = vec![
            // Written, uploaded, clean.
            stage(1, "e0"),
            JournalOp::Dirty { ino: 1 },
            JournalOp::Uploaded {
                ino: 1,
                etag: "e1".into(),
            },
            // Uploaded, then written again.
            stage(2, "e0"),
            JournalOp::Uploaded {
                ino: 2,
                etag: "e2".into(),
            },
            JournalOp::Dirty { ino: 2 },
            // Unlinked while open.
            stage(3, "e0"),
            JournalOp::Dirty { ino: 3 },
            JournalOp::Orphan { ino: 3 },
            // Loaded later, from another version than the open saw.
            JournalOp::Stage {
                ino: 4,
                path: "/s/4".into(),
                loaded: false,
                etag: Some("stale".into()),
            },
            JournalOp::Loaded {
                ino: 4,
                etag: Some("e4".into()),
            },
        ];
        let r = replay(&ops);
        let facts = |r: &Restored, ino| {
            r.stagings
                .get(&ino)
                .map(|s| (s.loaded, s.dirty, s.unlinked, s.etag.clone()))
        };
        let e = |s: &str| Some(s.to_string());
        let expected = [
            (1, Some((true, false, false, e("e1")))),
            (2, Some((true, true, false, e("e2")))),
            (3, Some((true, true, true, e("e0")))),
            (4, Some((true, false, false, e("e4")))),
        ];
        let compacted = replay(&r.snapshot());
        for (ino, want) in &expected {
            assert_eq!(facts(&r, *ino), *want, "ino {ino}");
            assert_eq!(facts(&compacted, *ino), *want, "ino {ino} compacted");
        }
    }

    #[test]
    fn an_older_builds_journal_loads_and_its_whole_copies_are_dirty() {
        let lines = [
            r#"{"op":"stage","ino":5,"path":"/s/5","loaded":false}"#,
            r#"{"op":"loaded","ino":5}"#,
            r#"{"op":"stage","ino":6,"path":"/s/6","loaded":true}"#,
            r#"{"op":"stage","ino":7,"path":"/s/7","loaded":false}"#,
        ];
        let ops: Vec<JournalOp> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let r = replay(&ops);
        for r in [&r, &replay(&r.snapshot())] {
            let facts = |ino| {
                r.stagings
                    .get(&ino)
                    .map(|s| (s.loaded, s.dirty, s.etag.clone()))
            };
            assert_eq!(facts(5), Some((true, true, None)));
            assert_eq!(facts(6), Some((true, true, None)));
            assert_eq!(facts(7), Some((false, false, None)));
        }
    }

    #[test]
    fn answers_are_bounded() {
        let mut r = Restored::default();
        for u in 0..(ANSWERS_KEPT as u64 + 10) {
            r.apply(JournalOp::Answer {
                unique: u,
                answer: Answer::Done,
            });
        }
        assert_eq!(r.answers.len(), ANSWERS_KEPT);
        assert!(!r.answers.contains_key(&0));
    }
}
