//! Supervised restart: a mount that outlives its own daemon.
//!
//! `ossfs-rs mount` runs as a small supervisor that mounts, keeps the
//! `/dev/fuse` fd and runs a worker (the same binary) that serves it; when
//! the worker dies the supervisor starts another on the same connection,
//! and a worker whose supervisor died starts a new supervisor. The kernel's
//! mount never breaks, requests in flight are resent by the kernel
//! (FUSE_NOTIFY_RESEND) and served again, and the journal keeps node ids,
//! open handles, staging files and the answers of non-idempotent requests
//! across workers (DESIGN.md section 5, docs/operations.md).
//!
//! - [`supervise`]: the supervisor loop, restarts, upgrades.
//! - [`worker`]: the worker process.
//! - [`handoff`]: starting fuser on an already initialised connection.
//! - [`fusedev`]: mounting, INIT, resend and raw replies.
//! - [`journal`]: the journal file; [`inflight`]: the in-flight table;
//!   [`ledger`]: per-request bookkeeping in the FUSE adapter.
//! - [`control`]: the control socket; [`status`]: `ossfs-rs status` and
//!   `ossfs-rs upgrade`; [`state`]: the state directory.

pub mod control;
pub mod fusedev;
pub mod handoff;
pub mod journal;
pub mod setup;
pub mod state;
pub mod status;
pub mod supervise;
pub mod worker;
