//! What the processes of one mount hand each other: the command lines a
//! supervisor starts its children with, the credentials pipe, the saved
//! mount request and the worker's exit codes.
//!
//! Every child of a mount is this same binary with a hidden subcommand:
//! `__worker` serves the connection, `__supervise` takes over a live mount
//! (started by a worker whose supervisor died, by `upgrade --supervisor`,
//! or by the CSI plugin). Both get [`ConnectionArgs`]: the state directory,
//! the `/dev/fuse` fd (inherited under its number) and a pipe holding the
//! credentials. Secrets travel only on that pipe, never on a command line
//! (which every local user can read in `/proc`) nor in the environment
//! (which every later child would inherit); the pipe is read once, to its
//! end, and closed. The mount request travels as the command line the
//! supervisor saved in the state directory ([`save_request`],
//! [`load_request`]; no secrets there either: a passwd file is named, never
//! read into it).
//!
//! A worker's exit status tells its supervisor what happened: 0, the
//! session ended (unmounted); [`EXIT_HANDOFF`], it drained for a live
//! upgrade; anything else is a crash, and a new worker is started.
//!
//! Imports: [`super::state`] (the state directory), [`super::setup`]
//! (`ServeError`), `config` (the request from its command line), `store`
//! (`Credentials`), `sys` (fd inheritance) and external crates. Both sides
//! import this module; it imports neither the supervisor nor the worker.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::setup::ServeError;
use super::state::StateDir;
use crate::config::MountRequest;
use crate::store::credentials::Credentials;
use crate::sys::fd::inherit_fd;

/// Exit status of a worker that drained for a live upgrade.
pub const EXIT_HANDOFF: i32 = 75;

/// The credentials a mount was given, with a description of their source
/// (for the log); `None`: each process reads an STS directory itself.
pub type Creds = Option<(Credentials, String)>;

/// What every child of a mount (`__worker`, `__supervise`) is started
/// with.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The inherited `/dev/fuse` fd.
    #[arg(long)]
    pub fuse_fd: RawFd,
    /// A pipe with the credentials (JSON), read to its end.
    #[arg(long)]
    pub creds_fd: Option<RawFd>,
}

/// The credentials as they travel on the pipe. No `Debug`: it would print
/// the secret.
#[derive(serde::Serialize, serde::Deserialize)]
struct HandedCredentials {
    access_key_id: String,
    secret_access_key: String,
    security_token: Option<String>,
    source: String,
}

/// Why the credentials pipe could not be read. The message never holds
/// what the pipe held.
#[derive(Debug, thiserror::Error)]
pub enum CredsPipeError {
    #[error("cannot read the credentials pipe: {0}")]
    Read(io::Error),
    #[error("the credentials pipe held no credentials")]
    Malformed,
}

/// Save the mount command line `argv` for the workers (and for a
/// supervisor that takes over).
pub fn save_request(state: &StateDir, argv: &[OsString]) -> io::Result<()> {
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    state.write_json(&state.args(), &args)
}

/// The mount request the supervisor saved.
pub fn load_request(state: &StateDir) -> Result<MountRequest, ServeError> {
    let argv: Vec<String> = state
        .read_json(&state.args())
        .map_err(|e| ServeError::Setup(format!("cannot read {}: {e}", state.args().display())))?;
    crate::config::request::request_from_argv(&argv).map_err(ServeError::Usage)
}

/// Read the credentials a [`creds_pipe`] holds (`None`: an empty pipe,
/// the mount reads an STS directory itself). Takes ownership of `fd`.
pub fn read_creds_pipe(fd: RawFd) -> Result<Creds, CredsPipeError> {
    // SAFETY: the fd was passed to this process to read once.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut data = Vec::new();
    f.read_to_end(&mut data).map_err(CredsPipeError::Read)?;
    if data.is_empty() {
        return Ok(None);
    }
    let h: HandedCredentials =
        serde_json::from_slice(&data).map_err(|_| CredsPipeError::Malformed)?;
    let mut c = Credentials::new(h.access_key_id, h.secret_access_key);
    if let Some(t) = h.security_token {
        c = c.with_token(t);
    }
    Ok(Some((c, h.source)))
}

/// A pipe holding `creds`, its read end for a child (empty when none).
pub fn creds_pipe(creds: &Creds) -> io::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe().map_err(io::Error::from)?;
    if let Some((c, source)) = creds {
        let h = HandedCredentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            security_token: c.security_token.clone(),
            source: source.clone(),
        };
        let data = serde_json::to_vec(&h).map_err(io::Error::other)?;
        let mut w = std::fs::File::from(write);
        w.write_all(&data)?;
    }
    Ok(read)
}

/// A command for a child of ours that inherits `fds` and none of our
/// blocked signals (the supervisor blocks SIGTERM and SIGINT in every
/// thread, to take them with sigwait).
pub fn child_command(binary: &Path, fds: &[RawFd]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(binary);
    for &fd in fds {
        inherit_fd(&mut cmd, fd);
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

/// `binary SUBCOMMAND --state-dir DIR --fuse-fd N --creds-fd M`, the fd and
/// a new pipe of `creds` inherited, with `more` fds inherited too; returns
/// the pipe, which must stay open until the command has started.
fn connection_command(
    binary: &Path,
    subcommand: &str,
    state_dir: &Path,
    fuse: RawFd,
    creds: &Creds,
    more: &[RawFd],
) -> io::Result<(Command, OwnedFd)> {
    let pipe = creds_pipe(creds)?;
    let fds: Vec<RawFd> = [fuse, pipe.as_raw_fd()]
        .into_iter()
        .chain(more.iter().copied())
        .collect();
    let mut cmd = child_command(binary, &fds);
    cmd.arg(subcommand)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--fuse-fd")
        .arg(fuse.to_string())
        .arg("--creds-fd")
        .arg(pipe.as_raw_fd().to_string());
    Ok((cmd, pipe))
}

/// The command that starts a worker serving the connection `fuse` of the
/// mount whose state is in `state_dir`: `__worker`, with the fd, a pipe of
/// `creds` and `ready` (the write end of the pipe it says `ready` on)
/// inherited, watching `supervisor`. `first`: the kernel still waits for
/// the INIT reply. The returned pipe must stay open until the command has
/// started.
pub fn worker_command(
    binary: &Path,
    state_dir: &Path,
    fuse: RawFd,
    creds: &Creds,
    ready: RawFd,
    supervisor: u32,
    first: bool,
) -> io::Result<(Command, OwnedFd)> {
    let (mut cmd, pipe) = connection_command(binary, "__worker", state_dir, fuse, creds, &[ready])?;
    cmd.arg("--ready-fd")
        .arg(ready.to_string())
        .arg("--supervisor-pid")
        .arg(supervisor.to_string());
    if first {
        cmd.arg("--first");
    }
    Ok((cmd, pipe))
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
) -> io::Result<(Command, OwnedFd)> {
    let (mut cmd, pipe) = connection_command(binary, "__supervise", state_dir, fuse, creds, &[])?;
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
    if let Some(pid) = worker {
        cmd.arg("--worker-pid").arg(pid.to_string());
    }
    Ok((cmd, pipe))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::fd::IntoRawFd;

    use clap::Parser;

    use super::*;

    const KEY_ID: &str = "AKID-protocol-test";
    const SECRET: &str = "secret-protocol-test";
    const TOKEN: &str = "token-protocol-test";

    fn some_creds() -> Creds {
        Some((
            Credentials::new(KEY_ID, SECRET).with_token(TOKEN),
            "test keys".to_string(),
        ))
    }

    /// Every argument and every variable the command sets.
    fn words(cmd: &Command) -> Vec<String> {
        let mut out: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for (k, v) in cmd.get_envs() {
            out.push(k.to_string_lossy().into_owned());
            out.extend(v.map(|v| v.to_string_lossy().into_owned()));
        }
        out
    }

    fn assert_no_secret(cmd: &Command) {
        for w in words(cmd) {
            for secret in [KEY_ID, SECRET, TOKEN] {
                assert!(!w.contains(secret), "{secret} on the command line: {w}");
            }
        }
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        #[command(name = "__worker")]
        Worker(crate::supervisor::worker::WorkerArgs),
        #[command(name = "__supervise")]
        Supervise(crate::supervisor::supervise::SuperviseArgs),
    }

    fn parse(cmd: &Command) -> Sub {
        let argv = std::iter::once(OsStr::new("ossfs-rs")).chain(cmd.get_args());
        Cli::try_parse_from(argv)
            .expect("the child parses its command line")
            .command
    }

    #[test]
    fn the_creds_pipe_carries_the_credentials() {
        let pipe = creds_pipe(&some_creds()).unwrap();
        let (c, source) = read_creds_pipe(pipe.into_raw_fd()).unwrap().expect("creds");
        assert_eq!(c.access_key_id, KEY_ID);
        assert_eq!(c.secret_access_key, SECRET);
        assert_eq!(c.security_token.as_deref(), Some(TOKEN));
        assert_eq!(source, "test keys");

        let (c, _) = read_creds_pipe(
            creds_pipe(&Some((Credentials::new("a", "b"), String::new())))
                .unwrap()
                .into_raw_fd(),
        )
        .unwrap()
        .expect("creds");
        assert_eq!(c.security_token, None);
    }

    #[test]
    fn an_empty_creds_pipe_means_no_credentials() {
        let pipe = creds_pipe(&None).unwrap();
        assert!(read_creds_pipe(pipe.into_raw_fd()).unwrap().is_none());
    }

    #[test]
    fn a_malformed_creds_pipe_is_refused_without_echoing_it() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        std::fs::File::from(write)
            .write_all(format!("{{\"access_key_id\":\"{SECRET}\"").as_bytes())
            .unwrap();
        let e = read_creds_pipe(read.into_raw_fd()).unwrap_err();
        assert!(matches!(e, CredsPipeError::Malformed));
        assert!(!e.to_string().contains(SECRET));
    }

    const DIR: &str = "/run/ossfs-rs/0123-data";

    /// Check that `cmd` is `subcommand` with the connection arguments
    /// (`fuse`, the pipe) and then `tail`, that no secret is on it, and
    /// that the child parses it back to the same connection; returns the
    /// parsed command.
    fn check(cmd: &Command, pipe: &OwnedFd, subcommand: &str, fuse: RawFd, tail: &[&str]) -> Sub {
        let mut expected = vec![
            subcommand.to_string(),
            "--state-dir".into(),
            DIR.into(),
            "--fuse-fd".into(),
            fuse.to_string(),
            "--creds-fd".into(),
            pipe.as_raw_fd().to_string(),
        ];
        expected.extend(tail.iter().map(|t| t.to_string()));
        assert_eq!(words(cmd), expected);
        assert_no_secret(cmd);
        let parsed = parse(cmd);
        let conn = match &parsed {
            Sub::Worker(a) => &a.conn,
            Sub::Supervise(a) => &a.conn,
        };
        assert_eq!(conn.state_dir, Path::new(DIR));
        assert_eq!(conn.fuse_fd, fuse);
        assert_eq!(conn.creds_fd, Some(pipe.as_raw_fd()));
        parsed
    }

    #[test]
    fn supervise_command_hands_the_credentials_on_the_pipe_only() {
        let dir = Path::new(DIR);
        let binary = Path::new("/usr/bin/ossfs-rs");
        let (cmd, pipe) = supervise_command(binary, dir, 7, &some_creds(), Some(42), true).unwrap();
        assert_eq!(cmd.get_program(), binary);
        let Sub::Supervise(args) = check(&cmd, &pipe, "__supervise", 7, &["--worker-pid", "42"])
        else {
            panic!("not __supervise")
        };
        assert_eq!(args.worker_pid, Some(42));
        let (c, _) = read_creds_pipe(pipe.into_raw_fd()).unwrap().expect("creds");
        assert_eq!(c.secret_access_key, SECRET);

        let (cmd, pipe) = supervise_command(binary, dir, 7, &None, None, false).unwrap();
        check(&cmd, &pipe, "__supervise", 7, &[]);
    }

    #[test]
    fn worker_command_hands_the_credentials_on_the_pipe_only() {
        let dir = Path::new(DIR);
        let binary = Path::new("/usr/bin/ossfs-rs");
        let (cmd, pipe) = worker_command(binary, dir, 5, &some_creds(), 9, 1234, true).unwrap();
        let tail = ["--ready-fd", "9", "--supervisor-pid", "1234", "--first"];
        let Sub::Worker(args) = check(&cmd, &pipe, "__worker", 5, &tail) else {
            panic!("not __worker")
        };
        assert_eq!(args.ready_fd, Some(9));
        assert_eq!(args.supervisor_pid, 1234);
        assert!(args.first);
        let (c, _) = read_creds_pipe(pipe.into_raw_fd()).unwrap().expect("creds");
        assert_eq!(c.security_token.as_deref(), Some(TOKEN));

        let (cmd, pipe) = worker_command(binary, dir, 5, &None, 9, 1, false).unwrap();
        let tail = ["--ready-fd", "9", "--supervisor-pid", "1"];
        check(&cmd, &pipe, "__worker", 5, &tail);
    }

    #[test]
    fn a_child_inherits_its_fds_and_reads_nothing_of_ours() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let n = write.as_raw_fd();
        let mut cmd = child_command(Path::new("/bin/sh"), &[n]);
        // `>/proc/self/fd/N`, not `>&N`: a POSIX shell takes one digit there.
        cmd.arg("-c")
            .arg(format!("readlink /proc/self/fd/0 >/proc/self/fd/{n}"));
        assert!(cmd.status().unwrap().success());
        drop(write);
        let mut text = String::new();
        std::fs::File::from(read).read_to_string(&mut text).unwrap();
        assert_eq!(text, "/dev/null\n");
    }
}
