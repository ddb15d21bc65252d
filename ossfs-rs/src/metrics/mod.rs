//! Prometheus metrics (`-o metrics=127.0.0.1:PORT`), hand-written.
//!
//! One concern per file:
//! - `defs`: every metric's name, kind, unit, labels and help text (names
//!   are constants there and nowhere else);
//! - `histogram`: a fixed-bucket histogram of atomics;
//! - `registry`: the process-wide counters ([`METRICS`]) and the text
//!   exposition;
//! - `fuse`: the per-FUSE-operation counters the FUSE adapter records;
//! - `http`: the endpoint ([`serve`]);
//! - `store`: [`MeteredStore`], the store wrapped so that every request is
//!   counted.
//!
//! Everything on a hot path is a relaxed atomic add into a fixed array: no
//! lock, no allocation.
//!
//! Imports: `crate::store` (the trait and its hook layer), nothing above.

pub mod defs;
pub mod fuse;
pub mod histogram;
pub mod http;
pub mod registry;
pub mod store;

pub use fuse::{FuseOp, Replied};
pub use http::serve;
pub use registry::{Cache, METRICS, Metrics, Op, UploadGuard};
pub use store::{MeteredStore, StoreMetrics};
