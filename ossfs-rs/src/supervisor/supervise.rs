//! The supervisor: mounts, keeps the `/dev/fuse` fd, and keeps a worker
//! serving it.
//!
//! It is small on purpose: no store client, no filesystem, nothing that
//! can fail under load. Its loop waits for the worker; when the worker
//! exits it decides:
//!
//! - exit 0: the session ended (unmounted): clean up and exit;
//! - [`EXIT_HANDOFF`] during an upgrade: start the new binary at once;
//! - anything else (signal, panic, OOM kill): log the cause and start a new
//!   worker on the same fd, at once the first time, then with capped
//!   exponential backoff while workers keep dying young.
//!
//! The supervisor can itself be replaced: a worker whose supervisor died
//! starts a new one (`__supervise --worker-pid`) that adopts it, and
//! `ossfs-rs upgrade --supervisor` re-executes the supervisor in place
//! (same pid, so the worker stays its child).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::control::{self, Handler, Status};
use super::fusedev;
use super::setup::{self, ServeError};
use super::state::{self, StateDir, SupervisorInfo, WorkerInfo, now_secs};
use super::worker::{EXIT_HANDOFF, HandedCredentials};
use crate::config::MountRequest;
use crate::fuse::inflight::InFlight;
use crate::store::credentials::Credentials;

/// How long a new worker may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A worker that lived less than this counts as dying young.
const YOUNG: Duration = Duration::from_secs(1);
/// Young deaths in a row before restarts are delayed: a worker killed by
/// an operator (or the OOM killer) now and then is replaced at once; only
/// a crash loop backs off.
const CRASH_LOOP: u32 = 3;
/// Longest wait between restarts of a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Arguments of `ossfs-rs __supervise` (internal): a supervisor taking
/// over a live mount.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long)]
    pub fuse_fd: RawFd,
    #[arg(long)]
    pub creds_fd: Option<RawFd>,
    /// A live worker to adopt; without it a new worker is started.
    #[arg(long)]
    pub worker_pid: Option<u32>,
}

type Creds = Option<(Credentials, String)>;

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
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let io_err = |what: &str, e: std::io::Error| ServeError::Setup(format!("{what}: {e}"));
    state
        .write_json(&state.args(), &args)
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
    let fuse = unsafe { OwnedFd::from_raw_fd(args.fuse_fd) };
    let state = StateDir::new(args.state_dir.clone());
    let req = match super::worker::load_request(&state) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ossfs-rs supervisor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    setup::init_logging(req.options.log_filter(), false);
    let creds = match args.creds_fd {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remove what a previous, dead mount left in `state` (but not its
/// staging files, which may hold data that could not be uploaded).
fn prepare_state_dir(state: &StateDir) -> Result<(), ServeError> {
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
    for f in [
        state.args(),
        state.init(),
        state.journal(),
        state.inflight(),
        state.control(),
        state.supervisor(),
        state.worker(),
    ] {
        let _ = std::fs::remove_file(f);
    }
    crate::sys::private_dir::create_private_dir(&state.dir)
        .map_err(|e| ServeError::Setup(format!("cannot create {}: {e}", state.dir.display())))
}

/// SIGTERM and SIGINT are taken by a dedicated thread (sigwait), so they
/// are blocked in every thread; children get a clean mask (see
/// [`child_command`]).
fn block_stop_signals() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.add(nix::sys::signal::Signal::SIGINT);
    let _ = set.thread_block();
}

/// Read the credentials a [`creds_pipe`] holds (`None`: an empty pipe,
/// the mount reads an STS directory itself). Takes ownership of `fd`.
pub fn read_creds_pipe(fd: RawFd) -> Result<Creds, String> {
    // SAFETY: the fd was passed to this process to read once.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut data)
        .map_err(|e| format!("cannot read the credentials pipe: {e}"))?;
    if data.is_empty() {
        return Ok(None);
    }
    let h: HandedCredentials = serde_json::from_slice(&data)
        .map_err(|_| "the credentials pipe held no credentials".to_string())?;
    let mut c = Credentials::new(h.access_key_id, h.secret_access_key);
    if let Some(t) = h.security_token {
        c = c.with_token(t);
    }
    Ok(Some((c, h.source)))
}

/// A pipe holding `creds`, its read end for a child (empty when none).
pub fn creds_pipe(creds: &Creds) -> std::io::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    if let Some((c, source)) = creds {
        let h = HandedCredentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            security_token: c.security_token.clone(),
            source: source.clone(),
        };
        let data = serde_json::to_vec(&h).map_err(std::io::Error::other)?;
        let mut w = std::fs::File::from(write);
        w.write_all(&data)?;
    }
    Ok(read)
}

/// A command for a child of ours that inherits `fds` and none of our
/// blocked signals.
pub fn child_command(binary: &Path, fds: &[RawFd]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(binary);
    for &fd in fds {
        fusedev::inherit_fd(&mut cmd, fd);
    }
    // SAFETY: sigprocmask/sigemptyset are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// The command that starts a supervisor taking over the live connection
/// `fuse` of the mount whose state is in `state_dir`: `__supervise`, with
/// the fd and a pipe of `creds` inherited, adopting `worker` when given (else
/// it starts one). `new_session`: in a session of its own, so that a signal
/// to the caller's process group (a container restart) does not reach it.
/// The returned pipe must stay open until the command has started.
pub fn supervise_command(
    binary: &Path,
    state_dir: &Path,
    fuse: RawFd,
    creds: &Creds,
    worker: Option<u32>,
    new_session: bool,
) -> std::io::Result<(Command, OwnedFd)> {
    let pipe = creds_pipe(creds)?;
    let mut cmd = child_command(binary, &[fuse, pipe.as_raw_fd()]);
    if new_session {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    cmd.arg("__supervise")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--fuse-fd")
        .arg(fuse.to_string())
        .arg("--creds-fd")
        .arg(pipe.as_raw_fd().to_string());
    if let Some(pid) = worker {
        cmd.arg("--worker-pid").arg(pid.to_string());
    }
    Ok((cmd, pipe))
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

    /// Start a worker on the fd and wait until it serves.
    fn start_worker(&self, first: bool) -> Result<WorkerProc, String> {
        let binary = lock(&self.binary).clone();
        let creds =
            creds_pipe(&self.creds).map_err(|e| format!("cannot pass the credentials: {e}"))?;
        let (ready_read, ready_write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
        let fuse_fd = self.fuse.as_raw_fd();
        let mut cmd = child_command(
            &binary,
            &[fuse_fd, creds.as_raw_fd(), ready_write.as_raw_fd()],
        );
        cmd.arg("__worker")
            .arg("--state-dir")
            .arg(&self.state.dir)
            .arg("--fuse-fd")
            .arg(fuse_fd.to_string())
            .arg("--creds-fd")
            .arg(creds.as_raw_fd().to_string())
            .arg("--ready-fd")
            .arg(ready_write.as_raw_fd().to_string())
            .arg("--supervisor-pid")
            .arg(std::process::id().to_string());
        if first {
            cmd.arg("--first");
        }
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

    /// Wait for the worker to end; returns its exit code (None: killed by
    /// a signal, or unknown for an adopted worker) and a description.
    fn wait(worker: WorkerProc) -> (Option<i32>, String) {
        match worker {
            WorkerProc::Child(mut c) => match c.wait() {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    let what = match (status.code(), status.signal()) {
                        (_, Some(sig)) => format!(
                            "killed by signal {sig} ({})",
                            nix::sys::signal::Signal::try_from(sig)
                                .map(|s| s.as_str())
                                .unwrap_or("?")
                        ),
                        (Some(code), _) => format!("exited with status {code}"),
                        _ => "ended".to_string(),
                    };
                    (status.code(), what)
                }
                Err(e) => (None, format!("cannot be waited for: {e}")),
            },
            WorkerProc::Adopted(pid) => {
                wait_pid_exit(pid);
                // Still our child after a supervisor re-exec: reap it and
                // learn how it ended.
                let mut status = 0;
                // SAFETY: waitpid on a pid with a valid status pointer.
                let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
                if rc == pid as libc::pid_t {
                    if libc::WIFEXITED(status) {
                        let code = libc::WEXITSTATUS(status);
                        return (Some(code), format!("exited with status {code}"));
                    }
                    if libc::WIFSIGNALED(status) {
                        return (None, format!("killed by signal {}", libc::WTERMSIG(status)));
                    }
                }
                (None, "exited (adopted worker: status unknown)".to_string())
            }
        }
    }

    /// The supervision loop; returns when the mount is gone.
    fn supervise(self: Arc<Self>, mut worker: WorkerProc) {
        let mut young_deaths: u32 = 0;
        let mut started = Instant::now();
        loop {
            let pid = worker.pid();
            let (code, what) = Self::wait(worker);
            let upgrading = lock(&self.upgrade).binary.is_some();
            if code == Some(0) {
                info!(worker = pid, "the mount is gone; supervisor exits");
                break;
            }
            if code == Some(EXIT_HANDOFF) && upgrading {
                info!(worker = pid, "worker handed over for the upgrade");
            } else {
                let lived = started.elapsed();
                young_deaths = if lived < YOUNG { young_deaths + 1 } else { 0 };
                {
                    let mut info = lock(&self.info);
                    info.worker_restarts += 1;
                    info.last_restart_reason = Some(format!(
                        "worker {pid} {what} after {:.1}s",
                        lived.as_secs_f64()
                    ));
                }
                self.save_info();
                error!(worker = pid, cause = %what, lived_s = lived.as_secs_f64(), "worker died; starting a new one on the same connection");
                if young_deaths >= CRASH_LOOP {
                    let delay = backoff(young_deaths);
                    warn!(
                        delay_ms = delay.as_millis() as u64,
                        young_deaths, "worker keeps dying young; backing off"
                    );
                    std::thread::sleep(delay);
                }
            }
            let mut reverted = None;
            worker = loop {
                started = Instant::now();
                match self.start_worker(false) {
                    Ok(w) => break w,
                    Err(e) if upgrading && reverted.is_none() => {
                        // The new binary passed its preflight but cannot
                        // serve: go back to the one that did, at once.
                        let previous = lock(&self.upgrade).previous.clone();
                        if let Some(previous) = previous {
                            error!(error = %e, previous = %previous.display(), "the upgraded worker cannot start; starting the previous binary again");
                            *lock(&self.binary) = previous;
                        }
                        reverted = Some(e);
                    }
                    Err(e) => {
                        young_deaths += 1;
                        let delay = backoff(young_deaths);
                        error!(error = %e, delay_ms = delay.as_millis() as u64, "cannot start a worker; retrying");
                        {
                            let mut info = lock(&self.info);
                            info.last_restart_reason = Some(e.clone());
                        }
                        self.save_info();
                        if !self.still_mounted() {
                            info!("the mount is gone; supervisor exits");
                            self.finish_upgrade(Err("the mount is gone".into()));
                            self.cleanup();
                            return;
                        }
                        std::thread::sleep(delay);
                    }
                }
            };
            if upgrading {
                let binary = lock(&self.binary).clone();
                if let Some(e) = reverted {
                    self.finish_upgrade(Err(format!(
                        "the new worker could not start ({e}); worker {} runs {} again",
                        worker.pid(),
                        binary.display()
                    )));
                    continue;
                }
                {
                    let mut info = lock(&self.info);
                    info.upgrades += 1;
                }
                self.save_info();
                self.finish_upgrade(Ok(format!(
                    "worker {} now runs {}",
                    worker.pid(),
                    binary.display()
                )));
            }
        }
        self.finish_upgrade(Err("the mount is gone".into()));
        self.cleanup();
    }

    fn finish_upgrade(&self, result: Result<String, String>) {
        let mut up = lock(&self.upgrade);
        if up.binary.take().is_some() {
            up.result = Some(result);
            self.upgraded.notify_all();
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
        for f in [
            self.state.args(),
            self.state.init(),
            self.state.journal(),
            self.state.inflight(),
            self.state.control(),
            self.state.supervisor(),
            self.state.worker(),
        ] {
            let _ = std::fs::remove_file(f);
        }
        let staging = self.staging.clone();
        if std::fs::remove_dir(&staging).is_err() && staging.exists() {
            warn!(dir = %staging.display(), "staging files were left (data that could not be uploaded); kept");
            return;
        }
        let _ = std::fs::remove_dir(&self.state.dir);
    }

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

/// The wait before restarting a worker after `young_deaths` quick deaths
/// in a row: 100 ms doubling up to [`MAX_BACKOFF`].
fn backoff(young_deaths: u32) -> Duration {
    Duration::from_millis(50u64 << young_deaths.clamp(1, 10)).min(MAX_BACKOFF)
}

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
pub fn watch_supervisor(pid: u32, state_dir: PathBuf, fuse: BorrowedFd<'_>, creds: Creds) {
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

    fn fuse_fd(&self) -> BorrowedFd<'_> {
        self.fuse.as_fd()
    }
}

/// How long `BINARY --version` may take in an upgrade's preflight.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The state directories of this user's mounts.
pub fn all_state_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state::runtime_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("supervisor.json").exists())
        .collect();
    dirs.sort();
    dirs
}
