//! The object-store layer: one REST client, three dialects (OSS, COS, S3).
//!
//! Everything above this module (the filesystem, the uploads, the CSI
//! plugin, `check`, the demo) talks to the [`ObjectStore`] trait and never
//! to HTTP, so the data path can be tested without FUSE and the store
//! without a mount.
//!
//! Inside, a request goes through three pure steps and one impure one, the
//! way opendal's services do it: a dialect-specific *builder* turns an
//! operation into an [`sign::HttpRequest`] (no I/O), a [`sign::Signer`] adds
//! the authorization, and [`client::RestClient`] sends it with retries and
//! parses the reply. The files:
//!
//! - this file: the [`ObjectStore`] trait, the one interface of the layer;
//! - `types.rs`: the values that cross it (metadata, ranges, listings,
//!   options, parts) and `gather`, one buffer from a body stream;
//! - `dialect.rs`: [`Provider`], the personality of each dialect (header
//!   prefixes, listing style, part and copy limits, append and symlinks);
//! - `request.rs`: the pure per-operation request builders (`Target`);
//! - `sign/`: the four signers (OSS V1, OSS V4, COS, SigV4), clock injected;
//! - `credentials/`: key sources (static, environment, passwd files, STS
//!   directory) and the resolver;
//! - `client/`: [`RestClient`], the one implementation of the trait: its
//!   config (`config.rs`), the send loop with retries (`mod.rs`), body
//!   reading with resume after a break (`body.rs`), and replies into
//!   results (`response.rs`);
//! - `transport/`: the pooled HTTP/1.1 client
//!   over our own connector, with timeouts on lack of progress (connect,
//!   send, first byte, read) and a cap on documents read whole;
//! - `retry.rs`: the retry policy (attempts, jittered backoff, the
//!   `Retry-After` of a 503 or 429 answer, the cap);
//! - `xml/`: parsing of error, listing, multipart, copy and
//!   delete documents, and the two request bodies (complete, delete);
//! - `error.rs`: [`StoreError`], the layer's one error type;
//! - `layer.rs`: [`layer::HookedStore`], the one pass-through wrapper, and
//!   [`layer::StoreHooks`], what watches or disturbs its calls (metrics,
//!   fault injection in tests).
//!
//! A copy of any size (one CopyObject or a multipart part-copy) is built on
//! the trait's primitives one layer up, in the upload layer's `copy_object`.
//!
//! Imports: nothing of the crate outside this folder (it is the bottom
//! layer above `sys`, and needs nothing of `sys` either).

pub mod client;
pub mod credentials;
pub mod dialect;
pub mod error;
pub mod layer;
pub mod request;
pub mod retry;
pub mod sign;
pub mod transport;
pub mod types;
pub mod xml;

pub use client::{ClientConfig, RestClient, SignatureVersion};
pub use credentials::{CredentialProvider, Credentials};
pub use dialect::Provider;
pub use error::{StoreError, StoreResult};
pub use types::*;

use async_trait::async_trait;
use bytes::Bytes;

/// What the filesystem needs from an object store.
///
/// Keys are full object keys (the mount prefix already applied), unencoded
/// UTF-8 strings. Every method is cancel safe in the sense that dropping the
/// future abandons the request; it never leaves a half-written object
/// visible (a PUT is atomic on every supported store, and a multipart upload
/// is invisible until completed).
///
/// No method has a default body: [`layer::HookedStore`], the one wrapper
/// that watches or disturbs calls, must forward each one.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// The dialect this store speaks; callers use it for limits only.
    fn provider(&self) -> Provider;

    /// The bucket this store addresses.
    fn bucket(&self) -> &str;

    /// HEAD an object. `NotFound` when it does not exist.
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta>;

    /// GET a byte range (or the whole object) as a stream of chunks as they
    /// arrive. A range that starts beyond the end is `InvalidRange`.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<GetObject>;

    /// PUT a whole object with user metadata; Content-MD5 is always sent.
    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> StoreResult<PutResult>;

    /// One page of a listing. `token` is the continuation from the previous
    /// page (a ListObjectsV2 token or a V1 marker, opaque to the caller).
    async fn list_page(&self, req: &ListRequest, token: Option<&str>) -> StoreResult<ListPage>;

    /// DELETE one object. Deleting a missing key is success (as on S3).
    async fn delete(&self, key: &str) -> StoreResult<()>;

    /// Delete many keys, 1000 per request (the limit of all three
    /// dialects); returns the keys that failed with their error code.
    async fn delete_multiple(&self, keys: &[String]) -> StoreResult<Vec<DeleteFailure>>;

    /// Server-side copy within the bucket of an object no larger than the
    /// dialect's single-copy limit. Larger objects go through
    /// [`ObjectStore::upload_part_copy`]; the upload layer's `copy_object`
    /// picks the way.
    async fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> StoreResult<PutResult>;

    /// Start a multipart upload.
    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> StoreResult<String>;

    /// Upload one part (1-based `part_number`); returns its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> StoreResult<String>;

    /// Copy a byte range of `src` into one part of an upload; returns its ETag.
    async fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> StoreResult<String>;

    /// Complete an upload from its parts in order.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<PutResult>;

    /// Abort an upload. Aborting an unknown upload is success.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()>;

    /// The parts uploaded so far (all pages).
    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>>;

    /// Append at `position` (OSS and COS only; `Unsupported` elsewhere).
    /// Returns the next append position. Never retried blindly: on an
    /// ambiguous failure the position is re-read with HEAD first.
    async fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64>;

    /// Create a native symlink object (OSS and COS; `Unsupported` on S3).
    async fn put_symlink(&self, key: &str, target: &str, opts: &PutOptions) -> StoreResult<()>;

    /// Read a native symlink's target (OSS and COS; `Unsupported` on S3).
    async fn get_symlink(&self, key: &str) -> StoreResult<String>;
}
