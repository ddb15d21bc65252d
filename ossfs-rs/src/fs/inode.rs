//! The inode table: kernel node ids as plain numbers mapping to plain records.
//!
//! A FUSE node id must stay valid as long as the kernel holds a reference
//! (its lookup count) and must not silently change meaning. Node ids here
//! are numbers handed out from a counter, never reused, never pointers, and
//! each maps to an [`InodeRecord`] of plain, serialisable data (parent, name,
//! path, kind, lookup count), so a restarted worker can reload the table
//! from a journal and keep answering for ids the kernel already holds (the
//! supervised-restart design, DESIGN.md section 5). [`InodeTable::records`]
//! and [`InodeTable::from_records`] are that export and import.
//!
//! Lookup counts follow the kernel's protocol: every entry we reply with
//! (lookup, create, mkdir, symlink, readdirplus except `.`/`..`) adds one;
//! `forget(n)` takes `n` away and the record goes at zero. The root (id 1)
//! is never forgotten.
//!
//! Names map to ids through `(parent, name)`. When a path changes kind
//! (a file replaced by a directory by another client), the name gets a new
//! id and the old record is *detached*: it stays until forgotten, but no
//! longer resolves by name, so the kernel never sees one id change type.
//! Unlink, rmdir and a rename's target detach the same way. A rename moves
//! the record and rewrites the paths of every record below it.
//!
//! Imports: `fs::record` (the records), `fs::journal` (the operations it
//! emits and applies), `fs::meta` and `fs::name`.

use std::collections::HashMap;
use std::sync::Arc;

use super::journal::{JournalOp, JournalSink};
use super::meta::Kind;
use super::name::{is_within, join, rebase};
use super::record::InodeRecord;

/// The root's node id (FUSE_ROOT_ID).
pub const ROOT_INO: u64 = 1;

/// Node id to record, and `(parent, name)` to node id.
///
/// Every change goes through [`InodeTable::exec`]: it is recorded in the
/// journal (when one is set) and applied by [`InodeTable::apply`], the same
/// code a replay runs, so a replayed table is the same table.
#[derive(Debug)]
pub struct InodeTable {
    next: u64,
    records: HashMap<u64, InodeRecord>,
    by_name: HashMap<(u64, String), u64>,
    journal: Option<Arc<dyn JournalSink>>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root.
    pub fn new() -> Self {
        let mut records = HashMap::new();
        records.insert(
            ROOT_INO,
            InodeRecord {
                ino: ROOT_INO,
                parent: ROOT_INO,
                name: String::new(),
                path: String::new(),
                kind: Kind::Dir,
                lookups: 1,
                linked: true,
            },
        );
        Self {
            next: ROOT_INO + 1,
            records,
            by_name: HashMap::new(),
            journal: None,
        }
    }

    /// Record every change from now on in `journal`.
    pub fn set_journal(&mut self, journal: Arc<dyn JournalSink>) {
        self.journal = Some(journal);
    }

    /// Put back a whole record (journal replay, compaction).
    pub fn restore(&mut self, r: InodeRecord) {
        if r.ino == ROOT_INO {
            return;
        }
        self.next = self.next.max(r.ino + 1);
        if r.linked {
            self.by_name.insert((r.parent, r.name.clone()), r.ino);
        }
        self.records.insert(r.ino, r);
    }

    /// Journal `op`, then apply it.
    fn exec(&mut self, op: JournalOp) {
        if let Some(j) = &self.journal {
            j.record(&op);
        }
        self.apply(op);
    }

    /// Apply one table operation (ops of other tables are ignored).
    pub fn apply(&mut self, op: JournalOp) {
        match op {
            JournalOp::Node(r) => self.restore(r),
            JournalOp::Insert {
                ino,
                parent,
                name,
                kind,
            } => {
                let Some(parent_path) = self.records.get(&parent).map(|r| r.path.clone()) else {
                    return;
                };
                self.next = self.next.max(ino + 1);
                self.records.insert(
                    ino,
                    InodeRecord {
                        ino,
                        parent,
                        path: join(&parent_path, &name),
                        name: name.clone(),
                        kind,
                        lookups: 0,
                        linked: true,
                    },
                );
                self.by_name.insert((parent, name), ino);
            }
            JournalOp::Ref { ino } => {
                if let Some(r) = self.records.get_mut(&ino) {
                    r.lookups += 1;
                }
            }
            JournalOp::Forget { ino, n } => self.apply_forget(ino, n),
            JournalOp::Remove { ino } => self.remove(ino),
            JournalOp::Detach { parent, name } => {
                self.apply_detach(parent, &name);
            }
            JournalOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
            } => self.apply_rename(parent, &name, new_parent, &new_name),
            _ => {}
        }
    }

    /// Rebuild a table from exported records (a journal).
    pub fn from_records(records: Vec<InodeRecord>) -> Self {
        let mut table = Self::new();
        for r in records {
            table.restore(r);
        }
        table
    }

    /// Every record, for the journal.
    pub fn records(&self) -> Vec<InodeRecord> {
        let mut all: Vec<InodeRecord> = self.records.values().cloned().collect();
        all.sort_by_key(|r| r.ino);
        all
    }

    /// The record of `ino`.
    pub fn get(&self, ino: u64) -> Option<&InodeRecord> {
        self.records.get(&ino)
    }

    /// The id linked at `(parent, name)`, if any.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// The id for `name` in `parent` as `kind`, adding one kernel reference.
    /// Returns `None` when the parent is unknown.
    pub fn lookup(&mut self, parent: u64, name: &str, kind: Kind) -> Option<u64> {
        let ino = self.peek_or_insert(parent, name, kind)?;
        self.add_ref(ino);
        Some(ino)
    }

    /// The id for `name` in `parent` as `kind` without adding a reference
    /// (records created here with no reference are dropped by
    /// [`InodeTable::prune`] if the kernel never takes one).
    pub fn peek_or_insert(&mut self, parent: u64, name: &str, kind: Kind) -> Option<u64> {
        self.records.get(&parent)?;
        if let Some(ino) = self.child(parent, name) {
            match self.records.get(&ino) {
                Some(r) if r.kind == kind => return Some(ino),
                _ => {
                    self.detach(parent, name);
                }
            }
        }
        let ino = self.next;
        // Not journaled: the kernel does not know a node until its first
        // reference, which journals the whole record (see `add_ref`).
        self.apply(JournalOp::Insert {
            ino,
            parent,
            name: name.to_string(),
            kind,
        });
        Some(ino)
    }

    /// Add one kernel reference to `ino` (an entry was delivered).
    ///
    /// Only the first reference is journaled (see [`InodeTable::forget`]).
    pub fn add_ref(&mut self, ino: u64) {
        let first = match self.records.get(&ino).map(|r| r.lookups) {
            Some(n) => n == 0,
            None => return,
        };
        self.apply(JournalOp::Ref { ino });
        if first && let (Some(j), Some(r)) = (&self.journal, self.records.get(&ino)) {
            j.record(&JournalOp::Node(r.clone()));
        }
    }

    /// Drop `ino` if the kernel holds no reference to it (after a reply
    /// that was not delivered).
    pub fn prune(&mut self, ino: u64) {
        // Never journaled (it had no reference), so nothing to journal.
        if ino != ROOT_INO && self.records.get(&ino).is_some_and(|r| r.lookups == 0) {
            self.apply(JournalOp::Remove { ino });
        }
    }

    /// The kernel dropped `n` references; the record goes at zero.
    ///
    /// The journal records whether the kernel holds a node, not how many
    /// times: the first reference and the forget that drops the last are
    /// journaled, the counting in between is not (a warm `ls -l` writes
    /// nothing). A restarted worker therefore counts one reference per
    /// node, and the kernel's FORGET, which carries the whole count when
    /// it drops an inode, removes it.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        match self.records.get(&ino).map(|r| r.lookups) {
            Some(count) if count <= n => self.exec(JournalOp::Forget { ino, n }),
            Some(_) => self.apply(JournalOp::Forget { ino, n }),
            None => {}
        }
    }

    fn apply_forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let gone = match self.records.get_mut(&ino) {
            Some(r) => {
                r.lookups = r.lookups.saturating_sub(n);
                r.lookups == 0
            }
            None => false,
        };
        if gone {
            self.remove(ino);
        }
    }

    fn remove(&mut self, ino: u64) {
        if let Some(r) = self.records.remove(&ino) {
            let key = (r.parent, r.name);
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
    }

    /// Unlink `name` from `parent`; its record stays until forgotten.
    pub fn detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.child(parent, name)?;
        self.exec(JournalOp::Detach {
            parent,
            name: name.to_string(),
        });
        Some(ino)
    }

    fn apply_detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.by_name.remove(&(parent, name.to_string()))?;
        if let Some(r) = self.records.get_mut(&ino) {
            r.linked = false;
        }
        Some(ino)
    }

    /// Move `name` in `parent` to `new_name` in `new_parent`, detaching
    /// whatever was there, and rewrite the paths below it.
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        self.exec(JournalOp::Rename {
            parent,
            name: name.to_string(),
            new_parent,
            new_name: new_name.to_string(),
        });
    }

    fn apply_rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let Some(new_parent_path) = self.records.get(&new_parent).map(|r| r.path.clone()) else {
            return;
        };
        self.apply_detach(new_parent, new_name);
        let Some(ino) = self.by_name.remove(&(parent, name.to_string())) else {
            return;
        };
        let new_path = join(&new_parent_path, new_name);
        let Some(old_path) = self.records.get(&ino).map(|r| r.path.clone()) else {
            return;
        };
        if let Some(r) = self.records.get_mut(&ino) {
            r.parent = new_parent;
            r.name = new_name.to_string();
            r.path = new_path.clone();
        }
        self.by_name.insert((new_parent, new_name.to_string()), ino);
        for r in self.records.values_mut() {
            if r.ino != ino && r.ino != ROOT_INO && is_within(&r.path, &old_path) {
                r.path = rebase(&r.path, &old_path, &new_path);
            }
        }
    }

    /// Number of records, the root included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_count_and_forget_frees() {
        let mut t = InodeTable::new();
        let a = t.lookup(ROOT_INO, "a", Kind::Dir).unwrap_or(0);
        assert_eq!(t.lookup(ROOT_INO, "a", Kind::Dir), Some(a));
        assert_eq!(t.get(a).map(|r| r.lookups), Some(2));
        let f = t.lookup(a, "f", Kind::File).unwrap_or(0);
        assert_eq!(t.get(f).map(|r| r.path.as_str()), Some("a/f"));
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        assert_eq!(t.child(ROOT_INO, "a"), None);
        t.forget(ROOT_INO, 100);
        assert!(t.get(ROOT_INO).is_some());
        assert_eq!(t.lookup(999, "x", Kind::File), None);
    }

    #[test]
    fn ids_are_never_reused() {
        let mut t = InodeTable::new();
        let a = t.lookup(ROOT_INO, "a", Kind::File).unwrap_or(0);
        t.forget(a, 1);
        let b = t.lookup(ROOT_INO, "a", Kind::File).unwrap_or(0);
        assert_ne!(a, b);
    }

    #[test]
    fn a_kind_change_gets_a_new_id() {
        let mut t = InodeTable::new();
        let f = t.lookup(ROOT_INO, "x", Kind::File).unwrap_or(0);
        let d = t.lookup(ROOT_INO, "x", Kind::Dir).unwrap_or(0);
        assert_ne!(f, d);
        assert_eq!(t.get(f).map(|r| r.linked), Some(false));
        assert_eq!(t.child(ROOT_INO, "x"), Some(d));
        // The detached record leaves on forget without unlinking the new one.
        t.forget(f, 1);
        assert_eq!(t.child(ROOT_INO, "x"), Some(d));
    }

    #[test]
    fn rename_moves_subtree_paths() {
        let mut t = InodeTable::new();
        let d = t.lookup(ROOT_INO, "d", Kind::Dir).unwrap_or(0);
        let s = t.lookup(d, "s", Kind::Dir).unwrap_or(0);
        let f = t.lookup(s, "f", Kind::File).unwrap_or(0);
        let other = t.lookup(ROOT_INO, "dd", Kind::File).unwrap_or(0);
        let target = t.lookup(ROOT_INO, "e", Kind::Dir).unwrap_or(0);
        t.rename(ROOT_INO, "d", ROOT_INO, "e");
        assert_eq!(t.child(ROOT_INO, "e"), Some(d));
        assert_eq!(t.child(ROOT_INO, "d"), None);
        assert_eq!(t.get(target).map(|r| r.linked), Some(false));
        assert_eq!(t.get(s).map(|r| r.path.as_str()), Some("e/s"));
        assert_eq!(t.get(f).map(|r| r.path.as_str()), Some("e/s/f"));
        assert_eq!(t.get(other).map(|r| r.path.as_str()), Some("dd"));
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut t = InodeTable::new();
        let d = t.lookup(ROOT_INO, "d", Kind::Dir).unwrap_or(0);
        t.lookup(d, "f", Kind::File);
        let json = serde_json::to_string(&t.records()).unwrap_or_default();
        let back: Vec<InodeRecord> = serde_json::from_str(&json).unwrap_or_default();
        let t2 = InodeTable::from_records(back);
        assert_eq!(t2.records(), t.records());
        assert_eq!(t2.child(d, "f"), t.child(d, "f"));
        let mut t2 = t2;
        let n = t2.lookup(ROOT_INO, "new", Kind::File).unwrap_or(0);
        assert!(n > d);
    }

    #[test]
    fn prune_drops_unreferenced_records() {
        let mut t = InodeTable::new();
        let x = t.peek_or_insert(ROOT_INO, "x", Kind::File).unwrap_or(0);
        t.prune(x);
        assert!(t.get(x).is_none());
        let y = t.lookup(ROOT_INO, "y", Kind::File).unwrap_or(0);
        t.prune(y);
        assert!(t.get(y).is_some());
    }
}
