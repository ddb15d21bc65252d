//! The journal file: the filesystem's [`JournalOp`]s, one JSON line each,
//! in the mount's state directory.
//!
//! Each operation is written with one `write(2)` to a file opened with
//! `O_APPEND`, before the reply that depends on it is sent. No `fsync`: the
//! journal must survive the worker, not the machine (after a reboot the
//! kernel's node ids are gone too), and the page cache outlives a process.
//!
//! The journal keeps an in-memory mirror of the state it describes
//! ([`Restored`]), updated under the same lock as the file, so it can
//! compact itself at any time without touching the filesystem's tables:
//! when the log has grown past [`COMPACT_BYTES`] and four times the last
//! snapshot, the mirror's snapshot is written to a new file that replaces
//! the log with a rename. A worker opening the journal replays it and
//! compacts at once. A torn last line (a worker killed inside a write) is
//! skipped with a warning.
//!
//! Imports: `fs` of the crate, besides std and external crates.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::fs::journal::{JournalOp, JournalSink};
use crate::fs::replay::Restored;

/// The log is compacted once it exceeds this size (and 4x the snapshot).
pub const COMPACT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
struct Inner {
    file: File,
    mirror: Restored,
    written: u64,
    snapshot_bytes: u64,
    failed: bool,
}

/// The journal of one mount.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// What opening a journal found.
#[derive(Debug)]
pub struct Opened {
    pub journal: Arc<FileJournal>,
    /// The state to continue from (empty for a new mount).
    pub restored: Restored,
    /// Operations replayed.
    pub replayed: usize,
    /// Lines that could not be read (a torn write).
    pub skipped: usize,
}

impl FileJournal {
    /// Open the journal at `path` (created when missing), replay it, and
    /// compact it.
    pub fn open(path: &Path) -> io::Result<Opened> {
        let existing = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        let (mirror, replayed, skipped) = match existing {
            Ok(f) => read_ops(f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Restored::default(), 0, 0),
            Err(e) => return Err(e),
        };
        let (file, snapshot_bytes) = write_snapshot(path, &mirror)?;
        let restored = clone_state(&mirror);
        let journal = Arc::new(Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                mirror,
                written: 0,
                snapshot_bytes,
                failed: false,
            }),
        });
        Ok(Opened {
            journal,
            restored,
            replayed,
            skipped,
        })
    }

    /// Size of the log written since the last compaction.
    pub fn written(&self) -> u64 {
        self.inner.lock().map(|i| i.written).unwrap_or(0)
    }
}

impl JournalSink for FileJournal {
    fn record(&self, op: &JournalOp) {
        let Ok(mut line) = serde_json::to_vec(op) else {
            return;
        };
        line.push(b'\n');
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        inner.mirror.apply(op.clone());
        match inner.file.write_all(&line) {
            Ok(()) => inner.written += line.len() as u64,
            Err(e) => {
                if !inner.failed {
                    warn!(path = %self.path.display(), error = %e, "cannot write the restart journal; a restarted worker may not know every open file");
                }
                inner.failed = true;
            }
        }
        if inner.written > COMPACT_BYTES && inner.written > 4 * inner.snapshot_bytes {
            match write_snapshot(&self.path, &inner.mirror) {
                Ok((file, bytes)) => {
                    inner.file = file;
                    inner.snapshot_bytes = bytes;
                    inner.written = 0;
                }
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot compact the restart journal")
                }
            }
        }
    }
}

/// Replay a journal file.
fn read_ops(f: File) -> io::Result<(Restored, usize, usize)> {
    let mut state = Restored::default();
    let (mut replayed, mut skipped) = (0, 0);
    for line in BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JournalOp>(&line) {
            Ok(op) => {
                state.apply(op);
                replayed += 1;
            }
            Err(_) => skipped += 1,
        }
    }
    Ok((state, replayed, skipped))
}

/// Write `state` as a fresh journal next to `path`, rename it over `path`,
/// and return it open for appending, with its size.
fn write_snapshot(path: &Path, state: &Restored) -> io::Result<(File, u64)> {
    let tmp = path.with_extension("new");
    let mut out = Vec::new();
    for op in state.snapshot() {
        serde_json::to_writer(&mut out, &op).map_err(io::Error::other)?;
        out.push(b'\n');
    }
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&out)?;
    }
    std::fs::rename(&tmp, path)?;
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    Ok((file, out.len() as u64))
}

/// A copy of `state` for the filesystem (the journal keeps its own).
fn clone_state(state: &Restored) -> Restored {
    let mut copy = Restored::default();
    for op in state.snapshot() {
        copy.apply(op);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::{InodeTable, ROOT_INO};
    use crate::fs::journal::Answer;
    use crate::fs::meta::Kind;

    #[test]
    fn a_reopened_journal_continues_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let opened = FileJournal::open(&path).unwrap();
        assert_eq!(opened.replayed, 0);
        let mut t = InodeTable::new();
        t.set_journal(opened.journal.clone());
        let d = t.lookup(ROOT_INO, "d", Kind::Dir).unwrap();
        t.lookup(d, "f", Kind::File).unwrap();
        t.rename(d, "f", ROOT_INO, "g");
        opened.journal.record(&JournalOp::Answer {
            unique: 9,
            answer: Answer::Done,
        });
        drop(opened);

        // A torn last line, as a kill inside write(2) could leave.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"ref\",\"in").unwrap();
        drop(f);

        let again = FileJournal::open(&path).unwrap();
        assert_eq!(again.skipped, 1);
        // Reference counts come back as "referenced once".
        let expected: Vec<_> = t
            .records()
            .into_iter()
            .map(|mut r| {
                r.lookups = r.lookups.min(1);
                r
            })
            .collect();
        assert_eq!(again.restored.inodes.records(), expected);
        assert_eq!(again.restored.answers.get(&9), Some(&Answer::Done));
        // Compacted: the file now holds a snapshot, and reopening it
        // yields the same state again.
        let third = FileJournal::open(&path).unwrap();
        assert_eq!(third.skipped, 0);
        assert_eq!(third.restored.inodes.records(), expected);
    }
}
