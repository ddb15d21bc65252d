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
//! The processes and what they exchange:
//! - [`protocol`]: what the supervisor and its children hand each other:
//!   the `__worker` and `__supervise` command lines, the credentials
//!   pipe, the saved mount request, the worker's exit codes;
//! - [`supervise`]: the supervisor: the first mount and readiness
//!   (`start`), the restart loop with its crash-loop backoff (`restart`),
//!   live upgrades (`upgrade`), and the watch a worker keeps on its
//!   supervisor (`watch`);
//! - [`worker`]: the worker process;
//! - [`setup`]: from a mount request to a store client, filesystem
//!   settings and mount options (the preflight check, the credentials).
//!
//! The kernel side:
//! - [`fusedev`]: mounting, INIT, resend and raw replies on `/dev/fuse`;
//! - [`handoff`]: starting fuser on an already initialised connection.
//!
//! What survives a worker:
//! - [`state`]: the state directory of a mount;
//! - [`journal`]: the journal file. The in-flight table and the
//!   per-request ledger that writes to the journal live in the FUSE
//!   adapter ([`crate::fuse::inflight`], [`crate::fuse::ledger`]).
//!
//! The operator's side:
//! - [`control`]: the control socket; [`status`]: `ossfs-rs status` and
//!   `ossfs-rs upgrade`.
//!
//! Inside the folder, `protocol`, `state`, `setup`, `fusedev` and
//! `control` are the bottom: the supervisor (`supervise`) and the worker
//! import them and never each other, except that a worker uses
//! [`supervise::watch`] to replace a dead supervisor.
//!
//! Imports: `config` and `check` (the mount's configuration), `fuse`
//! (the adapter a worker serves, its ledger and in-flight table), `fs`,
//! `store`, `metrics` and `sys`.

pub mod control;
pub mod fusedev;
pub mod handoff;
pub mod journal;
pub mod protocol;
pub mod setup;
pub mod state;
pub mod status;
pub mod supervise;
pub mod worker;
