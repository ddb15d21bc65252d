//! Real FUSE mounts of the shared Garage, made by the real `ossfs-rs` binary.
//!
//! **Needs root and `/dev/fuse`** (and `fusermount3`): every test that uses
//! this module mounts for real. CI runs as root; elsewhere run the suite
//! with `sudo -E cargo test --workspace` or skip the `fuse_*` tests.
//!
//! Design:
//!
//! - **The shipped binary, run as a user runs it.** A [`Mount`] runs
//!   `ossfs-rs mount BUCKET:/PREFIX MOUNTPOINT -o url=..,passwd_file=..,
//!   path_style,region=..` (or the ossfs form, see
//!   [`MountBuilder::ossfs_form`]) in the default background mode: the
//!   command returns once the mount is ready, so its exit status *is* the
//!   readiness signal. Unmounting is `ossfs-rs umount MOUNTPOINT`.
//! - **Finding the binary.** The e2e crate depends on the `ossfs-rs`
//!   library only, so cargo does not build the binary for it. `cargo test
//!   --workspace` does build it, because the `ossfs-rs` package has
//!   integration tests of its own (`ossfs-rs/tests/cli.rs`), and cargo
//!   builds a package's binaries before running its integration tests. The
//!   binary is then `target/<profile>/ossfs-rs`, two directories above the
//!   test executable (`target/<profile>/deps/fuse_ops-<hash>`).
//!   `OSSFS_RS_BIN` overrides the lookup. A binary older than a file of
//!   the `ossfs-rs` package is refused, so `cargo test -p e2e` after an
//!   edit of the daemon fails with "rebuild it" instead of testing stale
//!   code.
//! - **Never a mount left behind.** Dropping a [`Mount`] unmounts it and
//!   waits for the daemon to exit, also while a test panics (then problems
//!   are printed, not raised, to avoid a double panic). If the test process
//!   dies without unwinding, a watchdog child (`sh`) reading a pipe from
//!   this process sees the pipe close and lazily unmounts
//!   (`fusermount3 -u -z`), which ends the daemon.
//! - **The daemon's exit status is checked.** The background daemon
//!   outlives the `ossfs-rs mount` process that started it, so this process
//!   makes itself a child subreaper: the orphaned daemon is re-parented to
//!   the test process, which can `waitpid` it and assert a clean exit (0)
//!   after unmounting.
//! - **Isolation.** Each mount gets a fresh temporary directory (mount
//!   point, `passwd` file with mode 0600, daemon log, staging directory)
//!   and, unless told otherwise, a fresh prefix of the shared bucket, so
//!   tests run in parallel.
//!
//! The secret key goes only into the passwd file, never onto a command line
//! or into a message.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime};

use ossfs_rs::store::ObjectStore;
use ossfs_rs::sys::mountinfo::mountinfo_lists;

use crate::Garage;
use crate::backend::Backend;
use crate::hang::HangGuard;

/// How long the daemon may take to exit after it was unmounted (it uploads
/// whatever is still staged first).
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `ossfs-rs umount` keeps retrying a busy mount.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ossfs-rs` binary the tests run: `OSSFS_RS_BIN`, else the one cargo
/// built next to this test executable. Panics with what to do when it is
/// missing or older than its sources.
pub fn ossfs_binary() -> PathBuf {
    match find_binary() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn find_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("OSSFS_RS_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let bin = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("ossfs-rs"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the ossfs-rs binary was not found next to {}: build it with \
                 `cargo build -p ossfs-rs` (or run `cargo test --workspace`, which builds it), \
                 or point OSSFS_RS_BIN at it",
                exe.display()
            )
        })?;
    if let Some(newer) = newer_source(&bin) {
        return Err(format!(
            "{} is older than its source {}: rebuild it with `cargo build -p ossfs-rs` \
             (or run `cargo test --workspace`, which rebuilds it)",
            bin.display(),
            newer.display()
        ));
    }
    Ok(bin)
}

/// The ossfs-rs package's sources (next to this crate in the workspace).
fn package_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ossfs-rs");
    dir.canonicalize().unwrap_or(dir)
}

/// A file of the `ossfs-rs` package (`Cargo.toml`, anything under `src/`)
/// modified after `bin` was built.
fn newer_source(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    newer_than(&package_dir(), built)
}

fn newer_than(package: &Path, built: SystemTime) -> Option<PathBuf> {
    let newer = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built)
    };
    let manifest = package.join("Cargo.toml");
    if newer(&manifest) {
        return Some(manifest);
    }
    let mut dirs = vec![package.join("src")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if newer(&path) {
                return Some(path);
            }
        }
    }
    None
}

/// Direct access to the shared Garage bucket beside a mount, for tests
/// that look at (or put) objects themselves: the store client of
/// [`Backend::garage`] and the one runtime it is used on (a client's
/// pooled connections live on the runtime that opened them).
pub struct Bucket {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// The shared Garage's bucket.
    pub fn garage() -> Bucket {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
        let store = rt.block_on(Backend::garage()).store();
        Bucket { rt, store }
    }

    /// The store client.
    pub fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// Run a store call (or any future) to completion.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The size and hex SHA-256 of object `key`, streamed from the store.
    pub fn object_sha256(&self, key: &str) -> (u64, String) {
        use futures::StreamExt;
        use sha2::{Digest, Sha256};
        self.block_on(async {
            let obj = self
                .store()
                .get(key, None)
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e}"));
            let mut body = obj.body;
            let mut hash = Sha256::new();
            let mut len = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap_or_else(|e| panic!("read {key}: {e}"));
                len += chunk.len() as u64;
                hash.update(&chunk);
            }
            (len, hex::encode(hash.finalize()))
        })
    }
}

/// Write a passwd file `ACCESS_KEY_ID:SECRET` with `mode` at `path`.
pub fn write_passwd(path: &Path, access_key_id: &str, secret: &str, mode: u32) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    writeln!(f, "{access_key_id}:{secret}")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    // The mode given to open is filtered by the umask: set it exactly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// The `-o` options that point a mount at `garage` with `passwd`.
pub fn garage_options(garage: &Garage, passwd: &Path) -> String {
    format!(
        "url={},passwd_file={},path_style,region={}",
        garage.endpoint(),
        passwd.display(),
        garage.region()
    )
}

/// Whether `/proc/self/mountinfo` lists `path` as a mount point.
pub fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| mountinfo_lists(&info, path))
}

/// Processes whose command line has `--notify-ready` and `mountpoint` as
/// arguments: the background daemons serving that mount point.
pub fn daemons_for(mountpoint: &Path) -> Vec<i32> {
    let wanted = mountpoint.as_os_str().as_encoded_bytes();
    crate::process::pids()
        .into_iter()
        .filter(|pid| {
            let args = crate::process::args_of(*pid);
            args.iter().any(|a| a == b"--notify-ready") && args.iter().any(|a| a == wanted)
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Make this process the reaper of its orphaned descendants (the detached
/// daemons), so it can collect their exit status.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag on this
        // process; it reads no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            eprintln!(
                "warning: cannot become a child subreaper ({}); daemon exit statuses will not be checked",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// How a daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaemonEnd {
    /// Reaped here with this wait status.
    Status(i32),
    /// Gone, but reaped elsewhere (no subreaper).
    Gone,
}

/// Wait up to `timeout` for `pid` to end.
fn wait_daemon(pid: i32, timeout: Duration) -> Option<DaemonEnd> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only into `status`, a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Some(DaemonEnd::Status(status));
        }
        if rc < 0 && !Path::new(&format!("/proc/{pid}")).exists() {
            return Some(DaemonEnd::Gone);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Builds a [`Mount`]: which prefix, which extra `-o` options, which form.
pub struct MountBuilder<'g> {
    garage: &'g Garage,
    name: String,
    prefix: Option<String>,
    options: Vec<String>,
    ossfs_form: bool,
    logfile: bool,
    foreground: bool,
    path_style: bool,
}

impl<'g> MountBuilder<'g> {
    /// Leave out `path_style` (Garage is on an IP address, so the mount
    /// must choose it by itself).
    pub fn without_path_style(mut self) -> Self {
        self.path_style = false;
        self
    }

    /// No `-o logfile`: the daemon logs to its stderr, as most users run
    /// it (the background daemon's stderr is /dev/null once detached).
    /// [`Mount::log_tail`] is then empty, except in the foreground.
    pub fn without_logfile(mut self) -> Self {
        self.logfile = false;
        self
    }

    /// `ossfs-rs mount -f`: the command stays in the foreground as the
    /// supervisor, its stderr a pipe this process drains (a terminal's
    /// stand-in), kept for [`Mount::log_tail`].
    pub fn foreground(mut self) -> Self {
        self.foreground = true;
        self
    }

    /// Mount this prefix of the bucket (e.g. another mount's) instead of a
    /// fresh one. `prefix` ends with `/`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// Add `-o` options (comma-separated), e.g. `"ro"` or `"multipart_size=5"`.
    pub fn option(mut self, opts: &str) -> Self {
        self.options.push(opts.to_string());
        self
    }

    /// Use the ossfs command line `ossfs-rs BUCKET:/PREFIX MP -o ...`
    /// instead of `ossfs-rs mount ...`.
    pub fn ossfs_form(mut self) -> Self {
        self.ossfs_form = true;
        self
    }

    /// Mount; panics with the command's stderr when it fails.
    pub fn mount(self) -> Mount {
        let bin = ossfs_binary();
        become_subreaper();
        let dir = tempfile::Builder::new()
            .prefix(&format!("ossfs-e2e-{}-", self.name))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        // Other users (the EACCES tests) must be able to reach the mount.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path().display()));
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", mountpoint.display()));
        let passwd = dir.path().join("passwd");
        write_passwd(
            &passwd,
            self.garage.access_key_id(),
            self.garage.secret_access_key(),
            0o600,
        );
        let log = dir.path().join("daemon.log");
        let prefix = self
            .prefix
            .unwrap_or_else(|| crate::unique_prefix(&self.name));
        let mut opts = garage_options(self.garage, &passwd);
        if !self.path_style {
            opts = opts.replace(",path_style", "");
        }
        if self.logfile {
            write!(opts, ",logfile={}", log.display()).unwrap_or_default();
        }
        write!(opts, ",tmpdir={}", dir.path().join("staging").display()).unwrap_or_default();
        for o in &self.options {
            opts.push(',');
            opts.push_str(o);
        }
        let mut args: Vec<OsString> = Vec::new();
        if !self.ossfs_form {
            args.push("mount".into());
        }
        args.push(format!("{}:/{}", self.garage.bucket(), prefix).into());
        args.push(mountpoint.clone().into());
        args.push("-o".into());
        args.push(opts.into());
        if self.foreground {
            args.push("-f".into());
        }
        let mut mount = Mount {
            dir,
            mountpoint,
            prefix,
            bin,
            args,
            daemon: None,
            watchdog: None,
            hang: None,
            foreground: self.foreground.then(ForegroundLog::default),
            foreground_child: None,
        };
        mount.start();
        mount
    }
}

/// A live FUSE mount of a prefix of the shared Garage bucket, unmounted on
/// drop. See the module documentation.
pub struct Mount {
    dir: tempfile::TempDir,
    mountpoint: PathBuf,
    prefix: String,
    bin: PathBuf,
    args: Vec<OsString>,
    /// The daemon's pid while mounted.
    daemon: Option<i32>,
    watchdog: Option<(Child, ChildStdin)>,
    /// Fails the test instead of hanging the suite (see [`crate::hang`]).
    hang: Option<HangGuard>,
    /// `-f`: what the foreground command printed on stderr.
    foreground: Option<ForegroundLog>,
    /// `-f`: the command itself (the first supervisor), reaped on drop.
    foreground_child: Option<Child>,
}

/// The stderr of a foreground mount, drained by a thread.
type ForegroundLog = Arc<std::sync::Mutex<Vec<u8>>>;

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .field("prefix", &self.prefix)
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

impl Mount {
    /// A mount of a fresh prefix (named after `name`) of `garage`'s bucket.
    pub fn builder<'g>(garage: &'g Garage, name: &str) -> MountBuilder<'g> {
        MountBuilder {
            garage,
            name: name.to_string(),
            prefix: None,
            options: Vec::new(),
            ossfs_form: false,
            logfile: true,
            foreground: false,
            path_style: true,
        }
    }

    /// Mount a fresh prefix of the shared Garage with default options.
    pub fn new(name: &str) -> Mount {
        Self::builder(shared_garage(), name).mount()
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// `path` inside the mount.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        self.mountpoint.join(path)
    }

    /// The bucket prefix shown at the mount point (ends with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The daemon's log file (`-o logfile=`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The last lines of the daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = match &self.foreground {
            Some(log) => {
                String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
            }
            None => std::fs::read_to_string(self.log_path()).unwrap_or_default(),
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// This mount's entry of `ossfs-rs status --json` (supervisor and
    /// worker pids, restarts, binaries).
    pub fn status(&self) -> serde_json::Value {
        let out = run_ossfs(
            &self.bin,
            &[
                "status".into(),
                self.mountpoint.clone().into(),
                "--json".into(),
            ],
        );
        assert!(
            out.status.success(),
            "ossfs-rs status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ossfs-rs status --json printed bad JSON: {e}"));
        rows.get(0).cloned().unwrap_or_default()
    }

    /// The pid of the worker serving the mount now.
    pub fn worker_pid(&self) -> i32 {
        self.status()["supervisor"]["worker_pid"]
            .as_i64()
            .unwrap_or(0) as i32
    }

    /// The pid of the supervisor now.
    pub fn supervisor_pid(&self) -> i32 {
        self.status()["supervisor"]["pid"].as_i64().unwrap_or(0) as i32
    }

    /// The supervisor was replaced (a test killed it): wait for `pid` at
    /// unmount instead.
    pub fn track_supervisor(&mut self, pid: i32) {
        self.daemon = Some(pid);
    }

    /// Whether the daemon is mounted (as far as this guard knows).
    pub fn is_live(&self) -> bool {
        self.daemon.is_some()
    }

    /// Run the mount command and find the daemon it left running.
    fn start(&mut self) {
        if self.watchdog.is_none() {
            self.watchdog = Some(spawn_watchdog(&self.mountpoint));
        }
        if self.foreground.is_some() {
            self.start_foreground();
            return;
        }
        let out = run_ossfs(&self.bin, &self.args);
        if !out.status.success() {
            panic!(
                "`ossfs-rs {}` failed ({}):\n{}\n--- daemon log ---\n{}",
                self.describe_args(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        assert!(
            is_mounted(&self.mountpoint),
            "`ossfs-rs mount` reported success but {} is not in /proc/self/mountinfo",
            self.mountpoint.display()
        );
        let daemons = daemons_for(&self.mountpoint);
        self.hang = Some(HangGuard::new(&self.mountpoint, &self.log_path()));
        match daemons[..] {
            [pid] => self.daemon = Some(pid),
            _ => {
                // Do not leave the mount behind while failing.
                let _ = lazy_unmount(&self.mountpoint);
                panic!(
                    "expected one daemon for {}, found {daemons:?}",
                    self.mountpoint.display()
                );
            }
        }
    }

    /// `start` for `-f`: run the command, and wait until it has mounted.
    fn start_foreground(&mut self) {
        use std::io::Read;
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .env_remove("OSSFS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        if let (Some(mut err), Some(log)) = (child.stderr.take(), self.foreground.clone()) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while !is_mounted(&self.mountpoint) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "`ossfs-rs {}` exited ({status}) before mounting:\n{}",
                    self.describe_args(),
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`ossfs-rs {}` did not mount within {COMMAND_TIMEOUT:?}",
                    self.describe_args()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.hang = Some(HangGuard::new(&self.mountpoint, &self.log_path()));
        self.daemon = i32::try_from(child.id()).ok();
        self.foreground_child = Some(child);
    }

    fn describe_args(&self) -> String {
        // The arguments hold no secret (that is in the passwd file).
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Unmount with `ossfs-rs umount` and check that the daemon exited
    /// with status 0 and the mount is gone. Idempotent.
    pub fn unmount(&mut self) -> Result<(), String> {
        let Some(pid) = self.daemon.take() else {
            return Ok(());
        };
        let mp = self.mountpoint.clone();
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let umount_result = loop {
            let out = run_ossfs(&self.bin, &["umount".into(), mp.clone().into()]);
            if out.status.success() {
                break Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if Instant::now() >= deadline || !stderr.contains("busy") {
                break Err(format!(
                    "`ossfs-rs umount {}` failed ({}): {stderr}",
                    mp.display(),
                    out.status
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Err(e) = umount_result {
            // Never leave it behind: detach it and make sure the daemon
            // ends (a detached mount with files still open keeps it alive
            // until they close, so do not wait long).
            let _ = lazy_unmount(&mp);
            if wait_daemon(pid, Duration::from_secs(5)).is_none() {
                kill(pid);
            }
            return Err(e);
        }
        let end = match wait_daemon(pid, EXIT_TIMEOUT) {
            Some(end) => end,
            None => {
                kill(pid);
                return Err(format!(
                    "the daemon (pid {pid}) did not exit within {EXIT_TIMEOUT:?} of unmounting {}\n--- daemon log ---\n{}",
                    mp.display(),
                    self.log_tail()
                ));
            }
        };
        if is_mounted(&mp) {
            let _ = lazy_unmount(&mp);
            return Err(format!("{} is still mounted after umount", mp.display()));
        }
        match end {
            DaemonEnd::Status(s) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => Ok(()),
            DaemonEnd::Gone => Ok(()),
            DaemonEnd::Status(s) => Err(format!(
                "the daemon (pid {pid}) ended with {} after unmount\n--- daemon log ---\n{}",
                describe_status(s),
                self.log_tail()
            )),
        }
    }

    /// Unmount, panicking with the reason when it fails.
    pub fn unmount_ok(&mut self) {
        if let Err(e) = self.unmount() {
            panic!("{e}");
        }
    }

    /// Unmount (checked) and mount the same prefix again with the same
    /// options: whatever is read afterwards came from the bucket.
    pub fn remount(&mut self) {
        self.unmount_ok();
        self.start();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let result = self.unmount();
        if let Some((mut dog, mut stdin)) = self.watchdog.take() {
            // Nothing left to detach: tell it so, then reap it.
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let _ = dog.wait();
        }
        drop(self.hang.take());
        if let Some(mut child) = self.foreground_child.take() {
            // Reaped by `unmount` already, or killed by the test: collect
            // it if it is still ours to collect.
            let _ = child.try_wait();
        }
        if let Err(e) = result {
            if std::thread::panicking() {
                eprintln!("while unwinding: {e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

/// The Garage shared by the tests of this binary; panics when it cannot start.
pub fn shared_garage() -> &'static Garage {
    Garage::shared().unwrap_or_else(|e| panic!("Garage did not start: {e}"))
}

/// How long one `ossfs-rs` command may run (the mount command's own
/// readiness timeout is 120 s).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(150);

/// How long the output pipes may stay open after the command exited: the
/// background daemon must let go of them once it has detached.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// Run the ossfs-rs binary with `args`, capturing its output. Panics when
/// the command hangs, or when its pipes stay open after it exited (a
/// daemon that did not detach from its caller's stdout/stderr hangs every
/// `$(ossfs-rs mount ...)`).
pub fn run_ossfs(bin: &Path, args: &[OsString]) -> Output {
    use std::io::Read;
    let mut child = Command::new(bin)
        .args(args)
        // The daemon's own log level comes from -o dbglevel, not from the
        // environment of whoever runs the tests.
        .env_remove("OSSFS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ];
    for (i, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = pipe {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send((i, buf));
        });
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`ossfs-rs` did not finish within {COMMAND_TIMEOUT:?}");
            }
            Err(e) => panic!("cannot wait for ossfs-rs: {e}"),
        }
    };
    let mut out = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(PIPE_GRACE) {
            Ok((i, buf)) => out[i] = buf,
            Err(_) => panic!(
                "`ossfs-rs` exited ({status}) but its stdout/stderr stayed open for {PIPE_GRACE:?}: \
                 the background daemon did not detach from its caller's pipes"
            ),
        }
    }
    let [stdout, stderr] = out;
    Output {
        status,
        stdout,
        stderr,
    }
}

fn lazy_unmount(mountpoint: &Path) -> std::io::Result<Output> {
    Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
}

fn kill(pid: i32) {
    // SAFETY: kill sends a signal; it touches no memory of ours.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let _ = wait_daemon(pid, Duration::from_secs(5));
}

/// A child that lazily unmounts `mountpoint` when its stdin closes without
/// a `done` line first, which happens when this process exits without
/// dropping the [`Mount`]. `read` is a shell builtin: no grandchild.
fn spawn_watchdog(mountpoint: &Path) -> (Child, ChildStdin) {
    use std::os::unix::process::CommandExt;
    // Its own process group, and deaf to the usual termination signals: a
    // Ctrl-C or a timeout that signals the test's process group must leave
    // it alive to clean up after the test.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(
            r#"trap '' INT TERM HUP; read -r line; [ "$line" = done ] || exec fusermount3 -u -z "$1" 2>/dev/null"#,
        )
        .process_group(0)
        .arg("mount-watchdog")
        .arg(mountpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the mount watchdog (sh): {e}"));
    let stdin = child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("the mount watchdog has no stdin pipe"));
    (child, stdin)
}

/// The errno of an I/O error, for assertions (`None` for non-OS errors).
pub fn errno(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

/// Assert that `result` failed with `expected` errno.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(result: std::io::Result<T>, expected: i32, what: &str) {
    match result {
        Ok(v) => panic!(
            "{what}: expected {} but it succeeded with {v:?}",
            errno_name(expected)
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(expected),
            "{what}: expected {} ({expected}), got {e}",
            errno_name(expected)
        ),
    }
}

/// The symbolic name of common errnos, for messages.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EROFS => "EROFS",
        libc::EINVAL => "EINVAL",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EIO => "EIO",
        libc::EXDEV => "EXDEV",
        libc::EBUSY => "EBUSY",
        _ => "errno",
    }
}

/// Seconds since the epoch of `t` (whole seconds: the metadata's precision).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sources_newer_than_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src/fs");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]").unwrap();
        std::fs::write(src.join("mod.rs"), "//! x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let built = SystemTime::now();
        assert_eq!(newer_than(dir.path(), built), None);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(src.join("mod.rs"), "//! y").unwrap();
        assert_eq!(newer_than(dir.path(), built), Some(src.join("mod.rs")));
    }
}
