//! What the filesystem writes to the restart journal, and how it reads it back.
//!
//! A worker that dies leaves the kernel holding node ids and file handles
//! it handed out, and writers with data in staging files. The next worker
//! must answer for exactly those ids (DESIGN.md section 5), so every change
//! the kernel can see is recorded as a [`JournalOp`] *before* the reply
//! that reveals it reaches the kernel: each table calls its [`JournalSink`]
//! from inside the mutation, under the table's lock, so the journal's order
//! is the tables' order. Replaying the operations in order into empty
//! tables ([`Restored::apply`]) rebuilds the same tables, node ids
//! included, because each operation is applied by the same code that ran
//! it the first time.
//!
//! What the kernel cannot see is left out, which keeps the journal off the
//! hot path: a node is journaled whole when it gets its first kernel
//! reference (a node never referenced is unknown to the kernel), further
//! references and forgets are not counted until the forget that drops the
//! last one, so a warm `ls -l` writes nothing. A restarted worker counts one
//! reference per node; the kernel's FORGET, which carries its whole count
//! when it drops an inode, still removes it.
//!
//! The journal also keeps the answers of non-idempotent requests
//! (create, mkdir, unlink, ...) keyed by the request's `unique`, so that a
//! request the kernel resends after a crash gets the answer its first
//! attempt earned instead of EEXIST or ENOENT ([`Answer`]).
//!
//! Storage (a file, compaction) is the supervisor's business
//! (`supervisor::journal`); this module is only the vocabulary.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::handle::{HandleKind, HandleRecord, HandleTable};
use super::inode::{InodeRecord, InodeTable};
use super::meta::Kind;

/// One change to the tables, or one remembered answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalOp {
    /// A whole node record (written by compaction).
    Node(InodeRecord),
    /// A new node id for `name` in `parent`.
    Insert {
        ino: u64,
        parent: u64,
        name: String,
        kind: Kind,
    },
    /// One kernel reference more.
    Ref { ino: u64 },
    /// The kernel dropped `n` references.
    Forget { ino: u64, n: u64 },
    /// A record without references was dropped.
    Remove { ino: u64 },
    /// `name` was unlinked from `parent` (the record stays until forgotten).
    Detach { parent: u64, name: String },
    /// A rename in the table.
    Rename {
        parent: u64,
        name: String,
        new_parent: u64,
        new_name: String,
    },
    /// A handle was opened (a directory's listing is not journaled: it is
    /// listed again by the next worker).
    Open {
        fh: u64,
        ino: u64,
        flags: i32,
        handle: JournalHandle,
    },
    /// A handle was released.
    Close { fh: u64 },
    /// A writer's staging file for `ino` exists at `path`; `loaded` says it
    /// holds the file's whole content.
    Stage {
        ino: u64,
        path: PathBuf,
        loaded: bool,
    },
    /// The staging file of `ino` now holds the whole content.
    Loaded { ino: u64 },
    /// The staging file of `ino` is gone (last writer released).
    Unstage { ino: u64 },
    /// A multipart upload of `key` is being streamed while `ino` is written
    /// (a next worker aborts it and uploads the staging file whole).
    Stream {
        ino: u64,
        key: String,
        upload_id: String,
    },
    /// The streamed upload of `ino` was completed or aborted.
    StreamEnd { ino: u64 },
    /// The answer of a non-idempotent request.
    Answer { unique: u64, answer: Answer },
}

/// A handle's kind as journaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalHandle {
    File { write: bool, append: bool },
    Dir,
}

/// What a non-idempotent request answered. Attributes are not stored: a
/// replay reads them again, which the kernel accepts (they only have to be
/// current).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// mkdir, mknod, symlink: the new node.
    Entry { ino: u64 },
    /// create: the new node and its open handle.
    Created { ino: u64, fh: u64 },
    /// setattr: the node whose attributes were changed.
    Attr { ino: u64 },
    /// unlink, rmdir, rename: success.
    Done,
    /// write: bytes written.
    Written { n: u32 },
}

/// Receives journal operations. Called under the tables' locks: it must
/// not call back into the filesystem, and should be quick (one `write`).
pub trait JournalSink: Send + Sync + std::fmt::Debug {
    fn record(&self, op: &JournalOp);
}

/// Tables rebuilt from a journal, for the next worker.
#[derive(Debug, Default)]
pub struct Restored {
    pub inodes: InodeTable,
    pub handles: HandleTable,
    /// Staging files of open writers: ino -> (path, loaded).
    pub stagings: std::collections::BTreeMap<u64, (PathBuf, bool)>,
    /// Remembered answers by `unique` (without the resend bit).
    pub answers: std::collections::BTreeMap<u64, Answer>,
    /// Streamed uploads a dead worker left: ino -> (key, upload id).
    pub streams: std::collections::BTreeMap<u64, (String, String)>,
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
                    JournalHandle::Dir => {
                        HandleKind::Dir(std::sync::Arc::new(super::dir::DirSnapshot {
                            ino,
                            parent: ino,
                            entries: Vec::new(),
                        }))
                    }
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
            JournalOp::Stage { ino, path, loaded } => {
                self.stagings.insert(ino, (path, loaded));
            }
            JournalOp::Loaded { ino } => {
                if let Some(s) = self.stagings.get_mut(&ino) {
                    s.1 = true;
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
        ops.extend(
            self.stagings
                .iter()
                .map(|(ino, (path, loaded))| JournalOp::Stage {
                    ino: *ino,
                    path: path.clone(),
                    loaded: *loaded,
                }),
        );
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

/// The journal operation that records `rec` being opened.
pub fn journal_open(rec: HandleRecord) -> JournalOp {
    let handle = match rec.kind {
        HandleKind::File { write, append } => JournalHandle::File { write, append },
        HandleKind::Dir(_) => JournalHandle::Dir,
    };
    JournalOp::Open {
        fh: rec.fh,
        ino: rec.ino,
        flags: rec.flags,
        handle,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::fs::inode::ROOT_INO;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<JournalOp>>);

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
        });
        ops.push(JournalOp::Loaded { ino: 5 });
        ops.push(JournalOp::Stage {
            ino: 7,
            path: "/s/2".into(),
            loaded: true,
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
        assert_eq!(r.stagings.get(&5), Some(&(PathBuf::from("/s/1"), true)));
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
