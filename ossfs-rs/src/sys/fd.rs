//! File descriptors that cross a process boundary: inherited by a child
//! under the same number, or sent over a Unix socket with SCM_RIGHTS.
//!
//! A supervised mount lives on one `/dev/fuse` fd that several processes
//! hold in turn: fusermount3 sends it to the supervisor over a socket, the
//! supervisor hands it to each worker it starts (inherited), and the
//! control socket sends a copy to the CSI plugin. Rust opens every fd with
//! `O_CLOEXEC`, so an fd meant for a child is made inheritable between
//! fork and exec, in the child only ([`inherit_fd`]); an fd that arrives
//! over a socket is `O_CLOEXEC` again ([`receive_fd`]).
//!
//! Imports: std, libc and nix only.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Let the child started by `cmd` inherit `fd` under the same number.
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: fcntl is async-signal-safe; the closure touches no memory.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Receive one fd sent with SCM_RIGHTS on `sock` (`None` at EOF).
pub fn receive_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this fd; nobody else owns it.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}

/// Send `fd` with SCM_RIGHTS on `sock`, with a one-byte message.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = [fd.as_raw_fd()];
    let iov = [IoSlice::new(b"F")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_sent_fd_arrives_as_the_same_file() {
        let (a, b) = UnixStream::pair().unwrap();
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        send_fd(a.as_fd(), write.as_fd()).unwrap();
        drop(write);
        let got = receive_fd(b.as_fd()).unwrap().expect("an fd");
        // SAFETY: F_GETFD on an fd we own.
        let flags = unsafe { libc::fcntl(got.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        std::fs::File::from(got).write_all(b"through").unwrap();
        let mut text = String::new();
        std::fs::File::from(read).read_to_string(&mut text).unwrap();
        assert_eq!(text, "through");
    }

    #[test]
    fn nothing_is_received_from_a_closed_peer() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(receive_fd(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn an_inherited_fd_keeps_its_number_in_the_child() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe");
        let n = write.as_raw_fd();
        // `>/proc/self/fd/N`, not `>&N`: a POSIX shell takes one digit there.
        let script = format!("echo inherited >/proc/self/fd/{n}");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&script);
        inherit_fd(&mut cmd, n);
        assert!(cmd.status().unwrap().success());
        drop(write);
        let mut text = String::new();
        std::fs::File::from(read).read_to_string(&mut text).unwrap();
        assert_eq!(text, "inherited\n");

        // Without it the fd stays ours (O_CLOEXEC): the child cannot write.
        let (_read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let script = format!("echo lost >/proc/self/fd/{}", write.as_raw_fd());
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .stderr(std::process::Stdio::null())
            .status();
        assert!(!status.unwrap().success());
    }
}
