//! The state directory of a mount: everything a replacement worker or
//! supervisor needs, in one place per mount point.
//!
//! `<runtime>/<id>/` where `<runtime>` is `/run/ossfs-rs` for root,
//! `$XDG_RUNTIME_DIR/ossfs-rs` or `/tmp/ossfs-rs-<uid>` otherwise
//! (`OSSFS_RS_RUNTIME_DIR` overrides it), and `<id>` is derived from the
//! canonical mount point. The directory is 0700; it holds the mount's
//! command line (no secrets: a passwd file is named, never read into it),
//! the kernel's INIT request, the journal, the in-flight table, the
//! control socket, and two small JSON
//! files describing the supervisor and the worker for `ossfs-rs status`.
//!
//! A state directory, and the runtime directory above it, are used only
//! when they are ours: owned by our uid, writable by nobody else, not a
//! symbolic link ([`create_state_dir`], [`check_state_dir`]); on a shared
//! `/tmp` another user could otherwise make `/tmp/ossfs-rs-<uid>` first
//! and so choose the command line, and the binary, a replacement
//! supervisor runs. Its files are opened with `O_NOFOLLOW`: a symbolic
//! link planted at a file's name is an error, never followed.
//!
//! Imports: std, libc, serde and serde_json, and `sys` (private
//! directories).

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::private_dir::{PrivateDirError, create_private_dir, open_private_dir};

/// Create the state directory `dir` (and the runtime directory above it),
/// or check the ones there: both ours and private.
pub fn create_state_dir(dir: &Path) -> Result<(), PrivateDirError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    create_private_dir(dir)
}

/// Check that the existing state directory `dir`, and the runtime
/// directory above it, are ours and private.
pub fn check_state_dir(dir: &Path) -> Result<(), PrivateDirError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        open_private_dir(parent)?;
    }
    open_private_dir(dir).map(drop)
}

/// Where the state directories of this user's mounts live.
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OSSFS_RS_RUNTIME_DIR") {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/ossfs-rs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("ossfs-rs"),
        None => std::env::temp_dir().join(format!("ossfs-rs-{uid}")),
    }
}

/// The state directory of the mount at `mountpoint` (canonical path).
pub fn state_dir_for(mountpoint: &Path) -> PathBuf {
    // FNV-1a: stable across versions (std's hasher is not guaranteed to be).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in mountpoint.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let tail: String = mountpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect();
    runtime_dir().join(format!("{h:016x}-{tail}"))
}

/// The state directories of this user's mounts.
pub fn all_state_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runtime_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("supervisor.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// The files of one state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    pub fn args(&self) -> PathBuf {
        self.dir.join("args.json")
    }
    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }
    pub fn inflight(&self) -> PathBuf {
        self.dir.join("inflight")
    }
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    pub fn supervisor(&self) -> PathBuf {
        self.dir.join("supervisor.json")
    }
    pub fn worker(&self) -> PathBuf {
        self.dir.join("worker.json")
    }

    /// Remove the files of a mount's state (not the directory, nor the
    /// staging files a mount may keep in it).
    pub fn remove_files(&self) {
        for f in [
            self.args(),
            self.init(),
            self.journal(),
            self.inflight(),
            self.control(),
            self.supervisor(),
            self.worker(),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Write `value` as JSON to `path` atomically, mode 0600.
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &data))?;
        // rename replaces a link at `path`, it never follows it.
        std::fs::rename(&tmp, path)
    }

    /// Read a JSON file of this directory.
    pub fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> io::Result<T> {
        let mut data = Vec::new();
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut data))?;
        serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Write a private file (INIT request).
    pub fn write_private(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, data))
    }
}

/// What the supervisor tells `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub mountpoint: PathBuf,
    /// `bucket:/prefix`.
    pub source: String,
    pub endpoint: String,
    pub pid: u32,
    pub version: String,
    pub binary: PathBuf,
    /// Seconds since the epoch when the mount was made.
    pub mounted_at: u64,
    /// When this supervisor process started.
    pub started_at: u64,
    pub worker_pid: u32,
    pub worker_binary: PathBuf,
    pub worker_restarts: u64,
    pub last_restart_reason: Option<String>,
    pub upgrades: u64,
    /// Whether the kernel can resend requests (FUSE_HAS_RESEND).
    pub kernel_resend: bool,
    pub kernel_protocol: String,
}

/// What a worker tells `status` (rewritten every few seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub pid: u32,
    pub version: String,
    pub binary: PathBuf,
    pub started_at: u64,
    pub requests_in_flight: usize,
    pub inodes: usize,
    pub open_handles: usize,
    pub open_writers: usize,
    pub journal_bytes: u64,
    /// Bytes held by the shared block cache.
    #[serde(default)]
    pub block_cache_bytes: u64,
    /// Data buffers in use and the budget (`memory_limit`).
    #[serde(default)]
    pub memory_used: u64,
    #[serde(default)]
    pub memory_limit: u64,
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dirs_are_stable_and_distinct() {
        let a = state_dir_for(Path::new("/mnt/data"));
        assert_eq!(a, state_dir_for(Path::new("/mnt/data")));
        assert_ne!(a, state_dir_for(Path::new("/mnt/data2")));
        assert!(a.to_string_lossy().ends_with("-data"));
    }

    #[test]
    fn state_files_are_never_opened_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("s"));
        create_state_dir(&state.dir).unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, b"{}").unwrap();
        std::os::unix::fs::symlink(&target, state.supervisor()).unwrap();
        assert!(
            state
                .read_json::<SupervisorInfo>(&state.supervisor())
                .is_err()
        );
        // A link at the temporary name of an atomic write.
        std::os::unix::fs::symlink(&target, state.worker().with_extension("tmp")).unwrap();
        assert!(
            state
                .write_json(&state.worker(), &WorkerInfo::default())
                .is_err()
        );
        std::os::unix::fs::symlink(&target, state.init()).unwrap();
        assert!(state.write_private(&state.init(), b"x").is_err());
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"{}",
            "written through a link"
        );
        check_state_dir(&state.dir).unwrap();
    }

    #[test]
    fn a_state_dir_under_a_runtime_dir_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let runtime = tmp.path().join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = runtime.join("s");
        let e = create_state_dir(&dir).unwrap_err();
        assert!(matches!(e, PrivateDirError::WritableByOthers { .. }), "{e}");
        assert!(!dir.exists(), "made a state dir in it anyway");
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_state_dir(&dir).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_state_dir(&dir).is_err());
    }
}
