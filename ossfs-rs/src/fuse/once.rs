//! At-most-once semantics of resent requests that change the namespace.
//!
//! After a worker restart the kernel resends the requests the dead worker
//! left unanswered (`is_resent`), and the [`Ledger`] remembers the answers
//! of non-idempotent ones that did finish. A resent create, mkdir, unlink
//! or rename must not fail because its first attempt already did the work:
//! the helpers here replay a remembered answer, or turn the error the
//! first attempt's work causes (EEXIST, ENOENT) into the success it was.
//!
//! Imports: `super::ledger`, `crate::fs`.

use std::ffi::OsStr;
use std::future::Future;

use super::ledger::{Ledger, is_resent};
use crate::fs::journal::Answer;
use crate::fs::{Created, Entry, Fs, FsError, ToErrno};

/// Run a request that creates a node (mkdir, mknod, symlink) at most
/// once: a resent request whose first attempt finished gets that answer
/// again; one whose first attempt got as far as the store finds the node
/// there (EEXIST from itself), which is success too.
pub(super) async fn entry_once(
    fs: &Fs,
    ledger: &Ledger,
    unique: u64,
    parent: u64,
    name: &OsStr,
    run: impl Future<Output = Result<Entry, FsError>>,
) -> Result<Entry, FsError> {
    if let Some(Answer::Entry { ino }) = ledger.replayed(unique) {
        return fs.getattr(ino).await;
    }
    let result = match run.await {
        Err(e) if is_resent(unique) && e.errno() == libc::EEXIST => fs.lookup(parent, name).await,
        other => other,
    };
    if let Ok(e) = &result {
        ledger.remember(unique, Answer::Entry { ino: e.attr.ino.0 });
    }
    result
}

/// Run a request that removes or moves a name (unlink, rmdir, rename) at
/// most once: a resent one whose first attempt already did it succeeds
/// instead of failing with `gone` (ENOENT).
pub(super) async fn done_once(
    ledger: &Ledger,
    unique: u64,
    run: impl Future<Output = Result<(), FsError>>,
) -> Result<(), FsError> {
    if let Some(Answer::Done) = ledger.replayed(unique) {
        return Ok(());
    }
    let result = match run.await {
        Err(e) if is_resent(unique) && e.errno() == libc::ENOENT => Ok(()),
        other => other,
    };
    if result.is_ok() {
        ledger.remember(unique, Answer::Done);
    }
    result
}

/// Run a create at most once: a resent one whose first attempt finished
/// gets the same node and handle; one whose first attempt made the file
/// (EEXIST from itself, with `O_EXCL`) opens what it made. `create` runs
/// the create with the open flags given.
pub(super) async fn created_once<F>(
    fs: &Fs,
    ledger: &Ledger,
    unique: u64,
    flags: i32,
    create: impl Fn(i32) -> F,
) -> Result<Created, FsError>
where
    F: Future<Output = Result<Created, FsError>>,
{
    let result = match ledger.replayed(unique) {
        Some(Answer::Created { ino, fh }) => {
            fs.getattr(ino).await.map(|entry| Created { entry, fh })
        }
        _ => match create(flags).await {
            // The first attempt made the file: open what it made.
            Err(e) if is_resent(unique) && e.errno() == libc::EEXIST => {
                create(flags & !libc::O_EXCL).await
            }
            other => other,
        },
    };
    if let Ok(c) = &result {
        ledger.remember(
            unique,
            Answer::Created {
                ino: c.entry.attr.ino.0,
                fh: c.fh,
            },
        );
    }
    result
}
