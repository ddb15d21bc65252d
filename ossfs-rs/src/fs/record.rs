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
//! without importing the table that keeps it. [`StagedFile`] is what the
//! journal says of an open writer's staging file, the facts a next worker
//! adopts it with (see `adoption.rs`).
//!
//! Imports: `fs::meta` (node kinds) and `fs::dir` (a directory handle's
//! listing snapshot); nothing else of the crate.

use std::path::PathBuf;
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

/// What the journal knows of an open writer's staging file: what a next
/// worker adopts it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedFile {
    /// Where the copy lives.
    pub path: PathBuf,
    /// The copy holds the file's whole content.
    pub loaded: bool,
    /// Written since it was loaded or last uploaded.
    pub dirty: bool,
    /// Unlinked, or replaced by a rename over it: never uploaded again.
    pub unlinked: bool,
    /// The ETag of the object version the copy was loaded from or last
    /// uploaded as (`""`: there was no object). `None` when the journal
    /// was written by an older build that did not record these facts.
    pub etag: Option<String>,
}
