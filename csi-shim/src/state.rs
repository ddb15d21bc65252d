//! The node's per-volume records: one JSON file per staged volume.
//!
//! A record says which volume is staged where, with which daemon options,
//! which targets it is bind-mounted to, and how its daemon was started, so
//! that a restarted plugin can unpublish and unstage volumes it staged in
//! a previous life. Records hold no secret (the Secret arrives with each
//! NodeStage and is handed to the daemon only). The directory is 0700 and
//! every file 0600; a record is written to a temporary file and renamed
//! over the old one, so a crash leaves either the old or the new record.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CsiError, CsiResult};

/// One staged volume on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volume_id: String,
    pub bucket: String,
    pub prefix: String,
    pub staging_path: PathBuf,
    /// The validated `-o` options of the StorageClass / volume context.
    pub options: String,
    /// Endpoint, region and dialect the daemon was pointed at (not secret).
    pub endpoint: String,
    pub region: Option<String>,
    pub provider: Option<String>,
    /// Published targets and whether each is read-only.
    pub targets: BTreeMap<PathBuf, bool>,
    /// The daemon's pid when known (direct launcher).
    pub daemon_pid: Option<i32>,
    /// The transient systemd unit (systemd launcher).
    pub unit: Option<String>,
    /// The daemon's log file.
    pub log_file: PathBuf,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// A short stable name for a volume id (file names, unit names).
pub fn volume_key(volume_id: &str) -> String {
    let digest = Sha256::digest(volume_id.as_bytes());
    hex::encode(&digest[..10])
}

fn make_private_dir(path: &Path) -> CsiResult<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| CsiError::State(format!("cannot create {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| CsiError::State(format!("cannot chmod {}: {e}", path.display())))
}

impl StateDir {
    /// Open (creating) the state directory with its `volumes/`, `logs/`
    /// and `run/` subdirectories, all 0700. Credential directories left in
    /// `run/` by a plugin that died while a mount was starting are removed.
    pub fn open(root: &Path) -> CsiResult<Self> {
        for sub in ["", "volumes", "logs", "run"] {
            make_private_dir(&root.join(sub))?;
        }
        let state = StateDir {
            root: root.to_path_buf(),
        };
        state.clear_run_dir()?;
        Ok(state)
    }

    /// Remove whatever a previous plugin left in `run/`: only credential
    /// hand-over directories live there, and none outlives a mount start.
    fn clear_run_dir(&self) -> CsiResult<()> {
        let run = self.run_dir();
        let entries = std::fs::read_dir(&run)
            .map_err(|e| CsiError::State(format!("cannot read {}: {e}", run.display())))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "removed a credential directory left by a previous plugin")
                }
                Err(e) => {
                    return Err(CsiError::State(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where short-lived credential directories are made (0700).
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The daemon log of a volume.
    pub fn log_file(&self, volume_id: &str) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{}.log", volume_key(volume_id)))
    }

    fn record_path(&self, volume_id: &str) -> PathBuf {
        self.root
            .join("volumes")
            .join(format!("{}.json", volume_key(volume_id)))
    }

    /// The record of a volume, if it is staged here.
    pub fn load(&self, volume_id: &str) -> CsiResult<Option<VolumeRecord>> {
        let path = self.record_path(volume_id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CsiError::State(format!("{} is not a volume record: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CsiError::State(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Every record (unreadable files are reported and skipped).
    pub fn load_all(&self) -> Vec<VolumeRecord> {
        let dir = self.root.join("volumes");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable volume record")
                }
            }
        }
        out
    }

    /// Write a record atomically with mode 0600.
    pub fn save(&self, rec: &VolumeRecord) -> CsiResult<()> {
        let path = self.record_path(&rec.volume_id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| CsiError::State(format!("cannot encode a volume record: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| CsiError::State(format!("cannot write {}: {e}", path.display())))
    }

    /// Forget a volume (missing is fine).
    pub fn remove(&self, volume_id: &str) -> CsiResult<()> {
        let path = self.record_path(volume_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CsiError::State(format!(
                "cannot remove {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn records_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        let mut rec = VolumeRecord {
            volume_id: "b/p".into(),
            bucket: "b".into(),
            prefix: "p/".into(),
            staging_path: "/k/s".into(),
            options: "path_style".into(),
            endpoint: "http://127.0.0.1:1".into(),
            region: None,
            provider: Some("s3".into()),
            targets: BTreeMap::new(),
            daemon_pid: Some(42),
            unit: None,
            log_file: state.log_file("b/p"),
        };
        state.save(&rec).unwrap();
        rec.targets.insert("/k/t".into(), true);
        state.save(&rec).unwrap();
        assert_eq!(state.load("b/p").unwrap(), Some(rec.clone()));
        assert_eq!(state.load_all(), vec![rec]);
        let mode = std::fs::metadata(state.record_path("b/p")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(state.root()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        state.remove("b/p").unwrap();
        state.remove("b/p").unwrap();
        assert_eq!(state.load("b/p").unwrap(), None);
    }

    #[test]
    fn leftover_credentials_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        let left = state.run_dir().join("cred-abc");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("passwd"), "ak:sk\n").unwrap();
        let state = StateDir::open(state.root()).unwrap();
        assert_eq!(std::fs::read_dir(state.run_dir()).unwrap().count(), 0);
    }
}
