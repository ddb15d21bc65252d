//! Data caches shared by every open handle.
//!
//! [`block`] is the in-memory block cache: fixed-size blocks of objects,
//! keyed by key, ETag and block number, evicted least recently used by
//! bytes, each block's memory reserved from the global
//! [`crate::memory::MemoryBudget`]. [`disk`] is its optional second tier
//! on local disk (`use_cache`), kept across remounts. The stat cache (metadata of paths) lives
//! with the filesystem, in `fs::cache`.

pub mod block;
pub mod disk;
pub mod lru;

pub use block::{BlockCache, BlockKey};
pub use disk::{DiskCache, DiskCacheError};
