//! Live upgrade: replace the worker, or the supervisor itself, by another
//! binary while the mount serves.
//!
//! First a preflight: the new binary must be an executable file that runs
//! `--version` within [`PREFLIGHT_TIMEOUT`]; one that cannot even start
//! (missing, wrong architecture, still open for writing: ETXTBSY) is
//! refused while the old worker still serves, and nothing changes. Then,
//! for the worker, the supervisor signals it (SIGUSR2) to drain and exit
//! with `EXIT_HANDOFF`; the loop ([`super::restart`]) starts the new
//! binary, falls back to the previous one if the new one cannot serve, and
//! reports through [`Supervisor::finish_upgrade`] to the caller, who waits
//! on a condition variable. For the supervisor, it re-executes itself
//! from the new binary: same pid, so the worker stays its child, and the
//! new supervisor adopts it (`__supervise --worker-pid`).
//!
//! Imports: [`super`] (the supervisor) and the supervisor's `protocol`
//! (the `__supervise` command line).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::info;

use super::{READY_TIMEOUT, Supervisor, lock};
use crate::supervisor::protocol::supervise_command;

/// How long `BINARY --version` may take in an upgrade's preflight.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

impl Supervisor {
    /// Upgrade to `binary` (this one when `None`): the worker, or with
    /// `supervisor` this process. Returns when the new worker serves (or
    /// could not); a supervisor upgrade returns only if the exec failed.
    pub(super) fn live_upgrade(
        &self,
        binary: Option<PathBuf>,
        supervisor: bool,
    ) -> Result<String, String> {
        let binary = match binary {
            Some(b) => b,
            None => std::env::current_exe().map_err(|e| e.to_string())?,
        };
        let meta = std::fs::metadata(&binary).map_err(|e| format!("{}: {e}", binary.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(format!("{} is not an executable file", binary.display()));
            }
        }
        preflight(&binary)?;
        if supervisor {
            return Err(self.exec_self(&binary));
        }
        let mut up = lock(&self.upgrade);
        if up.binary.is_some() {
            return Err("an upgrade is already running".into());
        }
        up.binary = Some(binary.clone());
        up.result = None;
        up.previous = Some(std::mem::replace(&mut *lock(&self.binary), binary));
        let pid = *lock(&self.worker_pid);
        info!(worker = pid, "upgrade: asking the worker to drain");
        // SAFETY: kill with a pid and a signal number.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR2) } != 0 {
            up.binary = None;
            if let Some(previous) = up.previous.take() {
                *lock(&self.binary) = previous;
            }
            return Err(format!(
                "cannot signal worker {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(40);
        loop {
            if let Some(result) = up.result.take() {
                return result;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the upgrade did not finish in time; see the log".into());
            }
            up = self
                .upgraded
                .wait_timeout(up, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// End the upgrade in progress, if any, with `result` for its caller.
    pub(super) fn finish_upgrade(&self, result: Result<String, String>) {
        let mut up = lock(&self.upgrade);
        if up.binary.take().is_some() {
            up.result = Some(result);
            self.upgraded.notify_all();
        }
    }

    /// Re-execute this supervisor from `binary`, keeping pid, worker and fd.
    fn exec_self(&self, binary: &Path) -> String {
        use std::os::unix::process::CommandExt;
        let worker = Some(*lock(&self.worker_pid));
        let fuse = self.fuse.as_raw_fd();
        match supervise_command(binary, &self.state.dir, fuse, &self.creds, worker, false) {
            // pre_exec hooks run before exec too (clearing CLOEXEC).
            Ok((mut cmd, _pipe)) => format!("cannot exec {}: {}", binary.display(), cmd.exec()),
            Err(e) => format!("cannot pass the credentials: {e}"),
        }
    }
}

/// Run `binary --version` before an upgrade stops the worker: a binary that
/// cannot even start (missing, not executable, wrong architecture, still
/// open for writing: ETXTBSY) is refused while the old worker still serves.
fn preflight(binary: &Path) -> Result<(), String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}; nothing was changed", binary.display()))?;
    let deadline = Instant::now() + PREFLIGHT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "`{} --version` failed ({status}); nothing was changed",
                    binary.display()
                ));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} --version` did not finish within {}s; nothing was changed",
                    binary.display(),
                    PREFLIGHT_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for {}: {e}", binary.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_refuses_a_binary_that_cannot_run() {
        assert_eq!(preflight(Path::new("/bin/true")), Ok(()));
        let e = preflight(Path::new("/bin/false")).unwrap_err();
        assert!(
            e.contains("failed") && e.contains("nothing was changed"),
            "{e}"
        );
        let e = preflight(Path::new("/nonexistent/ossfs-rs")).unwrap_err();
        assert!(e.starts_with("cannot run /nonexistent/ossfs-rs"), "{e}");
    }
}
