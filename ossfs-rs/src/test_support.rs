//! Test support shared by the filesystem and FUSE tests: the real S3
//! server they run against.
//!
//! By default each test starts its own embedded endpoint
//! ([`crate::serve::EmbeddedServer`], in memory, on a free loopback port).
//! `OSSFS_TEST_S3=endpoint|bucket|key|secret|region` runs the same tests
//! against another server instead (a Garage node, say). Each test works
//! under its own random prefix, so a shared bucket is fine.
//!
//! Imports (test code only): `serve` (the embedded endpoint) and `store`.

use std::sync::Arc;

use crate::serve::{EmbeddedServer, ServeConfig};
use crate::store::{
    ClientConfig, Credentials, ObjectStore, Provider, RestClient, credentials::StaticProvider,
};

/// The server a test talks to; keeps an embedded one running while held.
pub struct TestServer {
    pub store: Arc<dyn ObjectStore>,
    _embedded: Option<EmbeddedServer>,
}

fn client(endpoint: &str, bucket: &str, creds: Credentials, region: &str) -> Arc<dyn ObjectStore> {
    let mut config = ClientConfig::new(Provider::S3, endpoint, bucket);
    config.region = Some(region.to_string());
    config.path_style = true;
    let creds = StaticProvider::new(creds, "test");
    let client = RestClient::new(config, Arc::new(creds)).unwrap_or_else(|e| panic!("client: {e}"));
    Arc::new(client)
}

/// Start (or name) the server for one test, on the current runtime.
pub async fn test_server() -> TestServer {
    if let Ok(spec) = std::env::var("OSSFS_TEST_S3") {
        let parts: Vec<&str> = spec.split('|').collect();
        let [endpoint, bucket, key, secret, region] = parts[..] else {
            panic!("OSSFS_TEST_S3 must be endpoint|bucket|key|secret|region");
        };
        return TestServer {
            store: client(endpoint, bucket, Credentials::new(key, secret), region),
            _embedded: None,
        };
    }
    let bucket = "fs-test";
    let server = EmbeddedServer::start(ServeConfig::with_random_keys().bucket(bucket))
        .await
        .unwrap_or_else(|e| panic!("embedded endpoint: {e}"));
    TestServer {
        store: client(
            &server.endpoint(),
            bucket,
            server.credentials(),
            server.region(),
        ),
        _embedded: Some(server),
    }
}

/// A fresh random prefix (ends with `/`).
pub fn random_prefix(what: &str) -> String {
    format!("{what}-{:016x}/", rand::random::<u64>())
}
