//! Thin, safe wrappers of the Linux calls the FUSE tests need and `std`
//! lacks: renameat2 flags, statvfs, user xattrs, truncate(2) of a path and
//! utimensat(2); and a second local user ([`second_user`]) for the tests
//! that attack what the root daemon creates.
//!
//! Each wrapper returns `std::io::Result` with the errno of the call, so
//! tests assert on errnos exactly as they do for `std::fs` calls.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check_len(rc: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (cpath(from)?, cpath(to)?);
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    check(rc)
}

/// The parts of `statvfs(2)` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatVfs {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namemax: u64,
    pub flag: u64,
}

/// `truncate(path, len)`: no descriptor is opened (unlike `File::set_len`).
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let p = cpath(path)?;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length out of range"))?;
    // SAFETY: `p` is NUL-terminated.
    check(unsafe { libc::truncate(p.as_ptr(), len) })
}

/// `utimensat(AT_FDCWD, path, {secs, secs}, 0)`: atime and mtime set to
/// `secs` (what `touch -d @secs` does), following a symlink.
pub fn set_times(path: &Path, secs: i64) -> io::Result<()> {
    let p = cpath(path)?;
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: `p` is NUL-terminated and `times` holds two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) })
}

/// `statvfs(path)`.
pub fn statvfs(path: &Path) -> io::Result<StatVfs> {
    let p = cpath(path)?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is NUL-terminated and `buf` is a live, writable statvfs.
    check(unsafe { libc::statvfs(p.as_ptr(), &mut buf) })?;
    Ok(StatVfs {
        bsize: buf.f_bsize,
        frsize: buf.f_frsize,
        blocks: buf.f_blocks,
        bfree: buf.f_bfree,
        bavail: buf.f_bavail,
        files: buf.f_files,
        ffree: buf.f_ffree,
        namemax: buf.f_namemax,
        flag: buf.f_flag,
    })
}

/// `setxattr(path, name, value, flags)` (`flags`: 0, XATTR_CREATE or XATTR_REPLACE).
pub fn setxattr(path: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (cpath(path)?, cstr(name)?);
    // SAFETY: `p` and `n` are NUL-terminated; `value` is valid for its length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    check(rc)
}

/// `getxattr(path, name)`: asks for the size first, then the value.
pub fn getxattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (p, n) = (cpath(path)?, cstr(name)?);
    // SAFETY: a NULL buffer of size 0 asks only for the size.
    let size =
        check_len(unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let len = check_len(unsafe {
        libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    buf.truncate(len);
    Ok(buf)
}

/// `getxattr` into a buffer of exactly `size` bytes (for ERANGE checks).
pub fn getxattr_sized(path: &Path, name: &str, size: usize) -> io::Result<Vec<u8>> {
    let (p, n) = (cpath(path)?, cstr(name)?);
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let len = check_len(unsafe {
        libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    buf.truncate(len);
    Ok(buf)
}

/// `listxattr(path)`: the names, sorted.
pub fn listxattr(path: &Path) -> io::Result<Vec<String>> {
    let p = cpath(path)?;
    // SAFETY: a NULL buffer of size 0 asks only for the size.
    let size = check_len(unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let len =
        check_len(unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(len);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// `removexattr(path, name)`.
pub fn removexattr(path: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (cpath(path)?, cstr(name)?);
    // SAFETY: both are NUL-terminated strings that outlive the call.
    check(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })
}

/// The process umask, from `/proc/self/status` (setting and restoring it
/// would race with other test threads creating files).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The name of the unprivileged user the security tests act as.
pub const SECOND_USER: &str = "ossfs-e2e-other";

/// The (uid, gid) of [`SECOND_USER`], created with `useradd` (no home, no
/// login shell) when missing. Needs root. Panics when it cannot be made.
pub fn second_user() -> (u32, u32) {
    static USER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *USER.get_or_init(|| {
        let id = |flag: &str| {
            std::process::Command::new("id")
                .arg(flag)
                .arg(SECOND_USER)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
        };
        if id("-u").is_none() {
            // Another test binary may be making it at the same moment:
            // its failure is fine as long as the user exists afterwards.
            let _ = std::process::Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(SECOND_USER)
                .output();
        }
        match (id("-u"), id("-g")) {
            (Some(uid), Some(gid)) => (uid, gid),
            _ => panic!("cannot create the user {SECOND_USER} with useradd (the test needs root)"),
        }
    })
}

/// A command that runs as [`second_user`].
pub fn as_second_user(program: &str) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = second_user();
    let mut cmd = std::process::Command::new(program);
    cmd.uid(uid).gid(gid);
    cmd
}

/// Run `program args` as [`second_user`]; panics when it fails.
pub fn second_user_runs<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(program: &str, args: &[S]) {
    let out = as_second_user(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} as {SECOND_USER}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} as {SECOND_USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_work_on_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        rename_noreplace(&a, &dir.path().join("c")).unwrap();
        let st = statvfs(dir.path()).unwrap();
        assert!(st.bsize > 0 && st.namemax >= 255);
    }
}
