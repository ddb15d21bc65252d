//! Test support shared by the filesystem and FUSE tests: the S3 server they
//! run against.
//!
//! The server is named by `OSSFS_TEST_S3=endpoint|bucket|key|secret|region`
//! (a Garage node in CI and here). Each test works under its own random
//! prefix, so tests run in parallel against one bucket.

use std::sync::{Arc, OnceLock};

use crate::store::{
    ClientConfig, Credentials, ObjectStore, Provider, RestClient, credentials::StaticProvider,
};

/// The store every test talks to (one client, shared).
pub fn server_store() -> Arc<dyn ObjectStore> {
    static STORE: OnceLock<Arc<dyn ObjectStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let spec = std::env::var("OSSFS_TEST_S3").unwrap_or_else(|_| {
                panic!("set OSSFS_TEST_S3=endpoint|bucket|key|secret|region to an S3 server")
            });
            let parts: Vec<&str> = spec.split('|').collect();
            let [endpoint, bucket, key, secret, region] = parts[..] else {
                panic!("OSSFS_TEST_S3 must be endpoint|bucket|key|secret|region");
            };
            let mut config = ClientConfig::new(Provider::S3, endpoint, bucket);
            config.region = Some(region.to_string());
            config.path_style = true;
            let creds = StaticProvider::new(Credentials::new(key, secret), "test");
            let client =
                RestClient::new(config, Arc::new(creds)).unwrap_or_else(|e| panic!("client: {e}"));
            Arc::new(client) as Arc<dyn ObjectStore>
        })
        .clone()
}

/// A fresh random prefix (ends with `/`).
pub fn random_prefix(what: &str) -> String {
    format!("{what}-{:016x}/", rand::random::<u64>())
}
