//! The plugin's copy of each staged volume's `/dev/fuse` fd, and the
//! restart of a volume's daemon on it.
//!
//! A volume's daemon is a supervisor and a worker that each keep the
//! FUSE connection (docs/operations.md): either one replaces the other.
//! If both die at once the connection would end with them and every pod
//! bound to the volume would see ENOTCONN. So at NodeStage the plugin asks
//! the supervisor for a third copy of the fd (over its control socket,
//! SCM_RIGHTS) and keeps it with the volume's credentials, in memory only.
//! A watchdog looks at each kept volume twice a second; when neither the
//! supervisor nor the worker is alive and the staging path is still
//! mounted, it starts `ossfs-rs __supervise` on the kept fd: a new
//! supervisor, which starts a worker that reloads the journal and has the
//! kernel resend what the dead one left. The pods' bind mounts never
//! notice.
//!
//! The copy lives as long as the plugin process: a plugin restart loses it
//! (the daemons themselves outlive the plugin, see the launcher). With the
//! systemd launcher the plugin must see the daemons' state directories
//! (`/run/ossfs-rs`, a hostPath in deploy/), and a daemon restarted here
//! runs in the plugin's container, not as a host unit.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ossfs_rs::facade::control;
use ossfs_rs::facade::{StateDir, SupervisorInfo, state_dir_for};
use ossfs_rs::facade::{alive, supervise_command};
use ossfs_rs::store::Credentials;

/// How often the watchdog looks at the daemons.
const WATCH_EVERY: Duration = Duration::from_millis(500);

struct Kept {
    fuse: OwnedFd,
    state: StateDir,
    staging: PathBuf,
    creds: Credentials,
    log_file: PathBuf,
}

/// The kept fds of this node's volumes.
pub struct Keeper {
    ossfs_bin: PathBuf,
    volumes: Mutex<HashMap<String, Kept>>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("Keeper").field("volumes", &ids).finish()
    }
}

impl Keeper {
    pub fn new(ossfs_bin: PathBuf) -> Self {
        Self {
            ossfs_bin,
            volumes: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.volumes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a copy of the fd of the daemon serving `staging`.
    pub fn keep(
        &self,
        volume_id: &str,
        staging: &Path,
        creds: &Credentials,
        log_file: &Path,
    ) -> std::io::Result<()> {
        let canonical = std::fs::canonicalize(staging)?;
        let state = StateDir::new(state_dir_for(&canonical));
        let fuse = control::fetch_fuse_fd(&state.control())?;
        tracing::info!(volume_id, staging = %staging.display(), "keeping a copy of the volume's FUSE connection");
        self.lock().insert(
            volume_id.to_string(),
            Kept {
                fuse,
                state,
                staging: canonical,
                creds: creds.clone(),
                log_file: log_file.to_path_buf(),
            },
        );
        Ok(())
    }

    /// Drop the copy (before the volume is unstaged).
    pub fn release(&self, volume_id: &str) {
        self.lock().remove(volume_id);
    }

    /// Watch the kept volumes until the plugin exits.
    pub fn spawn_watchdog(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                self.check_all();
            }
        });
    }

    fn check_all(&self) {
        let mut volumes = self.lock();
        let mut gone = Vec::new();
        for (id, kept) in volumes.iter() {
            let info: SupervisorInfo = match kept.state.read_json(&kept.state.supervisor()) {
                Ok(i) => i,
                // A daemon that ended cleanly (unmounted) removed its state.
                Err(_) => {
                    gone.push(id.clone());
                    continue;
                }
            };
            if alive(info.pid) || alive(info.worker_pid) {
                continue;
            }
            if !crate::mounts::is_mount_point(&kept.staging) {
                gone.push(id.clone());
                continue;
            }
            tracing::error!(
                volume_id = %id,
                supervisor = info.pid,
                worker = info.worker_pid,
                "the volume's daemon died (supervisor and worker); starting a new one on the kept FUSE connection"
            );
            match self.restart(kept) {
                Ok(pid) => {
                    tracing::info!(volume_id = %id, supervisor = pid, "daemon restarted on the kept connection")
                }
                Err(e) => {
                    tracing::error!(volume_id = %id, error = %e, "cannot restart the daemon; retrying")
                }
            }
        }
        for id in gone {
            volumes.remove(&id);
        }
    }

    fn restart(&self, kept: &Kept) -> std::io::Result<u32> {
        let creds = Some((kept.creds.clone(), "CSI secret".to_string()));
        let fuse = kept.fuse.as_raw_fd();
        // In a session of its own: not in the plugin's process group.
        let (mut cmd, _pipe) =
            supervise_command(&self.ossfs_bin, &kept.state.dir, fuse, &creds, None, true)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&kept.log_file)?;
        cmd.stdout(Stdio::null()).stderr(Stdio::from(log));
        let mut child = cmd.spawn()?;
        let pid = child.id();
        // Reap it whenever it ends (it normally outlives us).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }
}
