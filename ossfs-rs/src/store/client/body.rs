//! Reading reply bodies: the resumable body stream of a GET, and the capped
//! read of an error document.
//!
//! GET bodies stream as they arrive. If a body breaks off mid-way, the
//! stream resumes with a ranged GET from the first missing byte (pinned to
//! the ETag with `If-Match`, so the bytes cannot come from a newer version);
//! once retries run out the stream ends with an error. A short body is never
//! handed out as if it were complete.
//!
//! The stream does not know the client: it is given a [`Reopen`], the
//! client's ranged GET for one key and ETag, so this file needs nothing of
//! the client's own module. Error documents are a few hundred bytes; a
//! reply that claims to be one is read up to [`MAX_ERROR_BODY`] and no
//! further, so a misbehaving server cannot make us buffer a large body.
//!
//! Imports: `store::error`, `store::retry`, `store::transport`, `store::types`.

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tracing::warn;

use crate::store::error::{StoreError, StoreResult};
use crate::store::retry::RetryConfig;
use crate::store::transport::{BodyStream, Response};
use crate::store::types::ByteRange;

/// Largest error document we read (they are a few hundred bytes).
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

/// Read at most `limit` bytes of a body (for error documents).
pub(super) async fn read_limited(response: Response, limit: usize) -> Option<Bytes> {
    let mut stream = response.into_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    Some(Bytes::from(out))
}

/// Opens the rest of a body: a ranged GET of the given range of the same
/// key, pinned to the ETag of the first reply.
pub(super) type Reopen =
    Box<dyn Fn(ByteRange) -> BoxFuture<'static, StoreResult<Response>> + Send + Sync>;

/// The body of `first`, which serves `[start, end)` of `key`, as a stream
/// that resumes through `reopen` when it breaks off, at most `retry`'s
/// attempts in all.
pub(super) fn resumable(
    first: Response,
    key: String,
    start: u64,
    end: u64,
    retry: RetryConfig,
    reopen: Reopen,
) -> BoxStream<'static, StoreResult<Bytes>> {
    let state = BodyState {
        key,
        offset: start,
        end,
        retry,
        reopen,
        current: Some(first.into_stream()),
        failures: 0,
        done: false,
    };
    futures::stream::unfold(state, BodyState::next_chunk).boxed()
}

/// State of a resumable GET body stream.
struct BodyState {
    key: String,
    /// Next byte offset to deliver.
    offset: u64,
    /// End of the requested range (exclusive).
    end: u64,
    retry: RetryConfig,
    reopen: Reopen,
    current: Option<BodyStream>,
    failures: u32,
    done: bool,
}

impl BodyState {
    async fn next_chunk(mut self) -> Option<(StoreResult<Bytes>, BodyState)> {
        loop {
            if self.done {
                return None;
            }
            if self.offset >= self.end {
                self.done = true;
                return None;
            }
            if self.current.is_none() {
                let range = ByteRange::new(self.offset, self.end);
                match (self.reopen)(range).await {
                    Ok(reply) => self.current = Some(reply.into_stream()),
                    Err(e) => {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                }
            }
            let Some(stream) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let room = self.end - self.offset;
                    let chunk = if chunk.len() as u64 > room {
                        chunk.slice(..room as usize)
                    } else {
                        chunk
                    };
                    self.offset += chunk.len() as u64;
                    return Some((Ok(chunk), self));
                }
                end_or_error => {
                    // The body ended early (None before `end`) or broke.
                    self.current = None;
                    self.failures += 1;
                    let why = match end_or_error {
                        Some(Err(e)) => e.to_string(),
                        _ => format!("body ended at byte {} of {}", self.offset, self.end),
                    };
                    if !self.retry.may_retry(self.failures) {
                        self.done = true;
                        return Some((
                            Err(StoreError::Connection(format!(
                                "GET {:?} truncated: {why}",
                                self.key
                            ))),
                            self,
                        ));
                    }
                    warn!(key = %self.key, offset = self.offset, error = %why, "GET body broke off, resuming");
                    // A broken body carries no `Retry-After`: plain backoff.
                    let delay = self.retry.jittered_delay(self.failures, None);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
