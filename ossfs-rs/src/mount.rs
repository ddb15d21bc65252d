//! `ossfs-rs mount`: the process around a FUSE session.
//!
//! Like ossfs and s3fs, the command returns once the mount is ready (exit 0)
//! or has failed (non-zero, with the reason on stderr, and no mount left
//! behind). It does so by starting itself again in the foreground with
//! `--notify-ready` and its stdout on a pipe: the child prints `ready` on
//! that pipe once the kernel has answered INIT, then detaches (new session,
//! stdio to the log file or /dev/null). Until then the child's stderr is
//! the user's terminal, so every startup error reaches the user verbatim.
//! `-f` skips the re-exec and stays in the foreground.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::options::MountOptions;

/// How long the parent waits for the child to report the mount ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// `bucket[:/prefix]` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub bucket: String,
    /// Object-key prefix of the mount: empty, or ending in `/`.
    pub prefix: String,
}

/// Why a mount could not start.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0:?} is not bucket or bucket:/prefix")]
    BadSource(String),
    #[error("mount point {0} does not exist: create it first (mkdir -p {0})")]
    NoMountpoint(PathBuf),
    #[error("mount point {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("mount point {0} is not empty: empty it or pass -o nonempty")]
    NotEmpty(PathBuf),
    #[error("mount point {0} is already a mount point: unmount it first (ossfs-rs umount {0})")]
    AlreadyMounted(PathBuf),
    #[error("cannot inspect mount point {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Source {
    /// Parse `bucket`, `bucket:/prefix` or `bucket:prefix`.
    pub fn parse(s: &str) -> Result<Self, MountError> {
        let (bucket, prefix) = match s.split_once(':') {
            Some((b, p)) => (b, p),
            None => (s, ""),
        };
        let valid_bucket = !bucket.is_empty()
            && bucket.len() <= 255
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid_bucket {
            return Err(MountError::BadSource(s.to_string()));
        }
        let trimmed = prefix.trim_matches('/');
        if trimmed.split('/').any(|seg| seg == "." || seg == "..") || trimmed.contains("//") {
            return Err(MountError::BadSource(s.to_string()));
        }
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

/// Refuse a mount point that is missing, not a directory, already a mount,
/// or not empty (unless `nonempty`).
pub fn check_mountpoint(path: &Path, nonempty: bool) -> Result<(), MountError> {
    let io = |source| MountError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::NoMountpoint(path.to_path_buf()));
        }
        // ENOTCONN: a dead FUSE mount is still there.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountError::AlreadyMounted(path.to_path_buf()));
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(path.to_path_buf()));
    }
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    if let Some(parent) = canonical.parent() {
        let parent_meta = std::fs::metadata(parent).map_err(io)?;
        if parent_meta.dev() != meta.dev() || is_listed_mount(&canonical) {
            return Err(MountError::AlreadyMounted(path.to_path_buf()));
        }
    }
    if !nonempty && std::fs::read_dir(path).map_err(io)?.next().is_some() {
        return Err(MountError::NotEmpty(path.to_path_buf()));
    }
    Ok(())
}

/// Whether `/proc/self/mountinfo` lists `path` as a mount point (catches a
/// bind mount of a directory onto itself, which keeps the device number).
fn is_listed_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    info.lines()
        .any(|line| line.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(&*wanted))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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

/// Tell the waiting parent the mount is ready and detach from it: stdout
/// and stderr go to `logfile` (or /dev/null) from here on.
pub fn notify_ready_and_detach(logfile: Option<&Path>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n")?;
    out.flush()?;
    drop(out);
    let target = match logfile {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?,
        None => std::fs::OpenOptions::new().write(true).open("/dev/null")?,
    };
    // Replace fds 1 and 2 themselves: the caller's pipes must close here,
    // or a caller reading our output to its end (`$(ossfs-rs mount ...)`,
    // `Command::output`) waits for as long as the mount lives.
    nix::unistd::dup2_stdout(&target).map_err(std::io::Error::from)?;
    nix::unistd::dup2_stderr(&target).map_err(std::io::Error::from)?;
    Ok(())
}

/// `ossfs-rs umount`: unmount through fusermount3 (or umount(8) when it is
/// missing). Files are flushed when they are closed, so a mount that can be
/// unmounted has nothing left to upload; a busy mount is refused.
pub fn unmount(mountpoint: &Path) -> Result<(), String> {
    let run = |cmd: &str, args: &[&std::ffi::OsStr]| Command::new(cmd).args(args).output();
    let output = match run("fusermount3", &["-u".as_ref(), mountpoint.as_os_str()]) {
        Ok(o) => o,
        Err(_) => run("umount", &[mountpoint.as_os_str()])
            .map_err(|e| format!("cannot run fusermount3 or umount: {e}"))?,
    };
    if output.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if msg.contains("busy") {
            Err(format!(
                "{} is busy: close the files open there (see `fuser -vm {0}`) and retry",
                mountpoint.display()
            ))
        } else {
            Err(format!("cannot unmount {}: {msg}", mountpoint.display()))
        }
    }
}

fn lazy_unmount(mountpoint: &Path) -> std::io::Result<()> {
    Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .output()
        .map(|_| ())
}

/// What the mount command needs besides the options.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub source: Source,
    pub mountpoint: PathBuf,
    pub options: MountOptions,
    pub notify_ready: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            Source::parse("b").unwrap(),
            Source {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(Source::parse("b:/a/b").unwrap().prefix, "a/b/");
        assert_eq!(Source::parse("b:a/").unwrap().prefix, "a/");
        assert_eq!(Source::parse("b:/").unwrap().prefix, "");
        assert!(Source::parse(":/x").is_err());
        assert!(Source::parse("b:/a/../c").is_err());
        assert!(Source::parse("b c").is_err());
    }

    #[test]
    fn refuses_bad_mountpoints() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_mountpoint(&dir.path().join("missing"), false),
            Err(MountError::NoMountpoint(_))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file, false),
            Err(MountError::NotADirectory(_))
        ));
        assert!(matches!(
            check_mountpoint(dir.path(), false),
            Err(MountError::NotEmpty(_))
        ));
        assert!(check_mountpoint(dir.path(), true).is_ok());
        let empty = dir.path().join("e");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_mountpoint(&empty, false).is_ok());
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}

/// Arguments of `ossfs-rs mount` (and of the ossfs form
/// `ossfs-rs bucket:/prefix /mnt -o ...`, which is rewritten to it).
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// `bucket` or `bucket:/prefix`.
    #[arg(value_name = "BUCKET[:/PREFIX]")]
    pub source: String,
    /// An existing, empty directory.
    pub mountpoint: PathBuf,
    /// The endpoint (also `-o url=`).
    #[arg(long)]
    pub url: Option<String>,
    /// oss, cos or s3 (also `-o provider=`); inferred from the endpoint host.
    #[arg(long)]
    pub provider: Option<String>,
    /// The region (also `-o region=`); inferred from the endpoint host.
    #[arg(long)]
    pub region: Option<String>,
    /// Mount options, comma-separated, with ossfs meaning; repeatable.
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    pub options: Vec<String>,
    /// Stay in the foreground (logs to stderr).
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Internal: report readiness on stdout, then detach (set by the
    /// background start).
    #[arg(long, hide = true)]
    pub notify_ready: bool,
}

/// Arguments of `ossfs-rs umount`.
#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// The mount point to unmount.
    pub mountpoint: PathBuf,
}

/// Exit status for a bad command line or option.
const EXIT_USAGE: u8 = 2;

/// Run `ossfs-rs mount`.
pub fn run(args: MountArgs, argv: &[OsString]) -> ExitCode {
    let mut options = MountOptions::default();
    if let Err(e) = options.apply_all(args.options.iter().map(String::as_str)) {
        eprintln!("ossfs-rs: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    if args.url.is_some() {
        options.url = args.url.clone();
    }
    if args.provider.is_some() {
        options.provider = args.provider.clone();
    }
    if args.region.is_some() {
        options.region = args.region.clone();
    }
    let source = match Source::parse(&args.source) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ossfs-rs: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = check_mountpoint(&args.mountpoint, options.nonempty) {
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
    let request = MountRequest {
        source,
        mountpoint: args.mountpoint,
        options,
        notify_ready: args.notify_ready,
    };
    match serve::run_foreground(request) {
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

mod serve {
    //! The foreground daemon: preflight, build the store and the
    //! filesystem, mount, serve until unmounted.

    use std::sync::Arc;
    use std::time::Duration;

    use fuser::{Config, MountOption, SessionACL};
    use tracing::{info, warn};

    use super::MountRequest;
    use crate::check::{self, CheckArgs, Plan, SignatureArg};
    use crate::fs::FsConfig;
    use crate::store::credentials::{CredentialOptions, EnvLookup, resolve};
    use crate::store::retry::RetryConfig;
    use crate::store::{ObjectStore, Provider, RestClient};

    /// Why the daemon could not mount or serve.
    #[derive(Debug, thiserror::Error)]
    pub enum ServeError {
        #[error("no endpoint: give it with --url URL or -o url=URL")]
        NoEndpoint,
        #[error("{0}")]
        Usage(String),
        #[error("the bucket check failed:\n{0}")]
        Preflight(String),
        #[error("{0}")]
        Setup(String),
        #[error("cannot mount at {path}: {source}")]
        Mount {
            path: String,
            #[source]
            source: std::io::Error,
        },
    }

    /// The `check` arguments equivalent to this mount, so the mount runs
    /// exactly the diagnosis `ossfs-rs check` prints.
    fn check_args(req: &MountRequest) -> Result<CheckArgs, ServeError> {
        let o = &req.options;
        let url = o.url.clone().ok_or(ServeError::NoEndpoint)?;
        let provider = match &o.provider {
            Some(p) => Some(
                p.parse::<Provider>()
                    .map_err(|e| ServeError::Usage(e.to_string()))?,
            ),
            None => None,
        };
        let signature = match o.signature.as_deref() {
            None => None,
            Some("v1" | "sigv1") => Some(SignatureArg::V1),
            Some("v4" | "sigv4") => Some(SignatureArg::V4),
            Some(other) => {
                return Err(ServeError::Usage(format!(
                    "signature={other:?}: use v1 or v4"
                )));
            }
        };
        Ok(CheckArgs {
            target: format!("{}:/{}", req.source.bucket, req.source.prefix),
            url,
            provider,
            region: o.region.clone(),
            passwd_file: o.passwd_file.clone(),
            sts_dir: o.sts_dir.clone(),
            path_style: o.path_style,
            ca_bundle: o.ca_bundle.clone(),
            signature,
            connect_timeout: 10,
        })
    }

    pub fn run_foreground(req: MountRequest) -> Result<(), ServeError> {
        init_logging(req.options.log_filter(), req.options.logfile.is_none());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ossfs-io")
            .build()
            .map_err(|e| ServeError::Setup(format!("cannot start the async runtime: {e}")))?;
        let args = check_args(&req)?;
        let plan = Plan::from_args(&args).map_err(|e| ServeError::Usage(e.to_string()))?;

        // Preflight: the same steps as `ossfs-rs check`, so a wrong key, a
        // missing bucket or a closed port fails here, before any mount.
        let mut report = Vec::new();
        match runtime.block_on(check::check(&args, EnvLookup::process(), &mut report)) {
            Ok(true) => {}
            Ok(false) => {
                return Err(ServeError::Preflight(
                    String::from_utf8_lossy(&report).into_owned(),
                ));
            }
            Err(e) => return Err(ServeError::Usage(e.to_string())),
        }

        let mut config = plan.client_config(&args);
        config.read_timeout = Duration::from_secs(30);
        config.retry = RetryConfig::default();
        let mut cred_opts = CredentialOptions::new(plan.provider, plan.bucket.clone());
        cred_opts.passwd_file = req.options.passwd_file.clone();
        cred_opts.sts_dir = req.options.sts_dir.clone();
        let credentials = resolve(&cred_opts).map_err(|e| ServeError::Setup(e.to_string()))?;
        let client =
            RestClient::new(config, credentials).map_err(|e| ServeError::Setup(e.to_string()))?;
        let mut store: Arc<dyn ObjectStore> = Arc::new(client);
        if let Some(addr) = req.options.metrics {
            runtime
                .block_on(crate::metrics::serve(addr))
                .map_err(|e| ServeError::Setup(format!("metrics endpoint {addr}: {e}")))?;
            store = Arc::new(crate::metrics::MeteredStore::new(store));
        }

        let o = &req.options;
        let mut fs_config = FsConfig {
            prefix: req.source.prefix.clone(),
            ..FsConfig::default()
        };
        fs_config.uid = o.uid;
        fs_config.gid = o.gid;
        fs_config.umask = o.umask.unwrap_or(0);
        fs_config.read_only = o.read_only;
        fs_config.stat_cache_ttl = o.stat_cache_expire;
        fs_config.stat_cache_size = o.max_stat_cache_size;
        fs_config.negative_cache = o.negative_cache;
        fs_config.mp_umask = o.mp_umask;
        fs_config.multipart_size = o.multipart_size;
        fs_config.parallel_count = o.parallel_count;
        fs_config.memory_limit = o.memory_limit;
        fs_config.cache_size = o.cache_size;
        fs_config.prefetch_window = o.prefetch_window;
        fs_config.list_cache_ttl = o.list_cache_expire;
        fs_config.staging_dir = o
            .tmpdir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("ossfs-rs-{}", std::process::id()));
        let staging_dir = fs_config.staging_dir.clone();
        let fs = crate::fuse::new(store, fs_config, runtime.handle().clone())
            .map_err(|e| ServeError::Setup(e.to_string()))?;

        let mut mount_options = vec![
            MountOption::FSName(format!("{}:/{}", req.source.bucket, req.source.prefix)),
            MountOption::Subtype("ossfs-rs".to_string()),
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::CUSTOM(format!("max_read={}", crate::fuse::MAX_WRITE)),
        ];
        if o.read_only {
            mount_options.push(MountOption::RO);
        }
        if o.default_permissions {
            mount_options.push(MountOption::DefaultPermissions);
        }
        let mut fuse_config = Config::default();
        fuse_config.mount_options = mount_options;
        fuse_config.acl = if o.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        fuse_config.n_threads = Some(8);

        let mut session =
            fuser::Session::new(fs, &req.mountpoint, &fuse_config).map_err(|source| {
                ServeError::Mount {
                    path: req.mountpoint.display().to_string(),
                    source,
                }
            })?;
        info!(mountpoint = %req.mountpoint.display(), bucket = %req.source.bucket, prefix = %req.source.prefix, "mounted");
        let absolute = std::path::absolute(&req.mountpoint).unwrap_or(req.mountpoint.clone());
        if let Err(e) = crate::readahead::raise(&absolute, crate::readahead::READ_AHEAD_KIB) {
            tracing::debug!(error = %e, "kernel readahead left at its default");
        }

        // SIGTERM and SIGINT unmount; the session loop then ends and the
        // filesystem's destroy uploads whatever is still staged.
        let mut unmounter = session.unmount_callable();
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                warn!("cannot install signal handlers; unmount with `ossfs-rs umount`");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            info!("signal received, unmounting");
            if let Err(e) = tokio::task::spawn_blocking(move || unmounter.unmount()).await {
                warn!(error = %e, "unmount after signal failed");
            }
        });

        if req.notify_ready {
            super::notify_ready_and_detach(req.options.logfile.as_deref())
                .map_err(|e| ServeError::Setup(format!("cannot detach: {e}")))?;
        } else {
            eprintln!(
                "ossfs-rs: {}:/{} mounted at {}",
                req.source.bucket,
                req.source.prefix,
                req.mountpoint.display()
            );
        }
        let result = session.run();
        let _ = std::fs::remove_dir_all(&staging_dir);
        runtime.shutdown_timeout(Duration::from_secs(5));
        result.map_err(|source| ServeError::Mount {
            path: req.mountpoint.display().to_string(),
            source,
        })
    }

    /// Logs go to stderr, which becomes the log file once detached; colour
    /// only while that is a terminal.
    fn init_logging(filter: &str, may_colour: bool) {
        use std::io::IsTerminal;
        let filter = std::env::var("OSSFS_LOG").unwrap_or_else(|_| filter.to_string());
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(may_colour && std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
