//! Starting a supervisor, and starting a worker.
//!
//! [`run_mount`] is `ossfs-rs mount`: the preflight check of the bucket
//! and the credentials (once, here, so that a bad mount fails before
//! anything is mounted), the state directory, the mount and the kernel's
//! INIT request (saved for every later worker), the first worker, then
//! "mounted" to the caller (or readiness to the background start).
//! [`run_adopt`] is `__supervise`: a supervisor taking over a live mount
//! from its state directory, adopting the running worker or starting one.
//!
//! A worker counts as started when it writes `ready` on a pipe, within
//! [`READY_TIMEOUT`]: a worker that cannot serve (bad binary, store
//! unreachable) is reported, never left hanging. SIGTERM and SIGINT are
//! taken by a thread of their own (sigwait) that unmounts; the loop then
//! sees the worker end.
//!
//! Imports: [`super`] (the supervisor), the supervisor's `protocol`,
//! `control`, `fusedev`, `setup` and `state`; `config`, `fuse` (the
//! in-flight table it creates) and `sys`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{READY_TIMEOUT, SuperviseArgs, Supervisor, WorkerProc, lock};
use crate::config::MountRequest;
use crate::fuse::inflight::InFlight;
use crate::supervisor::control;
use crate::supervisor::fusedev;
use crate::supervisor::protocol::{self, load_request, read_creds_pipe, worker_command};
use crate::supervisor::setup::{self, ServeError};
use crate::supervisor::state::{self, StateDir, SupervisorInfo, now_secs};

/// Mount `req` and supervise it until it is unmounted. `argv` is the
/// mount command line, saved for the workers.
pub fn run_mount(req: MountRequest, argv: &[OsString]) -> Result<(), ServeError> {
    setup::init_logging(req.options.log_filter(), req.options.logfile.is_none());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Setup(format!("cannot start the async runtime: {e}")))?;
    setup::preflight(&req, &runtime)?;
    drop(runtime);
    let creds = setup::handoff_credentials(&req)?;

    let state = StateDir::new(state::state_dir_for(&req.mountpoint));
    prepare_state_dir(&state)?;
    let io_err = |what: &str, e: std::io::Error| ServeError::Setup(format!("{what}: {e}"));
    protocol::save_request(&state, argv)
        .map_err(|e| io_err("cannot write the state directory", e))?;
    InFlight::create(&state.inflight())
        .map_err(|e| io_err("cannot create the in-flight table", e))?;

    let fuse = fusedev::mount(&req.mountpoint, &setup::mount_spec(&req)).map_err(|source| {
        ServeError::Mount {
            path: req.mountpoint.display().to_string(),
            source,
        }
    })?;
    let init = match fusedev::read_init(fuse.as_fd()) {
        Ok(i) => i,
        Err(e) => {
            let _ = fusedev::unmount(&req.mountpoint, true);
            return Err(io_err("the kernel sent no INIT", e));
        }
    };
    if let Err(e) = state.write_private(&state.init(), &init) {
        let _ = fusedev::unmount(&req.mountpoint, true);
        return Err(io_err("cannot save the INIT request", e));
    }
    let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ossfs-rs"));
    let info = SupervisorInfo {
        mountpoint: req.mountpoint.clone(),
        source: format!("{}:/{}", req.source.bucket, req.source.prefix),
        endpoint: req.options.url.clone().unwrap_or_default(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        binary: binary.clone(),
        mounted_at: now_secs(),
        started_at: now_secs(),
        kernel_resend: fusedev::init_has_resend(&init),
        kernel_protocol: fusedev::init_version(&init),
        ..SupervisorInfo::default()
    };
    let sup = Arc::new(Supervisor::new(state, fuse, &req, creds, info, binary));
    sup.save_info();
    block_stop_signals();

    let first = match sup.start_worker(true) {
        Ok(w) => w,
        Err(e) => {
            let _ = fusedev::unmount(&req.mountpoint, true);
            sup.cleanup();
            return Err(ServeError::Setup(format!("the worker did not start: {e}")));
        }
    };
    if let Err(e) = control::serve(&sup.state.control(), sup.clone()) {
        warn!(error = %e, "cannot open the control socket; status and upgrade will not work");
    }
    if let Err(e) =
        crate::sys::readahead::raise(&req.mountpoint, crate::sys::readahead::READ_AHEAD_KIB)
    {
        tracing::debug!(error = %e, "kernel readahead left at its default");
    }
    info!(mountpoint = %req.mountpoint.display(), source = %sup.info().source, worker = first.pid(), "mounted");
    if req.notify_ready {
        crate::sys::daemon::notify_ready_and_detach(req.options.logfile.as_deref())
            .map_err(|e| ServeError::Setup(format!("cannot detach: {e}")))?;
    } else {
        eprintln!(
            "ossfs-rs: {} mounted at {}",
            sup.info().source,
            req.mountpoint.display()
        );
    }
    sup.clone().watch_stop_signals();
    sup.supervise(first);
    Ok(())
}

/// `ossfs-rs __supervise`: take over a live mount (the previous supervisor
/// died, was upgraded, or the CSI plugin restarts a volume from its kept
/// fd).
pub fn run_adopt(args: SuperviseArgs) -> std::process::ExitCode {
    // SAFETY: the fd was passed to us to own.
    let fuse = unsafe { OwnedFd::from_raw_fd(args.conn.fuse_fd) };
    let state = StateDir::new(args.conn.state_dir.clone());
    // Never take a command line or a binary to exec from a directory
    // another user could have written.
    if let Err(e) = state::check_state_dir(&state.dir) {
        eprintln!("ossfs-rs supervisor: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let req = match load_request(&state) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ossfs-rs supervisor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    setup::init_logging(req.options.log_filter(), false);
    let creds = match args.conn.creds_fd {
        Some(fd) => match read_creds_pipe(fd) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "cannot read the handed credentials");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut info: SupervisorInfo = state.read_json(&state.supervisor()).unwrap_or_default();
    info.pid = std::process::id();
    info.started_at = now_secs();
    info.version = env!("CARGO_PKG_VERSION").to_string();
    let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ossfs-rs"));
    info.binary = binary.clone();
    let worker_binary = if info.worker_binary.as_os_str().is_empty() {
        binary
    } else {
        info.worker_binary.clone()
    };
    let sup = Arc::new(Supervisor::new(
        state,
        fuse,
        &req,
        creds,
        info,
        worker_binary,
    ));
    block_stop_signals();
    let worker = match args.worker_pid {
        Some(pid) => {
            info!(worker = pid, "supervisor took over a live worker");
            *lock(&sup.worker_pid) = pid;
            WorkerProc::Adopted(pid)
        }
        None => loop {
            match sup.start_worker(false) {
                Ok(w) => break w,
                Err(e) => {
                    error!(error = %e, "cannot start a worker on the kept connection; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        },
    };
    sup.save_info();
    if let Err(e) = control::serve(&sup.state.control(), sup.clone()) {
        warn!(error = %e, "cannot open the control socket");
    }
    sup.clone().watch_stop_signals();
    sup.supervise(worker);
    std::process::ExitCode::SUCCESS
}

/// Make sure `state` and the runtime directory above it are ours and
/// private (see [`state::check_state_dir`]), then remove what a previous,
/// dead mount left in `state` (but not its staging files, which may hold
/// data that could not be uploaded).
fn prepare_state_dir(state: &StateDir) -> Result<(), ServeError> {
    state::create_state_dir(&state.dir).map_err(|e| ServeError::Setup(e.to_string()))?;
    if state.control().exists()
        && control::call(
            &state.control(),
            &control::Request::Status,
            Duration::from_secs(2),
        )
        .is_ok()
    {
        return Err(ServeError::Setup(format!(
            "a supervisor for this mount point is still running (state in {})",
            state.dir.display()
        )));
    }
    state.remove_files();
    Ok(())
}

/// SIGTERM and SIGINT are taken by a dedicated thread (sigwait), so they
/// are blocked in every thread; children get a clean mask (see
/// [`protocol::child_command`]).
fn block_stop_signals() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.add(nix::sys::signal::Signal::SIGINT);
    let _ = set.thread_block();
}

impl Supervisor {
    /// SIGTERM/SIGINT: unmount; the worker then ends and so do we.
    fn watch_stop_signals(self: Arc<Self>) {
        let _ = std::thread::Builder::new()
            .name("ossfs-signals".into())
            .spawn(move || {
                let mut set = nix::sys::signal::SigSet::empty();
                set.add(nix::sys::signal::Signal::SIGTERM);
                set.add(nix::sys::signal::Signal::SIGINT);
                loop {
                    let Ok(sig) = set.wait() else { return };
                    info!(signal = sig.as_str(), "unmounting");
                    if let Err(e) = fusedev::unmount(&self.mountpoint, false) {
                        warn!(error = %e, "unmount failed; detaching lazily");
                        let _ = fusedev::unmount(&self.mountpoint, true);
                    }
                }
            });
    }

    /// Start a worker on the fd and wait until it serves.
    pub(super) fn start_worker(&self, first: bool) -> Result<WorkerProc, String> {
        let binary = lock(&self.binary).clone();
        let (ready_read, ready_write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
        let (mut cmd, creds) = worker_command(
            &binary,
            &self.state.dir,
            self.fuse.as_raw_fd(),
            &self.creds,
            ready_write.as_raw_fd(),
            std::process::id(),
            first,
        )
        .map_err(|e| format!("cannot pass the credentials: {e}"))?;
        // Never the caller's pipes: stdout is nothing, and the log goes to
        // the log file, or through us (our stderr follows our detaching).
        cmd.stdout(Stdio::null());
        let relay = match self.logfile.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        }) {
            Some(Ok(f)) => {
                cmd.stderr(Stdio::from(f));
                false
            }
            _ => {
                cmd.stderr(Stdio::piped());
                true
            }
        };
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        if relay && let Some(err) = child.stderr.take() {
            let _ = std::thread::Builder::new()
                .name("ossfs-worker-log".into())
                .spawn(move || {
                    let mut lines = BufReader::new(err);
                    let mut line = Vec::new();
                    while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                        let _ = std::io::stderr().write_all(&line);
                        line.clear();
                    }
                });
        }
        drop(creds);
        drop(ready_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(std::fs::File::from(ready_read)).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.trim() == "ready" => {
                info!(worker = child.id(), ms = started.elapsed().as_millis() as u64, binary = %binary.display(), "worker ready");
                *lock(&self.worker_pid) = child.id();
                {
                    let mut info = lock(&self.info);
                    info.worker_pid = child.id();
                    info.worker_binary = binary;
                }
                self.save_info();
                Ok(WorkerProc::Child(child))
            }
            Ok(_) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "the worker exited before serving ({status}); its log says why"
                ))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the worker did not become ready within {}s",
                    READY_TIMEOUT.as_secs()
                ))
            }
        }
    }
}
