//! Data caches shared by every open handle.
//!
//! [`block`] is the in-memory block cache: fixed-size blocks of objects,
//! keyed by key, ETag and block number, evicted least recently used by
//! bytes, each block's memory reserved from the global
//! [`crate::memory::MemoryBudget`]. [`disk`] is its optional second tier
//! on local disk (`use_cache`), kept across remounts. The stat cache (metadata of paths) lives
//! with the filesystem, in `fs::cache`.
//!
//! Imports (besides its own submodules): `memory` of the crate, besides std
//! and external crates.

pub mod block;
pub mod disk;
pub mod lru;

pub use block::{BlockCache, BlockKey};
pub use disk::{DiskCache, DiskCacheError};

/// Helpers shared by the tests of both tiers.
#[cfg(test)]
pub(crate) mod test_util {
    use bytes::Bytes;

    use super::BlockKey;

    pub fn key(k: &str, etag: &str, index: u64) -> BlockKey {
        BlockKey {
            key: k.into(),
            etag: etag.into(),
            index,
        }
    }

    pub fn block(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }
}
