//! ossfs-rs: a FUSE filesystem for Alibaba Cloud OSS, Tencent Cloud COS and
//! S3-compatible object stores.
//!
//! The folders are the layers. Each imports only the layers below it (a
//! check in `scripts/layers.py`, run by the test gate, keeps it so):
//!
//! ```text
//! cli          the command line: every subcommand, the demo
//! facade       the small surface csi-shim uses
//! supervisor   supervised restart: supervisor, worker, journal, control socket
//! config check the mount's configuration; `ossfs-rs check`'s diagnosis
//! fuse         the thin fuser adapter, resend bookkeeping (ledger, in-flight table)
//! fs           the filesystem over ObjectStore (inodes, handles, staging, errnos)
//! cache prefetch upload   blocks in memory and on disk; read-ahead; uploads
//! memory metrics          the data-buffer budget; counters and the endpoint
//! store        signing, credentials, REST client, dialects, retries, XML
//! sys          Linux: mountinfo, private dirs, daemon start, readahead, allocator
//! ```
//!
//! [`serve`], the embedded S3-compatible endpoint, is an island beside the
//! stack: it imports only `store` types, and only `cli` (the `serve` and
//! `demo` commands) and tests import it; the daemon never does. The
//! binary's `main` only calls [`cli::run`].
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod facade;
pub mod fs;
pub mod fuse;
pub mod memory;
pub mod metrics;
pub mod prefetch;
pub mod serve;
pub mod store;
pub mod supervisor;
pub mod sys;
pub mod upload;

#[cfg(test)]
mod test_support;
