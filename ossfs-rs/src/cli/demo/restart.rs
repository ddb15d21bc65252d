//! The supervised half of `ossfs-rs demo`: the same embedded endpoint
//! mounted the way users mount (`ossfs-rs mount`, a supervisor and a
//! worker), a file written, the worker killed with `kill -9`, and the same
//! file read again through the same mount, which never went away.
//!
//! The mount is made by running the `ossfs-rs` binary (this one, or
//! `--ossfs-bin`), with the endpoint's keys in a 0600 passwd file of a
//! temporary directory; a guard unmounts it on every path.
//!
//! Imports: `store` (the keys) and `supervisor` (the state directory, the
//! unmount).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::store::Credentials;
use crate::supervisor::state::{StateDir, SupervisorInfo, state_dir_for};

/// How long the mount may take to serve again after the kill.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

/// Why the supervised tour failed.
#[derive(Debug, thiserror::Error)]
pub enum RestartTourError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`ossfs-rs mount` failed ({status}): {stderr}")]
    Mount { status: String, stderr: String },
    #[error("{0}")]
    Check(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RestartTourError {
    let what = what.into();
    move |source| RestartTourError::Io { what, source }
}

/// Where the endpoint is and who may use it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub region: String,
    pub bucket: String,
    pub credentials: Credentials,
}

/// Unmounts (lazily, as a last resort) when dropped.
struct Mounted {
    binary: PathBuf,
    mountpoint: PathBuf,
    live: bool,
}

impl Mounted {
    fn unmount(&mut self) -> Result<(), RestartTourError> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let out = Command::new(&self.binary)
            .arg("umount")
            .arg(&self.mountpoint)
            .output()
            .map_err(io("running ossfs-rs umount"))?;
        if out.status.success() {
            Ok(())
        } else {
            let _ = crate::supervisor::fusedev::unmount(&self.mountpoint, true);
            Err(RestartTourError::Check(format!(
                "ossfs-rs umount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

fn supervisor_info(mountpoint: &Path) -> Option<SupervisorInfo> {
    let canonical = std::fs::canonicalize(mountpoint).ok()?;
    let state = StateDir::new(state_dir_for(&canonical));
    state.read_json(&state.supervisor()).ok()
}

/// Mount `endpoint`'s bucket under `prefix` with `binary`, write a file,
/// kill the worker, read the file again; returns the lines to print.
pub fn tour(
    endpoint: &Endpoint,
    prefix: &str,
    binary: &Path,
) -> Result<Vec<String>, RestartTourError> {
    let dir = tempfile::Builder::new()
        .prefix("ossfs-rs-demo-supervised-")
        .tempdir()
        .map_err(io("creating a temporary directory"))?;
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).map_err(io("creating the mount point"))?;
    let passwd = dir.path().join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "{}:{}\n",
            endpoint.credentials.access_key_id, endpoint.credentials.secret_access_key
        ),
    )
    .map_err(io("writing the passwd file"))?;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))
        .map_err(io("protecting the passwd file"))?;
    let options = format!(
        "url={},provider=s3,path_style,region={},passwd_file={},logfile={}",
        endpoint.url,
        endpoint.region,
        passwd.display(),
        dir.path().join("daemon.log").display()
    );
    let out = Command::new(binary)
        .arg("mount")
        .arg(format!("{}:/{prefix}", endpoint.bucket))
        .arg(&mountpoint)
        .arg("-o")
        .arg(&options)
        .output()
        .map_err(io(format!("running {} mount", binary.display())))?;
    if !out.status.success() {
        return Err(RestartTourError::Mount {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut mounted = Mounted {
        binary: binary.to_path_buf(),
        mountpoint: mountpoint.clone(),
        live: true,
    };
    let mut lines = Vec::new();
    let info = supervisor_info(&mountpoint)
        .ok_or_else(|| RestartTourError::Check("the mount has no supervisor state".into()))?;
    lines.push(format!(
        "`ossfs-rs mount`: supervisor pid {}, worker pid {}",
        info.pid, info.worker_pid
    ));

    let file = mountpoint.join("survivor.txt");
    let text = b"written before the worker was killed\n";
    std::fs::write(&file, text).map_err(io("writing survivor.txt"))?;
    lines.push("write survivor.txt".to_string());

    let old = info.worker_pid;
    // SAFETY: kill(2) on the worker pid this mount's supervisor reports.
    if unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) } != 0 {
        return Err(io(format!("kill -9 {old}"))(std::io::Error::last_os_error()));
    }
    let killed = Instant::now();
    let back = loop {
        match std::fs::read(&file) {
            Ok(data) => break data,
            Err(e) if killed.elapsed() > RECOVERY_LIMIT => {
                return Err(io("reading survivor.txt after the kill")(e));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let served = killed.elapsed();
    if back != text {
        return Err(RestartTourError::Check(
            "survivor.txt reads back other bytes after the kill".into(),
        ));
    }
    let deadline = Instant::now() + RECOVERY_LIMIT;
    let new = loop {
        match supervisor_info(&mountpoint).map(|i| i.worker_pid) {
            Some(pid) if pid != old && pid != 0 => break pid,
            _ if Instant::now() > deadline => {
                return Err(RestartTourError::Check(
                    "no new worker was reported after the kill".into(),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    lines.push(format!(
        "kill -9 the worker ({old}): the mount stayed; survivor.txt read back after {:.0} ms, served by worker {new}",
        served.as_secs_f64() * 1000.0
    ));
    mounted.unmount()?;
    lines.push(format!("ossfs-rs umount {}", mountpoint.display()));
    Ok(lines)
}

/// Run [`tour`] on a blocking thread and print its lines to `out`.
pub async fn run(
    endpoint: Endpoint,
    prefix: &str,
    binary: PathBuf,
    out: &mut (dyn Write + Send),
) -> Result<(), RestartTourError> {
    let _ = writeln!(
        out,
        "mounting the bucket with a supervisor, as users do (`ossfs-rs mount`)"
    );
    let prefix = prefix.to_string();
    let lines = tokio::task::spawn_blocking(move || tour(&endpoint, &prefix, &binary))
        .await
        .map_err(|e| RestartTourError::Check(format!("the supervised tour panicked: {e}")))??;
    for line in lines {
        let _ = writeln!(out, "  [ok] {line}");
    }
    Ok(())
}
