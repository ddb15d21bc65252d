//! A Prometheus histogram with fixed buckets, made of atomics.
//!
//! Observing costs two relaxed adds and a scan of at most a few dozen
//! bounds: no lock, no allocation, so it sits on the hot path of every
//! FUSE request and every store request. Buckets are stored per bucket
//! (not cumulative) and summed when rendered; the sum is kept in
//! nanoseconds, so a sub-microsecond answer from a cache still counts.
//!
//! Imports: nothing of the crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The last bound of every histogram.
const INF: f64 = f64::INFINITY;

/// The bucket bounds of store requests, in seconds; the last is `+Inf`.
pub const STORE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, INF,
];

/// The bucket bounds of FUSE requests, in seconds: a cached answer takes
/// microseconds, one that waits for the store milliseconds to seconds.
pub const FUSE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, INF,
];

/// Latencies counted into `N` buckets, the last of them `+Inf`.
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    counts: [AtomicU64; N],
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram over `bounds` (ascending, ending with
    /// `f64::INFINITY`).
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Count one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let b = self
            .bounds
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(N - 1);
        self.counts[b].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Write the `_bucket`, `_sum` and `_count` series of `name` with the
    /// labels `labels` (`op="get"`: written inside the braces, before
    /// `le`).
    pub fn render(&self, s: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            if le.is_finite() {
                let _ = writeln!(s, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            } else {
                let _ = writeln!(s, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(s, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(s, "{name}_count{{{labels}}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, f64::INFINITY];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_micros(1000)); // on the bound: le is inclusive
        h.observe(Duration::from_micros(5000));
        h.observe(Duration::from_secs(60));
        h.observe(Duration::ZERO);
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![2, 1, 1]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_nanos.load(Ordering::Relaxed), 60_006_000_000);
    }

    #[test]
    fn renders_cumulative_buckets_sum_and_count() {
        static BOUNDS: [f64; 3] = [0.0005, 1.0, f64::INFINITY];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(250));
        h.observe(Duration::from_millis(250));
        h.observe(Duration::from_secs(3));
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "op=\"read\"");
        assert_eq!(
            s,
            "x_seconds_bucket{op=\"read\",le=\"0.0005\"} 1\n\
             x_seconds_bucket{op=\"read\",le=\"1\"} 3\n\
             x_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n\
             x_seconds_sum{op=\"read\"} 3.5001\n\
             x_seconds_count{op=\"read\"} 4\n"
        );
    }

    #[test]
    fn the_bucket_tables_ascend_and_end_with_infinity() {
        for bounds in [&STORE_BUCKETS[..], &FUSE_BUCKETS[..]] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
            assert_eq!(bounds.last().copied(), Some(f64::INFINITY));
        }
    }
}
