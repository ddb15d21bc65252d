//! Request and response bodies: reading a request body into one buffer,
//! checking its length, hashing it once and checking `Content-MD5`; and
//! [`ChunkStream`], the GET body.
//!
//! GET bodies are streamed as zero-copy slices of the stored segments in
//! chunks of at most [`GET_CHUNK`] bytes, with an exact length so hyper sends
//! `Content-Length`. A request body that arrived in one chunk is kept
//! without a copy, and one of [`HASH_OFF_RUNTIME`] bytes or more is hashed
//! on a blocking thread. s3s checks `x-amz-content-sha256` inside the body
//! stream; its failure is reported here as S3's `BadDigest`.
//!
//! Imports: `crate::serve::memstore::HashedBody`; `s3s`, `bytes`, `futures`,
//! `base64`, `tokio`. Nothing else of the crate: `serve` is an island whose
//! only import from the rest of the crate is `crate::store::Credentials`, in
//! `server.rs`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Result, StdError, s3_error};

use crate::serve::memstore::HashedBody;

/// Largest chunk a GET body is cut into.
pub const GET_CHUNK: usize = 1 << 20;

/// Read a request body into one buffer and check its length.
async fn collect_body(body: Option<StreamingBlob>, content_length: Option<i64>) -> S3Result<Bytes> {
    let mut chunks: Vec<Bytes> = Vec::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(body_error)?;
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
        }
    }
    // A body that arrived in one chunk is kept without a copy.
    let out = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    };
    if let Some(n) = content_length
        && n >= 0
        && out.len() as u64 != n as u64
    {
        return Err(s3_error!(
            IncompleteBody,
            "the body has {} bytes but Content-Length says {n}",
            out.len()
        ));
    }
    Ok(out)
}

/// Bodies at least this large are hashed on a blocking thread.
const HASH_OFF_RUNTIME: usize = 256 * 1024;

/// Hash a body once (for the ETag) and check the client's `Content-MD5`.
async fn hash_body(body: Bytes, content_md5: Option<&str>) -> S3Result<HashedBody> {
    let want = match content_md5 {
        None => None,
        Some(md5) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(md5.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "Content-MD5 is not the base64 of 16 bytes")
                })?,
        ),
    };
    let hashed = if body.len() >= HASH_OFF_RUNTIME {
        tokio::task::spawn_blocking(move || HashedBody::new(body))
            .await
            .map_err(S3Error::internal_error)?
    } else {
        HashedBody::new(body)
    };
    if let Some(want) = want
        && want[..] != hashed.md5()[..]
    {
        return Err(s3_error!(
            BadDigest,
            "the Content-MD5 you specified did not match what we received"
        ));
    }
    Ok(hashed)
}

/// Read, length-check, hash and `Content-MD5`-check a request body.
pub(super) async fn receive_body(
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    content_md5: Option<&str>,
) -> S3Result<HashedBody> {
    let bytes = collect_body(body, content_length).await?;
    hash_body(bytes, content_md5).await
}

fn body_error(e: StdError) -> S3Error {
    // s3s's payload-hash check reports through the body stream; its error
    // type is private, so it is recognised by its text.
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        s3_error!(
            BadDigest,
            "the body does not match the x-amz-content-sha256 the request was signed with"
        )
    } else {
        S3Error::with_source(S3ErrorCode::IncompleteBody, e)
    }
}

/// Zero-copy chunks of a GET body with an exact remaining length.
pub(super) struct ChunkStream {
    segments: VecDeque<Bytes>,
    pub(super) remaining: usize,
}

impl ChunkStream {
    pub(super) fn new(segments: Vec<Bytes>) -> Self {
        let remaining = segments.iter().map(Bytes::len).sum();
        Self {
            segments: segments.into(),
            remaining,
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(mut seg) = self.segments.pop_front() else {
            return Poll::Ready(None);
        };
        if seg.len() > GET_CHUNK {
            let rest = seg.split_off(GET_CHUNK);
            self.segments.push_front(rest);
        }
        self.remaining -= seg.len();
        Poll::Ready(Some(Ok(seg)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining.div_ceil(GET_CHUNK);
        (n.max(self.segments.len()), Some(n + self.segments.len()))
    }
}

impl ByteStream for ChunkStream {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::memstore::md5_of;

    #[tokio::test]
    async fn chunk_stream_slices_without_copy_and_counts_exactly() {
        let big = Bytes::from(vec![7u8; GET_CHUNK * 2 + 10]);
        let small = Bytes::from_static(b"tail");
        let mut s = ChunkStream::new(vec![big.clone(), small.clone()]);
        assert_eq!(s.remaining_length().exact(), Some(big.len() + 4));
        let mut sizes = Vec::new();
        let mut total = Vec::new();
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            sizes.push(c.len());
            total.extend_from_slice(&c);
        }
        assert_eq!(sizes, vec![GET_CHUNK, GET_CHUNK, 10, 4]);
        assert_eq!(total.len(), big.len() + 4);
        assert_eq!(&total[total.len() - 4..], b"tail");
        assert_eq!(s.remaining_length().exact(), Some(0));
    }

    #[tokio::test]
    async fn body_md5_and_length_are_checked() {
        let blob = |b: &'static [u8]| {
            Some(StreamingBlob::wrap(futures::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from_static(&b[..2])),
                Ok(Bytes::from_static(&b[2..])),
            ])))
        };
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(b"hello"));
        let got = receive_body(blob(b"hello"), Some(5), Some(&md5))
            .await
            .unwrap();
        assert_eq!(got.md5(), md5_of(b"hello"));
        assert_eq!(got.len(), 5);
        let e = receive_body(blob(b"hellx"), Some(5), Some(&md5))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::BadDigest);
        let e = receive_body(blob(b"hello"), Some(5), Some("bm9wZQ=="))
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidDigest);
        let e = receive_body(blob(b"hello"), Some(6), None)
            .await
            .unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::IncompleteBody);
        assert!(receive_body(None, None, None).await.unwrap().is_empty());
        // Large bodies are hashed on a blocking thread, with the same result.
        let big = Bytes::from(vec![3u8; HASH_OFF_RUNTIME + 1]);
        let h = hash_body(big.clone(), None).await.unwrap();
        assert_eq!(h.md5(), md5_of(&big));
    }
}
