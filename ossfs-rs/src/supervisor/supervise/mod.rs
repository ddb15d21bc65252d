//! The supervisor: the process that mounts, keeps the `/dev/fuse` fd and
//! the credentials, and keeps a worker serving that fd.
//!
//! It is small on purpose: no store client, no filesystem, nothing that
//! can fail under load. It talks to its workers only through what
//! [`super::protocol`] defines (command lines, the credentials pipe, exit
//! codes) and to operators through the control socket
//! ([`super::control`]); the mount's state lives in the state directory
//! ([`super::state`]), so that any supervisor can take over from another.
//!
//! - `start`: `ossfs-rs mount` (preflight, mount, INIT, the first worker
//!   and readiness, detach) and `__supervise` (taking over a live mount),
//!   and starting one worker and waiting for its "ready";
//! - `restart`: the loop that waits for the worker and decides what its
//!   end means: exit 0, the session ended (unmounted), clean up and exit;
//!   [`EXIT_HANDOFF`](super::protocol::EXIT_HANDOFF) during an upgrade,
//!   start the new binary at once; anything else (signal, panic, OOM kill),
//!   log the cause and start a new worker on the same fd: at once, or with
//!   capped exponential backoff while workers keep dying young;
//! - `upgrade`: live upgrade, after a preflight of the new binary: the
//!   worker drains and hands over, or the supervisor re-executes itself in
//!   place (same pid, so the worker stays its child);
//! - `handler`: the control socket's requests (status, upgrade, fd);
//! - [`watch`]: used by a worker: when its supervisor dies, start a new
//!   one (`__supervise --worker-pid`) that adopts the worker.
//!
//! This file owns what those parts share: the [`Supervisor`] (its state
//! behind mutexes, since the control socket's thread and the loop both use
//! it), the worker it supervises, the upgrade in progress, and cleaning up
//! the state directory.
//!
//! Imports: [`super::protocol`], [`super::state`], [`super::setup`],
//! `config` (the request) and `sys`; the children import this file and,
//! besides, the supervisor's `control` and `fusedev`. This file imports
//! no child by path, and nothing here imports the worker.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tracing::warn;

use super::protocol::{ConnectionArgs, Creds};
use super::setup;
use super::state::{StateDir, SupervisorInfo};
use crate::config::MountRequest;

mod handler;
mod restart;
mod start;
mod upgrade;
pub mod watch;

pub use start::{run_adopt, run_mount};

/// How long a new worker may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `ossfs-rs __supervise` (internal): a supervisor taking
/// over a live mount.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// A live worker to adopt; without it a new worker is started.
    #[arg(long)]
    pub worker_pid: Option<u32>,
}

/// The current worker.
#[derive(Debug)]
enum WorkerProc {
    Child(Child),
    /// A worker we did not start (adopted): watched through a pidfd.
    Adopted(u32),
}

impl WorkerProc {
    fn pid(&self) -> u32 {
        match self {
            Self::Child(c) => c.id(),
            Self::Adopted(p) => *p,
        }
    }
}

/// A live upgrade in progress, shared by the control socket's thread
/// (which asked for it and waits for its result) and the loop (which
/// starts the new worker).
#[derive(Debug, Default)]
struct Upgrade {
    binary: Option<PathBuf>,
    /// The binary the drained worker ran: started again when the new one
    /// cannot start, so a bad upgrade never leaves the mount without a
    /// worker.
    previous: Option<PathBuf>,
    /// Filled by the loop when the new worker serves (or failed to).
    result: Option<Result<String, String>>,
}

/// One supervisor.
pub struct Supervisor {
    state: StateDir,
    fuse: OwnedFd,
    mountpoint: PathBuf,
    /// `-o logfile`: workers write their logs there directly.
    logfile: Option<PathBuf>,
    /// Where the workers' staging files live.
    staging: PathBuf,
    creds: Creds,
    info: Mutex<SupervisorInfo>,
    worker_pid: Mutex<u32>,
    binary: Mutex<PathBuf>,
    upgrade: Mutex<Upgrade>,
    upgraded: Condvar,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("state", &self.state.dir)
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    fn new(
        state: StateDir,
        fuse: OwnedFd,
        req: &MountRequest,
        creds: Creds,
        info: SupervisorInfo,
        worker_binary: PathBuf,
    ) -> Self {
        Self {
            staging: setup::staging_dir(req, &state.dir),
            state,
            fuse,
            mountpoint: req.mountpoint.clone(),
            logfile: req.options.logfile.clone(),
            creds,
            info: Mutex::new(info),
            worker_pid: Mutex::new(0),
            binary: Mutex::new(worker_binary),
            upgrade: Mutex::new(Upgrade::default()),
            upgraded: Condvar::new(),
        }
    }

    fn info(&self) -> SupervisorInfo {
        lock(&self.info).clone()
    }

    fn save_info(&self) {
        let info = self.info();
        if let Err(e) = self.state.write_json(&self.state.supervisor(), &info) {
            warn!(error = %e, "cannot write supervisor.json");
        }
    }

    fn still_mounted(&self) -> bool {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return true;
        };
        crate::sys::mountinfo::mountinfo_lists(&info, &self.mountpoint)
    }

    /// Remove the state directory's files; the staging directory only if
    /// nothing was left in it.
    fn cleanup(&self) {
        self.state.remove_files();
        let staging = self.staging.clone();
        if std::fs::remove_dir(&staging).is_err() && staging.exists() {
            warn!(dir = %staging.display(), "staging files were left (data that could not be uploaded); kept");
            return;
        }
        let _ = std::fs::remove_dir(&self.state.dir);
    }
}
