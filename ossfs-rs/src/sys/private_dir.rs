//! Directories only the daemon's uid may enter.
//!
//! The state directory, the staging files of open writers and the disk
//! block cache all live in directories made here with mode 0700, so no
//! other user of a shared host can read or pre-create what is inside.
//!
//! A directory that already exists is used only when it is really ours:
//! opened with `O_NOFOLLOW | O_DIRECTORY` (a symbolic link is refused, not
//! followed) and checked through that fd: owned by our effective uid, and
//! writable by nobody else. A directory of ours that others may only read
//! (say 0755) is made 0700 through the same fd. Anything else is a
//! [`PrivateDirError`] that says what is wrong and what to do: on a shared
//! `/tmp` (the state dir's fallback `/tmp/ossfs-rs-<uid>`) another user can
//! make that name first, and the daemon would then write its state, and
//! later exec the binary named there, in a directory that user controls.
//!
//! Imports: std, libc, nix and thiserror only.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fchmod, fstat};

/// Why a directory cannot serve as a private directory.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("cannot create or open {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is a symbolic link, not a directory of ours; refusing to follow it. Remove it (it may have been planted by another user) and try again",
        dir.display()
    )]
    Symlink { dir: PathBuf },
    #[error("{} exists and is not a directory; remove it and try again", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error(
        "{} belongs to uid {owner}, not to this daemon's uid {me}: another user made it first. Remove it, or set OSSFS_RS_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a directory of your own",
        dir.display()
    )]
    NotOwned { dir: PathBuf, owner: u32, me: u32 },
    #[error(
        "{} has mode {mode:04o}: other users can write into it. Remove it (what is inside cannot be trusted) and try again",
        dir.display()
    )]
    WritableByOthers { dir: PathBuf, mode: u32 },
}

impl From<PrivateDirError> for io::Error {
    fn from(e: PrivateDirError) -> Self {
        match e {
            PrivateDirError::Io { source, .. } => source,
            PrivateDirError::NotADirectory { .. } => {
                io::Error::new(io::ErrorKind::NotADirectory, e)
            }
            e => io::Error::new(io::ErrorKind::PermissionDenied, e),
        }
    }
}

/// Create `dir` (and its parents) with mode 0700, or check that the one
/// there is ours and private (see the module documentation).
pub fn create_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    let io_err = |source| PrivateDirError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    open_private_dir(dir).map(drop)
}

/// Open the existing `dir` and check that it is ours and private (made
/// 0700 if others could only read it); returns the open directory.
pub fn open_private_dir(dir: &Path) -> Result<OwnedFd, PrivateDirError> {
    let path = dir.to_path_buf();
    let fd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::Error::ELOOP => PrivateDirError::Symlink { dir: path.clone() },
        nix::Error::ENOTDIR if is_symlink(dir) => PrivateDirError::Symlink { dir: path.clone() },
        nix::Error::ENOTDIR => PrivateDirError::NotADirectory { dir: path.clone() },
        e => PrivateDirError::Io {
            dir: path.clone(),
            source: e.into(),
        },
    })?;
    let st = fstat(&fd).map_err(|e| PrivateDirError::Io {
        dir: path.clone(),
        source: e.into(),
    })?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = st.st_mode & 0o7777;
    check_owner_and_mode(&path, st.st_uid, mode, me)?;
    if mode & 0o077 != 0 {
        fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(|e| PrivateDirError::Io {
            dir: path,
            source: e.into(),
        })?;
    }
    Ok(fd)
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// The rule: owned by `me`, and neither group nor others may write.
fn check_owner_and_mode(dir: &Path, owner: u32, mode: u32, me: u32) -> Result<(), PrivateDirError> {
    if owner != me {
        return Err(PrivateDirError::NotOwned {
            dir: dir.to_path_buf(),
            owner,
            me,
        });
    }
    if mode & 0o022 != 0 {
        return Err(PrivateDirError::WritableByOthers {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_missing_directories_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&tmp.path().join("a")), 0o700);
        // Again: it is ours and private.
        create_private_dir(&dir).unwrap();
    }

    #[test]
    fn an_own_directory_others_may_read_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o777, 0o1777, 0o770, 0o702] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = create_private_dir(&dir).unwrap_err();
            assert!(
                matches!(e, PrivateDirError::WritableByOthers { mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("Remove it"), "{e}");
            assert_eq!(mode_of(&dir), mode, "the mode was changed");
        }
    }

    #[test]
    fn a_symlink_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = tmp.path().join("state");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = create_private_dir(&link).unwrap_err();
        assert!(matches!(e, PrivateDirError::Symlink { .. }), "{e}");
        // Nothing was done through the link.
        assert_eq!(mode_of(&target), 0o755);
        // A file is not a directory.
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = create_private_dir(&file).unwrap_err();
        assert!(matches!(e, PrivateDirError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn the_owner_must_be_us() {
        let dir = Path::new("/somewhere");
        let e = check_owner_and_mode(dir, 1001, 0o700, 0).unwrap_err();
        assert!(
            matches!(
                e,
                PrivateDirError::NotOwned {
                    owner: 1001,
                    me: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("OSSFS_RS_RUNTIME_DIR"), "{e}");
        check_owner_and_mode(dir, 1001, 0o700, 1001).unwrap();
        check_owner_and_mode(dir, 7, 0o755, 7).unwrap();
    }
}
