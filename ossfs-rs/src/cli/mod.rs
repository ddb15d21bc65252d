//! The command line of `ossfs-rs`: the [`Cli`] grammar, and each subcommand
//! handed to the module that owns its arguments and behaviour:
//! - `mount` and `umount`: [`mount`] (a command line in the ossfs form,
//!   `ossfs-rs bucket[:/prefix] /mnt -o ...`, also what mount.fuse3 runs
//!   for an fstab line, is rewritten to `mount` first);
//! - `status` and `upgrade`: `supervisor::status` (the supervised mounts of
//!   this host; a live upgrade of one);
//! - `check`: the `check` module, with its arguments from `config::plan`;
//! - `serve`: the embedded S3-compatible endpoint, `serve`;
//! - `demo`: [`demo`], the self-contained tour;
//! - `__worker` and `__supervise` (hidden, internal): a supervisor's worker
//!   (`supervisor::worker`) and a supervisor taking over a live mount
//!   (`supervisor::supervise`).
//!
//! This file only parses, dispatches and sets up logging: the mount,
//! status and supervisor commands run their own blocking sessions and
//! logging; check, serve and demo run on a tokio runtime made here. Logs go
//! to stderr and never contain secrets (credentials redact themselves in
//! `Debug`).
//!
//! Imports: the top of the stack, so any layer below; it names `config`,
//! `check`, `supervisor` and `serve`.

pub mod demo;
pub mod mount;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ossfs-rs: mount Alibaba Cloud OSS, Tencent Cloud COS and S3-compatible buckets.
#[derive(Debug, Parser)]
#[command(name = "ossfs-rs", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing-subscriber syntax): error, warn, info, debug, trace.
    #[arg(long, global = true, env = "OSSFS_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose credentials, endpoint and bucket before mounting.
    Check(crate::config::StoreArgs),
    /// Run the embedded S3-compatible endpoint (in memory) on a local port.
    Serve(crate::serve::ServeArgs),
    /// Self-contained demo: start the embedded endpoint and exercise it.
    Demo(crate::cli::demo::DemoArgs),
    /// Mount a bucket or a prefix of one (also: `ossfs-rs bucket:/prefix /mnt -o ...`).
    Mount(crate::config::MountArgs),
    /// Unmount a mount point.
    Umount(crate::cli::mount::UmountArgs),
    /// Show the supervised mounts of this host (pids, restarts, version).
    Status(crate::supervisor::status::StatusArgs),
    /// Replace a mount's worker (or supervisor) by a new binary, live.
    Upgrade(crate::supervisor::status::UpgradeArgs),
    /// Internal: serve a mount as the supervisor's worker.
    #[command(name = "__worker", hide = true)]
    Worker(crate::supervisor::worker::WorkerArgs),
    /// Internal: take over a live mount as its supervisor.
    #[command(name = "__supervise", hide = true)]
    Supervise(crate::supervisor::supervise::SuperviseArgs),
}

/// Subcommand names; any other first argument that is not a flag is the
/// ossfs form `ossfs-rs bucket[:/prefix] mountpoint -o ...` (also what
/// mount.fuse3 runs for an fstab line), rewritten to `mount`.
const SUBCOMMANDS: [&str; 11] = [
    "check",
    "serve",
    "demo",
    "mount",
    "umount",
    "status",
    "upgrade",
    "help",
    "version",
    "__worker",
    "__supervise",
];

/// Insert `mount` when the command line is in the ossfs form. A bucket may
/// share its name with a subcommand (`demo`): when the second word is an
/// existing directory given as a path, the line is a mount.
fn normalize_argv(mut argv: Vec<OsString>) -> Vec<OsString> {
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("-");
    let second_is_dir = argv.get(2).is_some_and(|a| {
        let p = std::path::Path::new(a);
        a.to_string_lossy().contains('/') && p.is_dir()
    });
    let ossfs_form = !first.starts_with('-')
        && (!SUBCOMMANDS.contains(&first)
            || (second_is_dir
                && !matches!(
                    first,
                    "mount" | "umount" | "help" | "status" | "upgrade" | "__worker" | "__supervise"
                )));
    if ossfs_form {
        argv.insert(1, OsString::from("mount"));
    }
    argv
}

/// Parse the command line, set up logging and run the subcommand.
pub fn run() -> ExitCode {
    let argv = normalize_argv(std::env::args_os().collect());
    let cli = Cli::parse_from(argv.clone());
    // The mount daemon runs its own (blocking) session and logging.
    match cli.command {
        Command::Mount(args) => return crate::cli::mount::run(args, &argv[1..]),
        Command::Umount(args) => return crate::cli::mount::run_umount(args),
        Command::Status(args) => return crate::supervisor::status::run_status(args),
        Command::Upgrade(args) => return crate::supervisor::status::run_upgrade(args),
        Command::Worker(args) => return crate::supervisor::worker::run(args),
        Command::Supervise(args) => return crate::supervisor::supervise::run_adopt(args),
        _ => {}
    }
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ossfs-rs: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Check(args) => crate::check::run(args).await,
            Command::Serve(args) => crate::serve::run(args).await,
            Command::Demo(args) => crate::cli::demo::run(args).await,
            _ => ExitCode::FAILURE,
        }
    })
}

fn init_logging(filter: &str) {
    // s3s (the embedded endpoint's HTTP layer) logs every client error, even
    // a 404, at ERROR: keep it silent unless the filter names it.
    let quiet_s3s = |f: &str| {
        if f.contains("s3s") {
            f.to_owned()
        } else {
            format!("{f},s3s=off")
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(quiet_s3s(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_s3s("warn")));
    // A second initialisation (tests) is harmless: ignore its error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn ossfs_form_becomes_mount() {
        let out = normalize_argv(argv(&["ossfs-rs", "bkt:/p", "/mnt", "-o", "url=x"]));
        assert_eq!(
            out,
            argv(&["ossfs-rs", "mount", "bkt:/p", "/mnt", "-o", "url=x"])
        );
        let out = normalize_argv(argv(&["ossfs-rs", "check", "bkt"]));
        assert_eq!(out, argv(&["ossfs-rs", "check", "bkt"]));
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().to_str().unwrap();
        let out = normalize_argv(argv(&["ossfs-rs", "demo", mp]));
        assert_eq!(out, argv(&["ossfs-rs", "mount", "demo", mp]));
        let out = normalize_argv(argv(&["ossfs-rs", "demo"]));
        assert_eq!(out, argv(&["ossfs-rs", "demo"]));
        let out = normalize_argv(argv(&["ossfs-rs", "umount", mp]));
        assert_eq!(out, argv(&["ossfs-rs", "umount", mp]));
        let out = normalize_argv(argv(&["ossfs-rs", "--version"]));
        assert_eq!(out, argv(&["ossfs-rs", "--version"]));
        let cli = Cli::try_parse_from(normalize_argv(argv(&[
            "ossfs-rs", "b", "/m", "-o", "ro", "-f",
        ])))
        .unwrap();
        assert!(matches!(cli.command, Command::Mount(m) if m.foreground && m.options == ["ro"]));
    }
}
