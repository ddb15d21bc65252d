//! A user-space fault-injecting TCP proxy for HTTP/1.1, put between a client
//! under test and a real server (netem is not available here).
//!
//! Design, chosen to stay small and obviously correct:
//!
//! - **One request per connection.** The proxy rewrites the request head to
//!   `Connection: close` (and the response head too), so the server closes
//!   after one exchange and the client never reuses a connection. A fault
//!   "per request" and a fault "per new connection" are then the same thing,
//!   and the proxy never has to find where a second request starts.
//! - **Minimal parsing.** Only the request head (method, target,
//!   `Content-Length` / chunked, to drain a body it does not forward) and the
//!   response head (`Content-Length`, to truncate inside the body) are
//!   parsed. Everything else is copied byte for byte.
//! - **A plan of rules.** Each rule says "apply this fault to the next N
//!   requests (optionally: of this method)". A request takes the first
//!   matching rule; with none left it passes through. Every request is
//!   recorded with the fault it got, so a test can assert that the client
//!   really retried.
//!
//! Background tasks belong to the runtime that called
//! [`FaultProxy::start`]; dropping the proxy stops accepting and aborts the
//! connections in flight.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest request or response head the proxy accepts.
const MAX_HEAD: usize = 64 * 1024;

/// What to do to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Wait this long after the request head arrived, then forward unchanged.
    Delay(Duration),
    /// Forward unchanged (the server executes the request at once), then
    /// hold the response head this long before relaying it: a slow reply
    /// to a request that already took effect.
    DelayReply(Duration),
    /// Read the whole request, do not forward it, reset the connection (RST).
    Reset,
    /// Forward the request (the server executes it), relay the first `n`
    /// bytes of the raw response (head included), then reset the connection.
    ResetAfter(usize),
    /// Answer `503` with an S3 `SlowDown` error document, without forwarding.
    SlowDown,
    /// Answer `503` with a plain-text body, without forwarding.
    ServiceUnavailable,
    /// Answer `403` with an S3 `AccessDenied` error document, without
    /// forwarding: a permanent error (revoked key or bucket policy).
    AccessDenied,
    /// Forward, relay the response head and the first `n` body bytes, then
    /// close cleanly (FIN). `n` is capped at `Content-Length - 1`, so a body
    /// with a known non-zero length is always cut short.
    TruncateBody(usize),
}

/// One request the proxy saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The request target as sent (`/bucket/key?query`).
    pub target: String,
    pub fault: Fault,
}

#[derive(Debug)]
struct Rule {
    fault: Fault,
    remaining: usize,
    method: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    plan: VecDeque<Rule>,
    seen: Vec<RequestRecord>,
    connections: usize,
}

impl State {
    /// The fault for this request: the first rule matching its method.
    fn take_fault(&mut self, method: &str, target: &str) -> Fault {
        let idx = self.plan.iter().position(|r| {
            r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
        });
        let fault = match idx {
            Some(i) => {
                let rule = &mut self.plan[i];
                rule.remaining -= 1;
                let fault = rule.fault.clone();
                if rule.remaining == 0 {
                    self.plan.remove(i);
                }
                fault
            }
            None => Fault::Pass,
        };
        self.seen.push(RequestRecord {
            method: method.to_string(),
            target: target.to_string(),
            fault: fault.clone(),
        });
        fault
    }
}

/// A running proxy. See the module documentation.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listen on `127.0.0.1:0` and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&state)));
        Ok(Self {
            addr,
            upstream,
            state,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for a client's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Apply `fault` to the next `n` requests (after the rules already queued).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.push_rule(n, fault, None);
    }

    /// Apply `fault` to the next `n` requests whose method is `method`.
    pub fn fail_next_method(&self, method: &str, n: usize, fault: Fault) {
        self.push_rule(n, fault, Some(method.to_string()));
    }

    fn push_rule(&self, n: usize, fault: Fault, method: Option<String>) {
        if n == 0 {
            return;
        }
        self.lock().plan.push_back(Rule {
            fault,
            remaining: n,
            method,
        });
    }

    /// Drop every queued rule: from now on everything passes through.
    pub fn clear_plan(&self) {
        self.lock().plan.clear();
    }

    /// How many queued fault applications are left.
    pub fn pending_faults(&self) -> usize {
        self.lock().plan.iter().map(|r| r.remaining).sum()
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().seen.clone()
    }

    /// How many requests were seen.
    pub fn request_count(&self) -> usize {
        self.lock().seen.len()
    }

    /// How many requests got a fault other than [`Fault::Pass`].
    pub fn faulted_count(&self) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|r| r.fault != Fault::Pass)
            .count()
    }

    /// How many TCP connections were accepted.
    pub fn connection_count(&self) -> usize {
        self.lock().connections
    }

    /// Forget the requests seen so far (the plan is kept).
    pub fn reset_counters(&self) {
        let mut st = self.lock();
        st.seen.clear();
        st.connections = 0;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a bug in this
        // module; the data stays consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every
        // connection task.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                state.lock().unwrap_or_else(|e| e.into_inner()).connections += 1;
                let state = Arc::clone(&state);
                conns.spawn(async move {
                    // A failed connection only concerns that client; the
                    // client under test sees the broken connection.
                    let _ = serve_connection(client, upstream, state).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let Some(head_len) = read_head(&mut client, &mut buf).await? else {
        return Ok(());
    };
    let leftover = buf.split_off(head_len);
    let head = Head::parse(&buf)?;
    let (method, target) = head.request_line()?;
    let fault = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_fault(&method, &target);

    match fault {
        Fault::Reset => {
            drain_request_body(&head, leftover, &mut client).await?;
            reset(client)
        }
        Fault::SlowDown | Fault::ServiceUnavailable | Fault::AccessDenied => {
            drain_request_body(&head, leftover, &mut client).await?;
            let reply = error_reply(&fault, &method);
            client.write_all(&reply).await?;
            client.shutdown().await
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            relay(client, &head, leftover, upstream, Relay::Whole).await
        }
        Fault::Pass => relay(client, &head, leftover, upstream, Relay::Whole).await,
        Fault::DelayReply(d) => {
            relay(client, &head, leftover, upstream, Relay::DelayReply(d)).await
        }
        Fault::ResetAfter(n) => {
            relay(client, &head, leftover, upstream, Relay::ResetAfter(n)).await
        }
        Fault::TruncateBody(n) => {
            relay(client, &head, leftover, upstream, Relay::TruncateBody(n)).await
        }
    }
}

/// Close `stream` with an RST instead of a FIN.
fn reset(stream: TcpStream) -> io::Result<()> {
    stream.set_zero_linger()?;
    drop(stream);
    Ok(())
}

/// The reply for [`Fault::SlowDown`], [`Fault::ServiceUnavailable`] or
/// [`Fault::AccessDenied`].
fn error_reply(fault: &Fault, method: &str) -> Vec<u8> {
    let (status, content_type, body) = match fault {
        Fault::SlowDown => (
            "503 Service Unavailable",
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
             <Message>Please reduce your request rate.</Message>\
             <RequestId>fault-proxy</RequestId></Error>",
        ),
        Fault::AccessDenied => (
            "403 Forbidden",
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
             <Message>Access Denied</Message>\
             <RequestId>fault-proxy</RequestId></Error>",
        ),
        _ => (
            "503 Service Unavailable",
            "text/plain",
            "Service Unavailable",
        ),
    };
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    // A reply to HEAD announces the length but carries no body.
    if !method.eq_ignore_ascii_case("HEAD") {
        reply.extend_from_slice(body.as_bytes());
    }
    reply
}

/// How to relay the response of a forwarded request.
#[derive(Clone, Copy, Debug)]
enum Relay {
    Whole,
    DelayReply(Duration),
    ResetAfter(usize),
    TruncateBody(usize),
}

/// Forward the request to `upstream` and relay the response as `mode` says.
async fn relay(
    mut client: TcpStream,
    head: &Head,
    leftover: Vec<u8>,
    upstream: SocketAddr,
    mode: Relay,
) -> io::Result<()> {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        // The upstream is down: the client sees a reset, as it would
        // talking to the server directly through a dead middlebox.
        Err(_) => return reset(client),
    };
    let outcome = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let request = async {
            sw.write_all(&head.with_connection_close()).await?;
            sw.write_all(&leftover).await?;
            // The client does not half-close; this copy normally ends when
            // the response is done and the futures are dropped.
            tokio::io::copy(&mut cr, &mut sw).await.map(|_| ())
        };
        let response = relay_response(&mut sr, &mut cw, mode);
        tokio::pin!(request, response);
        let mut request_done = false;
        loop {
            tokio::select! {
                _ = &mut request, if !request_done => request_done = true,
                r = &mut response => break r,
            }
        }
    };
    match (mode, outcome) {
        (Relay::ResetAfter(_), _) | (_, Err(_)) => reset(client),
        (_, Ok(())) => client.shutdown().await,
    }
}

async fn relay_response<R, W>(server: &mut R, client: &mut W, mode: Relay) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if let Relay::ResetAfter(n) = mode {
        tokio::io::copy(&mut server.take(n as u64), client).await?;
        return Ok(());
    }
    let mut buf = Vec::new();
    let Some(head_len) = read_head(server, &mut buf).await? else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed before answering",
        ));
    };
    let body_start = buf.split_off(head_len);
    let head = Head::parse(&buf)?;
    if let Relay::DelayReply(d) = mode {
        tokio::time::sleep(d).await;
    }
    client.write_all(&head.with_connection_close()).await?;
    match mode {
        Relay::TruncateBody(n) => {
            let limit = match head.content_length()? {
                Some(len) if len > 0 => n.min(len as usize - 1),
                _ => n,
            };
            let mut body = std::io::Cursor::new(body_start).chain(server);
            tokio::io::copy(&mut (&mut body).take(limit as u64), client).await?;
        }
        Relay::Whole | Relay::DelayReply(_) | Relay::ResetAfter(_) => {
            client.write_all(&body_start).await?;
            tokio::io::copy(server, client).await?;
        }
    }
    client.flush().await
}

/// Read and discard the body of a request that is not forwarded, so that
/// closing the socket does not turn into a reset while the client is still
/// sending.
async fn drain_request_body(
    head: &Head,
    leftover: Vec<u8>,
    client: &mut TcpStream,
) -> io::Result<()> {
    let body = std::io::Cursor::new(leftover).chain(client);
    if head.is_chunked() {
        return drain_chunked(BufReader::new(body)).await;
    }
    let len = head.content_length()?.unwrap_or(0);
    let copied = tokio::io::copy(&mut body.take(len), &mut tokio::io::sink()).await?;
    if copied < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client closed inside the request body",
        ));
    }
    Ok(())
}

/// Discard a chunked body: size lines, data, and the trailer.
async fn drain_chunked<R: AsyncRead + Unpin>(mut r: BufReader<R>) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size line"))?;
        if size == 0 {
            // Trailer fields until an empty line.
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).await? == 0 || line == b"\r\n" {
                    return Ok(());
                }
            }
        }
        // The chunk data and its CRLF.
        let want = size + 2;
        let copied = tokio::io::copy(&mut (&mut r).take(want), &mut tokio::io::sink()).await?;
        if copied < want {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunk cut"));
        }
    }
}

/// Read from `r` into `buf` until the end of an HTTP head (`\r\n\r\n`).
/// Returns the head's length (bytes after it are the start of the body), or
/// `None` when the peer closed before sending anything.
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            return Ok(Some(pos + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP head too long",
            ));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside an HTTP head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A parsed HTTP/1.1 head: the start line and the header fields in order.
#[derive(Debug)]
struct Head {
    start: String,
    fields: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> io::Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "HTTP head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or("").to_string();
        let mut fields = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "header without ':'"))?;
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
        Ok(Self { start, fields })
    }

    /// Method and target of a request line.
    fn request_line(&self) -> io::Result<(String, String)> {
        let mut parts = self.start.split(' ');
        match (parts.next(), parts.next()) {
            (Some(m), Some(t)) if !m.is_empty() => Ok((m.to_string(), t.to_string())),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request line",
            )),
        }
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> io::Result<Option<u64>> {
        self.field("content-length")
            .map(|v| {
                v.parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))
            })
            .transpose()
    }

    fn is_chunked(&self) -> bool {
        self.field("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The head re-serialised with `Connection: close` instead of any
    /// connection-management field.
    fn with_connection_close(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.start.len() + 64 * self.fields.len());
        out.push_str(&self.start);
        out.push_str("\r\n");
        for (name, value) in &self.fields {
            let hop = ["connection", "keep-alive", "proxy-connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if !hop {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(value);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

    /// What the trivial upstream saw of one request.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        connection: Option<String>,
        body_len: usize,
    }

    /// A trivial HTTP/1.1 server: one request per connection, answers
    /// `200` with [`BODY`], records what it saw.
    async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let Some(n) = read_head(&mut s, &mut buf).await.unwrap() else {
                        return;
                    };
                    let rest = buf.split_off(n);
                    let head = Head::parse(&buf).unwrap();
                    let len = head.content_length().unwrap().unwrap_or(0) as usize;
                    let mut body = rest;
                    while body.len() < len {
                        let mut chunk = vec![0; len - body.len()];
                        let k = s.read(&mut chunk).await.unwrap();
                        assert!(k > 0, "client closed inside the body");
                        body.extend_from_slice(&chunk[..k]);
                    }
                    let (method, _) = head.request_line().unwrap();
                    log.lock().unwrap().push(Seen {
                        method: method.clone(),
                        connection: head.field("connection").map(str::to_string),
                        body_len: body.len(),
                    });
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\n\r\n",
                        BODY.len()
                    )
                    .into_bytes();
                    if method != "HEAD" {
                        reply.extend_from_slice(BODY);
                    }
                    s.write_all(&reply).await.unwrap();
                    s.shutdown().await.unwrap();
                });
            }
        });
        (addr, seen)
    }

    /// Send one raw request, read until the proxy closes. Returns the bytes
    /// read and how the read ended.
    async fn send(proxy: &FaultProxy, request: &[u8]) -> (Vec<u8>, io::Result<()>) {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                Err(_) => panic!("proxy did not answer within 10 s"),
                Ok(Ok(0)) => break Ok(()),
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => break Err(e),
            }
        };
        (out, end)
    }

    const GET: &[u8] = b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";

    fn split_reply(reply: &[u8]) -> (Head, Vec<u8>) {
        let n = find(reply, b"\r\n\r\n").expect("a complete head") + 4;
        (Head::parse(&reply[..n]).unwrap(), reply[n..].to_vec())
    }

    #[tokio::test]
    async fn passes_through_and_forces_one_request_per_connection() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        let (head, body) = split_reply(&reply);
        assert_eq!(head.start, "HTTP/1.1 200 OK");
        assert_eq!(head.field("connection"), Some("close"));
        assert_eq!(head.field("keep-alive"), None);
        assert_eq!(body, BODY);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].connection.as_deref(), Some("close"));
        assert_eq!(
            proxy.requests(),
            vec![RequestRecord {
                method: "GET".into(),
                target: "/bucket/key".into(),
                fault: Fault::Pass
            }]
        );
        assert_eq!(proxy.connection_count(), 1);
    }

    #[tokio::test]
    async fn forwards_request_bodies() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        let payload = vec![7u8; 300_000];
        let mut req = format!(
            "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        req.extend_from_slice(&payload);
        let (reply, end) = send(&proxy, &req).await;
        end.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        assert_eq!(seen.lock().unwrap()[0].body_len, payload.len());
    }

    #[tokio::test]
    async fn slow_down_answers_without_forwarding_then_passes() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(2, Fault::SlowDown);
        assert_eq!(proxy.pending_faults(), 2);
        let payload = vec![1u8; 200_000];
        let mut put = format!(
            "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        put.extend_from_slice(&payload);
        for _ in 0..2 {
            // The body is drained, so the client reads a clean 503, not a reset.
            let (reply, end) = send(&proxy, &put).await;
            end.unwrap();
            let (head, body) = split_reply(&reply);
            assert_eq!(head.start, "HTTP/1.1 503 Service Unavailable");
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
            assert_eq!(
                head.content_length().unwrap(),
                Some(body.len() as u64),
                "Content-Length matches the error document"
            );
        }
        assert!(seen.lock().unwrap().is_empty(), "503s are not forwarded");
        let (reply, end) = send(&proxy, &put).await;
        end.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(proxy.request_count(), 3);
        assert_eq!(proxy.faulted_count(), 2);
        assert_eq!(proxy.pending_faults(), 0);
    }

    #[tokio::test]
    async fn plain_503_and_head_without_body() {
        let (up, _) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(2, Fault::ServiceUnavailable);
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        let (head, body) = split_reply(&reply);
        assert_eq!(head.start, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(body, b"Service Unavailable");
        let (reply, end) = send(&proxy, b"HEAD /b/k HTTP/1.1\r\nHost: x\r\n\r\n").await;
        end.unwrap();
        let (head, body) = split_reply(&reply);
        assert_eq!(head.start, "HTTP/1.1 503 Service Unavailable");
        assert!(body.is_empty(), "a HEAD reply has no body");
    }

    #[tokio::test]
    async fn chunked_request_is_drained() {
        let (up, _) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(1, Fault::SlowDown);
        let req = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: y\r\n\r\n";
        let (reply, end) = send(&proxy, req).await;
        end.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 503"));
    }

    #[tokio::test]
    async fn reset_before_response_does_not_forward() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(1, Fault::Reset);
        let (reply, end) = send(&proxy, GET).await;
        assert!(reply.is_empty());
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        assert!(seen.lock().unwrap().is_empty());
        // Then it passes again.
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn reset_after_response_bytes_forwards_first() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(1, Fault::ResetAfter(12));
        let (reply, end) = send(&proxy, GET).await;
        // Data in flight may be discarded by the receiver when the RST
        // arrives, so only the upper bound is certain.
        assert!(reply.len() <= 12, "{} bytes relayed", reply.len());
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "the server executed the request");
        assert_eq!(seen[0].method, "GET");
    }

    #[tokio::test]
    async fn truncates_the_body_and_closes_cleanly() {
        let (up, _) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(1, Fault::TruncateBody(10));
        // More than the body: capped at Content-Length - 1.
        proxy.fail_next(1, Fault::TruncateBody(1000));
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        let (head, body) = split_reply(&reply);
        assert_eq!(head.content_length().unwrap(), Some(BODY.len() as u64));
        assert_eq!(body, &BODY[..10]);
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        let (_, body) = split_reply(&reply);
        assert_eq!(body, &BODY[..BODY.len() - 1]);
    }

    #[tokio::test]
    async fn delay_then_pass() {
        let (up, seen) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next(1, Fault::Delay(Duration::from_millis(50)));
        let (reply, end) = send(&proxy, GET).await;
        end.unwrap();
        let (_, body) = split_reply(&reply);
        assert_eq!(body, BODY);
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(
            proxy.requests()[0].fault,
            Fault::Delay(Duration::from_millis(50))
        );
    }

    #[tokio::test]
    async fn method_rules_skip_other_methods() {
        let (up, _) = upstream().await;
        let proxy = FaultProxy::start(up).await.unwrap();
        proxy.fail_next_method("put", 1, Fault::ServiceUnavailable);
        let (reply, _) = send(&proxy, GET).await;
        assert!(reply.starts_with(b"HTTP/1.1 200"));
        let (reply, _) = send(&proxy, b"PUT /b/k HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(reply.starts_with(b"HTTP/1.1 503"));
        let faults: Vec<Fault> = proxy.requests().into_iter().map(|r| r.fault).collect();
        assert_eq!(faults, vec![Fault::Pass, Fault::ServiceUnavailable]);
        proxy.reset_counters();
        assert_eq!(proxy.request_count(), 0);
    }

    #[tokio::test]
    async fn dead_upstream_resets_the_client() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let proxy = FaultProxy::start(dead).await.unwrap();
        let (reply, end) = send(&proxy, GET).await;
        assert!(reply.is_empty());
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }
}
