//! `ossfs-rs status` and `ossfs-rs upgrade`: the operator's view of the
//! supervised mounts of this host, through each supervisor's control socket.
//!
//! Imports: [`super::control`] and [`super::state`] only: the operator's
//! side talks to a supervisor through its socket, never in process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::control::{self, Request, Status};
use super::state::{self, StateDir, SupervisorInfo, now_secs};

/// Arguments of `ossfs-rs status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this mount point.
    pub mountpoint: Option<PathBuf>,
    /// Machine-readable output (one JSON array).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ossfs-rs upgrade`.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The mount point whose daemon to replace.
    pub mountpoint: PathBuf,
    /// The new binary (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Replace the supervisor process instead of the worker.
    #[arg(long)]
    pub supervisor: bool,
}

/// One mount as `status` shows it.
#[derive(Debug, serde::Serialize)]
struct Row {
    state_dir: PathBuf,
    /// The supervisor answered (else the figures come from its last file).
    answering: bool,
    #[serde(flatten)]
    status: Status,
}

fn state_for(mountpoint: &Path) -> Result<StateDir, String> {
    let canonical =
        std::fs::canonicalize(mountpoint).map_err(|e| format!("{}: {e}", mountpoint.display()))?;
    let dir = state::state_dir_for(&canonical);
    if !dir.join("supervisor.json").exists() {
        return Err(format!(
            "{} is not a supervised ossfs-rs mount of this user (no state in {})",
            mountpoint.display(),
            dir.display()
        ));
    }
    Ok(StateDir::new(dir))
}

fn row(dir: PathBuf) -> Row {
    let state = StateDir::new(dir.clone());
    match control::call(&state.control(), &Request::Status, Duration::from_secs(5)) {
        Ok(r) if r.ok => Row {
            state_dir: dir,
            answering: true,
            status: r.status.unwrap_or_default(),
        },
        _ => Row {
            state_dir: dir,
            answering: false,
            status: Status {
                supervisor: state
                    .read_json::<SupervisorInfo>(&state.supervisor())
                    .unwrap_or_default(),
                worker: state.read_json(&state.worker()).ok(),
                ..Status::default()
            },
        },
    }
}

fn age(since: u64) -> String {
    let s = now_secs().saturating_sub(since);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Run `ossfs-rs status`.
pub fn run_status(args: StatusArgs) -> ExitCode {
    let dirs = match &args.mountpoint {
        Some(mp) => match state_for(mp) {
            Ok(s) => vec![s.dir],
            Err(e) => {
                eprintln!("ossfs-rs: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => state::all_state_dirs(),
    };
    let rows: Vec<Row> = dirs.into_iter().map(row).collect();
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("ossfs-rs: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if rows.is_empty() {
        println!(
            "no supervised ossfs-rs mounts (state directory {})",
            state::runtime_dir().display()
        );
        return ExitCode::SUCCESS;
    }
    for r in &rows {
        let s = &r.status.supervisor;
        println!("{}  {}  {}", s.mountpoint.display(), s.source, s.endpoint);
        println!(
            "  supervisor pid {}{}  version {}  up {}  mounted {} ago",
            s.pid,
            if r.answering { "" } else { " (NOT ANSWERING)" },
            s.version,
            age(s.started_at),
            age(s.mounted_at)
        );
        match &r.status.worker {
            Some(w) => {
                println!(
                    "  worker pid {}  binary {}  up {}  in flight {}  nodes {}  open {}  writers {}",
                    w.pid,
                    w.binary.display(),
                    age(w.started_at),
                    r.status.requests_in_flight,
                    w.inodes,
                    w.open_handles,
                    w.open_writers
                );
                println!(
                    "  block cache {} MiB  buffers {} of {} MiB",
                    w.block_cache_bytes >> 20,
                    w.memory_used >> 20,
                    w.memory_limit >> 20
                );
            }
            None => println!("  worker: none reported"),
        }
        println!(
            "  restarts {}  upgrades {}  last: {}  staging {} bytes  kernel FUSE {} (resend {})",
            s.worker_restarts,
            s.upgrades,
            s.last_restart_reason.as_deref().unwrap_or("-"),
            r.status.staging_bytes,
            s.kernel_protocol,
            if s.kernel_resend { "yes" } else { "no" }
        );
    }
    ExitCode::SUCCESS
}

/// Run `ossfs-rs upgrade`.
pub fn run_upgrade(args: UpgradeArgs) -> ExitCode {
    let state = match state_for(&args.mountpoint) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ossfs-rs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let binary = match args.binary.map(std::fs::canonicalize).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ossfs-rs: --binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Default: the binary running this command (the supervisor's own may
    // have been replaced on disk, which is why one upgrades).
    let binary = binary.or_else(|| std::env::current_exe().ok());
    let request = Request::Upgrade {
        binary,
        supervisor: args.supervisor,
    };
    match control::call(&state.control(), &request, Duration::from_secs(180)) {
        Ok(r) if r.ok => {
            println!(
                "ossfs-rs: {}",
                r.message.unwrap_or_else(|| "upgraded".into())
            );
            ExitCode::SUCCESS
        }
        // A supervisor that re-executed itself closes the socket without
        // answering: check that the new one answers.
        Err(_) if args.supervisor => {
            std::thread::sleep(Duration::from_millis(300));
            match control::call(&state.control(), &Request::Status, Duration::from_secs(10)) {
                Ok(r) if r.ok => {
                    println!("ossfs-rs: supervisor replaced");
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("ossfs-rs: the supervisor did not come back; see the mount's log");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(r) => {
            eprintln!("ossfs-rs: upgrade failed: {}", r.error.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "ossfs-rs: cannot reach the supervisor at {}: {e}",
                state.control().display()
            );
            ExitCode::FAILURE
        }
    }
}
