//! `ossfs-rs demo`: a self-contained tour that needs no cloud account.
//!
//! It starts the embedded endpoint in-process with random keys, drives the
//! real REST client through every store call the filesystem relies on,
//! then mounts the same endpoint with FUSE and, last, the way users mount
//! (a supervisor and a worker), killing the worker and reading on. Each
//! step prints what it did and how fast; each checks its result, and the
//! demo succeeds only if all do.
//!
//! - [`tour`]: the whole demo, [`run`] and [`run_demo`];
//! - [`exercise`](mod@exercise): the store steps against any
//!   `ObjectStore`, which double as an integration test of the client;
//! - [`mount`]: the in-process FUSE mount tour;
//! - [`restart`]: the supervised mount and its worker's restart;
//! - [`args`], [`error`], [`progress`]: the arguments, the error and the
//!   progress lines the parts share.
//!
//! This file only declares and re-exports; the parts import each other,
//! never this file. Imports: its children only.

pub mod args;
pub mod error;
pub mod exercise;
pub mod mount;
pub mod progress;
pub mod restart;
pub mod tour;

pub use args::DemoArgs;
pub use error::DemoError;
pub use exercise::exercise;
pub use tour::{DEMO_BUCKET, run, run_demo};
