//! Prefetcher tests against the embedded S3 endpoint, through a store
//! wrapper that records every ranged GET.

use std::sync::Mutex;

use rand::{Rng, SeedableRng};

use super::*;
use crate::store::layer::{Call, HookedStore, StoreHooks, StoreOp};
use crate::store::{PutOptions, StoreResult};
use crate::test_support::{TestServer, random_prefix, test_server};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Records the range of every GET; the store forwards everything.
struct Recording {
    gets: Mutex<Vec<ByteRange>>,
}

impl Recording {
    fn gets(&self) -> Vec<ByteRange> {
        self.gets.lock().map(|g| g.clone()).unwrap_or_default()
    }
    fn clear(&self) {
        if let Ok(mut g) = self.gets.lock() {
            g.clear();
        }
    }
}

impl StoreHooks for Recording {
    fn before(&self, call: &Call<'_>) -> StoreResult<()> {
        if let (StoreOp::Get, Some(r), Ok(mut g)) = (call.op, call.range, self.gets.lock()) {
            g.push(r);
        }
        Ok(())
    }
}

struct Setup {
    rec: Arc<Recording>,
    /// The server's store, recorded by `rec`.
    store: Arc<dyn ObjectStore>,
    key: String,
    etag: String,
    data: Bytes,
    _server: TestServer,
}

async fn setup(size: usize) -> Setup {
    let server = test_server().await;
    let key = format!("{}obj", random_prefix("prefetch"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(size as u64);
    let mut buf = vec![0u8; size];
    rng.fill(&mut buf[..]);
    let data = Bytes::from(buf);
    let put = server
        .store
        .put(&key, data.clone(), &PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    let rec = Arc::new(Recording {
        gets: Mutex::new(Vec::new()),
    });
    Setup {
        store: Arc::new(HookedStore::new(server.store.clone(), rec.clone())),
        rec,
        key,
        etag: put.etag,
        data,
        _server: server,
    }
}

fn config() -> PrefetchConfig {
    PrefetchConfig {
        initial_window: 256 * KIB,
        max_window: 4 * MIB,
        part_size: MIB,
    }
}

fn reader(
    s: &Setup,
    cache: &Arc<BlockCache>,
    budget: &MemoryBudget,
    cfg: PrefetchConfig,
) -> Reader {
    Reader::new(
        s.store.clone(),
        cache.clone(),
        budget.clone(),
        cfg,
        &s.key,
        &s.etag,
        s.data.len() as u64,
    )
}

async fn read(r: &Reader, offset: u64, len: u64) -> Bytes {
    r.read(offset, len)
        .await
        .unwrap_or_else(|e| panic!("read {offset}+{len}: {e}"))
}

fn expect(s: &Setup, offset: u64, len: u64) -> Bytes {
    let end = (offset + len).min(s.data.len() as u64) as usize;
    s.data.slice((offset as usize).min(end)..end)
}

#[tokio::test]
async fn sequential_reads_grow_the_window_and_use_few_large_gets() {
    let s = setup((12 * MIB) as usize).await;
    let budget = MemoryBudget::new(256 * MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 64 * MIB, budget.clone()));
    let r = reader(&s, &cache, &budget, config());
    let mut windows = Vec::new();
    let mut offset = 0;
    while offset < s.data.len() as u64 {
        let got = read(&r, offset, 128 * KIB).await;
        assert_eq!(got, expect(&s, offset, 128 * KIB), "at {offset}");
        windows.push(r.window());
        offset += 128 * KIB;
    }
    // The window starts at the initial size, grows, and stops at the maximum.
    assert_eq!(windows[0], 256 * KIB);
    assert!(windows.windows(2).all(|w| w[1] >= w[0]), "{windows:?}");
    assert_eq!(windows.last().copied(), Some(4 * MIB));
    let gets = s.rec.gets();
    // The first GET is just what the first read needs (first byte fast).
    assert_eq!(gets[0], ByteRange::new(0, 128 * KIB));
    // 96 reads of 128 KiB, far fewer GETs, none over the part size, and
    // every byte fetched once.
    assert!(gets.len() < 30, "{} GETs: {gets:?}", gets.len());
    assert!(gets.iter().all(|g| g.end.unwrap_or(0) - g.start <= MIB));
    let fetched: u64 = gets.iter().map(|g| g.end.unwrap_or(0) - g.start).sum();
    assert_eq!(fetched, s.data.len() as u64);
    // Reading it again is served by the block cache: no GET at all.
    s.rec.clear();
    let again = reader(&s, &cache, &budget, config());
    assert_eq!(read(&again, 0, 12 * MIB).await, s.data);
    assert!(s.rec.gets().is_empty(), "{:?}", s.rec.gets());
}

#[tokio::test]
async fn a_seek_cancels_the_stream_and_reads_exact_blocks() {
    let s = setup((16 * MIB) as usize).await;
    let budget = MemoryBudget::new(256 * MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 0, budget.clone()));
    let r = reader(&s, &cache, &budget, config());
    for i in 0..8 {
        read(&r, i * 128 * KIB, 128 * KIB).await;
    }
    assert!(r.parts_held() > 0);
    let grown = r.window();
    assert!(grown > 256 * KIB);
    s.rec.clear();
    // Far away: not sequential.
    let far = 12 * MIB + 5000;
    assert_eq!(read(&r, far, 4096).await, expect(&s, far, 4096));
    assert_eq!(r.parts_held(), 0, "the stream's parts were dropped");
    assert_eq!(r.window(), 256 * KIB, "the window starts over");
    // One GET of the one block holding those 4 KiB.
    assert_eq!(
        s.rec.gets(),
        vec![ByteRange::new(12 * MIB, 12 * MIB + 64 * KIB)]
    );
    assert!(budget.used() == 0, "cancelled parts gave their memory back");
}

#[tokio::test]
async fn warm_random_reads_come_from_the_block_cache() {
    let s = setup((4 * MIB) as usize).await;
    let budget = MemoryBudget::new(256 * MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 64 * MIB, budget.clone()));
    let r = reader(&s, &cache, &budget, config());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let offsets: Vec<u64> = (0..200)
        .map(|_| rng.random_range(0..4 * MIB - 4096))
        .collect();
    for &o in &offsets {
        assert_eq!(read(&r, o, 4096).await, expect(&s, o, 4096));
    }
    s.rec.clear();
    for &o in &offsets {
        assert_eq!(read(&r, o, 4096).await, expect(&s, o, 4096));
    }
    assert!(
        s.rec.gets().is_empty(),
        "warm reads went out: {:?}",
        s.rec.gets()
    );
}

#[tokio::test]
async fn a_small_budget_limits_read_ahead_but_not_reads() {
    let s = setup((8 * MIB) as usize).await;
    let budget = MemoryBudget::new(MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 0, budget.clone()));
    let r = reader(&s, &cache, &budget, config());
    let mut offset = 0;
    let mut peak = 0;
    while offset < s.data.len() as u64 {
        assert_eq!(
            read(&r, offset, 256 * KIB).await,
            expect(&s, offset, 256 * KIB)
        );
        peak = peak.max(budget.used());
        offset += 256 * KIB;
    }
    // Read-ahead stays within the budget, plus the part a reader waits for.
    assert!(peak <= 2 * MIB, "peak {peak}");
    drop(r);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn random_mixes_of_reads_return_the_right_bytes() {
    let s = setup((3 * MIB + 777) as usize).await;
    let budget = MemoryBudget::new(8 * MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 2 * MIB, budget.clone()));
    let r = reader(&s, &cache, &budget, config());
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let size = s.data.len() as u64;
    let mut offset = 0u64;
    for _ in 0..300 {
        // Mostly forward, sometimes a jump, sometimes past the end.
        offset = match rng.random_range(0..10) {
            0 => rng.random_range(0..size + 1000),
            1 => offset.saturating_sub(rng.random_range(0..200_000)),
            _ => offset,
        };
        let len = rng.random_range(1..300_000);
        assert_eq!(
            read(&r, offset, len).await,
            expect(&s, offset, len),
            "{offset}+{len}"
        );
        offset += len;
        if offset > size {
            offset = 0;
        }
    }
}

#[tokio::test]
async fn concurrent_readers_of_one_handle_agree() {
    let s = setup((6 * MIB) as usize).await;
    let budget = MemoryBudget::new(64 * MIB);
    let cache = Arc::new(BlockCache::new(64 * KIB, 16 * MIB, budget.clone()));
    let r = Arc::new(reader(&s, &cache, &budget, config()));
    // Like kernel readahead: several reads of one handle in flight at once.
    let mut tasks = Vec::new();
    for chunk in 0..48u64 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let o = chunk * 128 * KIB;
            (o, r.read(o, 128 * KIB).await)
        }));
    }
    for t in tasks {
        let (o, got) = t.await.unwrap_or_else(|e| panic!("task: {e}"));
        let got = got.unwrap_or_else(|e| panic!("read {o}: {e}"));
        assert_eq!(got, expect(&s, o, 128 * KIB), "at {o}");
    }
}
