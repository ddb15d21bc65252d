//! The adaptive sequential prefetcher: one [`Reader`] per open handle.
//!
//! The kernel reads a file in requests of at most 1 MiB (often 128 KiB),
//! and a ranged GET per request would cost a round trip each. Instead, a
//! reader that keeps reading forward gets the bytes ahead of it requested
//! before it asks, the way Mountpoint's prefetcher works (its design was
//! read, not its code):
//!
//! - **Window.** A reader keeps `window` bytes beyond its current read
//!   requested. The window starts at `initial_window` and doubles each time
//!   the reader catches up with it, up to `max_window`, so a small file or a
//!   short read costs one small GET, and a long stream soon has many bytes
//!   in flight.
//! - **Parts.** What the window covers is fetched as parts of at most
//!   `part_size` bytes, each its own ranged GET on its own task, so several
//!   run in parallel (a single GET stream is slower than parallel ones).
//!   Part boundaries are multiples of the cache's block size.
//! - **Backpressure.** Each read-ahead part reserves its size from the
//!   global [`MemoryBudget`] without waiting; when the budget is spent the
//!   reader simply reads ahead less. The part a reader is waiting for is
//!   reserved even over the budget (never refused), and consumed parts are
//!   released as the reader moves past them.
//! - **Random access.** A read that is not near the current stream cancels
//!   every part in flight (their tasks are aborted), resets the window, and
//!   is served by exact block reads through the [`BlockCache`] (one GET of
//!   the missing blocks that cover the request, cached for the next time).
//!   A later read that continues from there starts a new stream.
//!
//! Completed parts are also cut into blocks for the shared block cache, so
//! a re-read (another handle, or the same one after a seek back) does not
//! go to the network. Blocks are keyed by the ETag the handle opened, and a
//! part whose GET answers with another ETag is not cached.
//!
//! Concurrency: the kernel may send several reads of one handle at once
//! (asynchronous readahead), slightly out of order; the state is one `std`
//! mutex held only to plan, never across an await, and a read a little
//! behind or ahead of the stream still counts as sequential.
//!
//! Imports (besides its own submodules): `cache`, `memory`, `store` of the
//! crate, besides std and external crates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::task::AbortHandle;

use crate::cache::{BlockCache, BlockKey};
use crate::memory::{MemoryBudget, Reservation};
use crate::store::{ByteRange, ObjectStore, StoreError};

/// How far readers read ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Read-ahead of a new stream.
    pub initial_window: u64,
    /// Largest read-ahead of one stream (`-o prefetch_window=`).
    pub max_window: u64,
    /// Largest part fetched by one GET.
    pub part_size: u64,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            initial_window: 1024 * 1024,
            max_window: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
        }
    }
}

/// Why a read failed. Cloneable: one failed part answers every reader
/// waiting for it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PrefetchError {
    /// The GET failed.
    #[error("reading {key} {range}: {source}")]
    Store {
        key: String,
        range: ByteRange,
        #[source]
        source: Arc<StoreError>,
    },
    /// The prefetch task ended without a result (aborted or panicked).
    #[error("reading {key}: the fetch task ended early")]
    Aborted { key: String },
}

type PartFuture = Shared<BoxFuture<'static, Result<Bytes, PrefetchError>>>;

/// One GET in flight (or done) for `[start, end)`.
struct Part {
    start: u64,
    end: u64,
    data: PartFuture,
    /// The fetch task (none when the part came from the cache).
    abort: Option<AbortHandle>,
    _reservation: Reservation,
}

impl Drop for Part {
    fn drop(&mut self) {
        // Finished tasks ignore this; running ones stop and free their buffer.
        if let Some(task) = &self.abort {
            task.abort();
        }
    }
}

/// The stream state of a reader.
struct State {
    /// Parts of the current stream, in order, contiguous.
    parts: VecDeque<Part>,
    /// Where the next part starts (the end of what is requested).
    next_fetch: u64,
    window: u64,
    /// The end of the previous read.
    last_end: u64,
    /// The object version being read.
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
}

/// What a read will be served from.
enum Plan {
    /// Parts of the stream (futures to await), covering the whole request.
    Parts(Vec<(u64, PartFuture)>),
    /// Exact block reads (random access, or behind the stream).
    Blocks,
}

/// The read side of one open handle.
pub struct Reader {
    store: Arc<dyn ObjectStore>,
    cache: Arc<BlockCache>,
    budget: MemoryBudget,
    config: PrefetchConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Reader")
            .field("key", &st.key)
            .field("size", &st.size)
            .field("window", &st.window)
            .field("parts", &st.parts.len())
            .finish_non_exhaustive()
    }
}

fn align_down(x: u64, to: u64) -> u64 {
    x - x % to
}

impl Reader {
    /// A reader of version `etag` (`size` bytes) of `key`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        cache: Arc<BlockCache>,
        budget: MemoryBudget,
        config: PrefetchConfig,
        key: &str,
        etag: &str,
        size: u64,
    ) -> Self {
        let config = PrefetchConfig {
            initial_window: config.initial_window.max(cache.block_size()),
            max_window: config.max_window.max(config.initial_window),
            part_size: config.part_size.max(cache.block_size()),
        };
        Self {
            store,
            cache,
            budget,
            state: Mutex::new(State {
                parts: VecDeque::new(),
                next_fetch: 0,
                window: config.initial_window,
                last_end: 0,
                key: key.into(),
                etag: etag.into(),
                size,
            }),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this reader reads version `etag` of `key`.
    pub fn is_reading(&self, key: &str, etag: &str) -> bool {
        let st = self.lock();
        &*st.key == key && &*st.etag == etag
    }

    /// The key being read.
    pub fn key(&self) -> Arc<str> {
        self.lock().key.clone()
    }

    /// Read another version of the object from now on (it changed, or
    /// was renamed): everything in flight is dropped.
    pub fn reset(&self, key: &str, etag: &str, size: u64) {
        let mut st = self.lock();
        st.parts.clear();
        st.next_fetch = 0;
        st.window = self.config.initial_window;
        st.last_end = 0;
        st.key = key.into();
        st.etag = etag.into();
        st.size = size;
    }

    /// The current read-ahead window (for tests and logs).
    pub fn window(&self) -> u64 {
        self.lock().window
    }

    /// How many parts are in flight or held.
    pub fn parts_held(&self) -> usize {
        self.lock().parts.len()
    }

    /// Read up to `len` bytes at `offset` (short at the end of the object).
    pub async fn read(&self, offset: u64, len: u64) -> Result<Bytes, PrefetchError> {
        let (plan, key, etag, end) = {
            let mut st = self.lock();
            let end = offset.saturating_add(len).min(st.size);
            if offset >= end {
                return Ok(Bytes::new());
            }
            let plan = self.plan(&mut st, offset, end);
            (plan, st.key.clone(), st.etag.clone(), end)
        };
        match plan {
            Plan::Parts(parts) => {
                let mut pieces = Vec::with_capacity(parts.len());
                for (start, fut) in parts {
                    match fut.await {
                        Ok(data) => pieces.push((start, data)),
                        // A concurrent random read cancelled the stream:
                        // serve this one by itself.
                        Err(PrefetchError::Aborted { .. }) => {
                            return self.read_blocks(&key, &etag, offset, end).await;
                        }
                        Err(e) => {
                            // Forget the failed part so the next read retries.
                            self.lock().parts.retain(|p| p.start != start);
                            return Err(e);
                        }
                    }
                }
                Ok(assemble(&pieces, offset, end))
            }
            Plan::Blocks => self.read_blocks(&key, &etag, offset, end).await,
        }
    }

    /// Decide how to serve `[offset, end)` and schedule read-ahead.
    fn plan(&self, st: &mut State, offset: u64, end: u64) -> Plan {
        let block = self.cache.block_size();
        // A read near the stream (within one window either way) is sequential.
        let slack = st.window;
        let (lo, hi) = match st.parts.front() {
            Some(p) => (p.start, st.next_fetch),
            None => (st.last_end, st.last_end),
        };
        let sequential = offset.saturating_add(slack) >= lo && offset <= hi.saturating_add(slack);
        if !sequential {
            st.parts.clear();
            st.window = self.config.initial_window;
            st.last_end = end;
            return Plan::Blocks;
        }
        st.last_end = st.last_end.max(end);
        // Release parts the stream has moved past (a late read behind the
        // stream is served by blocks, usually from the cache).
        while st.parts.front().is_some_and(|p| p.end <= offset) {
            st.parts.pop_front();
        }
        if st.parts.is_empty() {
            st.next_fetch = align_down(offset, block);
        }
        if offset < st.parts.front().map_or(st.next_fetch, |p| p.start) {
            // Behind the stream (an out-of-order read): blocks, probably cached.
            return Plan::Blocks;
        }
        // Less than half a window requested ahead: request up to a whole
        // window, and let the window grow for next time.
        if st.next_fetch < st.size && st.next_fetch < end.saturating_add(st.window / 2) {
            let first = st.parts.is_empty();
            let target = end.saturating_add(st.window).min(st.size);
            self.schedule(st, target, end);
            if !first {
                st.window = (st.window * 2).min(self.config.max_window);
            }
        }
        Plan::Parts(
            st.parts
                .iter()
                .filter(|p| p.start < end && p.end > offset)
                .map(|p| (p.start, p.data.clone()))
                .collect(),
        )
    }

    /// Request parts up to `target`; those below `needed` are reserved
    /// whatever the budget says, the rest only while it has room. The
    /// first part of a stream covers just what the reader waits for, so the
    /// first byte comes as soon as possible.
    fn schedule(&self, st: &mut State, target: u64, needed: u64) {
        let block = self.cache.block_size();
        while st.next_fetch < target {
            let start = st.next_fetch;
            let len = if st.parts.is_empty() && start < needed {
                needed - start
            } else {
                self.config.part_size.min(st.window)
            };
            let end = ((start + len).div_ceil(block) * block).min(st.size);
            let bytes = end - start;
            if let Some(data) = self.cached(st, start, end) {
                let data: PartFuture = futures::future::ready(Ok(data)).boxed().shared();
                st.parts.push_back(Part {
                    start,
                    end,
                    data,
                    abort: None,
                    _reservation: self.budget.reserve_forced(bytes),
                });
                st.next_fetch = end;
                continue;
            }
            let reservation = if start < needed {
                self.budget.reserve_forced(bytes)
            } else {
                match self.budget.try_reserve(bytes) {
                    Some(r) => r,
                    None => break,
                }
            };
            let part = self.spawn_part(st, start, end, reservation);
            st.parts.push_back(part);
            st.next_fetch = end;
        }
    }

    fn spawn_part(&self, st: &State, start: u64, end: u64, reservation: Reservation) -> Part {
        let store = self.store.clone();
        let cache = self.cache.clone();
        let key = st.key.clone();
        let etag = st.etag.clone();
        let task = tokio::spawn(async move {
            if let Some(data) = from_disk(&cache, &key, &etag, start, end).await {
                return Ok(data);
            }
            let data = fetch(store.as_ref(), &key, &etag, start, end).await?;
            if data.1 {
                insert_blocks(&cache, &key, &etag, start, &data.0);
            }
            Ok(data.0)
        });
        let abort = task.abort_handle();
        let key = st.key.to_string();
        let data = async move {
            match task.await {
                Ok(r) => r,
                Err(_) => Err(PrefetchError::Aborted { key }),
            }
        }
        .boxed()
        .shared();
        Part {
            start,
            end,
            data,
            abort: Some(abort),
            _reservation: reservation,
        }
    }

    /// `[start, end)` from the block cache's memory, if every block is
    /// there (planning holds the state lock: no disk reads here; a part's
    /// own task looks on disk, see [`from_disk`]).
    fn cached(&self, st: &State, start: u64, end: u64) -> Option<Bytes> {
        if self.cache.is_disabled() {
            return None;
        }
        whole_range(&self.cache, &st.key, &st.etag, start, end, |bk| {
            self.cache.get_memory(bk)
        })
    }

    /// Serve `[offset, end)` from cached blocks, fetching the missing ones
    /// in one GET.
    async fn read_blocks(
        &self,
        key: &Arc<str>,
        etag: &Arc<str>,
        offset: u64,
        end: u64,
    ) -> Result<Bytes, PrefetchError> {
        let block = self.cache.block_size();
        let size = self.lock().size;
        let first = offset / block;
        let last = (end - 1) / block;
        let mut pieces: Vec<(u64, Bytes)> = Vec::new();
        let mut missing: Option<(u64, u64)> = None;
        for i in first..=last {
            let bk = BlockKey {
                key: key.clone(),
                etag: etag.clone(),
                index: i,
            };
            match self.cache.get(&bk) {
                Some(data) => pieces.push((i * block, data)),
                None => {
                    missing = Some(missing.map_or((i, i), |(a, _)| (a, i)));
                }
            }
        }
        if let Some((a, b)) = missing {
            let start = a * block;
            let stop = ((b + 1) * block).min(size);
            let _reservation = self.budget.reserve_forced(stop - start);
            let (data, cacheable) = fetch(self.store.as_ref(), key, etag, start, stop).await?;
            if cacheable {
                insert_blocks(&self.cache, key, etag, start, &data);
            }
            pieces.retain(|(s, _)| *s < start || *s >= stop);
            pieces.push((start, data));
            pieces.sort_by_key(|(s, _)| *s);
        }
        Ok(assemble(&pieces, offset, end))
    }
}

/// `[start, end)` of version `etag` of `key` from the disk cache, read on
/// the blocking pool (so the parts of a stream are read in parallel), if
/// every block of it is there.
async fn from_disk(
    cache: &Arc<BlockCache>,
    key: &Arc<str>,
    etag: &Arc<str>,
    start: u64,
    end: u64,
) -> Option<Bytes> {
    // Without a disk tier there is nothing to look for.
    cache.disk()?;
    let (cache, key, etag) = (cache.clone(), key.clone(), etag.clone());
    tokio::task::spawn_blocking(move || {
        whole_range(&cache, &key, &etag, start, end, |bk| cache.get_disk(bk))
    })
    .await
    .ok()
    .flatten()
}

/// `[start, end)` (from a block boundary) out of the blocks `get` returns,
/// if it returns every one of them.
fn whole_range(
    cache: &BlockCache,
    key: &Arc<str>,
    etag: &Arc<str>,
    start: u64,
    end: u64,
    get: impl Fn(&BlockKey) -> Option<Bytes>,
) -> Option<Bytes> {
    let block = cache.block_size();
    if !start.is_multiple_of(block) {
        return None;
    }
    let mut pieces = Vec::new();
    for index in start / block..end.div_ceil(block) {
        let bk = BlockKey {
            key: key.clone(),
            etag: etag.clone(),
            index,
        };
        pieces.push((index * block, get(&bk)?));
    }
    Some(assemble(&pieces, start, end))
}

/// GET `[start, end)` of `key`; the flag says whether it is the version
/// `etag` (only then may it be cached).
async fn fetch(
    store: &dyn ObjectStore,
    key: &str,
    etag: &str,
    start: u64,
    end: u64,
) -> Result<(Bytes, bool), PrefetchError> {
    let range = ByteRange::new(start, end);
    let err = |source: StoreError| PrefetchError::Store {
        key: key.to_string(),
        range,
        source: Arc::new(source),
    };
    match store.get(key, Some(range)).await {
        Ok(object) => {
            let same = object.meta.etag.is_empty() || object.meta.etag == etag;
            let mut data = object.collect().await.map_err(err)?;
            data.truncate((end - start) as usize);
            Ok((data, same))
        }
        Err(StoreError::InvalidRange { .. }) => Ok((Bytes::new(), false)),
        Err(e) => Err(err(e)),
    }
}

/// Cut `data` (starting at the block boundary `start`) into cache blocks.
fn insert_blocks(cache: &BlockCache, key: &Arc<str>, etag: &Arc<str>, start: u64, data: &Bytes) {
    let block = cache.block_size();
    if !start.is_multiple_of(block) {
        return;
    }
    let mut at = 0usize;
    while at < data.len() {
        let stop = (at + block as usize).min(data.len());
        cache.insert(
            BlockKey {
                key: key.clone(),
                etag: etag.clone(),
                index: (start + at as u64) / block,
            },
            data.slice(at..stop),
        );
        at = stop;
    }
}

/// The bytes `[offset, end)` out of sorted, contiguous `pieces` (each a
/// start offset and its bytes); zero-copy when one piece covers it all.
fn assemble(pieces: &[(u64, Bytes)], offset: u64, end: u64) -> Bytes {
    let slice_of = |start: u64, data: &Bytes| -> Bytes {
        let from = offset.saturating_sub(start).min(data.len() as u64) as usize;
        let to = (end.saturating_sub(start)).min(data.len() as u64) as usize;
        data.slice(from..to.max(from))
    };
    if let [(start, data)] = pieces {
        return slice_of(*start, data);
    }
    let mut out = BytesMut::with_capacity((end - offset) as usize);
    for (start, data) in pieces {
        if *start >= end || start + data.len() as u64 <= offset {
            continue;
        }
        out.extend_from_slice(&slice_of(*start, data));
    }
    out.freeze()
}

#[cfg(test)]
mod tests;
