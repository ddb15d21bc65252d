//! The transport against small real servers on loopback: plain HTTP with
//! keep-alive, TLS with and without the CA, and each failure's type.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Transport, TransportConfig, TransportError};

fn config(extra_roots_pem: Option<Vec<u8>>) -> TransportConfig {
    TransportConfig {
        connect_timeout: Duration::from_secs(5),
        send_idle_timeout: Duration::from_millis(500),
        first_byte_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        extra_roots_pem,
        user_agent: "ossfs-rs-test",
        max_idle_per_host: 4,
        idle_timeout: Duration::from_secs(10),
    }
}

/// How the test server answers each request.
#[derive(Clone, Copy)]
enum Reply {
    /// The head, then the body in a second write (as Garage does).
    Body(&'static [u8]),
    /// The head, then part of the body, then nothing.
    Stall,
}

/// Serve `reply` on every request of every connection; count connections.
async fn serve_http<S>(mut stream: S, reply: Reply)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        let body: &[u8] = match reply {
            Reply::Body(b) => b,
            Reply::Stall => b"0123456789",
        };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        match reply {
            Reply::Body(b) => {
                if stream.write_all(b).await.is_err() {
                    return;
                }
            }
            Reply::Stall => {
                let _ = stream.write_all(&body[..3]).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        }
    }
}

async fn plain_server(reply: Reply) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_http(stream, reply));
        }
    });
    (url, accepted)
}

/// A TLS server for 127.0.0.1 with a fresh self-signed certificate; returns
/// its URL and the certificate's PEM.
async fn tls_server() -> (String, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("self-signed certificate");
    let pem = cert.cert.pem().into_bytes();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_http(tls, Reply::Body(b"over tls")).await;
                }
            });
        }
    });
    (url, pem)
}

async fn get(t: &Transport, url: &str) -> Result<Bytes, TransportError> {
    get_capped(t, url, super::MAX_DOCUMENT).await
}

async fn get_capped(t: &Transport, url: &str, cap: usize) -> Result<Bytes, TransportError> {
    let reply = t
        .send(
            Method::GET,
            &format!("{url}/k"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await?;
    assert_eq!(reply.status, 200);
    reply.bytes_capped(cap).await
}

#[tokio::test]
async fn replies_arrive_whole_and_the_connection_is_reused() {
    let body: &'static [u8] = &[7u8; 4096];
    let (url, accepted) = plain_server(Reply::Body(body)).await;
    let t = Transport::new(&config(None)).expect("transport");
    for _ in 0..5 {
        assert_eq!(get(&t, &url).await.expect("get"), Bytes::from_static(body));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one keep-alive connection"
    );
}

#[tokio::test]
async fn tls_works_with_the_extra_ca_and_is_refused_without_it() {
    let (url, pem) = tls_server().await;
    let trusted = Transport::new(&config(Some(pem))).expect("transport");
    assert_eq!(get(&trusted, &url).await.expect("get"), "over tls");
    let untrusted = Transport::new(&config(None)).expect("transport");
    match get(&untrusted, &url).await {
        Err(TransportError::Tls(detail)) => {
            assert!(detail.contains("certificate"), "{detail}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    // A plain HTTP server answers the ClientHello with a 400 and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut chunk = [0u8; 1024];
            let _ = stream.read(&mut chunk).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let t = Transport::new(&config(None)).expect("transport");
    let got = get(&t, &url).await;
    assert!(matches!(got, Err(TransportError::Tls(_))), "{got:?}");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let t = Transport::new(&config(None)).expect("transport");
    match get(&t, &format!("http://{addr}")).await {
        Err(TransportError::Connect(detail)) => {
            assert!(detail.contains(&addr.to_string()), "{detail}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_body_that_stalls_times_out_instead_of_hanging() {
    let (url, _) = plain_server(Reply::Stall).await;
    let t = Transport::new(&config(None)).expect("transport");
    assert!(matches!(
        get(&t, &url).await,
        Err(TransportError::Timeout(_))
    ));
}

#[test]
fn a_bundle_without_certificates_is_refused() {
    let err = Transport::new(&config(Some(b"not a pem".to_vec())))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// A server that reads each request's body `piece` bytes at a time, then
/// waits `pause` (or, with `stop_after`, stops reading for good once it has
/// read that many body bytes), and answers 200 once the whole body is in.
/// Its receive buffer is small, so the client feels the pace at once.
async fn pacing_server(piece: usize, pause: Duration, stop_after: Option<usize>) -> String {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(8).expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut buf = vec![0u8; piece];
                let mut got = 0;
                while got < len {
                    if stop_after.is_some_and(|s| got >= s) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    match stream.read(&mut buf[..piece.min(len - got)]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                    tokio::time::sleep(pause).await;
                }
                if stop_after.is_some_and(|s| got >= s) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{got}",
                    got.to_string().len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

async fn put(t: &Transport, url: &str, len: usize) -> Result<Bytes, TransportError> {
    let reply = t
        .send(
            Method::PUT,
            &format!("{url}/k"),
            HeaderMap::new(),
            Bytes::from(vec![5u8; len]),
        )
        .await?;
    assert_eq!(reply.status, 200);
    reply.bytes().await
}

#[tokio::test]
async fn a_server_that_accepts_slowly_but_steadily_does_not_time_out() {
    // 4 MiB at 16 KiB per 10 ms, about 2.6 s: five times the 500 ms
    // bounds, which a bound on the whole exchange would break.
    let url = pacing_server(16 * 1024, Duration::from_millis(10), None).await;
    let mut c = config(None);
    c.first_byte_timeout = Duration::from_secs(2);
    let t = Transport::new(&c).expect("transport");
    let len = 4 * 1024 * 1024;
    let started = std::time::Instant::now();
    let got = put(&t, &url, len).await.expect("a slow upload completes");
    assert_eq!(got, len.to_string());
    assert!(
        started.elapsed() > c.send_idle_timeout * 2,
        "the upload was not slow: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_stops_accepting_body_bytes_times_out() {
    let url = pacing_server(16 * 1024, Duration::ZERO, Some(256 * 1024)).await;
    let t = Transport::new(&config(None)).expect("transport");
    let got = tokio::time::timeout(Duration::from_secs(60), put(&t, &url, 32 * 1024 * 1024))
        .await
        .expect("the request ends by itself");
    assert!(
        matches!(got, Err(TransportError::SendStalled(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_after_the_body_times_out() {
    // Reads the whole (small) body, then stops: no reply head comes.
    let url = pacing_server(16 * 1024, Duration::ZERO, Some(1024)).await;
    let t = Transport::new(&config(None)).expect("transport");
    let got = tokio::time::timeout(Duration::from_secs(60), put(&t, &url, 1024))
        .await
        .expect("the request ends by itself");
    assert!(matches!(got, Err(TransportError::Timeout(_))), "{got:?}");
}

#[tokio::test]
async fn a_success_body_past_the_cap_is_refused() {
    let body: &'static [u8] = &[7u8; 4096];
    let (url, _) = plain_server(Reply::Body(body)).await;
    let t = Transport::new(&config(None)).expect("transport");
    assert!(matches!(
        get_capped(&t, &url, 1000).await,
        Err(TransportError::TooLarge(1000))
    ));
}

#[tokio::test]
async fn a_get_whose_head_never_comes_times_out_after_the_first_byte_bound() {
    // Reads the request, never answers. The connect credit (twice the
    // 5 s connect timeout) ends once the request has its connection, so
    // the 500 ms bound applies, not 10 s.
    let url = pacing_server(16 * 1024, Duration::ZERO, Some(0)).await;
    let t = Transport::new(&config(None)).expect("transport");
    let started = std::time::Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(60), get(&t, &url))
        .await
        .expect("the request ends by itself");
    assert!(matches!(got, Err(TransportError::Timeout(_))), "{got:?}");
    assert!(
        started.elapsed() < config(None).connect_timeout,
        "still under the connect credit: {:?}",
        started.elapsed()
    );
}
