//! The control socket of a supervisor: `status`, `upgrade`, and handing
//! out a copy of the `/dev/fuse` fd (for the CSI plugin, which keeps one so
//! it can restart a volume whose supervisor and worker both died).
//!
//! One JSON request per connection, one JSON line back. The socket is
//! 0600 in the 0700 state directory, and the peer's uid is checked
//! (SO_PEERCRED): root or the mount's owner only.
//!
//! Imports: [`super::state`] (the status it reports), `sys` (fd passing)
//! and external crates. It knows the supervisor only through [`Handler`].

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::state::{SupervisorInfo, WorkerInfo};
use crate::sys::fd::{receive_fd, send_fd};

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Replace the worker (or, with `supervisor`, the supervisor itself)
    /// by `binary` (the current one when absent).
    Upgrade {
        binary: Option<PathBuf>,
        #[serde(default)]
        supervisor: bool,
    },
    /// Send a copy of the `/dev/fuse` fd after the reply.
    FuseFd,
}

/// The answer to `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub supervisor: SupervisorInfo,
    pub worker: Option<WorkerInfo>,
    pub requests_in_flight: usize,
    pub staging_bytes: u64,
}

/// Any answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: Some(message.into()),
            ..Self::default()
        }
    }
    pub fn err(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            ..Self::default()
        }
    }
}

/// What serves the requests (the supervisor).
pub trait Handler: Send + Sync + 'static {
    fn status(&self) -> Status;
    fn upgrade(&self, binary: Option<PathBuf>, supervisor: bool) -> Result<String, String>;
    fn fuse_fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

/// Bind the control socket at `path` (replacing a stale one) and serve it
/// on a thread.
pub fn serve(path: &Path, handler: std::sync::Arc<dyn Handler>) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("ossfs-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let h = handler.clone();
                        let _ = std::thread::Builder::new()
                            .name("ossfs-control-conn".into())
                            .spawn(move || {
                                if let Err(e) = handle(stream, h.as_ref()) {
                                    debug!(error = %e, "control connection failed");
                                }
                            });
                    }
                    Err(e) => warn!(error = %e, "control socket accept failed"),
                }
            }
        })?;
    Ok(())
}

fn peer_allowed(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let Ok(cred) = getsockopt(stream, PeerCredentials) else {
        return false;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    cred.uid() == 0 || cred.uid() == me
}

fn handle(stream: UnixStream, handler: &dyn Handler) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    if !peer_allowed(&stream) {
        return send(
            &mut writer,
            &Response::err("permission denied: root or the mount's owner only"),
        );
    }
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return send(&mut writer, &Response::err(format!("bad request: {e}"))),
    };
    match request {
        Request::Status => send(
            &mut writer,
            &Response {
                ok: true,
                status: Some(handler.status()),
                ..Response::default()
            },
        ),
        Request::Upgrade { binary, supervisor } => {
            stream.set_read_timeout(None)?;
            let r = match handler.upgrade(binary, supervisor) {
                Ok(m) => Response::ok(m),
                Err(e) => Response::err(e),
            };
            send(&mut writer, &r)
        }
        Request::FuseFd => {
            send(&mut writer, &Response::ok("fd follows"))?;
            send_fd(stream.as_fd(), handler.fuse_fd())
        }
    }
}

fn send(w: &mut UnixStream, r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Ask the supervisor listening at `socket`.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> io::Result<Response> {
    let (response, _) = call_inner(socket, request, timeout, false)?;
    Ok(response)
}

/// Get a copy of the mount's `/dev/fuse` fd from its supervisor.
pub fn fetch_fuse_fd(socket: &Path) -> io::Result<OwnedFd> {
    let (response, fd) = call_inner(socket, &Request::FuseFd, Duration::from_secs(10), true)?;
    if !response.ok {
        return Err(io::Error::other(response.error.unwrap_or_default()));
    }
    fd.ok_or_else(|| io::Error::other("the supervisor sent no fd"))
}

fn call_inner(
    socket: &Path,
    request: &Request,
    timeout: Duration,
    want_fd: bool,
) -> io::Result<(Response, Option<OwnedFd>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    // Read the reply byte by byte up to the newline, so that the fd's
    // message is not swallowed by a buffered read.
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = io::Read::read(&mut stream, &mut byte)?;
        if n == 0 || byte[0] == b'\n' {
            break;
        }
        reply.push(byte[0]);
    }
    let response: Response = serde_json::from_slice(&reply)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad reply: {e}")))?;
    let fd = if want_fd && response.ok {
        receive_fd(stream.as_fd())?
    } else {
        None
    };
    Ok((response, fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r = Request::Upgrade {
            binary: Some("/usr/local/bin/ossfs-rs".into()),
            supervisor: false,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"cmd":"upgrade","binary":"/usr/local/bin/ossfs-rs","supervisor":false}"#
        );
        let back: Request = serde_json::from_str(r#"{"cmd":"status"}"#).unwrap();
        assert_eq!(back, Request::Status);
    }
}
