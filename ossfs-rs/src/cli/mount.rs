//! `ossfs-rs mount` and `ossfs-rs umount`: the commands around a FUSE
//! session.
//!
//! Like ossfs and s3fs, `mount` returns once the mount is ready (exit 0) or
//! has failed (non-zero, with the reason on stderr, and no mount left
//! behind): it checks the request and the mount point, then starts itself
//! again in the foreground with `--notify-ready` ([`crate::sys::daemon`]);
//! that child becomes the mount's supervisor
//! ([`crate::supervisor::supervise`]). `-f` skips the re-exec and stays in
//! the foreground.
//!
//! Imports: `config` (the request), `sys` (mount point, background start)
//! and `supervisor` (the session).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::request::{MountArgs, build_request};
use crate::sys::daemon::spawn_background;
use crate::sys::mountinfo::{check_mountpoint, unmount};

/// Arguments of `ossfs-rs umount`.
#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// The mount point to unmount.
    pub mountpoint: PathBuf,
}

/// Run `ossfs-rs mount`.
pub fn run(args: MountArgs, argv: &[OsString]) -> ExitCode {
    let request = match build_request(&args) {
        Ok(r) => r,
        Err((code, msg)) => {
            eprintln!("ossfs-rs: {msg}");
            return ExitCode::from(code);
        }
    };
    if let Err(e) = check_mountpoint(&args.mountpoint, request.options.nonempty) {
        eprintln!("ossfs-rs: {e}");
        return ExitCode::FAILURE;
    }
    if !args.foreground {
        return spawn_background(argv, &args.mountpoint);
    }
    if args.notify_ready {
        // Leave the caller's session so a closed terminal does not end the mount.
        let _ = nix::unistd::setsid();
    }
    match crate::supervisor::supervise::run_mount(request, argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ossfs-rs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `ossfs-rs umount`.
pub fn run_umount(args: UmountArgs) -> ExitCode {
    match unmount(&args.mountpoint) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ossfs-rs: {e}");
            ExitCode::FAILURE
        }
    }
}
