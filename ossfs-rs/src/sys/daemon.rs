//! The background start of a daemon, as ossfs and s3fs do it: the command
//! returns once the mount is ready (exit 0) or has failed (non-zero, with
//! the reason on stderr, and no mount left behind).
//!
//! [`spawn_background`] starts this binary again in the foreground with
//! `--notify-ready` and its stdout on a pipe; the child calls
//! [`notify_ready_and_detach`] once the kernel has answered INIT, which
//! prints `ready` on that pipe and points stdout and stderr at the log file
//! or /dev/null. Until then the child's stderr is the user's terminal, so
//! every startup error reaches the user verbatim.
//!
//! Imports: std, nix and [`super::mountinfo`] (to undo a mount that never
//! became ready).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::mountinfo::lazy_unmount;

/// How long the parent waits for the child to report the mount ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Start this binary again in the foreground with `--notify-ready` and wait
/// for it to report the mount ready. Returns the exit code for the parent.
pub fn spawn_background(args: &[OsString], mountpoint: &Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ossfs-rs: cannot find my own executable to start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match Command::new(exe)
        .args(args)
        .arg("--foreground")
        .arg("--notify-ready")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ossfs-rs: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(stdout) = child.stdout.take() else {
        eprintln!("ossfs-rs: the daemon's readiness pipe is missing");
        return ExitCode::FAILURE;
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) if line.trim() == "ready" => ExitCode::SUCCESS,
        Ok(_) => {
            // The child failed and said why on stderr; pass on its status.
            match child.wait() {
                Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8),
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(_) => {
            eprintln!(
                "ossfs-rs: the mount at {} did not become ready within {}s; stopping it",
                mountpoint.display(),
                READY_TIMEOUT.as_secs()
            );
            let _ = child.kill();
            let _ = child.wait();
            let _ = lazy_unmount(mountpoint);
            ExitCode::FAILURE
        }
    }
}

/// Point stderr (and stdout) away from a pipe whose reader may be gone:
/// to `logfile` when there is one, else to /dev/null. A worker calls it
/// when its supervisor died, since without a log file its stderr was a
/// pipe to that supervisor; the supervisor it starts next inherits the
/// new stderr. Returns whether stderr was a pipe (and so was replaced).
pub fn leave_stderr_pipe(logfile: Option<&Path>) -> std::io::Result<bool> {
    if !is_pipe(std::io::stderr()) {
        return Ok(false);
    }
    let target = open_log_or_null(logfile)?;
    if is_pipe(std::io::stdout()) {
        nix::unistd::dup2_stdout(&target).map_err(std::io::Error::from)?;
    }
    nix::unistd::dup2_stderr(&target).map_err(std::io::Error::from)?;
    Ok(true)
}

/// Whether `fd` is a pipe (or a FIFO).
fn is_pipe(fd: impl std::os::fd::AsFd) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
}

/// `logfile` opened for appending, or /dev/null.
fn open_log_or_null(logfile: Option<&Path>) -> std::io::Result<std::fs::File> {
    match logfile {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p),
        None => std::fs::OpenOptions::new().write(true).open("/dev/null"),
    }
}

/// Tell the waiting parent the mount is ready and detach from it: stdout
/// and stderr go to `logfile` (or /dev/null) from here on.
pub fn notify_ready_and_detach(logfile: Option<&Path>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n")?;
    out.flush()?;
    drop(out);
    let target = open_log_or_null(logfile)?;
    // Replace fds 1 and 2 themselves: the caller's pipes must close here,
    // or a caller reading our output to its end (`$(ossfs-rs mount ...)`,
    // `Command::output`) waits for as long as the mount lives.
    nix::unistd::dup2_stdout(&target).map_err(std::io::Error::from)?;
    nix::unistd::dup2_stderr(&target).map_err(std::io::Error::from)?;
    Ok(())
}
