//! The REST client: one implementation of [`ObjectStore`] for all three
//! dialects.
//!
//! A call goes builder ([`request::Target`], pure) -> signer
//! ([`sign::Signer`], pure, injected clock) -> [`RestClient::send`] (the only
//! I/O), which retries idempotent requests with bounded, jittered backoff on
//! 5xx, 429/SlowDown, timeouts and resets, and turns error replies into typed
//! [`StoreError`]s. A request is re-signed on every attempt, so a retry after
//! a long backoff never carries a stale date.
//!
//! GET bodies stream as they arrive. If a body breaks off mid-way, the
//! stream resumes with a ranged GET from the first missing byte (pinned to
//! the ETag with `If-Match`, so the bytes cannot come from a newer version);
//! once retries run out the stream ends with an error. A short body is never
//! handed out as if it were complete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method};
use tracing::{debug, warn};

use super::credentials::CredentialProvider;
use super::dialect::Provider;
use super::error::{StoreError, StoreResult};
use super::request::Target;
use super::retry::RetryConfig;
use super::sign::{
    HttpRequest, Signer, cos::CosSigner, oss_v1::OssV1Signer, oss_v4::OssV4Signer,
    sigv4::SigV4Signer,
};
use super::transport::{BodyStream, Response, Transport, TransportConfig, TransportError};
use super::types::*;
use super::{ObjectStore, xml};

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

/// Largest error document we read (they are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Part size for copies above the single-copy limit.
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

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
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
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
    /// temporary. `key` is used to name the object in errors.
    async fn send(&self, req: HttpRequest, idempotent: bool) -> StoreResult<Response> {
        let retry = &self.inner.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.send_once(&req).await {
                Ok(reply) => return Ok(reply),
                Err(e) if idempotent && e.is_retryable() && attempt < retry.max_attempts => {
                    let delay = backoff(retry, attempt);
                    warn!(method = %req.method, key = %req.key, attempt, error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if attempt > 1 {
                        warn!(method = %req.method, key = %req.key, attempt, error = %e, "giving up");
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn send_once(&self, req: &HttpRequest) -> StoreResult<Response> {
        let inner = &self.inner;
        let creds = inner.credentials.credentials()?;
        let mut signed = req.clone();
        inner
            .signer
            .sign(&mut signed, &creds, SystemTime::now())
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let url = signed.url();
        let response = inner
            .http
            .send(signed.method.clone(), &url, signed.headers, signed.body)
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status;
        if (200..300).contains(&status) {
            return Ok(response);
        }
        Err(self.error_reply(req, status, response).await)
    }

    /// Turn an error reply into a typed error, reading its document.
    async fn error_reply(&self, req: &HttpRequest, status: u16, response: Response) -> StoreError {
        let body = if req.method == Method::HEAD {
            Bytes::new()
        } else {
            read_limited(response, MAX_ERROR_BODY)
                .await
                .unwrap_or_default()
        };
        let bucket = &self.inner.config.bucket;
        let Some(doc) = xml::parse_error(&body) else {
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
                    message: "the bucket lives in another region or at another endpoint"
                        .to_string(),
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

    fn transport_error(&self, e: TransportError) -> StoreError {
        let endpoint = self.inner.config.endpoint.clone();
        match e {
            TransportError::Timeout(d) => StoreError::Timeout(d),
            TransportError::Tls(detail) => StoreError::Tls { endpoint, detail },
            TransportError::Connect(detail) => StoreError::Unreachable { endpoint, detail },
            TransportError::Broken(detail) => StoreError::Connection(detail),
            TransportError::Config(detail) => StoreError::InvalidArgument(detail),
        }
    }

    /// Send and read the whole (small) reply body.
    async fn send_read(&self, req: HttpRequest, idempotent: bool) -> StoreResult<(u16, Bytes)> {
        let key = req.key.clone();
        let reply = self.send(req, idempotent).await?;
        let status = reply.status;
        let body = reply.bytes().await.map_err(|e| self.transport_error(e))?;
        // COS and S3 can answer 200 with an error document (copy, complete).
        if let Some(doc) = xml::parse_error(&body) {
            return Err(doc.to_store_error(status, &key, &self.inner.config.bucket));
        }
        Ok((status, body))
    }

    /// Unwrap a document that may be an error document in a 200 reply.
    fn outcome<T>(&self, outcome: xml::Outcome<T>, status: u16, key: &str) -> StoreResult<T> {
        match outcome {
            xml::Outcome::Done(v) => Ok(v),
            xml::Outcome::Failed(doc) => {
                Err(doc.to_store_error(status, key, &self.inner.config.bucket))
            }
        }
    }

    fn meta_from_headers(&self, key: &str, headers: &HeaderMap) -> ObjectMeta {
        let provider = self.inner.config.provider;
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

    /// Open a GET for `[start, end)` and return the reply.
    async fn open_get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> StoreResult<Response> {
        let mut req = self
            .inner
            .target
            .get(key, range)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        if let Some(etag) = if_match {
            req.set_header("if-match", &format!("\"{etag}\""))
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        }
        self.send(req, true).await
    }

    /// Append with the position re-read on an ambiguous failure.
    async fn append_checked(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64> {
        let retry = &self.inner.config.retry;
        let len = body.len() as u64;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = self
                .inner
                .target
                .append(key, position, body.clone(), opts)
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
            match self.send(req, false).await {
                Ok(reply) => {
                    let meta = self.meta_from_headers(key, &reply.headers);
                    return Ok(meta.next_append_position.unwrap_or(position + len));
                }
                Err(StoreError::Service { code, .. }) if code == "PositionNotEqualToLength" => {
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
                Err(e) if e.is_retryable() && attempt < retry.max_attempts => {
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
                    tokio::time::sleep(backoff(retry, attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Read at most `limit` bytes of a body (for error documents).
async fn read_limited(response: Response, limit: usize) -> Option<Bytes> {
    let mut stream = response.into_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    Some(Bytes::from(out))
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

/// The wait before the next attempt. The thread-local RNG is not `Send`, so
/// it is used here, outside any future.
fn backoff(retry: &RetryConfig, attempt: u32) -> Duration {
    retry.delay(attempt, None, &mut rand::rng())
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidArgument(e.to_string())
}

/// State of a resumable GET body stream.
struct BodyState {
    client: RestClient,
    key: String,
    etag: String,
    /// Next byte offset to deliver.
    offset: u64,
    /// End of the requested range (exclusive).
    end: u64,
    current: Option<BodyStream>,
    failures: u32,
    done: bool,
}

impl BodyState {
    async fn next_chunk(mut self) -> Option<(StoreResult<Bytes>, BodyState)> {
        loop {
            if self.done {
                return None;
            }
            if self.offset >= self.end {
                self.done = true;
                return None;
            }
            if self.current.is_none() {
                let range = ByteRange::new(self.offset, self.end);
                match self
                    .client
                    .open_get(&self.key, Some(range), Some(&self.etag))
                    .await
                {
                    Ok(reply) => self.current = Some(reply.into_stream()),
                    Err(e) => {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                }
            }
            let Some(stream) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let room = self.end - self.offset;
                    let chunk = if chunk.len() as u64 > room {
                        chunk.slice(..room as usize)
                    } else {
                        chunk
                    };
                    self.offset += chunk.len() as u64;
                    return Some((Ok(chunk), self));
                }
                end_or_error => {
                    // The body ended early (None before `end`) or broke.
                    self.current = None;
                    self.failures += 1;
                    let retry = &self.client.inner.config.retry;
                    let why = match end_or_error {
                        Some(Err(e)) => e.to_string(),
                        _ => format!("body ended at byte {} of {}", self.offset, self.end),
                    };
                    if self.failures >= retry.max_attempts {
                        self.done = true;
                        return Some((
                            Err(StoreError::Connection(format!(
                                "GET {:?} truncated: {why}",
                                self.key
                            ))),
                            self,
                        ));
                    }
                    warn!(key = %self.key, offset = self.offset, error = %why, "GET body broke off, resuming");
                    tokio::time::sleep(backoff(retry, self.failures)).await;
                }
            }
        }
    }
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
        let served = match reply
            .headers
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(content_range_span)
        {
            Some((a, b)) => ByteRange::new(a, b),
            None => {
                let len: u64 = reply
                    .headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(meta.size);
                ByteRange::new(0, len)
            }
        };
        let state = BodyState {
            client: self.clone(),
            key: key.to_string(),
            etag: meta.etag.clone(),
            offset: served.start,
            end: served.end.unwrap_or(served.start),
            current: Some(reply.into_stream()),
            failures: 0,
            done: false,
        };
        let body = futures::stream::unfold(state, BodyState::next_chunk).boxed();
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
        self.append_checked(key, position, body, opts).await
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

/// Copy `src` to `dst` inside the bucket, by one CopyObject when the
/// dialect allows it for this size, else by a multipart upload of
/// part-copies (keeping the source's metadata unless replaced).
pub async fn copy_object(
    store: &dyn ObjectStore,
    src: &str,
    dst: &str,
    opts: &CopyOptions,
) -> StoreResult<PutResult> {
    let meta = store.head(src).await?;
    if meta.size <= store.provider().max_single_copy() {
        return store.copy(src, dst, opts).await;
    }
    let put = match &opts.metadata {
        MetadataDirective::Copy => PutOptions {
            content_type: meta.content_type.clone(),
            user_metadata: meta.user_metadata.clone(),
        },
        MetadataDirective::Replace(p) => p.clone(),
    };
    let upload_id = store.create_multipart(dst, &put).await?;
    let result = async {
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut number = 1u32;
        while start < meta.size {
            let end = (start + COPY_PART_SIZE).min(meta.size);
            let etag = store
                .upload_part_copy(src, ByteRange::new(start, end), dst, &upload_id, number)
                .await?;
            parts.push(CompletedPart {
                part_number: number,
                etag,
            });
            start = end;
            number += 1;
        }
        store.complete_multipart(dst, &upload_id, &parts).await
    }
    .await;
    if result.is_err()
        && let Err(e) = store.abort_multipart(dst, &upload_id).await
    {
        warn!(key = dst, error = %e, "could not abort the failed copy's upload");
    }
    result
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

    #[test]
    fn region_inferred_or_default() {
        let c = ClientConfig::new(Provider::Oss, "https://oss-cn-shanghai.aliyuncs.com", "b");
        assert_eq!(c.effective_region(), "cn-shanghai");
        let c = ClientConfig::new(Provider::S3, "http://127.0.0.1:3900", "b");
        assert_eq!(c.effective_region(), "us-east-1");
    }
}
