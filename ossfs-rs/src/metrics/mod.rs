//! Prometheus metrics (`-o metrics=127.0.0.1:PORT`), hand-written.
//!
//! The daemon counts a small fixed set of things, so a process-wide table
//! of atomics ([`METRICS`]) is enough and costs one relaxed add per event:
//! store requests by operation and outcome, their latency as a histogram,
//! bytes read and written, cache hits and misses (block cache, stat cache),
//! and uploads in flight. Names are constants here and nowhere else.
//!
//! [`MeteredStore`] wraps any [`ObjectStore`] and records every request, so
//! the REST client stays free of metrics code. [`serve`] answers any HTTP
//! request on its socket with the text exposition format (version 0.0.4);
//! it is meant for a loopback address and never exposes anything but these
//! numbers (no keys, no paths).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use crate::store::{
    ByteRange, CompletedPart, CopyOptions, DeleteFailure, GetObject, ListPage, ListRequest,
    ObjectMeta, ObjectStore, PartInfo, Provider, PutOptions, PutResult, StoreResult,
};

/// Metric names.
pub const STORE_REQUESTS: &str = "ossfs_store_requests_total";
pub const STORE_SECONDS: &str = "ossfs_store_request_duration_seconds";
pub const STORE_BYTES: &str = "ossfs_store_bytes_total";
pub const CACHE_HITS: &str = "ossfs_cache_hits_total";
pub const CACHE_MISSES: &str = "ossfs_cache_misses_total";
pub const UPLOADS_IN_FLIGHT: &str = "ossfs_uploads_in_flight";
pub const CACHE_BYTES: &str = "ossfs_block_cache_bytes";
pub const DISK_CACHE_BYTES: &str = "ossfs_disk_cache_bytes";

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

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide counters.
pub struct Metrics {
    requests: [[AtomicU64; 2]; 8],
    buckets: [[AtomicU64; BUCKETS.len() + 1]; 8],
    seconds_micros: [AtomicU64; 8],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    hits: [AtomicU64; 3],
    misses: [AtomicU64; 3],
    uploads: AtomicI64,
    cache_bytes: AtomicU64,
    disk_cache_bytes: AtomicU64,
}

/// The counters of this process.
pub static METRICS: Metrics = Metrics {
    requests: [const { [const { AtomicU64::new(0) }; 2] }; 8],
    buckets: [const { [const { AtomicU64::new(0) }; BUCKETS.len() + 1] }; 8],
    seconds_micros: [const { AtomicU64::new(0) }; 8],
    bytes_read: AtomicU64::new(0),
    bytes_written: AtomicU64::new(0),
    hits: [const { AtomicU64::new(0) }; 3],
    misses: [const { AtomicU64::new(0) }; 3],
    uploads: AtomicI64::new(0),
    cache_bytes: AtomicU64::new(0),
    disk_cache_bytes: AtomicU64::new(0),
};

fn op_index(op: Op) -> usize {
    OPS.iter()
        .position(|(o, _)| *o == op)
        .unwrap_or(OPS.len() - 1)
}

fn cache_index(c: Cache) -> usize {
    CACHES.iter().position(|(x, _)| *x == c).unwrap_or(0)
}

impl Metrics {
    /// Record one finished store request.
    pub fn request(&self, op: Op, ok: bool, started: Instant) {
        let i = op_index(op);
        self.requests[i][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        self.buckets[i][b].fetch_add(1, Ordering::Relaxed);
        self.seconds_micros[i].fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
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
        let _ = writeln!(
            s,
            "# HELP {STORE_REQUESTS} Store requests by operation and outcome."
        );
        let _ = writeln!(s, "# TYPE {STORE_REQUESTS} counter");
        for (i, (_, op)) in OPS.iter().enumerate() {
            for (j, outcome) in ["ok", "error"].iter().enumerate() {
                let n = self.requests[i][j].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "{STORE_REQUESTS}{{op=\"{op}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(s, "# HELP {STORE_SECONDS} Store request latency.");
        let _ = writeln!(s, "# TYPE {STORE_SECONDS} histogram");
        for (i, (_, op)) in OPS.iter().enumerate() {
            let mut cumulative = 0;
            for (b, le) in BUCKETS.iter().enumerate() {
                cumulative += self.buckets[i][b].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "{STORE_SECONDS}_bucket{{op=\"{op}\",le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += self.buckets[i][BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                s,
                "{STORE_SECONDS}_bucket{{op=\"{op}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = self.seconds_micros[i].load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(s, "{STORE_SECONDS}_sum{{op=\"{op}\"}} {sum}");
            let _ = writeln!(s, "{STORE_SECONDS}_count{{op=\"{op}\"}} {cumulative}");
        }
        let _ = writeln!(s, "# HELP {STORE_BYTES} Bytes moved to and from the store.");
        let _ = writeln!(s, "# TYPE {STORE_BYTES} counter");
        let _ = writeln!(
            s,
            "{STORE_BYTES}{{direction=\"read\"}} {}",
            self.bytes_read.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "{STORE_BYTES}{{direction=\"write\"}} {}",
            self.bytes_written.load(Ordering::Relaxed)
        );
        for (name, table, help) in [
            (CACHE_HITS, &self.hits, "Cache hits."),
            (CACHE_MISSES, &self.misses, "Cache misses."),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            for (i, (_, cache)) in CACHES.iter().enumerate() {
                let n = table[i].load(Ordering::Relaxed);
                let _ = writeln!(s, "{name}{{cache=\"{cache}\"}} {n}");
            }
        }
        let _ = writeln!(s, "# HELP {UPLOADS_IN_FLIGHT} Uploads running now.");
        let _ = writeln!(s, "# TYPE {UPLOADS_IN_FLIGHT} gauge");
        let _ = writeln!(
            s,
            "{UPLOADS_IN_FLIGHT} {}",
            self.uploads.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP {CACHE_BYTES} Bytes held by the block cache.");
        let _ = writeln!(s, "# TYPE {CACHE_BYTES} gauge");
        let _ = writeln!(
            s,
            "{CACHE_BYTES} {}",
            self.cache_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP {DISK_CACHE_BYTES} Bytes held by the disk cache (use_cache)."
        );
        let _ = writeln!(s, "# TYPE {DISK_CACHE_BYTES} gauge");
        let _ = writeln!(
            s,
            "{DISK_CACHE_BYTES} {}",
            self.disk_cache_bytes.load(Ordering::Relaxed)
        );
        s
    }
}

/// Counts one upload in flight until dropped.
pub struct UploadGuard(&'static Metrics);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.uploads.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serve the exposition on `addr` until the runtime ends. Binding errors
/// are returned; per-connection errors are logged at debug level.
pub async fn serve(addr: SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let (mut conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                // Read the request head (whatever it asks, the answer is the same).
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = METRICS.render();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = conn.write_all(reply.as_bytes()).await {
                    debug!(error = %e, "metrics endpoint: write failed");
                }
            });
        }
    }))
}

/// An [`ObjectStore`] that records every request in [`METRICS`].
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
}

impl MeteredStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

fn done<T>(op: Op, started: Instant, r: StoreResult<T>) -> StoreResult<T> {
    METRICS.request(op, r.is_ok(), started);
    r
}

#[async_trait]
impl ObjectStore for MeteredStore {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let t = Instant::now();
        done(Op::Head, t, self.inner.head(key).await)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<GetObject> {
        let t = Instant::now();
        let mut got = done(Op::Get, t, self.inner.get(key, range).await)?;
        got.body = got
            .body
            .inspect(|chunk| {
                if let Ok(c) = chunk {
                    METRICS.read_bytes(c.len() as u64);
                }
            })
            .boxed();
        Ok(got)
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> StoreResult<PutResult> {
        let t = Instant::now();
        let n = body.len() as u64;
        let r = done(Op::Put, t, self.inner.put(key, body, opts).await);
        if r.is_ok() {
            METRICS.written_bytes(n);
        }
        r
    }

    async fn list_page(&self, req: &ListRequest, token: Option<&str>) -> StoreResult<ListPage> {
        let t = Instant::now();
        done(Op::List, t, self.inner.list_page(req, token).await)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let t = Instant::now();
        done(Op::Delete, t, self.inner.delete(key).await)
    }

    async fn delete_multiple(&self, keys: &[String]) -> StoreResult<Vec<DeleteFailure>> {
        let t = Instant::now();
        done(Op::Delete, t, self.inner.delete_multiple(keys).await)
    }

    async fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> StoreResult<PutResult> {
        let t = Instant::now();
        done(Op::Copy, t, self.inner.copy(src, dst, opts).await)
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> StoreResult<String> {
        let t = Instant::now();
        done(
            Op::Multipart,
            t,
            self.inner.create_multipart(key, opts).await,
        )
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> StoreResult<String> {
        let t = Instant::now();
        let n = body.len() as u64;
        let r = done(
            Op::Multipart,
            t,
            self.inner
                .upload_part(key, upload_id, part_number, body)
                .await,
        );
        if r.is_ok() {
            METRICS.written_bytes(n);
        }
        r
    }

    async fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> StoreResult<String> {
        let t = Instant::now();
        let r = self
            .inner
            .upload_part_copy(src, range, key, upload_id, part_number)
            .await;
        done(Op::Copy, t, r)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<PutResult> {
        let t = Instant::now();
        let r = self.inner.complete_multipart(key, upload_id, parts).await;
        done(Op::Multipart, t, r)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let t = Instant::now();
        done(
            Op::Multipart,
            t,
            self.inner.abort_multipart(key, upload_id).await,
        )
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let t = Instant::now();
        done(
            Op::Multipart,
            t,
            self.inner.list_parts(key, upload_id).await,
        )
    }

    async fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64> {
        let t = Instant::now();
        let n = body.len() as u64;
        let r = done(
            Op::Put,
            t,
            self.inner.append(key, position, body, opts).await,
        );
        if r.is_ok() {
            METRICS.written_bytes(n);
        }
        r
    }

    async fn put_symlink(&self, key: &str, target: &str, opts: &PutOptions) -> StoreResult<()> {
        let t = Instant::now();
        done(Op::Put, t, self.inner.put_symlink(key, target, opts).await)
    }

    async fn get_symlink(&self, key: &str) -> StoreResult<String> {
        let t = Instant::now();
        done(Op::Other, t, self.inner.get_symlink(key).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_cumulative_buckets() {
        let m = Metrics {
            requests: [const { [const { AtomicU64::new(0) }; 2] }; 8],
            buckets: [const { [const { AtomicU64::new(0) }; BUCKETS.len() + 1] }; 8],
            seconds_micros: [const { AtomicU64::new(0) }; 8],
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            hits: [const { AtomicU64::new(0) }; 3],
            misses: [const { AtomicU64::new(0) }; 3],
            uploads: AtomicI64::new(0),
            cache_bytes: AtomicU64::new(0),
            disk_cache_bytes: AtomicU64::new(0),
        };
        let t = Instant::now();
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

    #[tokio::test]
    async fn serves_the_exposition_over_http() -> std::io::Result<()> {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = probe.local_addr()?;
        drop(probe);
        let task = serve(addr).await?;
        let mut c = tokio::net::TcpStream::connect(addr).await?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut reply = String::new();
        c.read_to_string(&mut reply).await?;
        assert!(reply.starts_with("HTTP/1.1 200 OK"));
        assert!(reply.contains(STORE_REQUESTS));
        task.abort();
        Ok(())
    }
}
