//! The embedded endpoint's object map: buckets, objects and multipart
//! uploads held in memory, with S3's object semantics.
//!
//! Everything here is synchronous and does no I/O, so it is unit-tested
//! directly (`tests.rs`). The parts, each a file:
//! - `error`: [`MemError`], why an operation failed (one S3 code each);
//! - `body`: object bodies as [`Bytes`](bytes::Bytes) segments, never
//!   copied after upload, and request bodies hashed once ([`HashedBody`]);
//! - `map`: [`MemStore`] itself, the buckets and their state behind one
//!   lock, and the bucket and object operations (get, put, delete, copy);
//! - `listing`: one page of a listing, with delimiter roll-up and markers;
//! - `multipart`: uploads, parts, part copies, completion and ListParts.
//!
//! Dependencies run one way: `error` and `body` stand alone, `map` uses
//! them, and `listing` and `multipart` add `impl MemStore` blocks over the
//! state `map` defines. This file only declares the parts and re-exports
//! their public items, so every `memstore::X` path keeps working.
//!
//! Imports: none (declarations and re-exports only). Nothing else of the crate:
//! `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

mod body;
mod error;
mod listing;
mod map;
mod multipart;

pub use body::{HashedBody, ObjectData, md5_of};
pub use error::{MemError, MemResult};
pub use listing::{ListOutcome, ListQuery, ListedObject, MAX_LIST_KEYS, roll_up};
pub use map::{CopyDirective, MemStore, ObjectAttrs, StoredObject, WriteCondition};
pub use multipart::{MAX_PART_NUMBER, PartSummary, PartsPage};

#[cfg(test)]
mod tests;
