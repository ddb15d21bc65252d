//! The servers the store conformance suite runs against, behind one type.
//!
//! A [`Backend`] is a real S3-compatible server plus the facts a client
//! needs (endpoint, region, bucket, keys): the shared Garage of this test
//! binary, or a fresh embedded endpoint (`ossfs_rs::serve`) on the calling
//! test's runtime. Clients are always the real [`RestClient`] behind the
//! [`ObjectStore`] trait, built the way an operator's S3 configuration
//! builds one (path style, explicit region).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ossfs_rs::serve::{EmbeddedServer, ServeConfig};
use ossfs_rs::store::credentials::StaticProvider;
use ossfs_rs::store::{ClientConfig, Credentials, ObjectStore, Provider, RestClient};

use crate::Garage;

/// The bucket of every embedded endpoint.
pub const EMBEDDED_BUCKET: &str = "e2e-embedded";
/// The region the embedded endpoint is configured with.
pub const EMBEDDED_REGION: &str = "us-east-1";

/// Which server a [`Backend`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Garage,
    Embedded,
}

/// A running S3-compatible server and how to reach it.
#[derive(Debug)]
pub struct Backend {
    pub kind: Kind,
    endpoint: String,
    addr: SocketAddr,
    region: String,
    bucket: String,
    credentials: Credentials,
    /// Keeps the embedded endpoint alive as long as the backend.
    _embedded: Option<EmbeddedServer>,
}

impl Backend {
    /// The shared Garage of this test binary (started on first use).
    pub async fn garage() -> Backend {
        let garage = tokio::task::spawn_blocking(Garage::shared)
            .await
            .unwrap_or_else(|e| panic!("starting Garage panicked: {e}"))
            .unwrap_or_else(|e| panic!("Garage did not start: {e}"));
        Backend {
            kind: Kind::Garage,
            endpoint: garage.endpoint().to_string(),
            addr: garage.s3_addr(),
            region: garage.region().to_string(),
            bucket: garage.bucket().to_string(),
            credentials: Credentials::new(garage.access_key_id(), garage.secret_access_key()),
            _embedded: None,
        }
    }

    /// A fresh embedded endpoint on the current runtime, with one bucket.
    pub async fn embedded() -> Backend {
        let mut config = ServeConfig::with_random_keys().bucket(EMBEDDED_BUCKET);
        config.region = EMBEDDED_REGION.to_string();
        let server = EmbeddedServer::start(config)
            .await
            .unwrap_or_else(|e| panic!("the embedded endpoint did not start: {e}"));
        Backend {
            kind: Kind::Embedded,
            endpoint: server.endpoint(),
            addr: server.addr(),
            region: server.region().to_string(),
            bucket: EMBEDDED_BUCKET.to_string(),
            credentials: server.credentials(),
            _embedded: Some(server),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's socket address (what a fault proxy forwards to).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key pair allowed on [`Backend::bucket`].
    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    /// A client configuration for this server at `endpoint` (the server's
    /// own, or a proxy's in front of it), with fast retries so fault tests
    /// stay quick.
    pub fn config_at(&self, endpoint: &str) -> ClientConfig {
        let mut config = ClientConfig::new(Provider::S3, endpoint, &self.bucket);
        config.region = Some(self.region.clone());
        config.path_style = true;
        config.connect_timeout = Duration::from_secs(5);
        config.read_timeout = Duration::from_secs(30);
        config.retry.base_delay = Duration::from_millis(20);
        config.retry.max_delay = Duration::from_millis(200);
        config
    }

    /// The client configuration for this server.
    pub fn config(&self) -> ClientConfig {
        self.config_at(&self.endpoint)
    }

    /// A store from a configuration and credentials.
    pub fn client(&self, config: ClientConfig, credentials: Credentials) -> Arc<dyn ObjectStore> {
        let provider = Arc::new(StaticProvider::new(credentials, "e2e test credentials"));
        let client = RestClient::new(config, provider)
            .unwrap_or_else(|e| panic!("cannot build the REST client: {e}"));
        Arc::new(client)
    }

    /// The store for this server's bucket with the right credentials.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.client(self.config(), self.credentials())
    }
}
