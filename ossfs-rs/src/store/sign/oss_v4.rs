//! OSS signature V4 (`OSS4-HMAC-SHA256`), header authorization.
//!
//! ```text
//! CanonicalRequest = VERB \n /bucket/encoded-key \n CanonicalQuery \n
//!                    CanonicalHeaders \n AdditionalHeaders \n HashedPayload
//! StringToSign     = OSS4-HMAC-SHA256 \n 20231216T162057Z \n
//!                    20231216/<region>/oss/aliyun_v4_request \n hex(sha256(CanonicalRequest))
//! SigningKey       = HMAC chain over "aliyun_v4"+sk: date, region, "oss", "aliyun_v4_request"
//! ```
//!
//! Every query parameter is signed: keys and values percent-encoded, then
//! sorted, an empty value written `k`. The key in the path is encoded except
//! `/`. Signed headers are always `x-oss-*`, `content-type` and
//! `content-md5`; other headers are signed only when named in the signer's
//! additional-header list (and present), and that list is sent as
//! `AdditionalHeaders=` in the Authorization header, as the vendor SDKs do.
//! The payload is not hashed: the signer sets `x-oss-content-sha256:
//! UNSIGNED-PAYLOAD` when absent, and always sets `x-oss-date` from `now`.
//! Reference: <https://help.aliyun.com/zh/oss/developer-reference/recommend-to-use-signature-version-4>.
//!
//! Imports: `store::sign::{clock, encode, headers, scoped}` and `store::credentials`.

use std::time::SystemTime;

use super::scoped::Scheme;
use super::{HttpRequest, SignError, Signer, clock, encode, headers};
use crate::store::credentials::Credentials;

/// The algorithm name in the string to sign and the Authorization header.
pub const ALGORITHM: &str = "OSS4-HMAC-SHA256";
/// The payload hash OSS V4 accepts without hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const SERVICE: &str = "oss";
const SCHEME: Scheme = Scheme {
    algorithm: ALGORITHM,
    secret_prefix: "aliyun_v4",
    terminator: "aliyun_v4_request",
};

/// Signs OSS requests with signature V4.
#[derive(Debug, Clone)]
pub struct OssV4Signer {
    /// The OSS region id, e.g. `cn-hangzhou` (not `oss-cn-hangzhou`).
    pub region: String,
    /// Lower-case names of further headers to sign, sorted, without the
    /// ones signed anyway.
    additional_headers: Vec<String>,
}

/// Headers V4 signs whatever the additional list says.
fn is_default_signed(name: &str) -> bool {
    name.starts_with("x-oss-") || name == "content-type" || name == "content-md5"
}

impl OssV4Signer {
    /// A V4 signer for `region` that signs only the default headers.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            additional_headers: Vec::new(),
        }
    }

    /// Also sign these headers when a request carries them (e.g. `host`,
    /// `range`). Names are compared case-insensitively.
    pub fn with_additional_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .filter(|n| !is_default_signed(n))
            .collect();
        names.sort();
        names.dedup();
        self.additional_headers = names;
        self
    }

    /// The additional headers that apply to `req`: listed and present with
    /// a non-empty value.
    fn additional_for(&self, req: &HttpRequest) -> Result<Vec<String>, SignError> {
        let mut out = Vec::new();
        for name in &self.additional_headers {
            let present = if name == "host" {
                !headers::host(req)?.is_empty()
            } else {
                headers::value(req, name)?.is_some_and(|v| !v.is_empty())
            };
            if present {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// The canonical request for `req` as it stands (`x-oss-date` and
    /// `x-oss-content-sha256` already set, as [`Signer::sign`] does).
    pub fn canonical_request(&self, req: &HttpRequest) -> Result<String, SignError> {
        let additional = self.additional_for(req)?;
        let uri = if req.bucket.is_empty() {
            format!("/{}", req.key)
        } else {
            format!("/{}/{}", req.bucket, req.key)
        };
        let query = encode::join_pairs(
            &encode::encode_pairs(&req.query, encode::PairOrder::Sorted),
            encode::EmptyValue::KeyOnly,
        );
        let mut s = String::with_capacity(512);
        s.push_str(req.method.as_str());
        s.push('\n');
        s.push_str(&encode::uri_encode(&uri, false));
        s.push('\n');
        s.push_str(&query);
        s.push('\n');
        let signed = headers::select(req, |n| {
            is_default_signed(n) || additional.iter().any(|a| a == n)
        })?;
        for (name, value) in signed {
            s.push_str(&name);
            s.push(':');
            s.push_str(value.trim());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&additional.join(";"));
        s.push('\n');
        s.push_str(
            headers::value(req, "x-oss-content-sha256")?
                .as_deref()
                .unwrap_or(UNSIGNED_PAYLOAD),
        );
        Ok(s)
    }

    /// `<yyyymmdd>/<region>/oss/aliyun_v4_request`.
    pub fn scope(&self, now: SystemTime) -> Result<String, SignError> {
        SCHEME.scope(now, &self.region, SERVICE)
    }

    /// The string to sign for `req` at `now`.
    pub fn string_to_sign(&self, req: &HttpRequest, now: SystemTime) -> Result<String, SignError> {
        SCHEME.string_to_sign(now, &self.scope(now)?, &self.canonical_request(req)?)
    }

    /// Hex HMAC-SHA256 of `string_to_sign` under the key derived from
    /// `"aliyun_v4"+secret`.
    pub fn signature(
        &self,
        secret: &str,
        now: SystemTime,
        string_to_sign: &str,
    ) -> Result<String, SignError> {
        SCHEME.signature(secret, now, &self.region, SERVICE, string_to_sign)
    }
}

impl Signer for OssV4Signer {
    fn sign(
        &self,
        req: &mut HttpRequest,
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        req.try_update(|out| {
            out.set_header("x-oss-date", &clock::iso8601_basic(now)?)?;
            out.set_header_if_absent("x-oss-content-sha256", || Ok(UNSIGNED_PAYLOAD.to_string()))?;
            out.set_header_if_some("x-oss-security-token", creds.security_token.as_deref())?;
            let sts = self.string_to_sign(out, now)?;
            let signature = self.signature(&creds.secret_access_key, now, &sts)?;
            let additional = self.additional_for(out)?;
            let mut auth = format!(
                "{ALGORITHM} Credential={}/{}",
                creds.access_key_id,
                self.scope(now)?
            );
            if !additional.is_empty() {
                auth.push_str(",AdditionalHeaders=");
                auth.push_str(&additional.join(";"));
            }
            auth.push_str(",Signature=");
            auth.push_str(&signature);
            out.set_header("authorization", &auth)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sign::digest;
    use http::Method;
    use std::time::{Duration, UNIX_EPOCH};

    fn vector_request() -> HttpRequest {
        let mut req = HttpRequest::new(
            Method::PUT,
            "https",
            "bucket.oss-cn-hangzhou.aliyuncs.com",
            "bucket",
            "1234+-/123/1.txt",
        );
        for (k, v) in [
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("ZAbc", "value"),
            ("XYZ", "value"),
            ("content-type", "text/plain"),
            ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ] {
            req.set_header(k, v).unwrap();
        }
        for (k, v) in [
            ("param1", "value1"),
            ("+param1", "value3"),
            ("|param1", "value4"),
            ("+param2", ""),
            ("|param2", ""),
            ("param2", ""),
        ] {
            req.query.push((k.to_string(), v.to_string()));
        }
        req
    }

    // DESIGN.md section 3, the OSS V4 vector (alibabacloud-oss-v2's test).
    #[test]
    fn vector_canonical_request_and_signature() {
        let now = UNIX_EPOCH + Duration::from_secs(1702743657);
        let signer = OssV4Signer::new("cn-hangzhou");
        let mut req = vector_request();
        signer
            .sign(&mut req, &Credentials::new("ak", "sk"), now)
            .unwrap();
        assert_eq!(req.header("x-oss-date"), Some("20231216T162057Z"));

        let creq = signer.canonical_request(&req).unwrap();
        assert_eq!(
            creq,
            "PUT\n/bucket/1234%2B-/123/1.txt\n\
             %2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n\
             content-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\n\
             x-oss-date:20231216T162057Z\nx-oss-head1:value\n\n\nUNSIGNED-PAYLOAD"
        );
        assert_eq!(
            digest::sha256_hex(creq.as_bytes()),
            "f4613657f1b108998e8dbd10a1aa5da621dc2c6e02c9ddec0f163664848704c4"
        );
        let sts = signer.string_to_sign(&req, now).unwrap();
        assert_eq!(
            sts,
            "OSS4-HMAC-SHA256\n20231216T162057Z\n20231216/cn-hangzhou/oss/aliyun_v4_request\n\
             f4613657f1b108998e8dbd10a1aa5da621dc2c6e02c9ddec0f163664848704c4"
        );
        let expected = "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe";
        assert_eq!(signer.signature("sk", now, &sts).unwrap(), expected);
        assert_eq!(
            req.header("authorization").unwrap(),
            format!(
                "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature={expected}"
            )
        );
    }

    #[test]
    fn additional_headers_are_signed_and_announced() {
        let now = UNIX_EPOCH + Duration::from_secs(1702743657);
        let signer =
            OssV4Signer::new("cn-hangzhou").with_additional_headers(["ZAbc", "abc", "absent"]);
        let mut req = vector_request();
        signer
            .sign(&mut req, &Credentials::new("ak", "sk"), now)
            .unwrap();
        let creq = signer.canonical_request(&req).unwrap();
        assert!(
            creq.contains("\nabc:value\ncontent-type:text/plain\n"),
            "{creq}"
        );
        assert!(
            creq.contains("\nx-oss-head1:value\nzabc:value\n\nabc;zabc\n"),
            "{creq}"
        );
        let auth = req.header("authorization").unwrap();
        assert!(
            auth.contains(",AdditionalHeaders=abc;zabc,Signature="),
            "{auth}"
        );
    }

    #[test]
    fn token_and_bucket_level_path() {
        let signer = OssV4Signer::new("cn-hangzhou");
        let mut req = HttpRequest::new(
            Method::GET,
            "https",
            "bucket.oss-cn-hangzhou.aliyuncs.com",
            "bucket",
            "",
        );
        req.query.push(("list-type".to_string(), "2".to_string()));
        let creds = Credentials::new("ak", "sk").with_token("TOK");
        signer
            .sign(
                &mut req,
                &creds,
                UNIX_EPOCH + Duration::from_secs(1702743657),
            )
            .unwrap();
        let creq = signer.canonical_request(&req).unwrap();
        assert!(creq.starts_with("GET\n/bucket/\nlist-type=2\n"), "{creq}");
        assert!(creq.contains("\nx-oss-security-token:TOK\n"), "{creq}");
    }

    #[test]
    fn failure_leaves_request_unchanged() {
        let mut req = vector_request();
        req.headers.insert(
            "x-oss-meta-x",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let before = format!("{:?}", req.headers);
        assert!(
            OssV4Signer::new("cn-hangzhou")
                .sign(&mut req, &Credentials::new("ak", "sk"), UNIX_EPOCH)
                .is_err()
        );
        assert_eq!(format!("{:?}", req.headers), before);
    }
}
