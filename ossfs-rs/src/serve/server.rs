//! The embedded endpoint as a value: bind, serve with hyper, shut down.
//!
//! [`EmbeddedServer::start`] binds a TCP listener (port 0 picks a free one),
//! creates the configured buckets and spawns one accept task on the current
//! tokio runtime; each connection is an HTTP/1.1 hyper connection driving the
//! `s3s` service, which verifies SigV4 with the one configured key pair.
//! Tests and the demo hold the value and read [`EmbeddedServer::endpoint`];
//! the CLI holds it until a signal arrives.
//!
//! Shutdown is a `watch` channel: [`EmbeddedServer::shutdown`] stops
//! accepting, lets in-flight requests finish (bounded by
//! [`GRACEFUL_TIMEOUT`]) and waits; dropping the value instead aborts the
//! accept task and with it every connection at once.
//!
//! Imports: `store` and `serve::memstore`, `serve::service` of the crate,
//! besides std and external crates.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use rand::Rng;
use rand::distr::Alphanumeric;
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::memstore::MemStore;
use super::service::MemS3;
use crate::store::Credentials;

/// S3's minimum size of every part but the last.
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// How long [`EmbeddedServer::shutdown`] waits for in-flight requests.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the embedded endpoint serves and how.
#[derive(Clone)]
pub struct ServeConfig {
    /// Where to listen; port 0 picks a free port (see [`EmbeddedServer::addr`]).
    pub listen: SocketAddr,
    /// The one access key id clients sign with.
    pub access_key: String,
    /// Its secret (never printed: `Debug` redacts it).
    pub secret_key: String,
    /// The region clients must sign for (SigV4 credential scope).
    pub region: String,
    /// Buckets created at start (clients may also CreateBucket).
    pub buckets: Vec<String>,
    /// Every multipart part but the last must be at least this large
    /// (default [`S3_MIN_PART_SIZE`]; 0 disables the check).
    pub min_part_size: u64,
}

impl ServeConfig {
    /// Loopback, a free port, `us-east-1`, no buckets, S3's part-size rule.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: "us-east-1".to_owned(),
            buckets: Vec::new(),
            min_part_size: S3_MIN_PART_SIZE,
        }
    }

    /// Like [`ServeConfig::new`] with a fresh random key pair.
    pub fn with_random_keys() -> Self {
        let (ak, sk) = random_key_pair();
        Self::new(ak, sk)
    }

    /// Add a bucket to create at start.
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.buckets.push(name.into());
        self
    }

    fn validate(&self) -> Result<(), ServeError> {
        if self.access_key.is_empty() || self.access_key.contains(char::is_whitespace) {
            return Err(ServeError::InvalidConfig(
                "the access key must be non-empty and contain no whitespace".to_owned(),
            ));
        }
        if self.secret_key.is_empty() {
            return Err(ServeError::InvalidConfig(
                "the secret key is empty".to_owned(),
            ));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !region_ok {
            return Err(ServeError::InvalidConfig(format!(
                "region {:?} must be letters, digits, '-' or '_' (e.g. us-east-1)",
                self.region
            )));
        }
        for b in &self.buckets {
            if !s3s::path::check_bucket_name(b) {
                return Err(ServeError::InvalidBucketName(b.clone()));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("buckets", &self.buckets)
            .field("min_part_size", &self.min_part_size)
            .finish()
    }
}

/// A random key pair: a 20-character access key id starting with `OSSFS`
/// and a 40-character alphanumeric secret.
pub fn random_key_pair() -> (String, String) {
    let mut rng = rand::rng();
    let ak_tail: String = (0..15)
        .map(|_| {
            let c = rng.sample(Alphanumeric) as char;
            c.to_ascii_uppercase()
        })
        .collect();
    let sk: String = (0..40).map(|_| rng.sample(Alphanumeric) as char).collect();
    (format!("OSSFS{ak_tail}"), sk)
}

/// Why the embedded endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source} (is the port in use? pick another with --listen)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid bucket name {0:?}: use 3-63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// A running embedded endpoint.
pub struct EmbeddedServer {
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
    region: String,
    store: Arc<MemStore>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("addr", &self.addr)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EmbeddedServer {
    /// Bind, create the buckets and start serving on the current tokio runtime.
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        config.validate()?;
        let store = Arc::new(MemStore::new(config.min_part_size));
        for b in &config.buckets {
            // A bucket named twice is created once.
            let _ = store.create_bucket(b);
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;

        let mut builder = S3ServiceBuilder::new(MemS3::new(store.clone(), config.region.clone()));
        builder.set_auth(SingleKeyAuth {
            access_key: config.access_key.clone(),
            secret_key: SecretKey::from(config.secret_key.clone()),
        });
        builder.set_host(LocalhostVirtualHost);
        let service = builder.build();

        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, service, stop_rx));
        tracing::info!(%addr, region = %config.region, buckets = ?config.buckets, "embedded endpoint listening");
        Ok(Self {
            addr,
            access_key: config.access_key,
            secret_key: config.secret_key,
            region: config.region,
            store,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the endpoint for path-style clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The region clients must sign for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The key pair, for an in-process client (its `Debug` redacts the secret).
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.access_key.clone(), self.secret_key.clone())
    }

    /// The object map itself, for tests that check what the server holds.
    pub fn store(&self) -> &Arc<MemStore> {
        &self.store
    }

    /// Stop accepting, let in-flight requests finish (at most
    /// [`GRACEFUL_TIMEOUT`]) and wait until every connection is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The one key pair the endpoint accepts. Unlike `s3s::auth::SimpleAuth`
/// it answers an unknown key id with S3's `InvalidAccessKeyId`.
struct SingleKeyAuth {
    access_key: String,
    secret_key: SecretKey,
}

#[async_trait::async_trait]
impl S3Auth for SingleKeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret_key.clone())
        } else {
            Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ))
        }
    }
}

/// Path style everywhere, plus virtual-host style under `localhost`
/// (`bucket.localhost:PORT`, which RFC 6761 resolvers map to loopback).
/// s3s only consults this for host names: `127.0.0.1:PORT` is path style.
struct LocalhostVirtualHost;

impl S3Host for LocalhostVirtualHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        match name.strip_suffix(".localhost") {
            Some(bucket) if !bucket.is_empty() => {
                Ok(VirtualHost::new("localhost").with_bucket(bucket))
            }
            _ => Ok(VirtualHost::new(name)),
        }
    }
}

async fn accept_loop(listener: TcpListener, service: S3Service, stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(stream, peer, service.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop_requested(&mut stopped) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACEFUL_TIMEOUT, drain).await.is_err() {
        tracing::warn!(
            "embedded endpoint: connections still busy after {GRACEFUL_TIMEOUT:?}; closing them"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    tracing::info!("embedded endpoint stopped");
}

/// Resolves once stop was requested (a send of `true` or a dropped sender).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it right here.
    let _ = rx.wait_for(|s| *s).await.is_ok();
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S3Service,
    mut stop: watch::Receiver<bool>,
) {
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = stop_requested(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error during shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let c = ServeConfig::new("AKID", "super-secret-value");
        let s = format!("{c:?}");
        assert!(s.contains("AKID") && !s.contains("super-secret-value"));
    }

    #[test]
    fn random_keys_look_right() {
        let (ak, sk) = random_key_pair();
        let (ak2, sk2) = random_key_pair();
        assert!(ak.starts_with("OSSFS") && ak.len() == 20);
        assert!(
            ak.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(sk.len(), 40);
        assert!(ak != ak2 && sk != sk2);
    }

    #[test]
    fn config_is_validated() {
        assert!(matches!(
            ServeConfig::new("ak", "sk").bucket("Bad_Name").validate(),
            Err(ServeError::InvalidBucketName(_))
        ));
        assert!(ServeConfig::new("", "sk").validate().is_err());
        assert!(ServeConfig::new("ak", "").validate().is_err());
        let mut c = ServeConfig::new("ak", "sk").bucket("good-bucket");
        assert!(c.validate().is_ok());
        c.region = "us east".into();
        assert!(c.validate().is_err());
    }

    /// Send one raw HTTP/1.1 request and return the status line and body.
    async fn raw_request(addr: SocketAddr, head: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn unsigned_requests_are_refused() {
        let server = EmbeddedServer::start(ServeConfig::with_random_keys().bucket("bucket-one"))
            .await
            .unwrap();
        for host in ["127.0.0.1", "localhost", "bucket-one.localhost"] {
            let reply = raw_request(
                server.addr(),
                &format!(
                    "GET /bucket-one/key HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                ),
            )
            .await;
            assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
            assert!(reply.contains("<Code>AccessDenied</Code>"), "{reply}");
        }
        server.shutdown().await;
    }

    #[test]
    fn virtual_host_names_the_bucket_under_localhost_only() {
        let h = LocalhostVirtualHost;
        let vh = h.parse_host_header("bkt.localhost:9000").unwrap();
        assert_eq!(vh.bucket(), Some("bkt"));
        assert_eq!(
            h.parse_host_header("localhost:9000").unwrap().bucket(),
            None
        );
        assert_eq!(
            h.parse_host_header("myhost.example:9000").unwrap().bucket(),
            None
        );
    }

    #[tokio::test]
    async fn starts_on_a_free_port_and_shuts_down() {
        let server = EmbeddedServer::start(ServeConfig::with_random_keys().bucket("bucket-one"))
            .await
            .unwrap();
        let addr = server.addr();
        assert_ne!(addr.port(), 0);
        assert_eq!(
            server.endpoint(),
            format!("http://127.0.0.1:{}", addr.port())
        );
        assert!(server.store().bucket_exists("bucket-one"));
        tokio::net::TcpStream::connect(addr).await.unwrap();
        server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
