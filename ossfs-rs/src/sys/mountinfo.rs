//! Mount points as the kernel lists them (`/proc/self/mountinfo`), the
//! checks a mount point must pass before a mount, and unmounting.
//!
//! mountinfo escapes space, tab, newline and backslash as `\ooo`; every
//! reader of it in the crate (the mount check, the supervisor, readahead,
//! csi-os) goes through [`unescape_mountinfo`] here.
//!
//! Imports: std, libc and thiserror only.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a directory cannot be mounted on.
#[derive(Debug, thiserror::Error)]
pub enum MountpointError {
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

/// Refuse a mount point that is missing, not a directory, already a mount,
/// or not empty (unless `nonempty`).
pub fn check_mountpoint(path: &Path, nonempty: bool) -> Result<(), MountpointError> {
    let io = |source| MountpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountpointError::NoMountpoint(path.to_path_buf()));
        }
        // ENOTCONN: a dead FUSE mount is still there.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountpointError::AlreadyMounted(path.to_path_buf()));
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_dir() {
        return Err(MountpointError::NotADirectory(path.to_path_buf()));
    }
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    if let Some(parent) = canonical.parent() {
        let parent_meta = std::fs::metadata(parent).map_err(io)?;
        if parent_meta.dev() != meta.dev() || is_listed_mount(&canonical) {
            return Err(MountpointError::AlreadyMounted(path.to_path_buf()));
        }
    }
    if !nonempty && std::fs::read_dir(path).map_err(io)?.next().is_some() {
        return Err(MountpointError::NotEmpty(path.to_path_buf()));
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

pub fn lazy_unmount(mountpoint: &Path) -> std::io::Result<()> {
    Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .output()
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_mountpoints() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_mountpoint(&dir.path().join("missing"), false),
            Err(MountpointError::NoMountpoint(_))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file, false),
            Err(MountpointError::NotADirectory(_))
        ));
        assert!(matches!(
            check_mountpoint(dir.path(), false),
            Err(MountpointError::NotEmpty(_))
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
