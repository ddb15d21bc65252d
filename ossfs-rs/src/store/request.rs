//! Pure request builders: one function per operation turns its arguments
//! into an unsigned [`HttpRequest`]. No I/O, no clock, no credentials: the
//! signer and the sender come after, so tests (and the signature oracles)
//! see exactly the request the client sends.
//!
//! Dialect differences come from [`Provider`]'s behaviour methods (header
//! prefix, listing style, copy-source form), never from scattered checks.
//!
//! Imports: `store::dialect`, `store::sign`, `store::types`, `store::xml` of
//! the crate, besides std and external crates.

use base64::Engine;
use bytes::Bytes;
use http::Method;
use md5::{Digest, Md5};

use super::dialect::{CopySourceStyle, ListStyle, Provider};
use super::sign::{HttpRequest, SignError, encode};
use super::types::{
    ByteRange, CompletedPart, CopyOptions, ListRequest, MetadataDirective, PutOptions,
};
use super::xml;

/// Where requests go: the scheme, the host that carries the bucket (or
/// not, in path style), and the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    pub scheme: &'static str,
    /// `host[:port]` of the endpoint, without the bucket.
    pub endpoint_host: String,
    pub bucket: String,
    pub path_style: bool,
}

/// Why an endpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "endpoint {0:?} is not a URL or host name (expected e.g. https://oss-cn-hangzhou.aliyuncs.com)"
    )]
    Malformed(String),
    #[error("endpoint {0:?} has scheme {1:?}; use http or https")]
    Scheme(String, String),
    #[error(
        "{0} refuses path-style addressing: drop path_style (the bucket goes in the host name)"
    )]
    PathStyleRefused(Provider),
}

impl Target {
    /// Resolve an endpoint (`https://host[:port]`, or a bare host meaning
    /// https) for a bucket. OSS and COS are always virtual-hosted; an
    /// endpoint that already starts with `bucket.` is used as it is.
    pub fn new(
        provider: Provider,
        endpoint: &str,
        bucket: &str,
        path_style: bool,
    ) -> Result<Self, EndpointError> {
        let (scheme, rest) = match endpoint.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            Some((other, _)) => {
                return Err(EndpointError::Scheme(
                    endpoint.to_string(),
                    other.to_string(),
                ));
            }
            None => ("https", endpoint),
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty()
            || host.contains('/')
            || host.contains('?')
            || host.contains('@')
            || host.contains(' ')
        {
            return Err(EndpointError::Malformed(endpoint.to_string()));
        }
        if path_style && provider.requires_virtual_host() {
            return Err(EndpointError::PathStyleRefused(provider));
        }
        let prefix = format!("{bucket}.");
        let endpoint_host = host.strip_prefix(&prefix).unwrap_or(host).to_string();
        Ok(Self {
            provider,
            scheme,
            endpoint_host,
            bucket: bucket.to_string(),
            path_style,
        })
    }

    /// The Host header requests carry.
    pub fn host(&self) -> String {
        if self.path_style {
            self.endpoint_host.clone()
        } else {
            format!("{}.{}", self.bucket, self.endpoint_host)
        }
    }

    fn request(&self, method: Method, key: &str) -> HttpRequest {
        let mut req = HttpRequest::new(method, self.scheme, self.host(), self.bucket.clone(), key);
        req.path_style = self.path_style;
        req
    }

    fn header(&self, suffix: &str) -> String {
        self.provider.header(suffix)
    }

    /// `HEAD key`.
    pub fn head(&self, key: &str) -> HttpRequest {
        self.request(Method::HEAD, key)
    }

    /// `GET key` with an optional range. OSS gets `x-oss-range-behavior:
    /// standard` so that a range past the end is an error, not the whole object.
    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::GET, key);
        if let Some(range) = range {
            req.set_header("range", &range.header_value())?;
            if self.provider.needs_standard_range_header() {
                req.set_header(&self.header("range-behavior"), "standard")?;
            }
        }
        Ok(req)
    }

    /// `PUT key` with a body, Content-MD5, content type and user metadata.
    pub fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::PUT, key);
        self.put_headers(&mut req, opts)?;
        set_body(&mut req, body)?;
        Ok(req)
    }

    fn put_headers(&self, req: &mut HttpRequest, opts: &PutOptions) -> Result<(), SignError> {
        let content_type = opts
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        req.set_header("content-type", content_type)?;
        for (name, value) in &opts.user_metadata {
            req.set_header(&format!("{}{}", self.provider.meta_prefix(), name), value)?;
        }
        Ok(())
    }

    /// One page of a listing: ListObjectsV2 (OSS, S3) or V1 (COS), always
    /// with `encoding-type=url` so that any key survives the XML.
    pub fn list(&self, list: &ListRequest, token: Option<&str>) -> HttpRequest {
        let mut req = self.request(Method::GET, "");
        let q = &mut req.query;
        if self.provider.list_style() == ListStyle::V2 {
            q.push(("list-type".into(), "2".into()));
        }
        q.push(("prefix".into(), list.prefix.clone()));
        if let Some(d) = &list.delimiter {
            q.push(("delimiter".into(), d.clone()));
        }
        q.push((
            "max-keys".into(),
            list.max_keys.unwrap_or(1000).min(1000).to_string(),
        ));
        q.push(("encoding-type".into(), "url".into()));
        match (self.provider.list_style(), token) {
            (ListStyle::V2, Some(t)) => q.push(("continuation-token".into(), t.to_string())),
            (ListStyle::V2, None) => {
                if let Some(s) = &list.start_after {
                    q.push(("start-after".into(), s.clone()));
                }
            }
            (ListStyle::V1, Some(t)) => q.push(("marker".into(), t.to_string())),
            (ListStyle::V1, None) => {
                if let Some(s) = &list.start_after {
                    q.push(("marker".into(), s.clone()));
                }
            }
        }
        req
    }

    /// `DELETE key`.
    pub fn delete(&self, key: &str) -> HttpRequest {
        self.request(Method::DELETE, key)
    }

    /// `POST ?delete` with a quiet Delete document for up to 1000 keys.
    /// `body` is [`xml::delete_objects_body`]'s document.
    pub fn delete_multiple(&self, body: String) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::POST, "");
        req.query.push(("delete".into(), String::new()));
        req.set_header("content-type", "application/xml")?;
        set_body(&mut req, Bytes::from(body))?;
        Ok(req)
    }

    /// The copy-source header value for `src` in this bucket.
    fn copy_source(&self, src: &str) -> String {
        let key = encode::uri_encode(src, false);
        match self.provider.copy_source_style() {
            CopySourceStyle::BucketKey => format!("/{}/{}", self.bucket, key),
            CopySourceStyle::HostKey => format!("{}.{}/{}", self.bucket, self.endpoint_host, key),
        }
    }

    /// `PUT dst` with the copy-source header (single server-side copy).
    pub fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::PUT, dst);
        req.set_header(&self.header("copy-source"), &self.copy_source(src))?;
        match &opts.metadata {
            MetadataDirective::Copy => {
                req.set_header(&self.header("metadata-directive"), "COPY")?
            }
            MetadataDirective::Replace(put) => {
                req.set_header(&self.header("metadata-directive"), "REPLACE")?;
                self.put_headers(&mut req, put)?;
            }
        }
        Ok(req)
    }

    /// `POST key?uploads`.
    pub fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::POST, key);
        req.query.push(("uploads".into(), String::new()));
        self.put_headers(&mut req, opts)?;
        Ok(req)
    }

    /// `PUT key?partNumber=N&uploadId=ID`.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::PUT, key);
        push_part_query(&mut req, upload_id, part_number);
        set_body(&mut req, body)?;
        Ok(req)
    }

    /// `PUT key?partNumber=N&uploadId=ID` with copy-source and copy-source-range.
    pub fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::PUT, key);
        push_part_query(&mut req, upload_id, part_number);
        req.set_header(&self.header("copy-source"), &self.copy_source(src))?;
        req.set_header(&self.header("copy-source-range"), &range.header_value())?;
        Ok(req)
    }

    /// `POST key?uploadId=ID` with the CompleteMultipartUpload document.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::POST, key);
        req.query.push(("uploadId".into(), upload_id.to_string()));
        req.set_header("content-type", "application/xml")?;
        set_body(&mut req, Bytes::from(xml::complete_multipart_body(parts)))?;
        Ok(req)
    }

    /// `DELETE key?uploadId=ID`.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> HttpRequest {
        let mut req = self.request(Method::DELETE, key);
        req.query.push(("uploadId".into(), upload_id.to_string()));
        req
    }

    /// `GET key?uploadId=ID[&part-number-marker=M]`.
    pub fn list_parts(&self, key: &str, upload_id: &str, marker: Option<u32>) -> HttpRequest {
        let mut req = self.request(Method::GET, key);
        req.query.push(("uploadId".into(), upload_id.to_string()));
        if let Some(m) = marker {
            req.query.push(("part-number-marker".into(), m.to_string()));
        }
        req
    }

    /// `POST key?append&position=N` (OSS, COS).
    pub fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::POST, key);
        req.query.push(("append".into(), String::new()));
        req.query.push(("position".into(), position.to_string()));
        if position == 0 {
            // Metadata is taken from the request that creates the object.
            self.put_headers(&mut req, opts)?;
        }
        set_body(&mut req, body)?;
        Ok(req)
    }

    /// `PUT key?symlink` with the (percent-encoded) target header.
    pub fn put_symlink(
        &self,
        key: &str,
        target: &str,
        opts: &PutOptions,
    ) -> Result<HttpRequest, SignError> {
        let mut req = self.request(Method::PUT, key);
        req.query.push(("symlink".into(), String::new()));
        req.set_header(
            &self.header("symlink-target"),
            &encode::uri_encode(target, false),
        )?;
        self.put_headers(&mut req, opts)?;
        Ok(req)
    }

    /// `GET key?symlink`.
    pub fn get_symlink(&self, key: &str) -> HttpRequest {
        let mut req = self.request(Method::GET, key);
        req.query.push(("symlink".into(), String::new()));
        req
    }
}

fn push_part_query(req: &mut HttpRequest, upload_id: &str, part_number: u32) {
    req.query
        .push(("partNumber".into(), part_number.to_string()));
    req.query.push(("uploadId".into(), upload_id.to_string()));
}

/// Attach a body with its Content-MD5 (every store checks it and refuses a
/// corrupted upload with BadDigest instead of storing it).
fn set_body(req: &mut HttpRequest, body: Bytes) -> Result<(), SignError> {
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
    req.set_header("content-md5", &md5)?;
    req.body = body;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oss() -> Target {
        Target::new(
            Provider::Oss,
            "https://oss-cn-hangzhou.aliyuncs.com",
            "bkt",
            false,
        )
        .unwrap()
    }

    #[test]
    fn virtual_host_and_path_style() {
        let t = oss();
        let req = t.head("a b/c+d");
        assert_eq!(
            req.url(),
            "https://bkt.oss-cn-hangzhou.aliyuncs.com/a%20b/c%2Bd"
        );
        let s3 = Target::new(Provider::S3, "http://127.0.0.1:3900", "bkt", true).unwrap();
        assert_eq!(s3.head("k").url(), "http://127.0.0.1:3900/bkt/k");
        assert!(Target::new(Provider::Oss, "oss-cn-hangzhou.aliyuncs.com", "b", true).is_err());
        assert!(Target::new(Provider::S3, "ftp://x", "b", true).is_err());
        let cos = Target::new(
            Provider::Cos,
            "https://bkt-125.cos.ap-beijing.myqcloud.com",
            "bkt-125",
            false,
        )
        .unwrap();
        assert_eq!(cos.host(), "bkt-125.cos.ap-beijing.myqcloud.com");
    }

    #[test]
    fn list_uses_dialect_paging() {
        let l = ListRequest {
            prefix: "d/".into(),
            delimiter: Some("/".into()),
            ..Default::default()
        };
        let req = oss().list(&l, Some("tok"));
        assert_eq!(
            req.encoded_query(),
            "list-type=2&prefix=d%2F&delimiter=%2F&max-keys=1000&encoding-type=url&continuation-token=tok"
        );
        let cos = Target::new(Provider::Cos, "cos.ap-beijing.myqcloud.com", "b-1", false).unwrap();
        let req = cos.list(&l, Some("m"));
        assert!(req.encoded_query().ends_with("&marker=m"));
        assert!(!req.encoded_query().contains("list-type"));
    }

    #[test]
    fn get_range_on_oss_asks_for_standard_behaviour() {
        let req = oss().get("k", Some(ByteRange::new(0, 1))).unwrap();
        assert_eq!(req.header("range"), Some("bytes=0-0"));
        assert_eq!(req.header("x-oss-range-behavior"), Some("standard"));
    }

    #[test]
    fn put_carries_md5_and_metadata() {
        let mut opts = PutOptions::default();
        opts.user_metadata.insert("mode".into(), "33188".into());
        let req = oss().put("k", Bytes::from_static(b"hello"), &opts).unwrap();
        assert_eq!(req.header("content-md5"), Some("XUFAKrxLKna5cZ2REBfFkg=="));
        assert_eq!(req.header("x-oss-meta-mode"), Some("33188"));
    }

    /// The exact requests the client sends, for every shape and dialect,
    /// signed by our signers and by the reqsign crates: the signatures must agree.
    #[test]
    fn builders_agree_with_the_signature_oracles() {
        let endpoints = [
            (
                Provider::Oss,
                "https://oss-cn-hangzhou.aliyuncs.com",
                "examplebucket",
            ),
            (
                Provider::Cos,
                "https://cos.ap-beijing.myqcloud.com",
                "examplebucket-1250000000",
            ),
            (
                Provider::S3,
                "https://s3.us-east-1.amazonaws.com",
                "examplebucket",
            ),
        ];
        for (provider, endpoint, bucket) in endpoints {
            let t = Target::new(provider, endpoint, bucket, false).unwrap();
            let key = "dir/a b+c\u{fc}~.txt";
            let mut meta = PutOptions {
                content_type: Some("text/plain".into()),
                ..Default::default()
            };
            meta.user_metadata.insert("mode".into(), "33188".into());
            let list = ListRequest {
                prefix: "dir/".into(),
                delimiter: Some("/".into()),
                ..Default::default()
            };
            let parts = [CompletedPart {
                part_number: 1,
                etag: "abc".into(),
            }];
            let body = Bytes::from_static(b"hello");
            let delete_doc = xml::delete_objects_body(&["a", "b c"]).unwrap();
            let mut shapes = vec![
                ("head", t.head(key)),
                (
                    "range get",
                    t.get(key, Some(ByteRange::new(0, 10))).unwrap(),
                ),
                (
                    "put with metadata",
                    t.put(key, body.clone(), &meta).unwrap(),
                ),
                ("list first page", t.list(&list, None)),
                ("list continued", t.list(&list, Some("token/with+chars"))),
                ("delete", t.delete(key)),
                ("delete multiple", t.delete_multiple(delete_doc).unwrap()),
                (
                    "copy",
                    t.copy("src key", key, &CopyOptions::default()).unwrap(),
                ),
                (
                    "copy replacing metadata",
                    t.copy(
                        "src",
                        key,
                        &CopyOptions {
                            metadata: MetadataDirective::Replace(meta.clone()),
                        },
                    )
                    .unwrap(),
                ),
                ("create multipart", t.create_multipart(key, &meta).unwrap()),
                (
                    "upload part",
                    t.upload_part(key, "upload-1", 3, body.clone()).unwrap(),
                ),
                (
                    "upload part copy",
                    t.upload_part_copy("src", ByteRange::new(0, 100), key, "upload-1", 2)
                        .unwrap(),
                ),
                (
                    "complete multipart",
                    t.complete_multipart(key, "upload-1", &parts).unwrap(),
                ),
                ("abort multipart", t.abort_multipart(key, "upload-1")),
                ("list parts", t.list_parts(key, "upload-1", Some(2))),
            ];
            if provider.supports_append() {
                shapes.push(("append", t.append(key, 5, body.clone(), &meta).unwrap()));
            }
            if provider.supports_native_symlink() {
                shapes.push((
                    "put symlink",
                    t.put_symlink(key, "target dir/f", &meta).unwrap(),
                ));
                shapes.push(("get symlink", t.get_symlink(key)));
            }
            crate::store::sign::oracle_tests::check_shapes(provider, &shapes);
        }
    }

    #[test]
    fn copy_source_per_dialect() {
        let req = oss().copy("a b", "c", &CopyOptions::default()).unwrap();
        assert_eq!(req.header("x-oss-copy-source"), Some("/bkt/a%20b"));
        let cos = Target::new(Provider::Cos, "cos.ap-beijing.myqcloud.com", "b-1", false).unwrap();
        let req = cos.copy("x/y", "z", &CopyOptions::default()).unwrap();
        assert_eq!(
            req.header("x-cos-copy-source"),
            Some("b-1.cos.ap-beijing.myqcloud.com/x/y")
        );
    }
}
