//! The REST client: one implementation of [`ObjectStore`] for all three
//! dialects.
//!
//! A call goes builder ([`Target`], pure) -> signer ([`Signer`], pure,
//! injected clock) -> `RestClient::send` (the only I/O), which retries
//! idempotent requests with bounded, jittered backoff on 5xx, 429/SlowDown,
//! timeouts and resets, and turns error replies into typed [`StoreError`]s.
//! A request is re-signed on every attempt, so a retry after a long backoff
//! never carries a stale date. When a 503 or 429 answer carries
//! `Retry-After`, the next attempt waits that long instead of the backoff,
//! still capped by the policy's `max_delay` and within its attempts
//! ([`crate::store::retry`]).
//!
//! The client's files:
//! - this file: [`RestClient`], its send loop and its [`ObjectStore`] impl;
//! - `config.rs`: [`ClientConfig`] and [`SignatureVersion`], with defaults;
//! - `body.rs`: reading bodies (the GET body stream that resumes from the
//!   first missing byte when it breaks off, the capped error-document read);
//! - `response.rs`: error replies and documents into typed errors (with the
//!   server's `Retry-After`), headers into `ObjectMeta`.
//!
//! This file imports its children; they never import it (body and response
//! are functions of a reply and a few settings, not of the client).
//!
//! Imports: `store::{credentials, dialect, error, request, retry, sign,
//! transport, types, xml}` and the [`ObjectStore`] trait.

mod body;
mod config;
mod response;
#[cfg(test)]
mod tests;

pub use config::{ClientConfig, SignatureVersion};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use http::HeaderMap;
use tracing::warn;

use self::response::Failure;
use crate::store::ObjectStore;
use crate::store::credentials::CredentialProvider;
use crate::store::dialect::Provider;
use crate::store::error::{StoreError, StoreResult};
use crate::store::request::Target;
use crate::store::sign::{
    HttpRequest, Signer, cos::CosSigner, oss_v1::OssV1Signer, oss_v4::OssV4Signer,
    sigv4::SigV4Signer,
};
use crate::store::transport::{Response, Transport, TransportConfig};
use crate::store::types::*;
use crate::store::xml;

/// The REST client. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    target: Target,
    signer: Box<dyn Signer>,
    credentials: Arc<dyn CredentialProvider>,
    http: Transport,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials.source())
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// Build a client. Fails on a malformed endpoint or an unreadable CA bundle.
    pub fn new(
        config: ClientConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> StoreResult<Self> {
        let target = Target::new(
            config.provider,
            &config.endpoint,
            &config.bucket,
            config.path_style,
        )
        .map_err(invalid)?;
        let region = config.effective_region();
        let signer: Box<dyn Signer> = match config.signature {
            SignatureVersion::OssV1 => Box::new(OssV1Signer::new()),
            SignatureVersion::OssV4 => Box::new(OssV4Signer::new(region)),
            SignatureVersion::Cos => Box::new(CosSigner::new(Duration::from_secs(3600))),
            SignatureVersion::SigV4 => Box::new(SigV4Signer::new(region)),
        };
        let extra_roots_pem = match &config.ca_bundle {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::InvalidArgument(format!(
                    "cannot read CA bundle {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        let http = Transport::new(&TransportConfig {
            connect_timeout: config.connect_timeout,
            send_idle_timeout: config.send_idle_timeout,
            first_byte_timeout: config.first_byte_timeout,
            read_timeout: config.read_timeout,
            extra_roots_pem,
            user_agent: concat!("ossfs-rs/", env!("CARGO_PKG_VERSION")),
            max_idle_per_host: 64,
            idle_timeout: Duration::from_secs(50),
        })
        .map_err(|e| match &config.ca_bundle {
            Some(path) => StoreError::InvalidArgument(format!("CA bundle {}: {e}", path.display())),
            None => StoreError::InvalidArgument(format!("cannot set up HTTPS: {e}")),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                target,
                signer,
                credentials,
                http,
            }),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The request builders of this client (for tests and oracles).
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// Where the credentials come from (never the secret).
    pub fn credential_source(&self) -> String {
        self.inner.credentials.source()
    }

    /// Sign and send, retrying when `idempotent` and the failure is
    /// temporary.
    async fn send(&self, req: HttpRequest, idempotent: bool) -> StoreResult<Response> {
        self.send_retrying(req, idempotent)
            .await
            .map_err(|f| f.error)
    }

    /// [`send`](Self::send), keeping the server's `Retry-After` of the
    /// last failure. Before each retry it waits the hint when there is one,
    /// else the jittered backoff; either is capped by `max_delay`.
    async fn send_retrying(&self, req: HttpRequest, idempotent: bool) -> Result<Response, Failure> {
        let retry = &self.inner.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.send_once(&req).await {
                Ok(reply) => return Ok(reply),
                Err(f) if idempotent && f.error.is_retryable() && retry.may_retry(attempt) => {
                    let delay = retry.jittered_delay(attempt, f.retry_after);
                    warn!(method = %req.method, key = %req.key, attempt, error = %f.error, ?delay, retry_after = ?f.retry_after, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(f) => {
                    if attempt > 1 {
                        warn!(method = %req.method, key = %req.key, attempt, error = %f.error, "giving up");
                    }
                    return Err(f);
                }
            }
        }
    }

    async fn send_once(&self, req: &HttpRequest) -> Result<Response, Failure> {
        let inner = &self.inner;
        let creds = inner.credentials.credentials().map_err(StoreError::from)?;
        let mut signed = req.clone();
        inner
            .signer
            .sign(&mut signed, &creds, SystemTime::now())
            .map_err(invalid)?;
        let url = signed.url();
        let response = inner
            .http
            .send(signed.method.clone(), &url, signed.headers, signed.body)
            .await
            .map_err(|e| response::transport_error(e, &inner.config.endpoint))?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        Err(response::error_reply(req, response, &inner.config.bucket).await)
    }

    /// Send and read the whole (small) reply body.
    async fn send_read(&self, req: HttpRequest, idempotent: bool) -> StoreResult<(u16, Bytes)> {
        let key = req.key.clone();
        let reply = self.send(req, idempotent).await?;
        let status = reply.status;
        let body = reply
            .bytes()
            .await
            .map_err(|e| response::transport_error(e, &self.inner.config.endpoint))?;
        response::check_document(status, &body, &key, &self.inner.config.bucket)?;
        Ok((status, body))
    }

    /// Unwrap a document that may be an error document in a 200 reply.
    fn outcome<T>(&self, outcome: xml::Outcome<T>, status: u16, key: &str) -> StoreResult<T> {
        response::outcome(outcome, status, key, &self.inner.config.bucket)
    }

    fn meta_from_headers(&self, key: &str, headers: &HeaderMap) -> ObjectMeta {
        response::meta_from_headers(self.inner.config.provider, key, headers)
    }

    /// Open a GET for `[start, end)` and return the reply.
    async fn open_get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> StoreResult<Response> {
        let mut req = self.inner.target.get(key, range).map_err(invalid)?;
        if let Some(etag) = if_match {
            req.set_header("if-match", &format!("\"{etag}\""))
                .map_err(invalid)?;
        }
        self.send(req, true).await
    }
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidArgument(e.to_string())
}

#[async_trait]
impl ObjectStore for RestClient {
    fn provider(&self) -> Provider {
        self.inner.config.provider
    }

    fn bucket(&self) -> &str {
        &self.inner.config.bucket
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let reply = self.send(self.inner.target.head(key), true).await?;
        Ok(self.meta_from_headers(key, &reply.headers))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<GetObject> {
        if let Some(ByteRange {
            start,
            end: Some(end),
        }) = range
            && end <= start
        {
            return Err(StoreError::InvalidArgument(format!(
                "empty range [{start}, {end})"
            )));
        }
        let reply = self.open_get(key, range, None).await?;
        let meta = self.meta_from_headers(key, &reply.headers);
        let served = response::served_range(&reply.headers, meta.size);
        let client = self.clone();
        let (resume_key, etag) = (key.to_string(), meta.etag.clone());
        let reopen: body::Reopen = Box::new(move |rest| {
            let (client, key, etag) = (client.clone(), resume_key.clone(), etag.clone());
            async move { client.open_get(&key, Some(rest), Some(&etag)).await }.boxed()
        });
        let body = body::resumable(
            reply,
            key.to_string(),
            served.start,
            served.end.unwrap_or(served.start),
            self.inner.config.retry.clone(),
            reopen,
        );
        Ok(GetObject {
            meta,
            range: served,
            body,
        })
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> StoreResult<PutResult> {
        let req = self.inner.target.put(key, body, opts).map_err(invalid)?;
        let reply = self.send(req, true).await?;
        Ok(PutResult {
            etag: self.meta_from_headers(key, &reply.headers).etag,
        })
    }

    async fn list_page(&self, list: &ListRequest, token: Option<&str>) -> StoreResult<ListPage> {
        let req = self.inner.target.list(list, token);
        let (_, body) = self.send_read(req, true).await?;
        let provider = self.inner.config.provider;
        Ok(xml::parse_list_page(
            &body,
            provider.list_style(),
            xml::UrlDecoding::for_provider(provider),
        )?)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match self.send(self.inner.target.delete(key), true).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_multiple(&self, keys: &[String]) -> StoreResult<Vec<DeleteFailure>> {
        let mut failures = Vec::new();
        for batch in keys.chunks(1000) {
            let doc = match xml::delete_objects_body(batch) {
                Ok(doc) => doc,
                Err(xml::XmlError::UnencodableKey { .. }) => {
                    // A key XML cannot carry: delete the batch one by one.
                    for key in batch {
                        if let Err(e) = self.delete(key).await {
                            failures.push(DeleteFailure {
                                key: key.clone(),
                                code: "DeleteFailed".into(),
                                message: e.to_string(),
                            });
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let req = self.inner.target.delete_multiple(doc).map_err(invalid)?;
            let (_, body) = self.send_read(req, true).await?;
            let decoding = xml::UrlDecoding::for_provider(self.inner.config.provider);
            match xml::parse_delete_result(&body, decoding)? {
                xml::Outcome::Done(outcome) => failures.extend(outcome.failed),
                xml::Outcome::Failed(doc) => {
                    return Err(doc.to_store_error(200, "", &self.inner.config.bucket));
                }
            }
        }
        Ok(failures)
    }

    async fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> StoreResult<PutResult> {
        let req = self.inner.target.copy(src, dst, opts).map_err(invalid)?;
        let (status, body) = self.send_read(req, true).await?;
        let copied = self.outcome(xml::parse_copy_result(&body)?, status, dst)?;
        Ok(PutResult { etag: copied.etag })
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> StoreResult<String> {
        let req = self
            .inner
            .target
            .create_multipart(key, opts)
            .map_err(invalid)?;
        // Not idempotent in effect (each call makes a new upload) but harmless:
        // an orphan upload costs nothing visible and is aborted by lifecycle rules.
        let (_, body) = self.send_read(req, true).await?;
        Ok(xml::parse_initiate_multipart(&body)?)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> StoreResult<String> {
        let req = self
            .inner
            .target
            .upload_part(key, upload_id, part_number, body)
            .map_err(invalid)?;
        let reply = self.send(req, true).await?;
        Ok(self.meta_from_headers(key, &reply.headers).etag)
    }

    async fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> StoreResult<String> {
        let req = self
            .inner
            .target
            .upload_part_copy(src, range, key, upload_id, part_number)
            .map_err(invalid)?;
        let (status, body) = self.send_read(req, true).await?;
        Ok(self
            .outcome(xml::parse_copy_result(&body)?, status, key)?
            .etag)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<PutResult> {
        let req = self
            .inner
            .target
            .complete_multipart(key, upload_id, parts)
            .map_err(invalid)?;
        let (status, body) = self.send_read(req, true).await?;
        self.outcome(xml::parse_complete_multipart(&body)?, status, key)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        match self
            .send(self.inner.target.abort_multipart(key, upload_id), true)
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let req = self.inner.target.list_parts(key, upload_id, marker);
            let (_, body) = self.send_read(req, true).await?;
            let page = xml::parse_list_parts(&body)?;
            parts.extend(page.parts);
            match page.next_part_number_marker {
                Some(m) if page.is_truncated && Some(m) != marker => marker = Some(m),
                _ => return Ok(parts),
            }
        }
    }

    /// Append, with the position re-read on an ambiguous failure.
    async fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64> {
        if !self.inner.config.provider.supports_append() {
            return Err(StoreError::Unsupported("append"));
        }
        let retry = &self.inner.config.retry;
        let len = body.len() as u64;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = self
                .inner
                .target
                .append(key, position, body.clone(), opts)
                .map_err(invalid)?;
            let failure = match self.send_retrying(req, false).await {
                Ok(reply) => {
                    let meta = self.meta_from_headers(key, &reply.headers);
                    return Ok(meta.next_append_position.unwrap_or(position + len));
                }
                Err(f) => f,
            };
            match failure.error {
                StoreError::Service { code, .. } if code == "PositionNotEqualToLength" => {
                    let next = self
                        .head(key)
                        .await
                        .ok()
                        .and_then(|m| m.next_append_position.or(Some(m.size)));
                    return Err(StoreError::AppendPositionMismatch {
                        key: key.to_string(),
                        position,
                        next,
                    });
                }
                e if e.is_retryable() && retry.may_retry(attempt) => {
                    // The append may or may not have landed: look before retrying.
                    let now = match self.head(key).await {
                        Ok(m) => Some(m.next_append_position.unwrap_or(m.size)),
                        Err(StoreError::NotFound { .. }) => Some(0),
                        Err(_) => None,
                    };
                    match now {
                        Some(n) if n == position + len => return Ok(n),
                        Some(n) if n == position => {}
                        Some(n) => {
                            return Err(StoreError::AppendPositionMismatch {
                                key: key.to_string(),
                                position,
                                next: Some(n),
                            });
                        }
                        None => {}
                    }
                    tokio::time::sleep(retry.jittered_delay(attempt, failure.retry_after)).await;
                }
                e => return Err(e),
            }
        }
    }

    async fn put_symlink(&self, key: &str, target: &str, opts: &PutOptions) -> StoreResult<()> {
        if !self.inner.config.provider.supports_native_symlink() {
            return Err(StoreError::Unsupported("native symlink"));
        }
        let req = self
            .inner
            .target
            .put_symlink(key, target, opts)
            .map_err(invalid)?;
        self.send(req, true).await.map(|_| ())
    }

    async fn get_symlink(&self, key: &str) -> StoreResult<String> {
        if !self.inner.config.provider.supports_native_symlink() {
            return Err(StoreError::Unsupported("native symlink"));
        }
        let reply = self.send(self.inner.target.get_symlink(key), true).await?;
        let meta = self.meta_from_headers(key, &reply.headers);
        meta.symlink_target
            .ok_or_else(|| StoreError::Malformed(format!("symlink {key:?} has no target header")))
    }
}
