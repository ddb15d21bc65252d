//! Starting a fuser session on a connection that is already initialised.
//!
//! The kernel sends FUSE_INIT once per connection, but fuser 0.18 only
//! starts a session after answering an INIT itself (`Session::from_fd`
//! waits for one). So each worker gives fuser one end of a SOCK_SEQPACKET
//! pair, writes the saved INIT request into the other end, and takes
//! fuser's reply from it: on the first start the reply goes to the kernel
//! (that is the real handshake), on a restart it is dropped (the kernel was
//! answered long ago, by the same binary with the same settings). Then the
//! real `/dev/fuse` fd is `dup2`ed over fuser's end, so the session's
//! threads read and write the connection itself (DESIGN.md section 5).
//!
//! Imports: nothing of the crate; std and external crates only.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use fuser::{Config, Filesystem, Session, SessionACL};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// Start `fs` on the connection `fuse`, whose INIT request is `init`.
/// `first`: the kernel still waits for the INIT reply.
pub fn session_on<FS: Filesystem>(
    fs: FS,
    fuse: BorrowedFd<'_>,
    init: &[u8],
    first: bool,
    acl: SessionACL,
    config: Config,
) -> io::Result<Session<FS>> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    nix::unistd::write(&ours, init).map_err(io::Error::from)?;
    let session = Session::from_fd(fs, theirs, acl, config)?;
    let mut reply = vec![0u8; 4096];
    let n = nix::unistd::read(&ours, &mut reply).map_err(io::Error::from)?;
    if first {
        let written = nix::unistd::write(fuse, &reply[..n]).map_err(io::Error::from)?;
        if written != n {
            return Err(io::Error::other("short write of the INIT reply"));
        }
    }
    // SAFETY: both are open fds; dup2 atomically makes the session's fd
    // number refer to the FUSE connection (its socket end is closed).
    let rc = unsafe { libc::dup2(fuse.as_raw_fd(), session.as_fd().as_raw_fd()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(session)
}
