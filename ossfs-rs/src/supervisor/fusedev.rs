//! The kernel side of a mount: opening `/dev/fuse`, mounting it, the INIT
//! request, and the few messages we write to the device ourselves.
//!
//! fuser mounts and serves in one step; a supervised mount needs the steps
//! apart: the supervisor mounts and keeps the fd, each worker serves it
//! (DESIGN.md section 5). As root the mount is a plain mount(2) with
//! `fd=N`; otherwise fusermount3 mounts and passes the fd back over a
//! socket (`_FUSE_COMMFD`), as libfuse does.
//!
//! The wire formats written here (FUSE protocol 7.40+, `linux/fuse.h`):
//! a reply header `{ len: u32, error: i32, unique: u64 }`, which with
//! `unique = 0` and `error = code` is a notification; FUSE_NOTIFY_RESEND
//! (code 7) has no body and asks the kernel to queue again every request a
//! reader took but did not answer.
//!
//! Passing the fd between processes (inheritance, SCM_RIGHTS) is generic
//! Linux and lives in [`crate::sys::fd`].
//!
//! Imports: `sys` (fd passing), std, libc and nix.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::sys::fd::{inherit_fd, receive_fd};

/// FUSE_INIT's opcode.
const FUSE_INIT: u32 = 26;
/// Size of `fuse_in_header`.
const IN_HEADER: usize = 40;
/// `FUSE_INIT_EXT`: the `flags2` word of `fuse_init_in` is valid.
const FUSE_INIT_EXT: u32 = 1 << 30;
/// `FUSE_HAS_RESEND` (bit 39), as a bit of `flags2`.
const HAS_RESEND_FLAGS2: u32 = 1 << (39 - 32);
/// `FUSE_NOTIFY_RESEND`.
const NOTIFY_RESEND: i32 = 7;
/// The largest request: 1 MiB of data plus headers.
pub const READ_BUFFER: usize = 1024 * 1024 + 4096;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// Shown as the source in /proc/mounts (`bucket:/prefix`).
    pub fsname: String,
    pub subtype: String,
    pub read_only: bool,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub max_read: u32,
}

impl MountSpec {
    /// Options for fusermount3 (it adds fd, rootmode, user_id, group_id).
    fn fusermount_options(&self) -> String {
        let mut o = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            format!("fsname={}", self.fsname.replace(',', "\\,")),
            format!("subtype={}", self.subtype),
            format!("max_read={}", self.max_read),
        ];
        o.push(if self.read_only { "ro" } else { "rw" }.to_string());
        if self.allow_other {
            o.push("allow_other".into());
        }
        if self.default_permissions {
            o.push("default_permissions".into());
        }
        o.join(",")
    }
}

/// Open `/dev/fuse` and mount it at `mountpoint`; returns the connection.
pub fn mount(mountpoint: &Path, spec: &MountSpec) -> io::Result<OwnedFd> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        mount_as_root(mountpoint, spec)
    } else {
        mount_with_fusermount(mountpoint, spec)
    }
}

fn mount_as_root(mountpoint: &Path, spec: &MountSpec) -> io::Result<OwnedFd> {
    use nix::mount::MsFlags;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let fd: OwnedFd = dev.into();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},max_read={}",
        fd.as_raw_fd(),
        spec.max_read
    );
    if spec.allow_other {
        data.push_str(",allow_other");
    }
    if spec.default_permissions {
        data.push_str(",default_permissions");
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if spec.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let fstype = format!("fuse.{}", spec.subtype);
    nix::mount::mount(
        Some(spec.fsname.as_str()),
        mountpoint,
        Some(fstype.as_str()),
        flags,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)?;
    Ok(fd)
}

fn mount_with_fusermount(mountpoint: &Path, spec: &MountSpec) -> io::Result<OwnedFd> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let their_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-o")
        .arg(spec.fusermount_options())
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", their_fd.to_string());
    inherit_fd(&mut cmd, their_fd);
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run fusermount3 (install fuse3): {e}"),
        )
    })?;
    drop(theirs);
    let received = receive_fd(ours.as_fd());
    let status = child.wait()?;
    match received {
        Ok(Some(fd)) if status.success() => Ok(fd),
        Ok(_) => Err(io::Error::other(format!(
            "fusermount3 failed ({status}); its message is above"
        ))),
        Err(e) => Err(e),
    }
}

/// Read the INIT request the kernel queues on a new connection.
pub fn read_init(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                break;
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    if opcode(&buf) != Some(FUSE_INIT) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the first request on a new FUSE connection was not INIT",
        ));
    }
    Ok(buf)
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn opcode(buf: &[u8]) -> Option<u32> {
    u32_at(buf, 4)
}

/// Whether the kernel that sent `init` can resend requests
/// (FUSE_HAS_RESEND, Linux 6.9+).
pub fn init_has_resend(init: &[u8]) -> bool {
    // fuse_init_in: major, minor, max_readahead, flags, flags2, ...
    let flags = u32_at(init, IN_HEADER + 12).unwrap_or(0);
    let flags2 = u32_at(init, IN_HEADER + 16).unwrap_or(0);
    flags & FUSE_INIT_EXT != 0 && flags2 & HAS_RESEND_FLAGS2 != 0
}

/// The kernel's FUSE protocol version in `init` (`7.45`).
pub fn init_version(init: &[u8]) -> String {
    format!(
        "{}.{}",
        u32_at(init, IN_HEADER).unwrap_or(0),
        u32_at(init, IN_HEADER + 4).unwrap_or(0)
    )
}

fn write_header(fd: BorrowedFd<'_>, error: i32, unique: u64) -> io::Result<()> {
    let mut msg = [0u8; 16];
    msg[0..4].copy_from_slice(&16u32.to_le_bytes());
    msg[4..8].copy_from_slice(&error.to_le_bytes());
    msg[8..16].copy_from_slice(&unique.to_le_bytes());
    let n = nix::unistd::write(fd, &msg).map_err(io::Error::from)?;
    if n != msg.len() {
        return Err(io::Error::other("short write to /dev/fuse"));
    }
    Ok(())
}

/// Ask the kernel to queue again the requests taken but not answered.
pub fn notify_resend(fd: BorrowedFd<'_>) -> io::Result<()> {
    write_header(fd, NOTIFY_RESEND, 0)
}

/// Answer request `unique` with `-errno`. A request already answered (or
/// gone) makes the kernel refuse the write with ENOENT, which is fine.
pub fn reply_error(fd: BorrowedFd<'_>, unique: u64, errno: i32) -> io::Result<()> {
    match write_header(fd, -errno, unique) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Unmount `mountpoint` (umount2 as root, else fusermount3 -u).
pub fn unmount(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let flags = if lazy {
            nix::mount::MntFlags::MNT_DETACH
        } else {
            nix::mount::MntFlags::empty()
        };
        return nix::mount::umount2(mountpoint, flags).map_err(io::Error::from);
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg(mountpoint).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_with(flags: u32, flags2: u32) -> Vec<u8> {
        let mut b = vec![0u8; IN_HEADER + 64];
        b[4..8].copy_from_slice(&FUSE_INIT.to_le_bytes());
        b[IN_HEADER..IN_HEADER + 4].copy_from_slice(&7u32.to_le_bytes());
        b[IN_HEADER + 4..IN_HEADER + 8].copy_from_slice(&45u32.to_le_bytes());
        b[IN_HEADER + 12..IN_HEADER + 16].copy_from_slice(&flags.to_le_bytes());
        b[IN_HEADER + 16..IN_HEADER + 20].copy_from_slice(&flags2.to_le_bytes());
        b
    }

    #[test]
    fn reads_the_resend_flag() {
        assert!(init_has_resend(&init_with(FUSE_INIT_EXT, 1 << 7)));
        assert!(!init_has_resend(&init_with(0, 1 << 7)));
        assert!(!init_has_resend(&init_with(FUSE_INIT_EXT, 1 << 6)));
        assert_eq!(init_version(&init_with(0, 0)), "7.45");
    }

    #[test]
    fn fusermount_options_escape_commas() {
        let spec = MountSpec {
            fsname: "b:/a,b".into(),
            subtype: "ossfs-rs".into(),
            read_only: true,
            allow_other: true,
            default_permissions: false,
            max_read: 1 << 20,
        };
        let o = spec.fusermount_options();
        assert!(o.contains("fsname=b:/a\\,b"), "{o}");
        assert!(o.contains(",ro") && o.contains("allow_other"), "{o}");
    }
}
