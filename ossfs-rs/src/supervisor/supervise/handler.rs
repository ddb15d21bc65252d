//! The supervisor as the control socket sees it ([`Handler`]): `status`
//! (what the supervisor, the worker's `worker.json`, the in-flight table
//! and the staging directory say), `upgrade` (in [`super::upgrade`]) and a
//! copy of the `/dev/fuse` fd.
//!
//! Imports: [`super`] (the supervisor), the supervisor's `control` (the
//! trait) and `state`, and `fuse` (the in-flight table, read only).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use super::Supervisor;
use crate::fuse::inflight::InFlight;
use crate::supervisor::control::{Handler, Status};
use crate::supervisor::state::WorkerInfo;

impl Handler for Supervisor {
    fn status(&self) -> Status {
        let worker: Option<WorkerInfo> = self.state.read_json(&self.state.worker()).ok();
        let requests_in_flight = InFlight::open(&self.state.inflight())
            .map(|t| t.count())
            .unwrap_or(0);
        let staging_bytes = std::fs::read_dir(&self.staging)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        Status {
            supervisor: self.info(),
            worker,
            requests_in_flight,
            staging_bytes,
        }
    }

    fn upgrade(&self, binary: Option<PathBuf>, supervisor: bool) -> Result<String, String> {
        self.live_upgrade(binary, supervisor)
    }

    fn fuse_fd(&self) -> BorrowedFd<'_> {
        self.fuse.as_fd()
    }
}
