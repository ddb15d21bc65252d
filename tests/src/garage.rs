//! A real single-node Garage (the S3 server of the end-to-end tests),
//! started in a temporary directory and torn down afterwards.
//!
//! Design:
//!
//! - **Real server, real CLI.** Startup is what an operator does
//!   (DESIGN.md section 4): write a config (lmdb, replication factor 1,
//!   loopback ports), `garage server`, wait for `garage status`, assign and
//!   apply a layout, create a bucket and a key, allow the key on the bucket.
//! - **Never hang.** Every CLI call and every wait has a deadline; a startup
//!   failure names the step that did not come up and carries the tail of
//!   the server log (`garage.log` in the temporary directory).
//! - **One server per test binary.** [`Garage::shared`] starts it once
//!   (about a second) and hands the same instance to every test; tests stay
//!   independent by working under their own random key prefix
//!   ([`unique_prefix`]) or their own bucket ([`Garage::create_bucket`]).
//!   [`Garage::start`] gives a private instance, stopped on drop.
//! - **Cleaned up even when nobody drops it.** Statics are never dropped, so
//!   every instance also has a watchdog child (`sh`, in its own process
//!   group) reading a pipe from this process: when this process exits,
//!   however it exits, the pipe closes and the watchdog kills the server and
//!   removes the directory.
//!
//! The secret key is never printed: `Debug` redacts it and no error message
//! echoes CLI output that could contain it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::process::run;

/// The S3 region configured in Garage (`[s3_api] s3_region`).
pub const REGION: &str = "garage";

/// How long the server may take to answer `garage status`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one CLI command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the S3 port may take to answer HTTP after the layout is applied.
const S3_TIMEOUT: Duration = Duration::from_secs(30);

/// Why Garage could not be started or driven.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}{}", log_tail.as_ref().map(|t| format!("\n--- last lines of the Garage log ---\n{t}")).unwrap_or_default())]
pub struct GarageError {
    message: String,
    log_tail: Option<String>,
}

impl GarageError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            log_tail: None,
        }
    }
}

/// A running single-node Garage with one bucket and one key allowed on it.
pub struct Garage {
    endpoint: String,
    s3_addr: SocketAddr,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
    dir: PathBuf,
    bin: PathBuf,
    server: Mutex<Child>,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    startup: Duration,
}

impl fmt::Debug for Garage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Garage")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<Result<Garage, GarageError>> = OnceLock::new();

impl Garage {
    /// The instance shared by every test of this test binary, started on
    /// first use. A failed start is remembered: every test reports it.
    pub fn shared() -> Result<&'static Garage, GarageError> {
        SHARED
            .get_or_init(Garage::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Start a private instance, stopped and removed on drop.
    pub fn start() -> Result<Garage, GarageError> {
        let started = Instant::now();
        let bin = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("garage-e2e-")
            .tempdir()
            .map_err(|e| GarageError::new(format!("cannot create a temporary directory: {e}")))?
            .keep();
        let (rpc_port, s3_port) = free_ports()?;
        let s3_addr = SocketAddr::from(([127, 0, 0, 1], s3_port));
        write_config(&dir, rpc_port, s3_port)?;

        let log_path = dir.join("garage.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| GarageError::new(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| GarageError::new(format!("cannot duplicate the log handle: {e}")))?;
        let server = Command::new(&bin)
            .arg("-c")
            .arg(dir.join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=info,garage_api_s3=info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| GarageError::new(format!("cannot run {} server: {e}", bin.display())))?;
        let watchdog = spawn_watchdog(server.id(), &dir)?;

        let mut garage = Garage {
            endpoint: format!("http://{s3_addr}"),
            s3_addr,
            bucket: format!("e2e-{}", random_hex(6)),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            dir,
            bin,
            server: Mutex::new(server),
            watchdog: Mutex::new(Some(watchdog)),
            startup: Duration::ZERO,
        };
        // On failure `garage` is dropped here, which stops the server.
        garage.setup().map_err(|mut e| {
            e.log_tail = Some(tail(&log_path, 30));
            e
        })?;
        garage.startup = started.elapsed();
        Ok(garage)
    }

    fn setup(&mut self) -> Result<(), GarageError> {
        self.wait_for_status()?;
        let node = self.cli(&["node", "id", "-q"], "read the node id")?;
        let node_id = node
            .trim()
            .split('@')
            .next()
            .filter(|id| id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| {
                GarageError::new(format!("`garage node id -q` printed no node id: {node:?}"))
            })?
            .to_string();
        self.cli(
            &["layout", "assign", "-z", "dc1", "-c", "10G", &node_id],
            "assign the layout",
        )?;
        self.cli(&["layout", "apply", "--version", "1"], "apply the layout")?;
        self.cli(&["bucket", "create", &self.bucket], "create the bucket")?;
        let key_name = format!("e2e-key-{}", random_hex(4));
        let out = self.cli(&["key", "create", &key_name], "create the key")?;
        self.access_key_id = table_value(&out, "Key ID:")
            .ok_or_else(|| GarageError::new("`garage key create` printed no `Key ID:` line"))?;
        self.secret_access_key = table_value(&out, "Secret key:")
            .ok_or_else(|| GarageError::new("`garage key create` printed no `Secret key:` line"))?;
        self.allow(&self.bucket)?;
        self.wait_for_s3()
    }

    /// Poll `garage status` until it succeeds; fail early if the server died.
    fn wait_for_status(&self) -> Result<(), GarageError> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = self.server_exit()? {
                return Err(GarageError::new(format!(
                    "`garage server` exited during startup ({status})"
                )));
            }
            let attempt = run(self.command(&["status"]), Duration::from_secs(10));
            if let Ok(Some(out)) = &attempt
                && out.status.success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(GarageError::new(format!(
                    "`garage status` did not succeed within {BOOT_TIMEOUT:?}: the RPC server did not come up"
                )));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until the S3 port answers an (unsigned) HTTP request.
    fn wait_for_s3(&self) -> Result<(), GarageError> {
        let deadline = Instant::now() + S3_TIMEOUT;
        loop {
            if probe_http(self.s3_addr).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(GarageError::new(format!(
                    "the S3 API on {} did not answer HTTP within {S3_TIMEOUT:?}",
                    self.s3_addr
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_exit(&self) -> Result<Option<ExitStatus>, GarageError> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        server
            .try_wait()
            .map_err(|e| GarageError::new(format!("cannot poll the garage server: {e}")))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c").arg(self.dir.join("garage.toml")).args(args);
        cmd
    }

    /// Run a CLI command that must succeed; returns its stdout.
    fn cli(&self, args: &[&str], what: &str) -> Result<String, GarageError> {
        let out = run(self.command(args), COMMAND_TIMEOUT)
            .map_err(|e| GarageError::new(format!("cannot {what}: running garage failed: {e}")))?
            .ok_or_else(|| {
                GarageError::new(format!(
                    "cannot {what}: `garage {}` did not finish within {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                ))
            })?;
        if !out.status.success() {
            // stderr of these commands never contains the secret key.
            return Err(GarageError::new(format!(
                "cannot {what}: `garage {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn allow(&self, bucket: &str) -> Result<(), GarageError> {
        self.cli(
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                bucket,
                "--key",
                &self.access_key_id,
            ],
            "allow the key on the bucket",
        )
        .map(|_| ())
    }

    /// Create another bucket that the key may read, write and own.
    pub fn create_bucket(&self, name: &str) -> Result<(), GarageError> {
        self.cli(&["bucket", "create", name], "create a bucket")?;
        self.allow(name)
    }

    /// `http://127.0.0.1:PORT` of the S3 API (plain http).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The S3 API's socket address (for a [`crate::fault_proxy::FaultProxy`]).
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_addr
    }

    /// The S3 region Garage expects in signatures.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The bucket created at startup.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key id allowed on [`Garage::bucket`].
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret of [`Garage::access_key_id`]. Never print it.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The temporary directory holding config, data and `garage.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long startup took (spawn to a usable bucket).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // Stop the watchdog first so it cannot signal a recycled pid later.
        if let Some((mut dog, stdin)) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = dog.kill();
            let _ = dog.wait();
            drop(stdin);
        }
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A key prefix no other test (or run) uses: `e2e/<name>-<random>/`.
pub fn unique_prefix(name: &str) -> String {
    format!("e2e/{name}-{}/", random_hex(8))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

/// `GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
fn find_binary() -> Result<PathBuf, GarageError> {
    if let Some(bin) = std::env::var_os("GARAGE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("garage"));
    let in_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    on_path
        .chain(in_cargo)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            GarageError::new(
                "the garage binary was not found (GARAGE_BIN, PATH, ~/.cargo/bin): install it with \
                 `cargo install garage --version 2.5.0 --locked` or run `bash scripts/test`",
            )
        })
}

/// Two distinct free loopback ports (both held until both are chosen).
fn free_ports() -> Result<(u16, u16), GarageError> {
    let err = |e: io::Error| GarageError::new(format!("cannot reserve a loopback port: {e}"));
    let a = TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let b = TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let ports = (
        a.local_addr().map_err(err)?.port(),
        b.local_addr().map_err(err)?.port(),
    );
    Ok(ports)
}

fn write_config(dir: &Path, rpc_port: u16, s3_port: u16) -> Result<(), GarageError> {
    let config = format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
        dir = dir.display(),
        secret = random_hex(32),
    );
    let path = dir.join("garage.toml");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .map_err(|e| GarageError::new(format!("cannot write {}: {e}", path.display())))
}

/// A child that kills `pid` and removes `dir` once its stdin closes, which
/// happens when this process exits or [`Garage`] is dropped. It runs in its
/// own process group, so a signal to this process's group (Ctrl-C, a test
/// runner's timeout) does not kill it before it has cleaned up.
fn spawn_watchdog(pid: u32, dir: &Path) -> Result<(Child, ChildStdin), GarageError> {
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"cat >/dev/null; kill -9 "$1" 2>/dev/null; rm -rf "$2""#)
        .arg("garage-watchdog")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| GarageError::new(format!("cannot start the watchdog (sh): {e}")))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| GarageError::new("the watchdog has no stdin pipe"))?;
    Ok((child, stdin))
}

/// The value of a `Name:   value` line of Garage's table output.
fn table_value(output: &str, name: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v != "(redacted)")
}

/// Send `GET /` and expect an HTTP status line back.
fn probe_http(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf)?;
    if buf.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP"))
    }
}

/// The last `n` lines of a file (for error reports).
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_table() {
        let out = "==== ACCESS KEY INFORMATION ====\nKey ID:              GK31c2f218a2e44f485b94239e\n\
                   Key name:            e2e\nSecret key:          b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f93d5c1a1a4b4d2c8\n";
        assert_eq!(
            table_value(out, "Key ID:").as_deref(),
            Some("GK31c2f218a2e44f485b94239e")
        );
        assert_eq!(
            table_value(out, "Secret key:").as_deref(),
            Some("b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f93d5c1a1a4b4d2c8")
        );
        assert_eq!(table_value("Secret key:  (redacted)", "Secret key:"), None);
    }
}
