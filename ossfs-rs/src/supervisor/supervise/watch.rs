//! Watching processes of a mount from outside: whether a pid is alive,
//! waiting for a process that is not our child, and (in a worker) keeping
//! a supervisor running.
//!
//! A worker outlives its supervisor on purpose: the mount keeps serving,
//! and [`watch_supervisor`] starts a new supervisor (`__supervise
//! --worker-pid`, in a session of its own) that adopts the worker, hands
//! it the fd and the credentials, and is watched in turn. The CSI plugin
//! uses [`alive`] to tell whether a volume still has a daemon.
//!
//! Imports: the supervisor's `protocol` (the `__supervise` command line)
//! and `sys` (stderr); a worker imports this file, never the supervisor's
//! loop.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::supervisor::protocol::{Creds, supervise_command};

/// Block until process `pid` (not our child) has exited.
pub fn wait_pid_exit(pid: u32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // No such process (already gone), or no pidfd: poll its /proc entry.
        while alive(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    // SAFETY: fd is a new pidfd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    loop {
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, -1) };
        if rc > 0 || (rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return;
        }
    }
}

/// Whether process `pid` exists and is not a zombie (0 is no process).
pub fn alive(pid: u32) -> bool {
    pid != 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// In a worker: when the supervisor `pid` dies, start a new one that
/// adopts this worker (handing it the fd and the credentials), and watch
/// that one in turn.
///
/// Without a log file the worker's stderr was a pipe to the dead
/// supervisor: it is pointed at `logfile` or /dev/null first, so that
/// neither this worker's logging nor the new supervisor (which inherits
/// it) writes into a pipe nobody reads.
pub fn watch_supervisor(
    pid: u32,
    state_dir: PathBuf,
    logfile: Option<PathBuf>,
    fuse: BorrowedFd<'_>,
    creds: Creds,
) {
    let fuse_fd = fuse.as_raw_fd();
    let _ = std::thread::Builder::new()
        .name("ossfs-watch-supervisor".into())
        .spawn(move || {
            let mut current: Option<Child> = None;
            let mut watched = pid;
            loop {
                match current.take() {
                    Some(mut child) => {
                        let _ = child.wait();
                    }
                    None => wait_pid_exit(watched),
                }
                if let Err(e) = crate::sys::daemon::leave_stderr_pipe(logfile.as_deref()) {
                    error!(error = %e, "cannot point stderr away from the dead supervisor's pipe");
                }
                warn!(
                    supervisor = watched,
                    "the supervisor died; starting a new one"
                );
                let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ossfs-rs"));
                let me = Some(std::process::id());
                let (mut cmd, _pipe) =
                    match supervise_command(&binary, &state_dir, fuse_fd, &creds, me, true) {
                        Ok(c) => c,
                        Err(e) => {
                            error!(error = %e, "cannot pass the credentials to a new supervisor");
                            return;
                        }
                    };
                match cmd.spawn() {
                    Ok(child) => {
                        info!(supervisor = child.id(), "new supervisor started");
                        watched = child.id();
                        current = Some(child);
                    }
                    Err(e) => {
                        error!(error = %e, "cannot start a new supervisor; retrying in 1s");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_process_is_alive_until_it_exits() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        // Returns once it has exited, even though it is not reaped yet.
        wait_pid_exit(pid);
        assert!(!alive(pid), "a zombie is not alive");
        child.wait().unwrap();
        assert!(!alive(pid));
        // A process that is already gone does not block.
        wait_pid_exit(pid);
    }
}
