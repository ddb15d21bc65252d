//! Request signing for the three dialects.
//!
//! A signer takes a fully built [`HttpRequest`] (method, host, bucket, raw
//! key, decoded query, headers) and adds what its scheme needs: the
//! `Authorization` header and any date or token headers. It takes the clock
//! as an argument so tests can pin it, and on failure it leaves the request
//! as it was (each signs a copy, [`HttpRequest::try_update`]). Each signer exposes its string-to-sign (or canonical request)
//! so tests assert the exact bytes, as reqsign does.
//!
//! Imports: its children (`encode` for the wire form) and `store::credentials`.

pub mod clock;
pub mod cos;
pub mod digest;
pub mod encode;
pub mod headers;
pub mod oss_v1;
pub mod oss_v4;
pub mod scoped;
pub mod sigv4;

#[cfg(test)]
pub(crate) mod oracle_tests;

pub use cos::CosSigner;
pub use oss_v1::OssV1Signer;
pub use oss_v4::OssV4Signer;
pub use sigv4::SigV4Signer;

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::credentials::Credentials;

/// A request as the client is about to send it, in the form signers need.
///
/// `key` is the raw object key (`""` for bucket-level calls) and `query`
/// holds decoded pairs in the order given; a flag such as `?uploads` is a
/// pair with an empty value. The wire form (percent-encoded path and query)
/// is derived by [`HttpRequest::url`], so the signed bytes and the sent
/// bytes come from one place.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The Host header: `bucket.oss-cn-hangzhou.aliyuncs.com`, `127.0.0.1:3900`.
    pub host: String,
    pub bucket: String,
    pub key: String,
    /// Path style puts the bucket in the path (`/bucket/key`), S3 only.
    pub path_style: bool,
    pub query: Vec<(String, String)>,
    /// Header names are lower-case (http's `HeaderName` guarantees it).
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl fmt::Debug for HttpRequest {
    /// Headers are listed by name only: `Authorization` and token headers
    /// must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field(
                "query",
                &self
                    .query
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "headers",
                &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpRequest {
    /// A request with no query, headers or body.
    pub fn new(
        method: Method,
        scheme: &'static str,
        host: impl Into<String>,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            method,
            scheme,
            host: host.into(),
            bucket: bucket.into(),
            key: key.into(),
            path_style: false,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// The decoded path: `/key` (virtual host) or `/bucket/key` (path style).
    pub fn path(&self) -> String {
        if self.path_style {
            if self.key.is_empty() {
                format!("/{}", self.bucket)
            } else {
                format!("/{}/{}", self.bucket, self.key)
            }
        } else {
            format!("/{}", self.key)
        }
    }

    /// The path as sent: every byte of the key percent-encoded except
    /// unreserved characters and `/`.
    pub fn encoded_path(&self) -> String {
        encode::uri_encode(&self.path(), false)
    }

    /// The query as sent: pairs in the given order, keys and values
    /// percent-encoded; a pair with an empty value is sent as `k` alone.
    pub fn encoded_query(&self) -> String {
        encode::join_pairs(
            &encode::encode_pairs(&self.query, encode::PairOrder::AsGiven),
            encode::EmptyValue::KeyOnly,
        )
    }

    /// The full URL.
    pub fn url(&self) -> String {
        let q = self.encoded_query();
        if q.is_empty() {
            format!("{}://{}{}", self.scheme, self.host, self.encoded_path())
        } else {
            format!(
                "{}://{}{}?{}",
                self.scheme,
                self.host,
                self.encoded_path(),
                q
            )
        }
    }

    /// A header's value as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Set a header; invalid values (control characters) are an error.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), SignError> {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| SignError::InvalidHeader(name.to_string()))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| SignError::InvalidHeader(name.to_string()))?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// Set a header when there is a value for it (a token header, say).
    pub fn set_header_if_some(&mut self, name: &str, value: Option<&str>) -> Result<(), SignError> {
        match value {
            Some(value) => self.set_header(name, value),
            None => Ok(()),
        }
    }

    /// Set a header the builder did not set; `value` is computed only then.
    pub fn set_header_if_absent(
        &mut self,
        name: &str,
        value: impl FnOnce() -> Result<String, SignError>,
    ) -> Result<(), SignError> {
        if self.headers.contains_key(name) {
            return Ok(());
        }
        self.set_header(name, &value()?)
    }

    /// Apply `edit` to a copy of the request and keep the copy only when
    /// `edit` succeeds: how every signer leaves the request as it was when
    /// a step of signing fails (what [`Signer::sign`] promises).
    pub fn try_update(
        &mut self,
        edit: impl FnOnce(&mut HttpRequest) -> Result<(), SignError>,
    ) -> Result<(), SignError> {
        let mut copy = self.clone();
        edit(&mut copy)?;
        *self = copy;
        Ok(())
    }
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A header name or value that HTTP cannot carry (the name is given, never the value).
    #[error("invalid header {0:?} (control characters or non-ASCII bytes)")]
    InvalidHeader(String),
    /// The clock is before 1970 or otherwise unusable.
    #[error("system clock is unusable: {0}")]
    Clock(String),
}

/// Adds authorization to a request.
pub trait Signer: Send + Sync + fmt::Debug {
    /// Sign `req` in place for the time `now`. On error `req` is unchanged.
    fn sign(
        &self,
        req: &mut HttpRequest,
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError>;
}
