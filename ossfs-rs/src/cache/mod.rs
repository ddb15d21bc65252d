//! Data caches shared by every open handle.
//!
//! [`block`] is the in-memory block cache: fixed-size blocks of objects,
//! keyed by key, ETag and block number, evicted least recently used by
//! bytes, each block's memory reserved from the global
//! [`crate::memory::MemoryBudget`]. The stat cache (metadata of paths) lives
//! with the filesystem, in `fs::cache`.

pub mod block;

pub use block::{BlockCache, BlockKey};
