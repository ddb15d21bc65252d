//! AWS Signature Version 4, header authorization, as S3 and S3-compatible
//! stores (Garage, MinIO, the embedded endpoint) verify it.
//!
//! ```text
//! CanonicalRequest = VERB \n encoded-path \n CanonicalQuery \n
//!                    CanonicalHeaders \n SignedHeaders \n HashedPayload
//! StringToSign     = AWS4-HMAC-SHA256 \n <x-amz-date> \n <date>/<region>/<service>/aws4_request \n
//!                    hex(sha256(CanonicalRequest))
//! ```
//!
//! For S3 the path is encoded once: the canonical URI is exactly the path
//! sent ([`HttpRequest::encoded_path`]). Every query parameter is signed,
//! encoded then sorted, written `k=v` (`k=` when empty).
//!
//! Signed headers: `host`, every `x-amz-*` header, and these standard
//! headers when present: cache-control, content-disposition,
//! content-encoding, content-language, content-md5, content-type, expires,
//! if-match, if-modified-since, if-none-match, if-unmodified-since, range.
//! The list is closed on purpose: a header the HTTP client adds or rewrites
//! on the way out (user-agent, accept-encoding, content-length,
//! transfer-encoding, expect, connection) would make the signature depend
//! on the transport, and S3 accepts any header left unsigned.
//!
//! The signer sets `x-amz-date` from `now`, `x-amz-content-sha256` when
//! absent (the SHA-256 of the body when it is empty, else
//! `UNSIGNED-PAYLOAD`), and `x-amz-security-token` with a token.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>.
//!
//! Imports: `store::sign::{clock, digest, encode, headers, scoped}` and
//! `store::credentials`.

use std::time::SystemTime;

use super::scoped::Scheme;
use super::{HttpRequest, SignError, Signer, clock, digest, encode, headers};
use crate::store::credentials::Credentials;

/// The algorithm name.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash for a body that is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const SCHEME: Scheme = Scheme {
    algorithm: ALGORITHM,
    secret_prefix: "AWS4",
    terminator: "aws4_request",
};

/// Standard headers signed when present (besides `host` and `x-amz-*`).
const SIGNED_STANDARD_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-md5",
    "content-type",
    "expires",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// Whether SigV4 signing covers header `name` (lower-case).
pub fn is_signed_header(name: &str) -> bool {
    name.starts_with("x-amz-") || SIGNED_STANDARD_HEADERS.contains(&name)
}

/// Signs requests with AWS SigV4.
#[derive(Debug, Clone)]
pub struct SigV4Signer {
    /// `us-east-1`, `garage`, ...
    pub region: String,
    /// `s3`.
    pub service: String,
}

/// Trim and collapse runs of spaces, as SigV4's `Trimall` does.
fn trimall(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl SigV4Signer {
    /// A signer for service `s3` in `region`.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            service: "s3".to_string(),
        }
    }

    /// The `x-amz-content-sha256` the signer sends when the builder set
    /// none: the empty body's SHA-256 for an empty body, else
    /// `UNSIGNED-PAYLOAD`.
    pub fn default_payload_hash(req: &HttpRequest) -> String {
        if req.body.is_empty() {
            digest::sha256_hex(b"")
        } else {
            UNSIGNED_PAYLOAD.to_string()
        }
    }

    /// The canonical request for `req` as it stands (`x-amz-date` and
    /// `x-amz-content-sha256` already set, as [`Signer::sign`] does).
    pub fn canonical_request(&self, req: &HttpRequest) -> Result<String, SignError> {
        let signed = headers::select(req, is_signed_header)?;
        let query = encode::join_pairs(
            &encode::encode_pairs(&req.query, encode::PairOrder::Sorted),
            encode::EmptyValue::KeyEquals,
        );
        let payload = match headers::value(req, "x-amz-content-sha256")? {
            Some(v) => v,
            None => Self::default_payload_hash(req),
        };
        let mut s = String::with_capacity(512);
        s.push_str(req.method.as_str());
        s.push('\n');
        s.push_str(&req.encoded_path());
        s.push('\n');
        s.push_str(&query);
        s.push('\n');
        for (name, value) in &signed {
            s.push_str(name);
            s.push(':');
            s.push_str(&trimall(value));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&Self::signed_header_names(&signed));
        s.push('\n');
        s.push_str(&payload);
        Ok(s)
    }

    fn signed_header_names(signed: &[(String, String)]) -> String {
        signed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// `<yyyymmdd>/<region>/<service>/aws4_request`.
    pub fn scope(&self, now: SystemTime) -> Result<String, SignError> {
        SCHEME.scope(now, &self.region, &self.service)
    }

    /// The string to sign for `req` at `now`.
    pub fn string_to_sign(&self, req: &HttpRequest, now: SystemTime) -> Result<String, SignError> {
        SCHEME.string_to_sign(now, &self.scope(now)?, &self.canonical_request(req)?)
    }

    /// Hex HMAC-SHA256 of `string_to_sign` under the key derived from
    /// `"AWS4"+secret`, the date, region, service and `aws4_request`.
    pub fn signature(
        &self,
        secret: &str,
        now: SystemTime,
        string_to_sign: &str,
    ) -> Result<String, SignError> {
        SCHEME.signature(secret, now, &self.region, &self.service, string_to_sign)
    }
}

impl Signer for SigV4Signer {
    fn sign(
        &self,
        req: &mut HttpRequest,
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        req.try_update(|out| {
            out.set_header("x-amz-date", &clock::iso8601_basic(now)?)?;
            let payload = Self::default_payload_hash(out);
            out.set_header_if_absent("x-amz-content-sha256", || Ok(payload))?;
            out.set_header_if_some("x-amz-security-token", creds.security_token.as_deref())?;
            let sts = self.string_to_sign(out, now)?;
            let signature = self.signature(&creds.secret_access_key, now, &sts)?;
            let signed = headers::select(out, is_signed_header)?;
            let auth = format!(
                "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
                creds.access_key_id,
                self.scope(now)?,
                Self::signed_header_names(&signed),
            );
            out.set_header("authorization", &auth)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use std::time::{Duration, UNIX_EPOCH};

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// 20130524T000000Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn get(key: &str) -> HttpRequest {
        HttpRequest::new(
            Method::GET,
            "https",
            "examplebucket.s3.amazonaws.com",
            "examplebucket",
            key,
        )
    }

    // DESIGN.md section 3, SigV4 vector 1: GET /test.txt with Range.
    #[test]
    fn vector_get_object_with_range() {
        let signer = SigV4Signer::new("us-east-1");
        let mut req = get("test.txt");
        req.set_header("range", "bytes=0-9").unwrap();
        signer
            .sign(&mut req, &Credentials::new(AK, SK), now())
            .unwrap();
        assert_eq!(req.header("x-amz-content-sha256"), Some(EMPTY_SHA256));
        assert_eq!(req.header("x-amz-date"), Some("20130524T000000Z"));
        let creq = signer.canonical_request(&req).unwrap();
        assert_eq!(
            creq,
            format!(
                "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
                 x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n\
                 host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        let sts = signer.string_to_sign(&req, now()).unwrap();
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let expected = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        assert_eq!(signer.signature(SK, now(), &sts).unwrap(), expected);
        assert_eq!(
            req.header("authorization").unwrap(),
            format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature={expected}"
            )
        );
    }

    // DESIGN.md section 3, SigV4 vector 2: GET /?max-keys=2&prefix=J.
    #[test]
    fn vector_list_objects() {
        let signer = SigV4Signer::new("us-east-1");
        let mut req = get("");
        req.query.push(("max-keys".to_string(), "2".to_string()));
        req.query.push(("prefix".to_string(), "J".to_string()));
        signer
            .sign(&mut req, &Credentials::new(AK, SK), now())
            .unwrap();
        let creq = signer.canonical_request(&req).unwrap();
        assert!(
            creq.starts_with("GET\n/\nmax-keys=2&prefix=J\nhost:"),
            "{creq}"
        );
        let sts = signer.string_to_sign(&req, now()).unwrap();
        assert_eq!(
            signer.signature(SK, now(), &sts).unwrap(),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        assert!(req.header("authorization").unwrap().ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn path_style_key_is_encoded_once_and_token_signed() {
        let signer = SigV4Signer::new("garage");
        let mut req = HttpRequest::new(Method::PUT, "http", "127.0.0.1:3900", "b", "a b/c+d%");
        req.path_style = true;
        req.body = bytes::Bytes::from_static(b"data");
        req.set_header("user-agent", "ossfs-rs").unwrap();
        req.query.push(("uploads".to_string(), String::new()));
        let creds = Credentials::new("ak", "sk").with_token("TOK");
        signer.sign(&mut req, &creds, now()).unwrap();
        assert_eq!(req.header("x-amz-content-sha256"), Some(UNSIGNED_PAYLOAD));
        assert_eq!(req.header("x-amz-security-token"), Some("TOK"));
        let creq = signer.canonical_request(&req).unwrap();
        assert!(
            creq.starts_with("PUT\n/b/a%20b/c%2Bd%25\nuploads=\nhost:127.0.0.1:3900\n"),
            "{creq}"
        );
        assert!(creq.ends_with(
            "\nhost;x-amz-content-sha256;x-amz-date;x-amz-security-token\nUNSIGNED-PAYLOAD"
        ));
    }

    #[test]
    fn failure_leaves_request_unchanged() {
        let mut req = get("k");
        req.headers.insert(
            "x-amz-meta-x",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let before = format!("{:?}", req.headers);
        assert!(
            SigV4Signer::new("us-east-1")
                .sign(&mut req, &Credentials::new(AK, SK), now())
                .is_err()
        );
        assert_eq!(format!("{:?}", req.headers), before);
    }
}
