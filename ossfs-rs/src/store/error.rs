//! Typed store errors, parsed from the services' error documents.
//!
//! The store knows no errnos: which errno each error becomes is the
//! filesystem's decision (`fs::errno`), made in one place for every
//! operation. What the store decides is what an error *is* (its variant)
//! and whether retrying may help ([`StoreError::is_retryable`]).
//!
//! Every error says what went wrong in words an operator can act on. None
//! carries a secret: messages come from the server's error document (which
//! never echoes the secret key) or from our own text.
//!
//! Imports: `store::credentials` (credential errors); nothing above the
//! store.

use std::time::Duration;

/// A result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist (`NoSuchKey`, 404 on HEAD).
    #[error("no such key {key:?}")]
    NotFound { key: String },

    /// The bucket does not exist (`NoSuchBucket`).
    #[error("no such bucket {bucket:?}: check the bucket name, the endpoint and the region")]
    NoSuchBucket { bucket: String },

    /// The server refused our credentials or signature
    /// (`AccessDenied`, `SignatureDoesNotMatch`, `InvalidAccessKeyId`, ...).
    #[error("access denied ({code}): {message}")]
    AccessDenied {
        code: String,
        message: String,
        request_id: Option<String>,
    },

    /// `RequestTimeTooSkewed`: this host's clock is too far from the server's.
    #[error(
        "clock skew: the server refused the request because this host's clock differs from the server's by too much ({message}); sync the clock (chrony/ntpd) and retry"
    )]
    ClockSkew { message: String },

    /// A range that starts at or past the end of the object.
    #[error("invalid range {range} for {key:?}")]
    InvalidRange { key: String, range: String },

    /// A conditional request failed or the object changed under us.
    #[error("precondition failed for {key:?}")]
    PreconditionFailed { key: String },

    /// An append at the wrong position (`PositionNotEqualToLength`).
    #[error("append position {position} of {key:?} does not match the object's length {next:?}")]
    AppendPositionMismatch {
        key: String,
        position: u64,
        next: Option<u64>,
    },

    /// The key is too long for the server (`KeyTooLongError`, or Garage's 503 for long keys).
    #[error("key too long for the server: {key:?}")]
    KeyTooLong { key: String },

    /// The object or a part is larger than the service allows.
    #[error("too large: {0}")]
    TooLarge(String),

    /// Any other error document from the service.
    #[error("{code} (HTTP {status}): {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },

    /// The dialect has no such operation (append or symlink on S3).
    #[error("{0} is not supported by this object store")]
    Unsupported(&'static str),

    /// The endpoint could not be reached (DNS, refused, unreachable).
    #[error("cannot reach the endpoint {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },

    /// A TLS handshake or certificate problem.
    #[error(
        "TLS error talking to {endpoint}: {detail} (for a private CA, pass its bundle with ca_bundle=PATH)"
    )]
    Tls { endpoint: String, detail: String },

    /// The request or the reply timed out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// The connection broke or the body ended before Content-Length.
    #[error("connection error: {0}")]
    Connection(String),

    /// The server sent something we cannot parse.
    #[error("malformed reply from the server: {0}")]
    Malformed(String),

    /// No usable credentials, or a credential source is wrong.
    #[error(transparent)]
    Credentials(#[from] super::credentials::CredentialError),

    /// A caller passed something the store cannot do (bad key, bad range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl StoreError {
    /// Whether retrying the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"
                    )
            }
            StoreError::Timeout(_) | StoreError::Connection(_) => true,
            _ => false,
        }
    }

    /// Build the typed error for an error document's code.
    pub fn from_service(
        status: u16,
        code: &str,
        message: &str,
        request_id: Option<String>,
        key: &str,
        bucket: &str,
    ) -> Self {
        match code {
            "NoSuchKey" | "NoSuchUpload" => StoreError::NotFound {
                key: key.to_string(),
            },
            "NoSuchBucket" => StoreError::NoSuchBucket {
                bucket: bucket.to_string(),
            },
            "AccessDenied"
            | "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "InvalidSecurityToken"
            | "SecurityTokenExpired"
            | "ExpiredToken"
            | "InvalidToken"
            | "InvalidObjectState" => StoreError::AccessDenied {
                code: code.to_string(),
                message: message.to_string(),
                request_id,
            },
            "RequestTimeTooSkewed" => StoreError::ClockSkew {
                message: message.to_string(),
            },
            "InvalidRange" => StoreError::InvalidRange {
                key: key.to_string(),
                range: message.to_string(),
            },
            "PreconditionFailed" => StoreError::PreconditionFailed {
                key: key.to_string(),
            },
            "KeyTooLongError" => StoreError::KeyTooLong {
                key: key.to_string(),
            },
            "EntityTooLarge" => StoreError::TooLarge(message.to_string()),
            _ if status == 404 && code.is_empty() => StoreError::NotFound {
                key: key.to_string(),
            },
            _ if status == 403 && code.is_empty() => StoreError::AccessDenied {
                code: "AccessDenied".to_string(),
                message: "HTTP 403 with no error document".to_string(),
                request_id,
            },
            _ => StoreError::Service {
                status,
                code: code.to_string(),
                message: message.to_string(),
                request_id,
            },
        }
    }
}
