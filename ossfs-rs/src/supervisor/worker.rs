//! The worker: the process that serves the filesystem on a connection the
//! supervisor keeps.
//!
//! `ossfs-rs __worker` is started by a supervisor with the `/dev/fuse` fd
//! (inherited), the credentials on a pipe, and a pipe to say "ready" on
//! ([`super::protocol`]). It reloads the journal (node ids, handles,
//! staging files of open writers), starts the fuser session through the
//! INIT relay ([`super::handoff`]), and then, on a restart, gets the
//! requests the dead worker left: FUSE_NOTIFY_RESEND where the kernel
//! offers it, else EIO for each request recorded in the in-flight table.
//!
//! It also keeps the mount alive on its own: if the supervisor dies, the
//! worker starts a new one (`__supervise --worker-pid`), which adopts it
//! ([`super::supervise::watch`]). SIGUSR2 makes it drain for a live
//! upgrade: stop taking requests, finish those in flight, exit with
//! [`EXIT_HANDOFF`].
//!
//! Imports: the supervisor's [`super::protocol`], [`super::setup`],
//! [`super::state`], [`super::journal`], [`super::handoff`],
//! [`super::fusedev`] and [`super::supervise::watch`] (never the
//! supervisor's loop); `config`, `fs` and `fuse` (what it serves) and
//! `metrics` (its endpoint and store wrapper).

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{Config, SessionACL};
use tracing::{error, info, warn};

use super::fusedev;
use super::handoff;
use super::journal::FileJournal;
use super::protocol::{ConnectionArgs, EXIT_HANDOFF, load_request, read_creds_pipe};
use super::setup::{self, ServeError};
use super::state::{StateDir, WorkerInfo, now_secs};
use super::supervise::watch::watch_supervisor;
use crate::config::MountRequest;
use crate::fs::Fs;
use crate::fs::journal::{JournalOp, JournalSink};
use crate::fuse::FuseFs;
use crate::fuse::inflight::InFlight;
use crate::fuse::ledger::Ledger;

/// How long a draining worker waits for its requests before leaving them
/// to the next worker (which gets them resent).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Threads reading the one `/dev/fuse` fd.
const FUSE_THREADS: usize = 8;

/// Arguments of `ossfs-rs __worker` (internal).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// A pipe to write `ready` on.
    #[arg(long)]
    pub ready_fd: Option<RawFd>,
    /// The kernel still waits for the INIT reply (first worker of a mount).
    #[arg(long)]
    pub first: bool,
    /// The supervisor to watch.
    #[arg(long)]
    pub supervisor_pid: u32,
}

/// Run a worker; returns when the mount is gone (0), after a drain
/// ([`EXIT_HANDOFF`]), or when it cannot serve (1).
pub fn run(args: WorkerArgs) -> ExitCode {
    // SAFETY: the supervisor passed these fds to us for our exclusive use.
    let fuse = unsafe { OwnedFd::from_raw_fd(args.conn.fuse_fd) };
    let state = StateDir::new(args.conn.state_dir.clone());
    if let Err(e) = super::state::check_state_dir(&state.dir) {
        eprintln!("ossfs-rs worker: {e}");
        return ExitCode::FAILURE;
    }
    let req = match load_request(&state) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ossfs-rs worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    setup::init_logging(req.options.log_filter(), false);
    match serve(&args, &state, &req, fuse) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            error!(error = %e, "worker cannot serve");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    args: &WorkerArgs,
    state: &StateDir,
    req: &MountRequest,
    fuse: OwnedFd,
) -> Result<i32, ServeError> {
    let started = Instant::now();
    let setup_err = |what: &str, e: std::io::Error| ServeError::Setup(format!("{what}: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ossfs-io")
        .build()
        .map_err(|e| setup_err("cannot start the async runtime", e))?;
    let creds = match args.conn.creds_fd {
        Some(fd) => read_creds_pipe(fd).map_err(|e| ServeError::Setup(e.to_string()))?,
        None => None,
    };
    let mut store = setup::store(req, creds.clone())?;
    if let Some(addr) = req.options.metrics {
        // Each worker serves the endpoint in turn (the dead one's port is
        // free again; a draining one exits before the next starts).
        runtime
            .block_on(crate::metrics::serve(addr))
            .map_err(|e| ServeError::Setup(format!("metrics endpoint {addr}: {e}")))?;
        store = Arc::new(crate::metrics::MeteredStore::new(
            store,
            crate::metrics::StoreMetrics,
        ));
    }
    let staging = setup::staging_dir(req, &state.dir);
    let config = setup::fs_config(req, &staging);

    let opened =
        FileJournal::open(&state.journal()).map_err(|e| setup_err("cannot open the journal", e))?;
    if opened.skipped > 0 {
        warn!(
            skipped = opened.skipped,
            "journal lines could not be read (a torn last write)"
        );
    }
    let answers = opened.restored.answers.clone();
    let file_journal = opened.journal.clone();
    let journal: Arc<dyn JournalSink> = if req.options.test_no_journal {
        // Benchmarks only: measures what journaling costs. A worker
        // restarted without a journal cannot answer for the old ids.
        warn!("test_no_journal: this mount will not survive a worker restart intact");
        Arc::new(Discard)
    } else {
        file_journal.clone()
    };
    let (fs, adoptions) = Fs::with_journal(store, config, journal.clone(), opened.restored)
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let fs = Arc::new(fs);
    runtime
        .block_on(fs.adopt(adoptions))
        .map_err(|e| ServeError::Setup(e.to_string()))?;

    let inflight = InFlight::open(&state.inflight())
        .map_err(|e| setup_err("cannot map the in-flight table", e))?;
    let stale = inflight.take_stale();
    let ledger = Arc::new(Ledger::supervised(journal.clone(), answers, inflight));
    let fuse_fs = FuseFs::supervised(fs.clone(), runtime.handle().clone(), ledger.clone());

    let init = std::fs::read(state.init())
        .map_err(|e| setup_err("cannot read the saved INIT request", e))?;
    let mut fuse_config = Config::default();
    fuse_config.n_threads = Some(FUSE_THREADS);
    let acl = if req.options.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let session = handoff::session_on(fuse_fs, fuse.as_fd(), &init, args.first, acl, fuse_config)
        .map_err(|e| setup_err("cannot start the FUSE session", e))?;
    let background = session
        .spawn()
        .map_err(|e| setup_err("cannot start the FUSE threads", e))?;

    if !args.first {
        recover_requests(fuse.as_fd(), &init, req.options.test_no_resend, &stale);
    }
    if let Some(fd) = args.ready_fd {
        // SAFETY: the supervisor passed this pipe for our "ready".
        let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let _ = std::io::Write::write_all(&mut pipe, b"ready\n");
    }
    info!(
        pid = std::process::id(),
        first = args.first,
        ms = started.elapsed().as_millis() as u64,
        "worker serving"
    );

    spawn_drain_on_sigusr2(&runtime, ledger.clone());
    spawn_stats(
        &runtime,
        state.clone(),
        fs.clone(),
        ledger.clone(),
        file_journal,
    );
    watch_supervisor(
        args.supervisor_pid,
        state.dir.clone(),
        req.options.logfile.clone(),
        fuse.as_fd(),
        creds,
    );

    let result = background.join();
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => Ok(0),
        Err(e) => Err(setup_err("the FUSE session failed", e)),
    }
}

/// A journal that records nothing (`-o test_no_journal`, for measuring).
#[derive(Debug)]
struct Discard;

impl JournalSink for Discard {
    fn record(&self, _op: &JournalOp) {}
}

/// Get back the requests a dead worker had taken: resent by the kernel
/// where it can, else answered with EIO so that nobody waits forever.
fn recover_requests(fuse: BorrowedFd<'_>, init: &[u8], no_resend: bool, stale: &[u64]) {
    if fusedev::init_has_resend(init) && !no_resend {
        match fusedev::notify_resend(fuse) {
            Ok(()) => {
                info!(
                    recorded = stale.len(),
                    "asked the kernel to resend the requests in flight"
                );
                return;
            }
            Err(e) => {
                warn!(error = %e, "FUSE_NOTIFY_RESEND failed; failing the requests in flight")
            }
        }
    }
    for &unique in stale {
        if let Err(e) = fusedev::reply_error(fuse, unique, libc::EIO) {
            warn!(unique, error = %e, "cannot end a request of the dead worker");
        }
    }
    if !stale.is_empty() {
        warn!(
            count = stale.len(),
            "requests of the dead worker ended with EIO (no resend)"
        );
    }
}

/// SIGUSR2: drain for a live upgrade, then exit with [`EXIT_HANDOFF`]
/// without running destructors (nothing must be unmounted or removed).
fn spawn_drain_on_sigusr2(runtime: &tokio::runtime::Runtime, ledger: Arc<Ledger>) {
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
            warn!("cannot install the SIGUSR2 handler; live upgrade will kill this worker instead");
            return;
        };
        usr2.recv().await;
        info!("draining for an upgrade");
        ledger.drain();
        let deadline = Instant::now() + DRAIN_LIMIT;
        while ledger.running() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if ledger.running() > 0 {
            warn!(
                running = ledger.running(),
                "requests still running after the drain limit; the next worker gets them again"
            );
        }
        info!("handing over");
        // SAFETY: _exit ends the process at once, which is the point.
        unsafe { libc::_exit(EXIT_HANDOFF) };
    });
}

/// Keep `worker.json` current for `ossfs-rs status`.
fn spawn_stats(
    runtime: &tokio::runtime::Runtime,
    state: StateDir,
    fs: Arc<Fs>,
    ledger: Arc<Ledger>,
    journal: Arc<FileJournal>,
) {
    let started_at = now_secs();
    let binary = std::env::current_exe().unwrap_or_default();
    runtime.spawn(async move {
        loop {
            let (inodes, open_handles, open_writers) = fs.table_sizes();
            let info = WorkerInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                binary: binary.clone(),
                started_at,
                requests_in_flight: ledger.running(),
                inodes,
                open_handles,
                open_writers,
                journal_bytes: journal.written(),
                block_cache_bytes: fs.block_cache_bytes(),
                memory_used: fs.memory_budget().used(),
                memory_limit: fs.memory_budget().limit(),
            };
            if let Err(e) = state.write_json(&state.worker(), &info) {
                warn!(error = %e, "cannot write worker.json");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
