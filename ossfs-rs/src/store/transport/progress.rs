//! Timeouts on lack of progress, never on total duration: the request body
//! hyper sends ([`SendBody`]), which notes every piece hyper takes, and the
//! watchdog ([`watch`]) that fails a request only when nothing moved for
//! too long.
//!
//! A 10 MiB part over a 1 MiB/s uplink shared by five parts takes about
//! 50 s: any bound on the whole exchange either fails it (and every retry,
//! which cannot be faster) or is too long to notice a dead peer. So a
//! request is bounded phase by phase:
//!
//! - **connect**: the connector's own `connect_timeout`, once for TCP and
//!   once for the TLS handshake; the watchdog credits twice that until the
//!   request has its connection (hyper names it, or takes a body piece);
//! - **send idle**: progress is hyper taking a body piece (it takes them,
//!   [`SEND_PIECE`] bytes each, as its write buffer empties into the
//!   socket) or the kernel's count of unacknowledged bytes on the
//!   connection ([`SendQueue`], `TIOCOUTQ`) changing, which is the peer
//!   acknowledging bytes. The kernel wakes a writer only when a good part
//!   of its (autotuned, up to MiBs) send buffer is free, so hyper alone can
//!   sit still for seconds on a slow link that is moving; the queue shows
//!   it moving. When neither moves for `send_idle`, the request fails;
//! - **first byte**: from the last progress once the whole body is taken
//!   (at once for a request without a body), so in effect from the peer
//!   acknowledging the last byte, to the reply head;
//! - **read idle**: each body chunk of the reply, bounded in [`super::Response`].
//!
//! Imports: nothing of the crate (std, libc, tokio, hyper's body types).

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// Body bytes handed to hyper at once. Small enough that a stalled socket
/// shows as a stalled request within one piece, large enough to cost
/// nothing (a `Bytes` slice, no copy).
pub const SEND_PIECE: usize = 64 * 1024;

/// The progress bounds of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Credited before the first body piece (connect, TLS).
    pub connect: Duration,
    /// Longest time without hyper taking a body piece.
    pub send_idle: Duration,
    /// Longest time from the whole body taken to the reply head.
    pub first_byte: Duration,
}

/// What phase a stalled request was in, for its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// The peer stopped accepting body bytes.
    Sending(Duration),
    /// The body was sent; no reply head came.
    Waiting(Duration),
}

#[derive(Debug)]
struct State {
    /// When the request last made progress (or is credited until).
    last: Instant,
    /// The whole body was taken.
    sent: bool,
}

/// Shared by a [`SendBody`] and the [`watch`] over its request.
#[derive(Debug)]
pub struct Progress {
    state: Mutex<State>,
    bounds: Bounds,
}

impl Progress {
    /// A request starting now with a body of `len` bytes.
    pub fn new(bounds: Bounds, len: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                last: Instant::now() + bounds.connect * 2,
                sent: len == 0,
            }),
            bounds,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hyper took a piece; `last` says whether it was the final one.
    fn note(&self, last: bool) {
        let mut s = self.lock();
        // The first piece also ends the connect credit: the connection is up.
        s.last = Instant::now();
        s.sent |= last;
    }

    /// The request has its connection: the connect credit ends.
    fn connected(&self) {
        let mut s = self.lock();
        s.last = s.last.min(Instant::now());
    }

    /// Something moved (the peer acknowledged bytes).
    fn touch(&self) {
        self.lock().last = Instant::now();
    }

    /// When the request fails if nothing moves, and as what.
    fn deadline(&self) -> (Instant, Stall) {
        let s = self.lock();
        if s.sent {
            (
                s.last + self.bounds.first_byte,
                Stall::Waiting(self.bounds.first_byte),
            )
        } else {
            (
                s.last + self.bounds.send_idle,
                Stall::Sending(self.bounds.send_idle),
            )
        }
    }
}

/// A request body handed to hyper piece by piece, noting each piece.
#[derive(Debug)]
pub struct SendBody {
    rest: Bytes,
    progress: Arc<Progress>,
}

impl SendBody {
    pub fn new(body: Bytes, progress: Arc<Progress>) -> Self {
        Self {
            rest: body,
            progress,
        }
    }
}

impl Body for SendBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            this.progress.note(true);
            return Poll::Ready(None);
        }
        let piece = this.rest.split_to(SEND_PIECE.min(this.rest.len()));
        this.progress.note(this.rest.is_empty());
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// The kernel's count of bytes written to one connection and not yet
/// acknowledged by the peer. The connection clears it before its socket
/// closes, so a reused descriptor number is never asked.
#[derive(Clone, Debug)]
pub struct SendQueue(Arc<Mutex<Option<RawFd>>>);

impl SendQueue {
    pub fn new(fd: RawFd) -> Self {
        Self(Arc::new(Mutex::new(Some(fd))))
    }

    /// The socket is about to close.
    pub fn close(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Unacknowledged bytes, or `None` once closed or when the kernel
    /// does not say.
    pub fn pending(&self) -> Option<i64> {
        let fd = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fd = (*fd)?;
        let mut n: libc::c_int = 0;
        // SAFETY: `fd` is an open socket (the lock is held, and the socket
        // clears it before closing); TIOCOUTQ writes one c_int to a live
        // pointer.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
        (rc == 0).then_some(i64::from(n))
    }
}

/// Run `request` until it finishes, or fail with the phase it stalled in
/// once `progress` shows no movement for its phase's bound. `queue` names
/// the connection's [`SendQueue`] once hyper has picked one.
pub async fn watch<F: Future>(
    request: F,
    progress: &Progress,
    queue: impl Fn() -> Option<SendQueue>,
) -> Result<F::Output, Stall> {
    tokio::pin!(request);
    // The first body piece ends the connect credit, which moves the
    // deadline earlier: look again at least this often.
    let b = progress.bounds;
    let tick = (b.send_idle.min(b.first_byte) / 2).min(Duration::from_secs(1));
    let mut seen: Option<i64> = None;
    loop {
        if let Some(now) = queue().and_then(|q| q.pending()) {
            match seen {
                None => progress.connected(),
                Some(before) if before != now => progress.touch(),
                Some(_) => {}
            }
            seen = Some(now);
        }
        let (deadline, stall) = progress.deadline();
        let now = Instant::now();
        if deadline <= now {
            return Err(stall);
        }
        tokio::select! {
            out = &mut request => return Ok(out),
            () = tokio::time::sleep_until(deadline.min(now + tick)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            connect: Duration::from_millis(100),
            send_idle: Duration::from_millis(300),
            first_byte: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_body_goes_out_in_pieces_and_the_phase_follows() {
        let p = Progress::new(bounds(), 3 * SEND_PIECE / 2);
        assert_eq!(p.deadline().1, Stall::Sending(bounds().send_idle));
        let mut body = SendBody::new(Bytes::from(vec![1u8; 3 * SEND_PIECE / 2]), p.clone());
        assert_eq!(body.size_hint().exact(), Some(3 * SEND_PIECE as u64 / 2));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let sizes: Vec<usize> =
            std::iter::from_fn(|| match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(f))) => f.into_data().ok().map(|d| d.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, vec![SEND_PIECE, SEND_PIECE / 2]);
        assert!(body.is_end_stream());
        assert_eq!(p.deadline().1, Stall::Waiting(bounds().first_byte));
        // A request without a body waits for the head from the start.
        assert_eq!(
            Progress::new(bounds(), 0).deadline().1,
            Stall::Waiting(bounds().first_byte)
        );
    }

    #[tokio::test]
    async fn the_watchdog_fires_only_without_progress() {
        let p = Progress::new(bounds(), 10);
        // Progress every 50 ms keeps a request alive for ten times its
        // idle bound.
        let keep = p.clone();
        let ticking = async move {
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                keep.note(false);
            }
            "done"
        };
        assert_eq!(watch(ticking, &p, || None).await, Ok("done"));
        // Then nothing: a stall while sending.
        let stuck = futures::future::pending::<()>();
        assert_eq!(
            watch(stuck, &p, || None).await,
            Err(Stall::Sending(bounds().send_idle))
        );
    }
}
