//! ossfs-rs: a FUSE filesystem for Alibaba Cloud OSS, Tencent Cloud COS and
//! S3-compatible object stores.
//!
//! Modules depend one way: [`store`] (signing, REST client, dialects,
//! credentials, retries, XML) is the base; the embedded endpoint ([`serve`]),
//! the operator diagnosis ([`check`]), the demo ([`demo`]) and the command
//! line ([`cli`]) sit on top of it. The binary's `main` only calls
//! [`cli::run`].
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod check;
pub mod cli;
pub mod demo;
pub mod mount;
pub mod options;
pub mod serve;
pub mod store;
