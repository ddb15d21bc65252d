//! Every metric the daemon exports: its name, kind, unit, labels and help
//! text, here and nowhere else.
//!
//! Dashboards and the end-to-end tests read these names, so a name or a
//! label never changes once shipped; add a new metric instead. The
//! exposition (`registry.rs`) writes each family's `# HELP` and
//! `# TYPE` lines from its [`Metric`], and docs/configuration.md lists them
//! for users. Names follow the Prometheus conventions (a test checks them):
//! counters end in `_total`, and the unit is the name's last word
//! (`_seconds`, `_bytes`) before it.
//!
//! Imports: nothing of the crate.

use std::fmt::Write as _;

/// What kind of series a metric is, as the `# TYPE` line says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a metric counts or measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Events (requests, hits) or things (uploads).
    Count,
    Seconds,
    Bytes,
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    /// Label names, in the order every series writes them.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl Metric {
    /// Write the family's `# HELP` and `# TYPE` lines.
    pub fn header(&self, s: &mut String) {
        let _ = writeln!(s, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(s, "# TYPE {} {}", self.name, self.kind.name());
    }
}

/// Store requests, by `op` (the store operation, see
/// `registry::Op`) and `outcome` (`ok`, `error`).
pub const STORE_REQUESTS: Metric = Metric {
    name: "ossfs_store_requests_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["op", "outcome"],
    help: "Store requests by operation and outcome.",
};

/// Latency of store requests, by `op`.
pub const STORE_SECONDS: Metric = Metric {
    name: "ossfs_store_request_duration_seconds",
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    labels: &["op"],
    help: "Store request latency.",
};

/// Body bytes to and from the store, by `direction` (`read`, `write`).
pub const STORE_BYTES: Metric = Metric {
    name: "ossfs_store_bytes_total",
    kind: Kind::Counter,
    unit: Unit::Bytes,
    labels: &["direction"],
    help: "Bytes moved to and from the store.",
};

/// Cache hits, by `cache` (`block`, `stat`, `disk`).
pub const CACHE_HITS: Metric = Metric {
    name: "ossfs_cache_hits_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["cache"],
    help: "Cache hits.",
};

/// Cache misses, by `cache`.
pub const CACHE_MISSES: Metric = Metric {
    name: "ossfs_cache_misses_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["cache"],
    help: "Cache misses.",
};

/// Uploads running now.
pub const UPLOADS_IN_FLIGHT: Metric = Metric {
    name: "ossfs_uploads_in_flight",
    kind: Kind::Gauge,
    unit: Unit::Count,
    labels: &[],
    help: "Uploads running now.",
};

/// Bytes held by the block cache in memory.
pub const CACHE_BYTES: Metric = Metric {
    name: "ossfs_block_cache_bytes",
    kind: Kind::Gauge,
    unit: Unit::Bytes,
    labels: &[],
    help: "Bytes held by the block cache.",
};

/// Bytes held by the disk tier of the block cache.
pub const DISK_CACHE_BYTES: Metric = Metric {
    name: "ossfs_disk_cache_bytes",
    kind: Kind::Gauge,
    unit: Unit::Bytes,
    labels: &[],
    help: "Bytes held by the disk cache (use_cache).",
};

/// FUSE requests answered, by `op` (the FUSE operation, see
/// `fuse::FuseOp`).
pub const FUSE_REQUESTS: Metric = Metric {
    name: "ossfs_fuse_requests_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["op"],
    help: "FUSE requests answered, by operation.",
};

/// Time from a FUSE request's arrival to its reply, by `op`.
pub const FUSE_SECONDS: Metric = Metric {
    name: "ossfs_fuse_request_seconds",
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    labels: &["op"],
    help: "FUSE request latency, from arrival to reply.",
};

/// FUSE requests answered with an error, by `op` and `errno` (its
/// symbolic name, `ENOENT`; `other` for one outside the table).
pub const FUSE_ERRORS: Metric = Metric {
    name: "ossfs_fuse_errors_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["op", "errno"],
    help: "FUSE requests answered with an error, by operation and errno.",
};

/// File bytes moved by FUSE reads and writes, by `op` (`read`, `write`).
pub const FUSE_BYTES: Metric = Metric {
    name: "ossfs_fuse_bytes_total",
    kind: Kind::Counter,
    unit: Unit::Bytes,
    labels: &["op"],
    help: "File bytes read and written through FUSE.",
};

/// Every family, in the order of the exposition.
pub const ALL: [Metric; 12] = [
    STORE_REQUESTS,
    STORE_SECONDS,
    STORE_BYTES,
    CACHE_HITS,
    CACHE_MISSES,
    UPLOADS_IN_FLIGHT,
    CACHE_BYTES,
    DISK_CACHE_BYTES,
    FUSE_REQUESTS,
    FUSE_SECONDS,
    FUSE_ERRORS,
    FUSE_BYTES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_prometheus_conventions() {
        for (i, m) in ALL.iter().enumerate() {
            assert!(m.name.starts_with("ossfs_"), "{}", m.name);
            assert!(
                ALL[..i].iter().all(|other| other.name != m.name),
                "{} twice",
                m.name
            );
            let base = m.name.strip_suffix("_total").unwrap_or(m.name);
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == Kind::Counter,
                "{}: counters and only counters end in _total",
                m.name
            );
            let unit = match m.unit {
                Unit::Seconds => Some("_seconds"),
                Unit::Bytes => Some("_bytes"),
                Unit::Count => None,
            };
            match unit {
                Some(suffix) => assert!(base.ends_with(suffix), "{}: unit {suffix}", m.name),
                None => assert!(
                    !base.ends_with("_seconds") && !base.ends_with("_bytes"),
                    "{}: a count with a unit in its name",
                    m.name
                ),
            }
            assert!(m.help.ends_with('.'), "{}: help is a sentence", m.name);
        }
    }

    #[test]
    fn header_names_the_family_and_its_type() {
        let mut s = String::new();
        FUSE_SECONDS.header(&mut s);
        assert_eq!(
            s,
            "# HELP ossfs_fuse_request_seconds FUSE request latency, from arrival to reply.\n\
             # TYPE ossfs_fuse_request_seconds histogram\n"
        );
    }
}
