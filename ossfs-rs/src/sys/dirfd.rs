//! A directory held open by descriptor, and files made and opened inside it
//! without ever following a symlink: a mount's staging directory.
//!
//! A [`HeldDir`] is the directory `name` inside `parent`, made by us if
//! missing (mode 0700) and checked before use: a real directory (opened
//! with `O_NOFOLLOW | O_DIRECTORY` relative to its parent, so a symlink
//! planted under that name is refused), owned by our effective uid, and
//! writable by nobody else. One we own with read or search bits for others
//! (an older build made it 0755) is tightened to 0700; one that is someone
//! else's, or that others may write into, is refused: they could have
//! planted files or links in it.
//!
//! Files inside are created with `O_CREAT | O_EXCL | O_NOFOLLOW` relative
//! to the held descriptor (a fresh name each time) and opened again with
//! `O_NOFOLLOW`, checked to be regular files of ours. When the directory
//! disappears (a cleaner of `/tmp`, `rm -rf`), the next file created makes
//! it again, checked the same way; files already open keep their data.
//!
//! Imports: std, libc and thiserror only (the `sys` rule).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a held directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeldDirError {
    /// Creating, opening or checking it failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// It exists but is not ours to trust.
    #[error("{path}: {why}; refusing to keep files there (remove it, or choose another -o tmpdir)")]
    Untrusted { path: PathBuf, why: String },
}

/// A checked private directory, held by descriptor (see the module
/// documentation).
#[derive(Debug)]
pub struct HeldDir {
    parent: PathBuf,
    name: CString,
    path: PathBuf,
    fd: Mutex<Arc<OwnedFd>>,
}

/// Makes each created name unique within the process.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn fd_of(rc: libc::c_int) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `rc` is a descriptor the call just opened, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a live, writable stat.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// mkdirat + openat(O_NOFOLLOW) relative to the parent, then the checks.
fn make_and_check(
    parent_path: &Path,
    name: &CString,
    path: &Path,
) -> Result<OwnedFd, HeldDirError> {
    let io_err = |source| HeldDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(parent_path).map_err(io_err)?;
    let parent = cstring(parent_path.as_os_str().as_bytes()).map_err(io_err)?;
    // SAFETY: `parent` is NUL-terminated.
    let parent_fd = fd_of(unsafe {
        libc::open(
            parent.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .map_err(io_err)?;
    // SAFETY: `parent_fd` is open and `name` is NUL-terminated.
    let rc = unsafe { libc::mkdirat(parent_fd.as_raw_fd(), name.as_ptr(), 0o700) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(io_err(e));
        }
    }
    // SAFETY: as above; O_NOFOLLOW refuses a symlink at `name`.
    let fd = fd_of(unsafe {
        libc::openat(
            parent_fd.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => HeldDirError::Untrusted {
            path: path.to_path_buf(),
            why: "it is not a directory (a symlink, say)".into(),
        },
        _ => io_err(e),
    })?;
    let st = fstat(&fd).map_err(io_err)?;
    let untrusted = |why: String| HeldDirError::Untrusted {
        path: path.to_path_buf(),
        why,
    };
    if st.st_uid != euid() {
        return Err(untrusted(format!(
            "it belongs to uid {}, not to uid {}",
            st.st_uid,
            euid()
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(untrusted(format!(
            "others may write into it (mode {:o})",
            st.st_mode & 0o7777
        )));
    }
    if st.st_mode & 0o7777 != 0o700 {
        // Ours, and nobody else could write into it: just close it.
        // SAFETY: `fd` is open.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
    }
    Ok(fd)
}

impl HeldDir {
    /// Make (if missing), open and check `path`; its parent directories are
    /// made as needed, and followed as given (they are the operator's).
    pub fn open(path: &Path) -> Result<HeldDir, HeldDirError> {
        let io_err = |source| HeldDirError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory below another",
            )));
        };
        let name = cstring(name.as_bytes()).map_err(io_err)?;
        let fd = make_and_check(parent, &name, path)?;
        Ok(HeldDir {
            parent: parent.to_path_buf(),
            name,
            path: path.to_path_buf(),
            fd: Mutex::new(Arc::new(fd)),
        })
    }

    /// The directory's path (for logs and the journal).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<OwnedFd>> {
        self.fd.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create a new file (mode 0600) whose name starts with `prefix`;
    /// returns it and its name. Makes the directory again if it vanished.
    pub fn create_file(&self, prefix: &str) -> io::Result<(File, String)> {
        let mut remade = false;
        loop {
            let name = format!(
                "{prefix}{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let c = cstring(name.as_bytes())?;
            let fd = self.lock().clone();
            // SAFETY: `fd` is open and `c` is NUL-terminated.
            let rc = unsafe {
                libc::openat(
                    fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDWR
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                )
            };
            match fd_of(rc) {
                Ok(file) => return Ok((File::from(file), name)),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                // The directory was removed under us: make it again, once.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !remade => {
                    remade = true;
                    let fresh = make_and_check(&self.parent, &self.name, &self.path)
                        .map_err(io::Error::other)?;
                    *self.lock() = Arc::new(fresh);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Open the existing regular file `name` (ours) for reading and
    /// writing, never through a symlink.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let c = cstring(name.as_bytes())?;
        let fd = self.lock().clone();
        // SAFETY: `fd` is open and `c` is NUL-terminated.
        let file = fd_of(unsafe {
            libc::openat(
                fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        let st = fstat(&file)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != euid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{name} is not a regular file of ours"),
            ));
        }
        Ok(File::from(file))
    }

    /// Remove the file `name` (not following a symlink).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let c = cstring(name.as_bytes())?;
        let fd = self.lock().clone();
        // SAFETY: `fd` is open and `c` is NUL-terminated.
        if unsafe { libc::unlinkat(fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_private_and_files_are_never_followed() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = base.path().join("staging");
        let dir = HeldDir::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777);
        assert_eq!(mode.ok(), Some(0o700));
        let (_, name) = dir.create_file("x-").unwrap_or_else(|e| panic!("{e}"));
        assert!(dir.open_file(&name).is_ok());
        std::os::unix::fs::symlink("/etc/passwd", path.join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        let followed = dir.open_file("link");
        assert_eq!(
            followed.err().and_then(|e| e.raw_os_error()),
            Some(libc::ELOOP)
        );
        dir.remove_file(&name).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_symlink_or_a_writable_directory_is_refused() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = base.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            HeldDir::open(&link),
            Err(HeldDirError::Untrusted { .. })
        ));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            HeldDir::open(&target),
            Err(HeldDirError::Untrusted { .. })
        ));
    }

    #[test]
    fn a_vanished_directory_is_made_again() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = base.path().join("staging");
        let dir = HeldDir::open(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_dir_all(&path).unwrap_or_else(|e| panic!("{e}"));
        let (_, name) = dir.create_file("x-").unwrap_or_else(|e| panic!("{e}"));
        assert!(path.join(name).is_file());
    }
}
