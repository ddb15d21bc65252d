//! The plain-data records of the node and handle tables.
//!
//! A restarted worker must answer for the node ids and file handles the
//! kernel already holds (DESIGN.md section 5), so what each id stands for is
//! plain, serialisable data: an [`InodeRecord`] per node id, a
//! [`HandleRecord`] per file handle. The tables that hand the ids out
//! (`inode.rs`, `handle.rs`), the journal's operations that carry the
//! records (`journal.rs`) and the replay that rebuilds the tables from them
//! (`replay.rs`) all use these types, so they sit in this leaf module that
//! imports none of them: the journal's vocabulary can then name a record
//! without importing the table that keeps it.
//!
//! Imports: `fs::meta` (node kinds) and `fs::dir` (a directory handle's
//! listing snapshot); nothing else of the crate.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::dir::DirSnapshot;
use super::meta::Kind;

/// What a node id stands for. Plain data, for the restart journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRecord {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    /// Path inside the mount (`""` for the root).
    pub path: String,
    pub kind: Kind,
    /// References the kernel holds.
    pub lookups: u64,
    /// False once unlinked, replaced or found to be of another kind.
    pub linked: bool,
}

/// What a handle is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandleKind {
    /// An open file; `write` when opened for writing, `append` for O_APPEND.
    File { write: bool, append: bool },
    /// An open directory, with its snapshot.
    Dir(Arc<DirSnapshot>),
}

/// One open handle. Plain data, for the restart journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleRecord {
    pub fh: u64,
    pub ino: u64,
    /// The open(2) flags as the kernel passed them.
    pub flags: i32,
    pub kind: HandleKind,
}
