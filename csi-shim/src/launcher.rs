//! Starting and stopping the `ossfs-rs` daemon of a volume.
//!
//! A daemon must outlive the plugin: a container runtime kills every
//! process of the plugin container when it restarts. Two launchers:
//!
//! - `direct`: run `ossfs-rs mount` as is. The command re-executes itself
//!   as the daemon, which calls setsid(2) once the mount is ready, so the
//!   daemon is in its own session and process group and survives the
//!   plugin being killed with its whole process group. It still lives in
//!   the plugin container's cgroup, so a container runtime that kills the
//!   cgroup (a real container restart) takes it along: use this launcher
//!   on a host or in tests.
//! - `systemd`: run the same command as a transient unit of the host's
//!   systemd (`systemd-run --unit=csi-os-<key> --collect -p Type=forking`),
//!   entered with `nsenter -t 1 -m` from the plugin container (which must
//!   then run with `hostPID: true`). The daemon is then a host service and
//!   outlives the container. The binary and the credential directory must
//!   be host paths: both live under the kubelet directory (shared with the
//!   host) in the DaemonSet of deploy/.
//!
//! Credentials go to the daemon in a fresh 0700 directory holding a 0600
//! passwd file (`accessKey:secretKey`) or, with a security token, an
//! `sts_dir` (`AccessKeyId`, `AccessKeySecret`, `SecurityToken`,
//! `Expiration`). `ossfs-rs mount` returns only once the mount is ready,
//! and the daemon has read the credentials by then; the directory is
//! removed as soon as it returns, whatever the outcome. Secrets never go on
//! a command line or into an environment.
//!
//! A daemon that crashes is recovered without the launcher: its supervisor
//! and worker replace each other, and the plugin's [`crate::keeper`] starts
//! a new one on its copy of the `/dev/fuse` fd if both die.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ossfs_rs::store::Credentials;
use tokio::process::Command;

use crate::error::{CsiError, CsiResult};
use crate::mounts;
use crate::state::volume_key;

/// How long `ossfs-rs mount` may take (its own readiness timeout is 120 s).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a daemon gets to exit after its mount is gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How daemons are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LauncherKind {
    /// Run `ossfs-rs mount` directly (the daemon detaches with setsid).
    Direct,
    /// Run it as a transient unit of the host's systemd, via nsenter.
    Systemd,
}

/// Everything a mount needs except the credentials.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub volume_id: String,
    /// `bucket:/prefix`.
    pub source: String,
    pub staging_path: PathBuf,
    /// Full `-o` string without credentials.
    pub options: String,
}

/// What a started daemon is known by.
#[derive(Debug, Clone, Default)]
pub struct Started {
    pub pid: Option<i32>,
    pub unit: Option<String>,
}

/// Starts and stops daemons.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub kind: LauncherKind,
    /// The `ossfs-rs` binary (a host path for the systemd launcher).
    pub ossfs_bin: PathBuf,
    /// Where credential directories are made (a host path for systemd).
    pub run_dir: PathBuf,
}

/// The transient unit name of a volume.
pub fn unit_name(volume_id: &str) -> String {
    format!("csi-os-{}", volume_key(volume_id))
}

/// Write the credentials into a fresh 0700 directory under `run_dir`;
/// returns the directory (removed on drop) and the `-o` option naming it.
fn write_credentials(
    run_dir: &Path,
    creds: &Credentials,
) -> CsiResult<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new()
        .prefix("cred-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(run_dir)
        .map_err(|e| {
            CsiError::io(
                format!("creating a credential directory in {}", run_dir.display()),
                e,
            )
        })?;
    let write = |name: &str, value: &str| -> CsiResult<()> {
        let path = dir.path().join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CsiError::io(format!("creating {}", path.display()), e))?;
        f.write_all(value.as_bytes())
            .map_err(|e| CsiError::io(format!("writing {}", path.display()), e))
    };
    let option = match &creds.security_token {
        None => {
            write(
                "passwd",
                &format!("{}:{}\n", creds.access_key_id, creds.secret_access_key),
            )?;
            format!("passwd_file={}", dir.path().join("passwd").display())
        }
        Some(token) => {
            write("AccessKeyId", &creds.access_key_id)?;
            write("AccessKeySecret", &creds.secret_access_key)?;
            write("SecurityToken", token)?;
            let expires = creds
                .expires_at
                .map(time::OffsetDateTime::from)
                .unwrap_or_else(|| time::OffsetDateTime::now_utc() + time::Duration::days(3650));
            let text = expires
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| CsiError::Invalid(format!("security token expiration: {e}")))?;
            write("Expiration", &text)?;
            format!("sts_dir={}", dir.path().display())
        }
    };
    Ok((dir, option))
}

impl Launcher {
    /// The argv (program first) that starts the daemon of `spec` with
    /// `cred_option` added to its options. Holds no secret.
    pub fn argv(&self, spec: &MountSpec, cred_option: &str) -> Vec<String> {
        let mut options = spec.options.clone();
        if !options.is_empty() {
            options.push(',');
        }
        options.push_str(cred_option);
        let mount = [
            self.ossfs_bin.display().to_string(),
            "mount".to_string(),
            spec.source.clone(),
            spec.staging_path.display().to_string(),
            "-o".to_string(),
            options,
        ];
        match self.kind {
            LauncherKind::Direct => mount.to_vec(),
            LauncherKind::Systemd => {
                let mut argv: Vec<String> = [
                    "nsenter",
                    "--target",
                    "1",
                    "--mount",
                    "--",
                    "systemd-run",
                    "--quiet",
                    "--collect",
                    "--property=Type=forking",
                    "--property=KillMode=process",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                argv.push(format!("--unit={}", unit_name(&spec.volume_id)));
                argv.push(format!("--description=csi-os volume {}", spec.volume_id));
                argv.extend(mount);
                argv
            }
        }
    }

    /// Start the daemon of `spec` and wait until its mount is ready.
    pub async fn start(&self, spec: &MountSpec, creds: &Credentials) -> CsiResult<Started> {
        let (cred_dir, cred_option) = write_credentials(&self.run_dir, creds)?;
        let argv = self.argv(spec, &cred_option);
        let result = run_command(&argv, MOUNT_TIMEOUT).await;
        // The daemon has read the credentials (or failed): remove them now.
        let dir_path = cred_dir.path().to_path_buf();
        if let Err(e) = cred_dir.close() {
            tracing::error!(dir = %dir_path.display(), error = %e, "cannot remove a credential directory");
        }
        result?;
        Ok(match self.kind {
            LauncherKind::Direct => Started {
                pid: mounts::daemons_for(&spec.staging_path).first().copied(),
                unit: None,
            },
            LauncherKind::Systemd => Started {
                pid: None,
                unit: Some(unit_name(&spec.volume_id)),
            },
        })
    }

    /// After the mount at `staging_path` is gone, make sure its daemon
    /// ends: wait for it, then SIGTERM, then SIGKILL; stop the unit.
    pub async fn stop(&self, staging_path: &Path, unit: Option<&str>) -> CsiResult<()> {
        if let Some(unit) = unit {
            let argv: Vec<String> = [
                "nsenter",
                "--target",
                "1",
                "--mount",
                "--",
                "systemctl",
                "stop",
                unit,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Err(e) = run_command(&argv, EXIT_TIMEOUT).await {
                tracing::warn!(unit, error = %e, "stopping the daemon's unit failed");
            }
        }
        // Found by command line, not by a recorded pid: pids are reused.
        for pid in mounts::daemons_for(staging_path) {
            if !wait_exit(pid, EXIT_TIMEOUT).await {
                tracing::warn!(pid, "daemon still running after unmount; sending SIGTERM");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
                if !wait_exit(pid, Duration::from_secs(10)).await {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        Ok(())
    }
}

/// Wait for `pid` to exit (it is not our child: poll /proc).
async fn wait_exit(pid: i32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while mounts::is_running(pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Run `argv` with a timeout; a non-zero exit is an error carrying stderr.
async fn run_command(argv: &[String], timeout: Duration) -> CsiResult<()> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| CsiError::Mount("empty command".into()))?;
    let child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CsiError::Mount(format!("cannot run {program}: {e}")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| CsiError::Mount(format!("{program} did not finish within {timeout:?}")))?
        .map_err(|e| CsiError::Mount(format!("waiting for {program}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CsiError::Mount(format!(
            "{program} {} failed ({}): {}",
            args.first().map(String::as_str).unwrap_or(""),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn spec() -> MountSpec {
        MountSpec {
            volume_id: "b/p".into(),
            source: "b:/p/".into(),
            staging_path: "/var/lib/kubelet/plugins/kubernetes.io/csi/csi.os/x/globalmount".into(),
            options: "path_style".into(),
        }
    }

    #[test]
    fn argv_has_no_secret_and_systemd_wraps_it() {
        let direct = Launcher {
            kind: LauncherKind::Direct,
            ossfs_bin: "/bin/ossfs-rs".into(),
            run_dir: "/run".into(),
        };
        let argv = direct.argv(&spec(), "passwd_file=/run/cred-x/passwd");
        assert_eq!(argv[0], "/bin/ossfs-rs");
        assert_eq!(
            argv.last().unwrap(),
            "path_style,passwd_file=/run/cred-x/passwd"
        );
        let systemd = Launcher {
            kind: LauncherKind::Systemd,
            ..direct
        };
        let argv = systemd.argv(&spec(), "passwd_file=/p");
        assert_eq!(&argv[..5], ["nsenter", "--target", "1", "--mount", "--"]);
        assert!(argv.contains(&format!("--unit={}", unit_name("b/p"))));
        assert!(argv.contains(&"--property=Type=forking".to_string()));
    }

    #[test]
    fn credentials_are_private_and_removed() {
        let run = tempfile::tempdir().unwrap();
        let (dir, opt) = write_credentials(run.path(), &Credentials::new("AK", "SK")).unwrap();
        let passwd = dir.path().join("passwd");
        assert_eq!(opt, format!("passwd_file={}", passwd.display()));
        assert_eq!(std::fs::read_to_string(&passwd).unwrap(), "AK:SK\n");
        assert_eq!(std::fs::metadata(&passwd).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
        let path = dir.path().to_path_buf();
        dir.close().unwrap();
        assert!(!path.exists());

        let (dir, opt) =
            write_credentials(run.path(), &Credentials::new("AK", "SK").with_token("TOK")).unwrap();
        assert!(opt.starts_with("sts_dir="));
        let provider = ossfs_rs::store::credentials::StsDirProvider::new(dir.path().to_path_buf());
        let creds = provider.read_files().unwrap();
        assert_eq!(creds.security_token.as_deref(), Some("TOK"));
    }
}
