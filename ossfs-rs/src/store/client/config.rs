//! What a `RestClient` is built from: the bucket's address, the signature
//! scheme, the timeouts and the retry policy, with the defaults of each
//! dialect.
//!
//! Plain data and two pure lookups (the default scheme of a dialect, the
//! region to sign for), so `check` and the mount setup can fill a config in,
//! print it and compare it without a client.
//!
//! Imports: `store::dialect` (the dialect's defaults) and `store::retry`
//! (the policy it carries).

use std::path::PathBuf;
use std::time::Duration;

use crate::store::dialect::Provider;
use crate::store::retry::RetryConfig;

/// Which signature scheme to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// OSS `Authorization: OSS ak:sig` (HMAC-SHA1).
    OssV1,
    /// OSS `OSS4-HMAC-SHA256` (needs the region).
    OssV4,
    /// COS `q-sign-algorithm=sha1`.
    Cos,
    /// AWS Signature Version 4.
    SigV4,
}

impl SignatureVersion {
    /// The default scheme of a dialect: OSS V1 (what ossfs 1.x sends and
    /// every OSS region accepts), COS, SigV4.
    pub fn default_for(provider: Provider) -> Self {
        match provider {
            Provider::Oss => SignatureVersion::OssV1,
            Provider::Cos => SignatureVersion::Cos,
            Provider::S3 => SignatureVersion::SigV4,
        }
    }
}

/// Everything needed to talk to one bucket.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub provider: Provider,
    /// `http://127.0.0.1:3900`, `https://oss-cn-hangzhou.aliyuncs.com`
    /// (a bare host means https).
    pub endpoint: String,
    pub bucket: String,
    /// Needed by OSS V4 and SigV4; inferred from the endpoint when absent.
    pub region: Option<String>,
    /// Put the bucket in the path (S3 only; OSS refuses it, COS hosts carry it).
    pub path_style: bool,
    pub signature: SignatureVersion,
    /// Extra PEM CA bundle to trust.
    pub ca_bundle: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest time the server may accept no byte of a request body.
    pub send_idle_timeout: Duration,
    /// Longest wait for the reply head once the request body is sent.
    pub first_byte_timeout: Duration,
    /// Longest wait for each chunk of a reply body.
    pub read_timeout: Duration,
    pub retry: RetryConfig,
}

impl ClientConfig {
    /// Defaults for `provider` at `endpoint` for `bucket`.
    pub fn new(provider: Provider, endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            provider,
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: None,
            path_style: false,
            signature: SignatureVersion::default_for(provider),
            ca_bundle: None,
            connect_timeout: Duration::from_secs(10),
            send_idle_timeout: Duration::from_secs(30),
            first_byte_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            retry: RetryConfig::default(),
        }
    }

    /// The region: given, inferred from the endpoint host, or `us-east-1`.
    pub fn effective_region(&self) -> String {
        if let Some(r) = &self.region {
            return r.clone();
        }
        let host = self.endpoint.split("://").last().unwrap_or(&self.endpoint);
        self.provider
            .infer_region(host)
            .unwrap_or_else(|| "us-east-1".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_inferred_or_default() {
        let c = ClientConfig::new(Provider::Oss, "https://oss-cn-shanghai.aliyuncs.com", "b");
        assert_eq!(c.effective_region(), "cn-shanghai");
        let c = ClientConfig::new(Provider::S3, "http://127.0.0.1:3900", "b");
        assert_eq!(c.effective_region(), "us-east-1");
    }
}
