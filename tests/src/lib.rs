//! End-to-end test support for ossfs-rs: real servers and real faults.
//!
//! - [`garage`] starts a real single-node Garage (the S3 server of the
//!   end-to-end tests) in a temporary directory.
//! - [`mount`] mounts a prefix of that Garage's bucket with the real
//!   `ossfs-rs` binary (needs root and /dev/fuse) and never leaves it behind.
//! - [`sys`] wraps the Linux calls those tests need beyond `std`
//!   (renameat2, statvfs, xattrs).
//! - [`fault_proxy`] sits between a client and a server and injects delays,
//!   resets, 503s, 403s, slow replies and truncated bodies (netem is not
//!   available here).
//! - [`delay_proxy`] adds a fixed delay per request and a bandwidth cap,
//!   with keep-alive connections (the benchmark's slow profile).
//! - [`backend`] puts Garage and the embedded endpoint behind one type, so
//!   the store conformance suite runs the same cases against both.
//! - [`process`] runs child processes with a deadline.
//! - [`csi`] runs the real `csi-os` plugin and connects tonic clients to it.
//!
//! Nothing here is a mock: the store tests talk HTTP to real servers.

pub mod backend;
pub mod csi;
pub mod delay_proxy;
pub mod fault_proxy;
pub mod garage;
pub mod hang;
pub mod mount;
pub mod process;
pub mod sys;

pub use garage::{Garage, GarageError, unique_prefix};

/// A proxy whose tasks run on a runtime of its own, kept alive with it:
/// the mount tests are synchronous, so the proxy cannot live on theirs.
pub struct Hosted<P> {
    pub proxy: P,
    _rt: tokio::runtime::Runtime,
}

/// Start a proxy (`start`, e.g. `FaultProxy::start(addr)`) on a new
/// one-thread runtime; panics with `what` when it cannot start.
pub fn hosted<P>(
    what: &str,
    start: impl std::future::Future<Output = std::io::Result<P>>,
) -> Hosted<P> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let proxy = rt.block_on(start).unwrap_or_else(|e| panic!("{what}: {e}"));
    Hosted { proxy, _rt: rt }
}
