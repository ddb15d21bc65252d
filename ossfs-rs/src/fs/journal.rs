//! What the filesystem writes to the restart journal, and how it reads it back.
//!
//! A worker that dies leaves the kernel holding node ids and file handles
//! it handed out, and writers with data in staging files. The next worker
//! must answer for exactly those ids (DESIGN.md section 5), so every change
//! the kernel can see is recorded as a [`JournalOp`] *before* the reply
//! that reveals it reaches the kernel: each table calls its [`JournalSink`]
//! from inside the mutation, under the table's lock, so the journal's order
//! is the tables' order. Replaying the operations in order into empty
//! tables (`Restored::apply`, in `replay.rs`) rebuilds the same tables,
//! node ids included, because each operation is applied by the same code
//! that ran it the first time.
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
//! (`supervisor::journal`); this module is only the vocabulary. It sits
//! below the tables that emit it (`inode.rs`, `handle.rs`, `staging.rs`)
//! and below the replay that applies it (`replay.rs`), so it names none of
//! them. The serialised form (the serde attributes below) is the journal
//! file's format: a restarted worker of the same build reads what the dead
//! one wrote.
//!
//! What the journal says of each open writer's staging file (unlinked or
//! replaced, clean or dirty, the ETag it was loaded from or last uploaded
//! as) is what a next worker adopts it with (`adoption.rs`): fields added
//! since the first format carry `#[serde(default)]`, so an older build's
//! journal still loads.
//!
//! Imports: `fs::record` (the records an operation carries) and `fs::meta`
//! (node kinds); nothing else of the crate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::meta::Kind;
use super::record::InodeRecord;

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
    /// holds the file's whole content. `etag` is the object version it
    /// starts from (`""`: none); a journal of an older build has none,
    /// and its whole copies are then taken as dirty.
    Stage {
        ino: u64,
        path: PathBuf,
        loaded: bool,
        #[serde(default)]
        etag: Option<String>,
    },
    /// The staging file of `ino` now holds the whole content, of the
    /// object version `etag` (absent in an older build's journal).
    Loaded {
        ino: u64,
        #[serde(default)]
        etag: Option<String>,
    },
    /// The staging file of `ino` was written after it was loaded or last
    /// uploaded (journaled when that changes, not for every write).
    Dirty { ino: u64 },
    /// The staging file of `ino` was uploaded as the object version `etag`
    /// and is clean.
    Uploaded { ino: u64, etag: String },
    /// The file of `ino` was unlinked, or replaced by a rename over it,
    /// while open: its staging file is never uploaded again.
    Orphan { ino: u64 },
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
