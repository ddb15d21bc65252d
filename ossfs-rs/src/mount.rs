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
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| mountinfo_lists(&info, path))
}

/// Whether the mountinfo text `info` lists `path` as a mount point.
pub fn mountinfo_lists(info: &str, path: &Path) -> bool {
    let wanted = path.to_string_lossy();
    info.lines()
        .any(|line| line.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(&*wanted))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
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

/// The mount request of `args`, or the exit status and message of a bad
/// command line.
fn build_request(args: &MountArgs) -> Result<MountRequest, (u8, String)> {
    let mut options = MountOptions::default();
    options
        .apply_all(args.options.iter().map(String::as_str))
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    if args.url.is_some() {
        options.url = args.url.clone();
    }
    if args.provider.is_some() {
        options.provider = args.provider.clone();
    }
    if args.region.is_some() {
        options.region = args.region.clone();
    }
    let source = Source::parse(&args.source).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    // Canonical, so the supervisor, its workers and `status` agree on it.
    let mountpoint = std::fs::canonicalize(&args.mountpoint).unwrap_or(args.mountpoint.clone());
    Ok(MountRequest {
        source,
        mountpoint,
        options,
        notify_ready: args.notify_ready,
    })
}

/// The mount request of a saved `mount ...` command line (for workers).
pub fn request_from_argv(argv: &[String]) -> Result<MountRequest, String> {
    use clap::Parser;
    let words = std::iter::once("ossfs-rs".to_string()).chain(argv.iter().cloned());
    match crate::cli::Cli::try_parse_from(words) {
        Ok(crate::cli::Cli {
            command: crate::cli::Command::Mount(args),
            ..
        }) => build_request(&args).map_err(|(_, m)| m),
        Ok(_) => Err("the saved command line is not a mount".into()),
        Err(e) => Err(e.to_string()),
    }
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
