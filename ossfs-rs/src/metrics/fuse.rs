//! Per-FUSE-operation metrics: requests, latency, errors by errno, bytes.
//!
//! The FUSE adapter records each request once, where its reply is sent
//! ([`FuseMetrics::record`]). Recording must cost next to nothing beside
//! a cache hit answered on the FUSE thread, so everything is a fixed array
//! of atomics indexed by [`FuseOp`] and by a small table of errnos: no
//! lock, no allocation, no map. An errno outside the table counts as
//! `other`.
//!
//! The exposition writes a request counter for every operation, a latency
//! histogram only for operations served at least once (28 operations of
//! 18 lines of zeros would be most of the page), error series only where
//! the count is not zero, and bytes for `read` and `write`.
//!
//! Imports: `super::{defs, histogram}`; `libc` for the errno values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::defs::{FUSE_BYTES, FUSE_ERRORS, FUSE_REQUESTS, FUSE_SECONDS};
use super::histogram::{FUSE_BUCKETS, Histogram};

/// Declares [`FuseOp`] from one list, so that its variants, `ALL` and the
/// labels cannot drift apart.
macro_rules! fuse_ops {
    ($($op:ident => $label:literal),* $(,)?) => {
        /// The FUSE operations the adapter serves (not `init` and
        /// `destroy`, which are the mount's start and end, not requests).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum FuseOp {
            $($op),*
        }

        impl FuseOp {
            /// Every operation, in declaration order (`ALL[op as usize] == op`).
            pub const ALL: [FuseOp; [$($label),*].len()] = [$(FuseOp::$op),*];

            /// The `op` label (the name of the `fuser::Filesystem` method).
            pub fn name(self) -> &'static str {
                match self {
                    $(FuseOp::$op => $label),*
                }
            }
        }
    };
}

fuse_ops! {
    Lookup => "lookup",
    Forget => "forget",
    Getattr => "getattr",
    Setattr => "setattr",
    Readlink => "readlink",
    Mknod => "mknod",
    Mkdir => "mkdir",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Symlink => "symlink",
    Rename => "rename",
    Open => "open",
    Read => "read",
    Write => "write",
    Flush => "flush",
    Release => "release",
    Fsync => "fsync",
    Opendir => "opendir",
    Readdir => "readdir",
    Readdirplus => "readdirplus",
    Releasedir => "releasedir",
    Fsyncdir => "fsyncdir",
    Statfs => "statfs",
    Setxattr => "setxattr",
    Getxattr => "getxattr",
    Listxattr => "listxattr",
    Removexattr => "removexattr",
    Create => "create",
}

/// How many [`FuseOp`]s there are.
const OPS: usize = FuseOp::ALL.len();

impl FuseOp {
    fn index(self) -> usize {
        self as usize
    }
}

/// The operations whose file bytes are counted.
const BYTE_OPS: [FuseOp; 2] = [FuseOp::Read, FuseOp::Write];

/// The errnos counted by name: every one the filesystem answers, and a few
/// the system may (ENOSPC, EDQUOT of the staging disk).
const ERRNOS: [(i32, &str); 28] = [
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EXDEV, "EXDEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EROFS, "EROFS"),
    (libc::ERANGE, "ERANGE"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::ENOTEMPTY, "ENOTEMPTY"),
    (libc::ENODATA, "ENODATA"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::ENOTCONN, "ENOTCONN"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ESTALE, "ESTALE"),
    (libc::EDQUOT, "EDQUOT"),
];

/// The `errno` label of an errno outside [`ERRNOS`].
const OTHER: &str = "other";

/// The column of `errno` in the error table (the last one: `other`).
fn errno_index(errno: i32) -> usize {
    ERRNOS
        .iter()
        .position(|(code, _)| *code == errno)
        .unwrap_or(ERRNOS.len())
}

fn errno_name(index: usize) -> &'static str {
    ERRNOS.get(index).map_or(OTHER, |(_, name)| name)
}

/// How a FUSE request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replied {
    /// With success, having moved this many file bytes (a read's data, a
    /// write's count; 0 for every other operation).
    Ok(u64),
    /// With this errno.
    Error(i32),
}

/// The FUSE part of the process-wide counters.
pub struct FuseMetrics {
    requests: [AtomicU64; OPS],
    seconds: [Histogram<{ FUSE_BUCKETS.len() }>; OPS],
    errors: [[AtomicU64; ERRNOS.len() + 1]; OPS],
    bytes: [AtomicU64; OPS],
}

impl Default for FuseMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl FuseMetrics {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            requests: [const { AtomicU64::new(0) }; OPS],
            seconds: [const { Histogram::new(&FUSE_BUCKETS) }; OPS],
            errors: [const { [const { AtomicU64::new(0) }; ERRNOS.len() + 1] }; OPS],
            bytes: [const { AtomicU64::new(0) }; OPS],
        }
    }

    /// One request of `op`, answered `replied` after `elapsed`.
    pub fn record(&self, op: FuseOp, elapsed: Duration, replied: Replied) {
        let i = op.index();
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        self.seconds[i].observe(elapsed);
        match replied {
            Replied::Ok(0) => {}
            Replied::Ok(n) => {
                self.bytes[i].fetch_add(n, Ordering::Relaxed);
            }
            Replied::Error(errno) => {
                self.errors[i][errno_index(errno)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Write the four FUSE families.
    pub fn render(&self, s: &mut String) {
        FUSE_REQUESTS.header(s);
        for op in FuseOp::ALL {
            let n = self.requests[op.index()].load(Ordering::Relaxed);
            let _ = writeln!(s, "{}{{op=\"{}\"}} {n}", FUSE_REQUESTS.name, op.name());
        }
        FUSE_SECONDS.header(s);
        for op in FuseOp::ALL {
            let h = &self.seconds[op.index()];
            if h.count() > 0 {
                h.render(s, FUSE_SECONDS.name, &format!("op=\"{}\"", op.name()));
            }
        }
        FUSE_ERRORS.header(s);
        for op in FuseOp::ALL {
            for (e, count) in self.errors[op.index()].iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        s,
                        "{}{{op=\"{}\",errno=\"{}\"}} {n}",
                        FUSE_ERRORS.name,
                        op.name(),
                        errno_name(e)
                    );
                }
            }
        }
        FUSE_BYTES.header(s);
        for op in BYTE_OPS {
            let n = self.bytes[op.index()].load(Ordering::Relaxed);
            let _ = writeln!(s, "{}{{op=\"{}\"}} {n}", FUSE_BYTES.name, op.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_own_index_and_name() {
        for (i, op) in FuseOp::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "{op:?}");
            assert!(
                FuseOp::ALL[..i].iter().all(|o| o.name() != op.name()),
                "{op:?}"
            );
        }
    }

    #[test]
    fn errnos_are_distinct_and_unknown_ones_are_other() {
        for (i, (code, name)) in ERRNOS.iter().enumerate() {
            assert_eq!(errno_index(*code), i, "{name}");
            assert_eq!(errno_name(i), *name);
            assert!(name.starts_with('E'), "{name}");
        }
        assert_eq!(errno_name(errno_index(libc::ELOOP)), "other");
        assert_eq!(errno_name(errno_index(0)), "other");
    }

    #[test]
    fn records_requests_latency_errors_and_bytes() {
        let m = FuseMetrics::new();
        m.record(FuseOp::Read, Duration::from_micros(50), Replied::Ok(4096));
        m.record(FuseOp::Read, Duration::from_millis(3), Replied::Ok(100));
        m.record(FuseOp::Write, Duration::from_micros(10), Replied::Ok(7));
        m.record(
            FuseOp::Lookup,
            Duration::from_micros(1),
            Replied::Error(libc::ENOENT),
        );
        m.record(
            FuseOp::Lookup,
            Duration::from_micros(1),
            Replied::Error(libc::ELOOP),
        );
        m.record(FuseOp::Getattr, Duration::from_micros(1), Replied::Ok(0));
        let mut s = String::new();
        m.render(&mut s);
        for line in [
            "# TYPE ossfs_fuse_requests_total counter",
            "ossfs_fuse_requests_total{op=\"read\"} 2",
            "ossfs_fuse_requests_total{op=\"lookup\"} 2",
            "ossfs_fuse_requests_total{op=\"mkdir\"} 0",
            "# TYPE ossfs_fuse_request_seconds histogram",
            "ossfs_fuse_request_seconds_bucket{op=\"read\",le=\"0.0001\"} 1",
            "ossfs_fuse_request_seconds_bucket{op=\"read\",le=\"0.0025\"} 1",
            "ossfs_fuse_request_seconds_bucket{op=\"read\",le=\"0.005\"} 2",
            "ossfs_fuse_request_seconds_bucket{op=\"read\",le=\"+Inf\"} 2",
            "ossfs_fuse_request_seconds_count{op=\"read\"} 2",
            "ossfs_fuse_request_seconds_count{op=\"getattr\"} 1",
            "# TYPE ossfs_fuse_errors_total counter",
            "ossfs_fuse_errors_total{op=\"lookup\",errno=\"ENOENT\"} 1",
            "ossfs_fuse_errors_total{op=\"lookup\",errno=\"other\"} 1",
            "# TYPE ossfs_fuse_bytes_total counter",
            "ossfs_fuse_bytes_total{op=\"read\"} 4196",
            "ossfs_fuse_bytes_total{op=\"write\"} 7",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in:\n{s}");
        }
        // Unserved operations have no histogram, and no error is zero.
        assert!(!s.contains("ossfs_fuse_request_seconds_count{op=\"mkdir\"}"));
        assert!(!s.contains("errno=\"EIO\""));
        assert!(!s.contains("ossfs_fuse_bytes_total{op=\"getattr\"}"));
    }
}
