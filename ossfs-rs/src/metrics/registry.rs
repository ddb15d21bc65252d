//! The process-wide counters ([`METRICS`]) and their text exposition.
//!
//! The daemon counts a small fixed set of things, so a table of atomics is
//! enough and costs one relaxed add per event: store requests by operation
//! and outcome, their latency as a histogram, bytes read and written,
//! cache hits and misses (block cache, stat cache, disk cache), uploads in
//! flight, the caches' sizes, and the FUSE requests
//! ([`super::fuse::FuseMetrics`]). [`Metrics::render`] writes the text
//! exposition format (version 0.0.4).
//!
//! Imports: `super::{defs, histogram, fuse}`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::defs::{
    CACHE_BYTES, CACHE_HITS, CACHE_MISSES, DISK_CACHE_BYTES, Metric, STORE_BYTES, STORE_REQUESTS,
    STORE_SECONDS, UPLOADS_IN_FLIGHT,
};
use super::fuse::{FuseMetrics, FuseOp, Replied};
use super::histogram::{Histogram, STORE_BUCKETS};

/// Store operations, as labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Head,
    Get,
    Put,
    List,
    Delete,
    Copy,
    Multipart,
    Other,
}

const OPS: [(Op, &str); 8] = [
    (Op::Head, "head"),
    (Op::Get, "get"),
    (Op::Put, "put"),
    (Op::List, "list"),
    (Op::Delete, "delete"),
    (Op::Copy, "copy"),
    (Op::Multipart, "multipart"),
    (Op::Other, "other"),
];

/// Caches, as labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Block,
    Stat,
    /// The disk tier of the block cache (`use_cache`).
    Disk,
}

const CACHES: [(Cache, &str); 3] = [
    (Cache::Block, "block"),
    (Cache::Stat, "stat"),
    (Cache::Disk, "disk"),
];

/// The process-wide counters.
pub struct Metrics {
    requests: [[AtomicU64; 2]; OPS.len()],
    seconds: [Histogram<{ STORE_BUCKETS.len() }>; OPS.len()],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    hits: [AtomicU64; CACHES.len()],
    misses: [AtomicU64; CACHES.len()],
    uploads: AtomicI64,
    cache_bytes: AtomicU64,
    disk_cache_bytes: AtomicU64,
    fuse: FuseMetrics,
}

/// The counters of this process.
pub static METRICS: Metrics = Metrics::new();

fn op_index(op: Op) -> usize {
    OPS.iter()
        .position(|(o, _)| *o == op)
        .unwrap_or(OPS.len() - 1)
}

fn cache_index(c: Cache) -> usize {
    CACHES.iter().position(|(x, _)| *x == c).unwrap_or(0)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            requests: [const { [const { AtomicU64::new(0) }; 2] }; OPS.len()],
            seconds: [const { Histogram::new(&STORE_BUCKETS) }; OPS.len()],
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            hits: [const { AtomicU64::new(0) }; CACHES.len()],
            misses: [const { AtomicU64::new(0) }; CACHES.len()],
            uploads: AtomicI64::new(0),
            cache_bytes: AtomicU64::new(0),
            disk_cache_bytes: AtomicU64::new(0),
            fuse: FuseMetrics::new(),
        }
    }

    /// Record one finished store request that took `elapsed`.
    pub fn request(&self, op: Op, ok: bool, elapsed: Duration) {
        let i = op_index(op);
        self.requests[i][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        self.seconds[i].observe(elapsed);
    }

    /// Record one answered FUSE request (see [`FuseMetrics::record`]).
    pub fn fuse(&self, op: FuseOp, elapsed: Duration, replied: Replied) {
        self.fuse.record(op, elapsed, replied);
    }

    /// Bytes received from the store.
    pub fn read_bytes(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes sent to the store.
    pub fn written_bytes(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }

    /// A cache lookup.
    pub fn cache(&self, cache: Cache, hit: bool) {
        let i = cache_index(cache);
        if hit {
            self.hits[i].fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The block cache now holds `bytes`.
    pub fn set_cache_bytes(&self, bytes: u64) {
        self.cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The disk cache now holds `bytes`.
    pub fn set_disk_cache_bytes(&self, bytes: u64) {
        self.disk_cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// An upload starts; the guard ends it.
    pub fn upload(&'static self) -> UploadGuard {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        UploadGuard(self)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        STORE_REQUESTS.header(&mut s);
        for (i, (_, op)) in OPS.iter().enumerate() {
            for (j, outcome) in ["ok", "error"].iter().enumerate() {
                let n = self.requests[i][j].load(Ordering::Relaxed);
                let name = STORE_REQUESTS.name;
                let _ = writeln!(s, "{name}{{op=\"{op}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        STORE_SECONDS.header(&mut s);
        for (i, (_, op)) in OPS.iter().enumerate() {
            self.seconds[i].render(&mut s, STORE_SECONDS.name, &format!("op=\"{op}\""));
        }
        STORE_BYTES.header(&mut s);
        for (direction, n) in [("read", &self.bytes_read), ("write", &self.bytes_written)] {
            let n = n.load(Ordering::Relaxed);
            let name = STORE_BYTES.name;
            let _ = writeln!(s, "{name}{{direction=\"{direction}\"}} {n}");
        }
        for (def, table) in [(CACHE_HITS, &self.hits), (CACHE_MISSES, &self.misses)] {
            def.header(&mut s);
            for (i, (_, cache)) in CACHES.iter().enumerate() {
                let n = table[i].load(Ordering::Relaxed);
                let _ = writeln!(s, "{}{{cache=\"{cache}\"}} {n}", def.name);
            }
        }
        let uploads = self.uploads.load(Ordering::Relaxed);
        gauge(&mut s, &UPLOADS_IN_FLIGHT, uploads);
        let cache_bytes = self.cache_bytes.load(Ordering::Relaxed);
        gauge(&mut s, &CACHE_BYTES, cache_bytes);
        let disk_bytes = self.disk_cache_bytes.load(Ordering::Relaxed);
        gauge(&mut s, &DISK_CACHE_BYTES, disk_bytes);
        self.fuse.render(&mut s);
        s
    }
}

/// Write a gauge without labels.
fn gauge(s: &mut String, def: &Metric, value: impl std::fmt::Display) {
    def.header(s);
    let _ = writeln!(s, "{} {value}", def.name);
}

/// Counts one upload in flight until dropped.
pub struct UploadGuard(&'static Metrics);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.uploads.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::defs::ALL;

    #[test]
    fn exposition_has_every_family_and_cumulative_buckets() {
        let m = Metrics::new();
        let t = Duration::ZERO;
        m.request(Op::Get, true, t);
        m.request(Op::Get, false, t);
        m.read_bytes(10);
        m.cache(Cache::Block, true);
        m.cache(Cache::Block, false);
        m.cache(Cache::Block, false);
        let text = m.render();
        assert!(text.contains("ossfs_store_requests_total{op=\"get\",outcome=\"ok\"} 1"));
        assert!(text.contains("ossfs_store_requests_total{op=\"get\",outcome=\"error\"} 1"));
        assert!(
            text.contains("ossfs_store_request_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("ossfs_store_request_duration_seconds_count{op=\"head\"} 0"));
        assert!(text.contains("ossfs_store_bytes_total{direction=\"read\"} 10"));
        assert!(text.contains("ossfs_cache_hits_total{cache=\"block\"} 1"));
        assert!(text.contains("ossfs_cache_misses_total{cache=\"block\"} 2"));
        assert!(text.contains("ossfs_uploads_in_flight 0"));
        // Buckets never decrease.
        let mut last = 0u64;
        for line in text.lines().filter(|l| l.contains("_bucket{op=\"get\"")) {
            let n: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!(n >= last, "{line}");
            last = n;
        }
    }

    #[test]
    fn every_family_is_rendered_once_and_every_series_parses() {
        let m = Metrics::new();
        m.fuse(FuseOp::Read, Duration::from_micros(30), Replied::Ok(512));
        m.fuse(FuseOp::Unlink, Duration::ZERO, Replied::Error(libc::EACCES));
        let text = m.render();
        for def in ALL {
            let help = format!("# HELP {} ", def.name);
            let kind = format!("# TYPE {} ", def.name);
            assert_eq!(text.lines().filter(|l| l.starts_with(&help)).count(), 1);
            assert_eq!(text.lines().filter(|l| l.starts_with(&kind)).count(), 1);
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let family = series.split(['{', ' ']).next().unwrap_or("");
            assert!(
                ALL.iter().any(|d| family == d.name
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| family == format!("{}{suffix}", d.name))),
                "{line}: not a declared family"
            );
        }
        assert!(text.contains("ossfs_fuse_errors_total{op=\"unlink\",errno=\"EACCES\"} 1"));
        assert!(text.contains("ossfs_fuse_bytes_total{op=\"read\"} 512"));
    }
}
