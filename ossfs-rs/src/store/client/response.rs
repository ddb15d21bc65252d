//! Turning replies into results: error replies and error documents into
//! typed [`StoreError`]s, transport failures into their kind, and reply
//! headers into [`ObjectMeta`].
//!
//! An error reply becomes a [`Failure`]: the typed error plus the wait the
//! server asked for (`Retry-After` on a 503 or 429, see
//! [`retry::retry_after`]), which the client's retry loop waits instead of
//! its own backoff. The hint is read from the headers before the body, so
//! a HEAD (no body) carries it too.
//!
//! COS and S3 can answer 200 with an error document (copy, complete
//! multipart), so a 200 body is checked as well ([`check_document`],
//! [`outcome`]).
//!
//! Everything here is a function of the reply and the few settings it
//! needs (bucket, endpoint, dialect), not of the client, so the client's
//! module imports this file and never the other way round.
//!
//! Imports: `store::dialect`, `store::error`, `store::retry`, `store::sign`
//! (the request an error names), `store::transport`, `store::types`,
//! `store::xml`, and the sibling `body` (the capped read of an error body).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};
use tracing::debug;

use super::body::{MAX_ERROR_BODY, read_limited};
use crate::store::dialect::Provider;
use crate::store::error::{StoreError, StoreResult};
use crate::store::retry;
use crate::store::sign::HttpRequest;
use crate::store::transport::{Response, TransportError};
use crate::store::types::{ByteRange, ObjectMeta};
use crate::store::xml;

/// A failed attempt: the error, and how long the server asked us to wait
/// before the next one.
#[derive(Debug)]
pub(super) struct Failure {
    pub error: StoreError,
    /// `Retry-After` of a 503 or 429 answer.
    pub retry_after: Option<Duration>,
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Turn an error reply to `req` into a typed error, reading its document.
pub(super) async fn error_reply(req: &HttpRequest, response: Response, bucket: &str) -> Failure {
    let status = response.status;
    let retry_after = retry::retry_after(status, &response.headers, SystemTime::now());
    let body = if req.method == Method::HEAD {
        Bytes::new()
    } else {
        read_limited(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default()
    };
    Failure {
        error: error_from_document(req, status, &body, bucket),
        retry_after,
    }
}

/// The error an error reply's `status` and `body` (maybe empty) describe.
fn error_from_document(req: &HttpRequest, status: u16, body: &[u8], bucket: &str) -> StoreError {
    let Some(doc) = xml::parse_error(body) else {
        return match status {
            416 => StoreError::InvalidRange {
                key: req.key.clone(),
                range: req.header("range").unwrap_or("").to_string(),
            },
            412 => StoreError::PreconditionFailed {
                key: req.key.clone(),
            },
            301 | 307 => StoreError::Service {
                status,
                code: "PermanentRedirect".to_string(),
                message: "the bucket lives in another region or at another endpoint".to_string(),
                request_id: None,
            },
            _ => StoreError::from_service(
                status,
                "",
                &format!("HTTP {status}"),
                None,
                &req.key,
                bucket,
            ),
        };
    };
    if doc.code == "SignatureDoesNotMatch"
        && let Some(sts) = &doc.string_to_sign
    {
        debug!(string_to_sign = %sts, "server's StringToSign for SignatureDoesNotMatch (compare with ours at trace level)");
    }
    StoreError::from_service(
        status,
        &doc.code,
        &doc.message,
        doc.request_id,
        &req.key,
        bucket,
    )
}

/// The store error of a transport failure talking to `endpoint`.
pub(super) fn transport_error(e: TransportError, endpoint: &str) -> StoreError {
    let endpoint = endpoint.to_string();
    match e {
        TransportError::Timeout(d) | TransportError::SendStalled(d) => StoreError::Timeout(d),
        TransportError::TooLarge(cap) => {
            StoreError::Malformed(format!("a reply document larger than {cap} bytes"))
        }
        TransportError::Tls(detail) => StoreError::Tls { endpoint, detail },
        TransportError::Connect(detail) => StoreError::Unreachable { endpoint, detail },
        TransportError::Broken(detail) => StoreError::Connection(detail),
        TransportError::Config(detail) => StoreError::InvalidArgument(detail),
    }
}

/// A successful reply's `body` about `key`, refused when it is an error
/// document after all (COS and S3 can answer 200 with one).
pub(super) fn check_document(status: u16, body: &[u8], key: &str, bucket: &str) -> StoreResult<()> {
    match xml::parse_error(body) {
        Some(doc) => Err(doc.to_store_error(status, key, bucket)),
        None => Ok(()),
    }
}

/// Unwrap a document that may be an error document in a 200 reply.
pub(super) fn outcome<T>(
    outcome: xml::Outcome<T>,
    status: u16,
    key: &str,
    bucket: &str,
) -> StoreResult<T> {
    match outcome {
        xml::Outcome::Done(v) => Ok(v),
        xml::Outcome::Failed(doc) => Err(doc.to_store_error(status, key, bucket)),
    }
}

/// The metadata of `key` that a reply's headers carry, in `provider`'s
/// header names.
pub(super) fn meta_from_headers(provider: Provider, key: &str, headers: &HeaderMap) -> ObjectMeta {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut meta = ObjectMeta {
        key: key.to_string(),
        size: get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        etag: get("etag")
            .map(|e| e.trim_matches('"').to_string())
            .unwrap_or_default(),
        last_modified: get("last-modified").and_then(|v| httpdate::parse_http_date(v).ok()),
        content_type: get("content-type").map(str::to_string),
        object_type: get(&provider.header("object-type")).map(str::to_string),
        next_append_position: get(&provider.header("next-append-position"))
            .and_then(|v| v.parse().ok()),
        symlink_target: get(&provider.header("symlink-target")).map(decode_header_value),
        ..Default::default()
    };
    if let Some(total) = get("content-range").and_then(content_range_total) {
        meta.size = total;
    }
    let prefix = provider.meta_prefix();
    for (name, value) in headers {
        if let Some(meta_name) = name.as_str().strip_prefix(prefix)
            && let Ok(v) = value.to_str()
        {
            meta.user_metadata
                .insert(meta_name.to_string(), v.to_string());
        }
    }
    meta
}

/// The range a GET reply serves: its `Content-Range`, else `[0,
/// Content-Length)`, else `[0, size)`.
pub(super) fn served_range(headers: &HeaderMap, size: u64) -> ByteRange {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match get("content-range").and_then(content_range_span) {
        Some((a, b)) => ByteRange::new(a, b),
        None => {
            let len: u64 = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(size);
            ByteRange::new(0, len)
        }
    }
}

/// `bytes a-b/total` -> total.
fn content_range_total(v: &str) -> Option<u64> {
    v.rsplit('/').next()?.parse().ok()
}

/// `bytes a-b/total` -> (a, b+1).
fn content_range_span(v: &str) -> Option<(u64, u64)> {
    let spec = v.strip_prefix("bytes ")?.split('/').next()?;
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse::<u64>().ok()? + 1))
}

/// Symlink targets travel percent-encoded in a header.
fn decode_header_value(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range_total("bytes 0-9/100"), Some(100));
        assert_eq!(content_range_span("bytes 10-19/100"), Some((10, 20)));
        assert_eq!(content_range_span("garbage"), None);
    }
}
