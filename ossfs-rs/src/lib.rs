//! ossfs-rs: a FUSE filesystem for Alibaba Cloud OSS, Tencent Cloud COS and
//! S3-compatible object stores.
//!
//! Modules depend one way: [`store`] (signing, REST client, dialects,
//! credentials, retries, XML) is the base; [`upload`] sends staged files
//! through it; [`fs`] is the filesystem logic over the store and
//! [`fuse`] its thin FUSE adapter; [`prefetch`] (read-ahead per open
//! file), [`cache`] (the shared block cache) and [`memory`] (the global
//! budget for data buffers) are the read path under [`fs`], and
//! [`metrics`] counts what the store and the caches do; [`readahead`]
//! raises the kernel's readahead of the mount; the embedded endpoint ([`serve`]),
//! the operator diagnosis ([`check`]), the demo ([`demo`]) and the command
//! line ([`cli`]) sit on top of it. The binary's `main` only calls
//! [`cli::run`].
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cache;
pub mod check;
pub mod cli;
pub mod demo;
pub mod demo_mount;
pub mod demo_restart;
pub mod fs;
pub mod fuse;
pub mod heap;
pub mod memory;
pub mod metrics;
pub mod mount;
pub mod options;
pub mod prefault;
pub mod prefetch;
pub mod readahead;
pub mod serve;
pub mod store;
pub mod stream_upload;
pub mod supervisor;
pub mod upload;

#[cfg(test)]
mod test_support;
