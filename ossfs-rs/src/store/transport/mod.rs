//! The HTTP transport under the REST client: hyper's pooled HTTP/1.1 client
//! over a connector of our own (TCP, then rustls for `https://`).
//!
//! We own the connector for one reason: every connection is a [`QuickAck`]
//! stream. After each request it asks the kernel (`TCP_QUICKACK`) to
//! acknowledge the reply's first segment at once instead of after the
//! delayed-ACK timer (40 ms on Linux). A server that writes the response
//! head and a small body in two writes without `TCP_NODELAY` (Garage does)
//! holds the body back under Nagle's algorithm until the head is
//! acknowledged; with delayed ACKs every small GET then costs about 42 ms.
//! Measured here against Garage on loopback, 40 GETs of 4 KiB on one
//! keep-alive connection: 42.9 ms each without the option, 0.9 ms with it.
//! The cost is one `setsockopt` per request.
//!
//! Connections go straight to the endpoint: `HTTP_PROXY`, `HTTPS_PROXY`
//! and `ALL_PROXY` are not followed (a warning says so when one is set).
//!
//! Timeouts are on lack of progress, never on total duration (the
//! submodule `progress`): connecting is bounded by `connect_timeout`,
//! sending the body by `send_idle_timeout` (no byte accepted for that
//! long), the reply head by `first_byte_timeout` after the body is sent,
//! and each chunk of the reply body by `read_timeout`. A large part over a
//! slow uplink therefore takes as long as the link needs, and a peer that
//! stops moving is noticed within one bound.
//!
//! A success body read whole ([`Response::bytes`]: listings, multipart
//! documents) is capped at [`MAX_DOCUMENT`]; object data is streamed and
//! not capped.
//!
//! Imports (besides its own submodules, `progress` for the bounds):
//! `store::types` of the crate, besides std and external crates.

mod progress;

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use progress::{Bounds, Progress, SendBody, SendQueue, Stall};

/// Largest success body read whole into memory (listings of 1000 keys are
/// a few hundred KiB; anything far larger is not a document we asked for).
pub const MAX_DOCUMENT: usize = 64 * 1024 * 1024;

/// How a [`Transport`] connects and how long it waits; every bound is on
/// lack of progress (see the module docs).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub connect_timeout: Duration,
    /// Longest time the peer may accept no byte of the request body.
    pub send_idle_timeout: Duration,
    /// Longest wait for the reply head once the body is sent.
    pub first_byte_timeout: Duration,
    /// Longest wait for each chunk of the reply body.
    pub read_timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the system's.
    pub extra_roots_pem: Option<Vec<u8>>,
    pub user_agent: &'static str,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
    pub idle_timeout: Duration,
}

/// Why a request got no (complete) reply.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the server accepted no byte of the request body for {0:?}")]
    SendStalled(Duration),
    #[error("the reply body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Broken(String),
    #[error("{0}")]
    Config(String),
}

/// A body as it arrives, chunk by chunk.
pub type BodyStream = BoxStream<'static, Result<Bytes, TransportError>>;

/// A reply whose head has arrived; the body has not been read.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    read_timeout: Duration,
}

impl Response {
    /// The body as a stream; each chunk must arrive within `read_timeout`.
    pub fn into_stream(self) -> BodyStream {
        let timeout = self.read_timeout;
        futures::stream::unfold(Some(self.body), move |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout(timeout, body.frame()).await {
                    Err(_) => return Some((Err(TransportError::Timeout(timeout)), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        return Some((Err(TransportError::Broken(chain(&e))), None));
                    }
                    Ok(Some(Ok(frame))) => {
                        // Trailers carry no bytes; skip them.
                        if let Ok(data) = frame.into_data()
                            && !data.is_empty()
                        {
                            return Some((Ok(data), Some(body)));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// The whole body (replies of a few KiB to a few MiB: listings,
    /// multipart documents), refused past [`MAX_DOCUMENT`] bytes.
    pub async fn bytes(self) -> Result<Bytes, TransportError> {
        self.bytes_capped(MAX_DOCUMENT).await
    }

    /// The whole body, refused once it passes `cap` bytes.
    pub async fn bytes_capped(self, cap: usize) -> Result<Bytes, TransportError> {
        if let Some(len) = self
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > cap as u64
        {
            return Err(TransportError::TooLarge(cap));
        }
        let mut seen = 0usize;
        let capped = self.into_stream().map(move |chunk| {
            let chunk = chunk?;
            seen = seen.saturating_add(chunk.len());
            if seen > cap {
                return Err(TransportError::TooLarge(cap));
            }
            Ok(chunk)
        });
        super::types::gather(capped.boxed(), 0).await
    }
}

/// The pooled client. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    client: Client<Connector, SendBody>,
    bounds: Bounds,
    read_timeout: Duration,
    user_agent: HeaderValue,
}

impl Transport {
    /// Build the client; fails on an unreadable CA bundle.
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        warn_about_proxies();
        let tls = tls_config(config.extra_roots_pem.as_deref())?;
        let connector = Connector {
            tls: TlsConnector::from(Arc::new(tls)),
            connect_timeout: config.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            bounds: Bounds {
                connect: config.connect_timeout,
                send_idle: config.send_idle_timeout,
                first_byte: config.first_byte_timeout,
            },
            read_timeout: config.read_timeout,
            user_agent: HeaderValue::from_static(config.user_agent),
        })
    }

    /// Send one request and wait for the reply head, failing only when a
    /// phase makes no progress for its bound.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, TransportError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| TransportError::Config(format!("bad URL {url:?}: {e}")))?;
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(http::header::USER_AGENT, self.user_agent.clone());
        }
        // Servers answer 411 to a PUT or POST without a length, even an
        // empty one; hyper sends none for an empty body.
        if (!body.is_empty() || matches!(method, Method::PUT | Method::POST))
            && !headers.contains_key(http::header::CONTENT_LENGTH)
        {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let progress = Progress::new(self.bounds, body.len());
        let mut request = Request::new(SendBody::new(body, progress.clone()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let captured = capture_connection(&mut request);
        let queue = || {
            let meta = captured.connection_metadata();
            let mut extras = http::Extensions::new();
            meta.as_ref()?.get_extras(&mut extras);
            extras.get::<SendQueue>().cloned()
        };
        let reply = progress::watch(self.client.request(request), &progress, queue)
            .await
            .map_err(|stall| match stall {
                Stall::Sending(d) => TransportError::SendStalled(d),
                Stall::Waiting(d) => TransportError::Timeout(d),
            })?
            .map_err(classify)?;
        let (parts, body) = reply.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            read_timeout: self.read_timeout,
        })
    }
}

/// Say once per process that proxy variables are ignored, so that a host
/// that can reach the store only through a proxy gets a reason, not just
/// a connect error.
fn warn_about_proxies() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    const VARS: [&str; 6] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ];
    let set: Vec<&str> = VARS
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .collect();
    if !set.is_empty() {
        WARNED.call_once(|| {
            tracing::warn!(
                variables = ?set,
                "proxy variables are set, but ossfs-rs connects to the endpoint directly (proxies are not supported)"
            );
        });
    }
}

/// Turn hyper's error into ours, finding the connector's own error (if any)
/// in its causes.
fn classify(e: hyper_util::client::legacy::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Timeout(d) => TransportError::Timeout(*d),
                ConnectError::Tls(_) => TransportError::Tls(c.to_string()),
                ConnectError::Tcp(..) | ConnectError::Uri(_) => {
                    TransportError::Connect(c.to_string())
                }
            };
        }
        source = s.source();
    }
    if e.is_connect() {
        TransportError::Connect(chain(&e))
    } else {
        TransportError::Broken(chain(&e))
    }
}

/// An error with its causes, which name the real problem (`connection
/// reset by peer`), without repeating a cause its parent already quoted.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// rustls with the platform's roots (as reqwest had), plus any extra CA.
fn tls_config(extra_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = match extra_pem {
        None => rustls_platform_verifier::Verifier::new(provider.clone()),
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TransportError::Config(format!("not a PEM bundle: {e}")))?;
            if certs.is_empty() {
                return Err(TransportError::Config(
                    "no certificate in the PEM bundle".to_string(),
                ));
            }
            rustls_platform_verifier::Verifier::new_with_extra_roots(certs, provider.clone())
        }
    }
    .map_err(|e| TransportError::Config(format!("cannot set up TLS verification: {e}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("connecting took longer than {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to {0}: {1}")]
    Tcp(String, #[source] io::Error),
    #[error("TLS handshake failed: {}", chain(.0))]
    Tls(io::Error),
    #[error("{0}")]
    Uri(String),
}

/// Makes connections: TCP with `TCP_NODELAY`, then TLS for `https`.
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    connect_timeout: Duration,
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<TokioIo<Conn>, ConnectError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(ConnectError::Uri(format!("unsupported scheme {other:?}"))),
        };
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::Uri(format!("no host in {uri}")))?;
        // `[::1]` in a URI is `::1` to the resolver.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
        .map_err(|e| ConnectError::Tcp(authority.clone(), e))?;
        tcp.set_nodelay(true)
            .map_err(|e| ConnectError::Tcp(authority, e))?;
        let stream = QuickAck::new(tcp);
        if !https {
            return Ok(TokioIo::new(Conn::Plain(stream)));
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|e| ConnectError::Uri(format!("{host:?} is not a TLS server name: {e}")))?;
        let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, stream))
            .await
            .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
            .map_err(ConnectError::Tls)?;
        Ok(TokioIo::new(Conn::Tls(Box::new(tls))))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// One connection, plain or TLS.
enum Conn {
    Plain(QuickAck),
    Tls(Box<TlsStream<QuickAck>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        };
        Connected::new().extra(tcp.queue.clone())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A TCP stream that sets `TCP_QUICKACK` before its first read after a
/// write: the reply to the request just written is acknowledged segment by
/// segment until the kernel's own heuristics take over again. See the
/// module docs for why.
struct QuickAck {
    tcp: TcpStream,
    wrote: bool,
    /// Its send queue, for the progress watchdog.
    queue: SendQueue,
}

impl Drop for QuickAck {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl QuickAck {
    fn new(tcp: TcpStream) -> Self {
        let queue = SendQueue::new(tcp.as_raw_fd());
        Self {
            tcp,
            wrote: false,
            queue,
        }
    }

    fn ack_quickly(&mut self) {
        if !self.wrote {
            return;
        }
        self.wrote = false;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd owned by `self.tcp`, and a pointer to a
        // live c_int with its size. A failure only loses the optimisation.
        unsafe {
            libc::setsockopt(
                self.tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    fn note_write(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.wrote = true;
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.ack_quickly();
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.note_write(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
