//! Object bodies: [`ObjectData`] (an object's bytes as segments),
//! [`HashedBody`] (a request body with its MD5) and [`md5_of`].
//!
//! Bodies are [`Bytes`] segments and never copied after upload: completing
//! a multipart upload or copying a part concatenates or slices segments, and
//! a GET hands out slices of them. An MD5 is computed once per body, when
//! it is received, so the ETag and the `Content-MD5` check share it and the
//! caller can do the hashing off the async runtime, before any lock.
//!
//! Imports: `bytes`, `md5`, `hex` only. Nothing else of the crate: `serve` is
//! an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::ops::Range;

use bytes::Bytes;
use md5::{Digest, Md5};

/// The bytes of an object: segments in order, never copied after upload.
#[derive(Clone, Default)]
pub struct ObjectData {
    segments: Vec<Bytes>,
    len: u64,
}

impl std::fmt::Debug for ObjectData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectData")
            .field("segments", &self.segments.len())
            .field("len", &self.len)
            .finish()
    }
}

impl ObjectData {
    /// One contiguous body.
    pub fn from_bytes(body: Bytes) -> Self {
        Self::from_segments(vec![body])
    }

    /// Segments in order (empty ones are dropped).
    pub fn from_segments(segments: Vec<Bytes>) -> Self {
        let segments: Vec<Bytes> = segments.into_iter().filter(|s| !s.is_empty()).collect();
        let len = segments.iter().map(|s| s.len() as u64).sum();
        Self { segments, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments covering `range` (clamped to the object), sliced without copying.
    pub fn slice(&self, range: Range<u64>) -> Vec<Bytes> {
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        let mut offset = 0u64;
        for seg in &self.segments {
            let seg_len = seg.len() as u64;
            let seg_end = offset + seg_len;
            if seg_end > range.start && offset < end {
                // Both bounds lie within this segment, so they fit in usize.
                let from = range.start.saturating_sub(offset) as usize;
                let to = (end.min(seg_end) - offset) as usize;
                out.push(seg.slice(from..to));
            }
            if seg_end >= end {
                break;
            }
            offset = seg_end;
        }
        out
    }

    /// All segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The whole body as one buffer (copies when there is more than one segment).
    pub fn to_bytes(&self) -> Bytes {
        match self.segments.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = Vec::with_capacity(self.len as usize);
                for s in many {
                    out.extend_from_slice(s);
                }
                Bytes::from(out)
            }
        }
    }

    pub(super) fn md5(&self) -> [u8; 16] {
        let mut h = Md5::new();
        for s in &self.segments {
            h.update(s);
        }
        h.finalize().into()
    }
}

/// The MD5 of a buffer, as S3 uses it for ETags and `Content-MD5`.
pub fn md5_of(body: &[u8]) -> [u8; 16] {
    Md5::digest(body).into()
}

/// A request body with its MD5, computed once: the ETag and the
/// `Content-MD5` check share it, and the caller can hash off the runtime.
#[derive(Clone)]
pub struct HashedBody {
    pub(super) data: Bytes,
    pub(super) md5: [u8; 16],
}

impl HashedBody {
    /// Hash `data` (MD5 runs at memory speed; large bodies are best hashed
    /// on a blocking thread).
    pub fn new(data: Bytes) -> Self {
        let md5 = md5_of(&data);
        Self { data, md5 }
    }

    /// The body's MD5.
    pub fn md5(&self) -> [u8; 16] {
        self.md5
    }

    /// The body's length.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl std::fmt::Debug for HashedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedBody")
            .field("len", &self.data.len())
            .field("md5", &hex::encode(self.md5))
            .finish()
    }
}

impl From<Bytes> for HashedBody {
    fn from(data: Bytes) -> Self {
        Self::new(data)
    }
}
