//! Mount table queries and the mount system calls the node service makes.
//!
//! The plugin runs as root with the kubelet directory shared
//! (`Bidirectional` propagation), so it bind-mounts and unmounts with
//! mount(2)/umount2(2) directly; only the FUSE mount itself is made by the
//! `ossfs-rs` daemon.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{CsiError, CsiResult};

/// The state of a path as a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountHealth {
    /// Listed in the mount table and answering.
    Live,
    /// Listed, but the FUSE daemon behind it is gone (`ENOTCONN`).
    Dead,
    /// Not a mount point.
    NotMounted,
}

/// Mount points listed in `/proc/self/mountinfo`, unescaped.
fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|mp| PathBuf::from(ossfs_rs::facade::unescape_mountinfo(mp)))
        .collect()
}

/// Whether `path` is a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    mount_points().iter().any(|mp| mp == path)
}

/// Live, dead or not mounted.
pub fn health(path: &Path) -> MountHealth {
    if !is_mount_point(path) {
        return MountHealth::NotMounted;
    }
    // statfs, not stat: the kernel answers a stat from its attribute cache
    // for a while after the connection died, but always asks for statfs.
    // ENOTCONN or ECONNABORTED is a dead connection; any other failure to
    // stat a listed mount point counts as dead too, so the caller replaces
    // it rather than publishing it.
    match nix::sys::statvfs::statvfs(path) {
        Ok(_) => MountHealth::Live,
        Err(_) => MountHealth::Dead,
    }
}

/// Bind-mount `source` on `target`, read-only when asked (a read-only bind
/// needs a second, remounting call).
pub fn bind(source: &Path, target: &Path, read_only: bool) -> CsiResult<()> {
    let what = || format!("bind-mounting {} on {}", source.display(), target.display());
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| CsiError::io(what(), e.into()))?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
            return Err(CsiError::io(
                format!("making {} read-only", target.display()),
                e.into(),
            ));
        }
    }
    Ok(())
}

/// Unmount `path` if it is a mount point (every layer stacked on it). A
/// busy mount is retried briefly, then detached (lazy) so the RPC
/// completes; a dead FUSE mount is detached at once.
pub async fn unmount(path: &Path) -> CsiResult<()> {
    let mut busy_tries = 0;
    while is_mount_point(path) {
        let flags = if health(path) == MountHealth::Dead || busy_tries >= 20 {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        match nix::mount::umount2(path, flags) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => {
                busy_tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(nix::errno::Errno::EINVAL) if !is_mount_point(path) => break,
            Err(e) => {
                return Err(CsiError::io(
                    format!("unmounting {}", path.display()),
                    e.into(),
                ));
            }
        }
    }
    Ok(())
}

/// Pids of `ossfs-rs` daemons serving `mountpoint` (their command line
/// holds `--notify-ready` or `-f`/`--foreground`, and the mount point).
pub fn daemons_for(mountpoint: &Path) -> Vec<i32> {
    let wanted = mountpoint.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_daemon = args
                .iter()
                .any(|a| *a == b"--notify-ready" || *a == b"--foreground" || *a == b"-f");
            args.contains(&b"mount"[..].as_ref()) && is_daemon && args.contains(&wanted)
        })
        .filter(|pid| is_running(*pid))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(
            ossfs_rs::facade::unescape_mountinfo(r"/a\040b\134c"),
            "/a b\\c"
        );
        assert_eq!(ossfs_rs::facade::unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn root_is_mounted_and_tmp_dir_is_not() {
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(health(dir.path()), MountHealth::NotMounted);
        assert!(is_running(std::process::id() as i32));
    }
}
