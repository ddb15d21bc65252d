//! The open-handle table: file handles as plain numbers mapping to plain records.
//!
//! Like node ids (see [`super::inode`]), file handles are numbers from a
//! counter that is never reused, each mapping to a serialisable
//! [`HandleRecord`] (node id, open flags, what kind of handle), so a
//! restarted worker can reload them from a journal and keep serving handles
//! the kernel already holds. Directory handles carry their listing snapshot
//! (also plain data). File data being written is not here but in the
//! per-inode staging table ([`super::staging`]): several handles of one file
//! share one staging file.
//!
//! Every open and release is journaled from inside the table
//! ([`journal_open`], `JournalOp::Close`); rebuilding a table from the
//! journal is the business of `replay.rs`.
//!
//! Imports: `fs::record` (the records), `fs::journal` (the operations it
//! emits) and `fs::dir` (directory snapshots).

use std::collections::HashMap;
use std::sync::Arc;

use super::dir::DirSnapshot;
use super::journal::{JournalHandle, JournalOp, JournalSink};
use super::record::{HandleKind, HandleRecord};

/// File handle to record.
#[derive(Debug)]
pub struct HandleTable {
    next: u64,
    handles: HashMap<u64, HandleRecord>,
    journal: Option<Arc<dyn JournalSink>>,
}

impl Default for HandleTable {
    fn default() -> Self {
        Self::new()
    }
}

impl HandleTable {
    /// An empty table; handles start at 1 (0 means "none" to some tools).
    pub fn new() -> Self {
        Self {
            next: 1,
            handles: HashMap::new(),
            journal: None,
        }
    }

    /// Record every open and release from now on in `journal`.
    pub fn set_journal(&mut self, journal: Arc<dyn JournalSink>) {
        self.journal = Some(journal);
    }

    /// Put back a record (journal replay).
    pub fn restore(&mut self, r: HandleRecord) {
        self.next = self.next.max(r.fh + 1);
        self.handles.insert(r.fh, r);
    }

    /// Replace the listing of a directory handle (a restored handle is
    /// listed again).
    pub fn set_snapshot(&mut self, fh: u64, snapshot: Arc<DirSnapshot>) {
        if let Some(r) = self.handles.get_mut(&fh) {
            r.kind = HandleKind::Dir(snapshot);
        }
    }

    /// Rebuild from exported records.
    pub fn from_records(records: Vec<HandleRecord>) -> Self {
        let mut t = Self::new();
        for r in records {
            t.restore(r);
        }
        t
    }

    /// Every record, for the journal.
    pub fn records(&self) -> Vec<HandleRecord> {
        let mut all: Vec<HandleRecord> = self.handles.values().cloned().collect();
        all.sort_by_key(|r| r.fh);
        all
    }

    /// Register a new handle; returns its number.
    pub fn insert(&mut self, ino: u64, flags: i32, kind: HandleKind) -> u64 {
        let fh = self.next;
        self.next += 1;
        let rec = HandleRecord {
            fh,
            ino,
            flags,
            kind,
        };
        if let Some(j) = &self.journal {
            j.record(&journal_open(rec.clone()));
        }
        self.handles.insert(fh, rec);
        fh
    }

    /// The record of `fh`.
    pub fn get(&self, fh: u64) -> Option<&HandleRecord> {
        self.handles.get(&fh)
    }

    /// Remove `fh`, returning its record.
    pub fn remove(&mut self, fh: u64) -> Option<HandleRecord> {
        let rec = self.handles.remove(&fh)?;
        if let Some(j) = &self.journal {
            j.record(&JournalOp::Close { fh });
        }
        Some(rec)
    }

    /// Number of open handles.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether no handle is open.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// The journal operation that records `rec` being opened (a directory's
/// listing is not journaled: the next worker lists it again).
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
    use super::*;

    #[test]
    fn handles_are_unique_and_survive_a_round_trip() {
        let mut t = HandleTable::new();
        let a = t.insert(
            5,
            libc::O_WRONLY,
            HandleKind::File {
                write: true,
                append: false,
            },
        );
        let b = t.insert(
            6,
            0,
            HandleKind::Dir(Arc::new(DirSnapshot {
                ino: 6,
                parent: 1,
                entries: vec![],
            })),
        );
        assert_ne!(a, b);
        assert!(a >= 1);
        let json = serde_json::to_string(&t.records()).unwrap_or_default();
        let back: Vec<HandleRecord> = serde_json::from_str(&json).unwrap_or_default();
        let mut t2 = HandleTable::from_records(back);
        assert_eq!(t2.records(), t.records());
        assert!(
            t2.insert(
                1,
                0,
                HandleKind::File {
                    write: false,
                    append: false
                }
            ) > b
        );
        assert_eq!(t2.remove(a).map(|r| r.ino), Some(5));
        assert!(t2.get(a).is_none());
    }
}
