//! Answering the kernel: fuser's reply objects filled from the results of
//! [`Fs`](crate::fs::Fs), errors turned into errnos, and what was answered
//! handed back as [`Replied`] for the metrics.
//!
//! Every reply goes through [`answer`] (or [`answer_bytes`], which also
//! says how many file bytes the success moved), so there is one place where
//! an error becomes an errno and is logged: at debug level when it is an
//! ordinary answer (ENOENT of a lookup), at warn level otherwise. No
//! method of the adapter writes `reply.error(...)` itself.
//!
//! Imports: `crate::fs` (results, sinks), `crate::metrics::Replied`.

use fuser::{
    Errno, Generation, INodeNo, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr,
};
use tracing::{debug, warn};

use crate::fs::{DirPlusSink, DirSink, Entry, FsError, Kind, ToErrno, XattrReply};
use crate::metrics::Replied;

/// The errno of `e`, logged according to how surprising it is.
pub(super) fn errno(e: &FsError) -> Errno {
    if e.is_expected() {
        debug!(error = %e, "answered with an error");
    } else {
        warn!(error = %e, errno = e.errno(), "operation failed");
    }
    Errno::from_i32(e.errno())
}

/// A fuser reply that can carry an errno (every one but `forget`'s, which
/// has none).
pub(super) trait ErrorReply {
    fn error(self, errno: Errno);
}

macro_rules! error_reply {
    ($($reply:ty),* $(,)?) => {
        $(impl ErrorReply for $reply {
            fn error(self, errno: Errno) {
                <$reply>::error(self, errno)
            }
        })*
    };
}

error_reply!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyWrite,
    ReplyXattr,
);

/// Answer `reply` with `result`: `ok` sends a success and returns the file
/// bytes it moved; an error is sent as its errno.
pub(super) fn answer_bytes<R: ErrorReply, T>(
    result: Result<T, FsError>,
    reply: R,
    ok: impl FnOnce(R, T) -> u64,
) -> Replied {
    match result {
        Ok(value) => Replied::Ok(ok(reply, value)),
        Err(e) => {
            let n = errno(&e);
            reply.error(n);
            Replied::Error(n.code())
        }
    }
}

/// [`answer_bytes`] for a success that moves no file bytes.
pub(super) fn answer<R: ErrorReply, T>(
    result: Result<T, FsError>,
    reply: R,
    ok: impl FnOnce(R, T),
) -> Replied {
    answer_bytes(result, reply, |reply, value| {
        ok(reply, value);
        0
    })
}

pub(super) fn reply_entry(result: Result<Entry, FsError>, reply: ReplyEntry) -> Replied {
    answer(result, reply, |reply, e| {
        reply.entry(&e.ttl, &e.attr, Generation(0))
    })
}

pub(super) fn reply_attr(result: Result<Entry, FsError>, reply: ReplyAttr) -> Replied {
    answer(result, reply, |reply, e| reply.attr(&e.ttl, &e.attr))
}

pub(super) fn reply_empty(result: Result<(), FsError>, reply: ReplyEmpty) -> Replied {
    answer(result, reply, |reply, ()| reply.ok())
}

pub(super) fn reply_xattr(result: Result<XattrReply, FsError>, reply: ReplyXattr) -> Replied {
    answer(result, reply, |reply, x| match x {
        XattrReply::Size(n) => reply.size(n),
        XattrReply::Data(d) => reply.data(&d),
    })
}

/// A readdir reply as the filesystem's sink.
pub(super) struct DirReply(pub(super) ReplyDirectory);

impl DirSink for DirReply {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        self.0.add(INodeNo(ino), offset, kind.file_type(), name)
    }
}

/// A readdirplus reply as the filesystem's sink.
pub(super) struct DirPlusReply(pub(super) ReplyDirectoryPlus);

impl DirPlusSink for DirPlusReply {
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool {
        self.0.add(
            entry.attr.ino,
            offset,
            name,
            &entry.ttl,
            &entry.attr,
            Generation(0),
        )
    }
}
