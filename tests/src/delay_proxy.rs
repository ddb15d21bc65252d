//! A user-space "WAN" TCP proxy for benchmarks: a fixed delay on each
//! request and a bandwidth cap, with connections kept alive.
//!
//! netem is not available here, so the benchmark's slow profile is made in
//! user space. Unlike [`crate::fault_proxy`] (one request per connection,
//! for faults), this proxy copies bytes and never parses HTTP, so keep-alive
//! and pipelining work as they would over a real link:
//!
//! - **Delay.** Every chunk read from the client is forwarded to the server
//!   `delay` after it arrived (a delay line: a bounded queue of timestamped
//!   chunks, written in order). A request therefore reaches the server
//!   `delay` late, which adds `delay` to each request's latency, while a
//!   large upload still streams at full speed (its chunks are delayed, not
//!   spaced).
//! - **Bandwidth.** Each direction is one shared link for all connections,
//!   capped on its own (`up` client to server, `down` server to client, as
//!   on an asymmetric office or cloud uplink): a chunk of `n` bytes
//!   reserves `n / rate` seconds on the link's virtual clock, and the proxy
//!   reads the next chunk from that side only when the clock runs no more
//!   than 5 ms ahead of real time (a burst allowance, because timers tick
//!   in milliseconds). The cap is applied where bytes enter the link, so
//!   the sender feels it as a real bottleneck does: its socket stops
//!   accepting bytes, instead of the proxy buffering megabytes at once.
//!   A chunk is delivered `delay` after it crossed the link.
//!
//! Background tasks belong to the runtime that called [`DelayProxy::start`];
//! dropping the proxy stops accepting and aborts its connections.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes read from a socket at once.
const CHUNK: usize = 64 * 1024;
/// Chunks a delay line holds before the reader waits (16 MiB).
const QUEUE: usize = 256;
/// How far a link's virtual clock may run ahead of real time before a
/// sender waits (the largest burst, 5 ms of the rate).
const BURST: Duration = Duration::from_millis(5);

/// The shape of the simulated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProfile {
    /// Added to every client-to-server chunk, so to every request.
    pub delay: Duration,
    /// Bytes per second client to server (uploads); `None` for no cap.
    pub up: Option<u64>,
    /// Bytes per second server to client (downloads); `None` for no cap.
    pub down: Option<u64>,
}

impl LinkProfile {
    /// The same cap both ways.
    pub fn symmetric(delay: Duration, rate: Option<u64>) -> Self {
        Self {
            delay,
            up: rate,
            down: rate,
        }
    }

    /// The WAN profile of the CI upload test: 20 ms one way, 1 MiB/s up,
    /// downloads uncapped.
    pub fn wan_uplink() -> Self {
        Self {
            delay: Duration::from_millis(20),
            up: Some(1024 * 1024),
            down: None,
        }
    }
}

/// One direction of the link: a virtual clock of when it is next free.
#[derive(Debug)]
struct Link {
    rate: Option<u64>,
    free_at: Mutex<Instant>,
}

impl Link {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// When `n` bytes have crossed the link, if sent now.
    fn reserve(&self, n: usize) -> Option<Instant> {
        let rate = self.rate.filter(|r| *r > 0)?;
        let cost = Duration::from_secs_f64(n as f64 / rate as f64);
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*free_at).max(Instant::now());
        *free_at = start + cost;
        Some(*free_at)
    }
}

/// A running proxy: `addr()` forwards to the upstream given at start.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl DelayProxy {
    /// Listen on `127.0.0.1:0` and forward each connection to `upstream`
    /// through a link shaped by `profile`.
    pub async fn start(upstream: SocketAddr, profile: LinkProfile) -> io::Result<Self> {
        // A small receive buffer on the client side (inherited by every
        // accepted socket), so the kernel does not hold megabytes in front
        // of the link: a WAN's queue is short next to its rate.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(256 * 1024)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(128)?;
        let addr = listener.local_addr()?;
        let down = Arc::new(Link::new(profile.down));
        let up = Arc::new(Link::new(profile.up));
        let accept = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (up, down) = (up.clone(), down.clone());
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let to_server = pump(cr, sw, profile.delay, up);
                    let to_client = pump(sr, cw, Duration::ZERO, down);
                    let _ = tokio::join!(to_server, to_client);
                });
                // Reap finished connections so the set does not grow.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, accept })
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copy `from` to `to`: each chunk is read only once `link` has room for
/// it and written `delay` after it crossed. Ends (shutting `to` down) at
/// EOF or error.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    link: Arc<Link>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            buf.truncate(n);
            // Sleep only when the link is more than BURST ahead: timers tick
            // in milliseconds, far coarser than one chunk's share of a
            // fast link, so sleeping for each chunk would cap the rate at
            // one chunk per tick instead. Not reading meanwhile is the
            // backpressure a sender feels.
            let crossed = match link.reserve(n) {
                Some(done) => {
                    if done > Instant::now() + BURST {
                        tokio::time::sleep_until(done - BURST).await;
                    }
                    done.max(Instant::now())
                }
                None => Instant::now(),
            };
            if tx.send((crossed + delay, buf)).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((due, buf)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&buf).await?;
        }
        to.shutdown().await
    };
    let (r, w) = tokio::join!(reader, writer);
    r.and(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn link_reservations_queue_up_at_the_rate() {
        let link = Link::new(Some(1_000_000));
        let t0 = Instant::now();
        let a = link.reserve(500_000).unwrap_or(t0);
        let b = link.reserve(500_000).unwrap_or(t0);
        assert!(a >= t0 + Duration::from_millis(499));
        assert!(b >= a + Duration::from_millis(499));
        assert!(Link::new(None).reserve(1 << 30).is_none());
    }

    #[tokio::test]
    async fn bytes_pass_through_in_order() -> io::Result<()> {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await?;
        let upstream = echo.local_addr()?;
        tokio::spawn(async move {
            if let Ok((mut s, _)) = echo.accept().await {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let proxy = DelayProxy::start(
            upstream,
            LinkProfile::symmetric(Duration::from_millis(5), Some(100_000_000)),
        )
        .await?;
        let mut c = TcpStream::connect(proxy.addr()).await?;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&data).await?;
            w.shutdown().await
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (s, n) = tokio::join!(send, recv);
        s?;
        n?;
        assert_eq!(back, data);
        Ok(())
    }
}
