//! The REST client (being written).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::credentials::CredentialProvider;
use super::dialect::Provider;
use super::error::StoreResult;
use super::retry::RetryConfig;

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
    /// Longest wait for any reply byte (headers or the next body chunk).
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
            read_timeout: Duration::from_secs(30),
            retry: RetryConfig::default(),
        }
    }
}

/// The REST client.
#[derive(Debug)]
pub struct RestClient {
    #[allow(dead_code)]
    config: ClientConfig,
    #[allow(dead_code)]
    credentials: Arc<dyn CredentialProvider>,
}

impl RestClient {
    /// Build a client. Fails on a malformed endpoint or unreadable CA bundle.
    pub fn new(
        config: ClientConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> StoreResult<Self> {
        Ok(Self {
            config,
            credentials,
        })
    }
}
