//! COS request signing (`q-sign-algorithm=sha1`), header authorization.
//!
//! ```text
//! KeyTime      = <start>;<end>                (Unix seconds)
//! SignKey      = hex(HMAC-SHA1(sk, KeyTime))
//! HttpString   = lower(VERB) \n decoded-path \n HttpParameters \n HttpHeaders \n
//! StringToSign = sha1 \n KeyTime \n hex(sha1(HttpString)) \n
//! Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
//! ```
//!
//! Parameters and headers are written `key=value` (`key=` when empty) with
//! the key percent-encoded then lower-cased and the value percent-encoded,
//! sorted by key, and their keys listed in `q-url-param-list` and
//! `q-header-list`. Every query parameter is signed.
//!
//! Signed headers: `host`, `date`, the `x-cos-*` headers (user metadata,
//! copy source, ACL, the STS token) and the standard headers the COS SDKs
//! sign when present: cache-control, content-disposition, content-encoding,
//! content-length, content-md5, content-type, expires, if-match,
//! if-modified-since, if-none-match, if-unmodified-since, origin, range.
//! Transport headers that the HTTP client may add or rewrite (user-agent,
//! accept-encoding, connection, expect, transfer-encoding) are never
//! signed. Unlike the stock Python SDK the signer signs `Date` (it sets it
//! when missing), as the vector in the COS documentation does.
//!
//! The key time starts [`START_LEEWAY`] before `now`, as the COS SDKs do, so
//! a client clock slightly ahead of the server's is still accepted.
//! Reference: <https://cloud.tencent.com/document/product/436/7778>.
//!
//! Imports: `store::sign::{clock, digest, encode, headers}` and `store::credentials`.

use std::time::{Duration, SystemTime};

use super::{HttpRequest, SignError, Signer, clock, digest, encode, headers};
use crate::store::credentials::Credentials;

/// How far before `now` the signature's validity starts.
pub const START_LEEWAY: Duration = Duration::from_secs(60);

/// Standard headers signed when present (besides `host`, `date`, `x-cos-*`).
const SIGNED_STANDARD_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "expires",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "origin",
    "range",
];

/// Whether COS signing covers header `name` (lower-case).
pub fn is_signed_header(name: &str) -> bool {
    name.starts_with("x-cos-") || SIGNED_STANDARD_HEADERS.contains(&name)
}

/// Signs COS requests.
#[derive(Debug, Clone)]
pub struct CosSigner {
    /// How long a signature stays valid after `now`.
    pub key_validity: Duration,
}

impl CosSigner {
    /// A signer whose signatures are valid for `key_validity` after signing.
    pub fn new(key_validity: Duration) -> Self {
        Self { key_validity }
    }

    /// `<now - START_LEEWAY>;<now + key_validity>`.
    pub fn key_time(&self, now: SystemTime) -> Result<String, SignError> {
        let now = clock::unix_secs(now)?;
        let start = now.saturating_sub(START_LEEWAY.as_secs());
        let end = now
            .checked_add(self.key_validity.as_secs())
            .ok_or_else(|| SignError::Clock("key validity overflows the clock".to_string()))?;
        Ok(format!("{start};{end}"))
    }

    /// The signed headers of `req`, encoded: `(key, value)` pairs sorted.
    fn header_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, SignError> {
        let raw = headers::select(req, is_signed_header)?;
        Ok(encode::encode_pairs(
            &raw,
            encode::PairOrder::SortedLowerKeys,
        ))
    }

    /// The HttpString for `req` as it stands.
    pub fn http_string(req: &HttpRequest) -> Result<String, SignError> {
        let params = encode::encode_pairs(&req.query, encode::PairOrder::SortedLowerKeys);
        Ok(format!(
            "{}\n{}\n{}\n{}\n",
            req.method.as_str().to_ascii_lowercase(),
            req.path(),
            encode::join_pairs(&params, encode::EmptyValue::KeyEquals),
            encode::join_pairs(&Self::header_pairs(req)?, encode::EmptyValue::KeyEquals),
        ))
    }

    /// `sha1\n<key_time>\n<hex sha1(HttpString)>\n`.
    pub fn string_to_sign(req: &HttpRequest, key_time: &str) -> Result<String, SignError> {
        Ok(format!(
            "sha1\n{key_time}\n{}\n",
            digest::sha1_hex(Self::http_string(req)?.as_bytes())
        ))
    }

    /// `hex(HMAC-SHA1(secret, key_time))`.
    pub fn sign_key(secret: &str, key_time: &str) -> String {
        hex::encode(digest::hmac_sha1(secret.as_bytes(), key_time.as_bytes()))
    }

    /// The Authorization value for `req` as it stands, with `key_time`.
    pub fn authorization(
        req: &HttpRequest,
        creds: &Credentials,
        key_time: &str,
    ) -> Result<String, SignError> {
        let sts = Self::string_to_sign(req, key_time)?;
        let sign_key = Self::sign_key(&creds.secret_access_key, key_time);
        let signature = hex::encode(digest::hmac_sha1(sign_key.as_bytes(), sts.as_bytes()));
        let list = |pairs: Vec<(String, String)>| {
            pairs
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .join(";")
        };
        Ok(format!(
            "q-sign-algorithm=sha1&q-ak={}&q-sign-time={key_time}&q-key-time={key_time}\
             &q-header-list={}&q-url-param-list={}&q-signature={signature}",
            creds.access_key_id,
            list(Self::header_pairs(req)?),
            list(encode::encode_pairs(
                &req.query,
                encode::PairOrder::SortedLowerKeys
            )),
        ))
    }
}

impl Signer for CosSigner {
    fn sign(
        &self,
        req: &mut HttpRequest,
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        req.try_update(|out| {
            out.set_header_if_absent("date", || clock::http_date(now))?;
            out.set_header_if_some("x-cos-security-token", creds.security_token.as_deref())?;
            let key_time = self.key_time(now)?;
            let auth = Self::authorization(out, creds, &key_time)?;
            out.set_header("authorization", &auth)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use std::time::UNIX_EPOCH;

    const AK: &str = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q";
    const SK: &str = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz";
    const HOST: &str = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com";

    fn request(method: Method, hdrs: &[(&str, &str)]) -> HttpRequest {
        let mut req = HttpRequest::new(
            method,
            "https",
            HOST,
            "examplebucket-1250000000",
            "exampleobject(腾讯云)",
        );
        for (k, v) in hdrs {
            req.set_header(k, v).unwrap();
        }
        req
    }

    // DESIGN.md section 3, COS vector 1 (PUT), from the COS documentation.
    #[test]
    fn vector_put() {
        let key_time = "1557989151;1557996351";
        assert_eq!(
            CosSigner::sign_key(SK, key_time),
            "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f"
        );
        let mut req = request(
            Method::PUT,
            &[
                ("content-length", "13"),
                ("content-md5", "mQ/fVh815F3k6TAUm8m0eg=="),
                ("content-type", "text/plain"),
                ("date", "Thu, 16 May 2019 06:45:51 GMT"),
                ("x-cos-acl", "private"),
                ("x-cos-grant-read", "uin=\"100000000011\""),
            ],
        );
        assert_eq!(
            CosSigner::http_string(&req).unwrap(),
            "put\n/exampleobject(腾讯云)\n\n\
             content-length=13&content-md5=mQ%2FfVh815F3k6TAUm8m0eg%3D%3D\
             &content-type=text%2Fplain&date=Thu%2C%2016%20May%202019%2006%3A45%3A51%20GMT\
             &host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com\
             &x-cos-acl=private&x-cos-grant-read=uin%3D%22100000000011%22\n"
        );
        let expected = format!(
            "q-sign-algorithm=sha1&q-ak={AK}&q-sign-time={key_time}&q-key-time={key_time}\
             &q-header-list=content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read\
             &q-url-param-list=&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172"
        );
        let creds = Credentials::new(AK, SK);
        assert_eq!(
            CosSigner::authorization(&req, &creds, key_time).unwrap(),
            expected
        );

        // Through `sign`: KeyTime starts 60 s before `now`.
        let signer = CosSigner::new(Duration::from_secs(7200 - 60));
        let now = UNIX_EPOCH + Duration::from_secs(1557989151 + 60);
        assert_eq!(signer.key_time(now).unwrap(), key_time);
        signer.sign(&mut req, &creds, now).unwrap();
        assert_eq!(req.header("authorization"), Some(expected.as_str()));
    }

    // DESIGN.md section 3, COS vector 2 (GET with response-* parameters).
    #[test]
    fn vector_get_with_params() {
        let key_time = "1557989753;1557996953";
        let mut req = request(Method::GET, &[("date", "Thu, 16 May 2019 06:55:53 GMT")]);
        req.query.push((
            "response-content-type".to_string(),
            "application/octet-stream".to_string(),
        ));
        req.query.push((
            "response-cache-control".to_string(),
            "max-age=600".to_string(),
        ));
        assert_eq!(
            CosSigner::http_string(&req).unwrap(),
            "get\n/exampleobject(腾讯云)\n\
             response-cache-control=max-age%3D600&response-content-type=application%2Foctet-stream\n\
             date=Thu%2C%2016%20May%202019%2006%3A55%3A53%20GMT\
             &host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com\n"
        );
        let auth = CosSigner::authorization(&req, &Credentials::new(AK, SK), key_time).unwrap();
        assert_eq!(
            auth,
            format!(
                "q-sign-algorithm=sha1&q-ak={AK}&q-sign-time={key_time}&q-key-time={key_time}\
                 &q-header-list=date;host\
                 &q-url-param-list=response-cache-control;response-content-type\
                 &q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012"
            )
        );
    }

    #[test]
    fn sign_sets_date_and_token_and_signs_them() {
        let mut req = request(Method::POST, &[("user-agent", "ossfs-rs")]);
        req.query.push(("uploads".to_string(), String::new()));
        let creds = Credentials::new(AK, SK).with_token("TOK");
        let now = UNIX_EPOCH + Duration::from_secs(1557989151);
        CosSigner::new(Duration::from_secs(3600))
            .sign(&mut req, &creds, now)
            .unwrap();
        assert_eq!(req.header("date"), Some("Thu, 16 May 2019 06:45:51 GMT"));
        assert_eq!(req.header("x-cos-security-token"), Some("TOK"));
        let auth = req.header("authorization").unwrap();
        assert!(
            auth.contains("&q-sign-time=1557989091;1557992751&"),
            "{auth}"
        );
        assert!(
            auth.contains(
                "&q-header-list=date;host;x-cos-security-token&q-url-param-list=uploads&"
            ),
            "{auth}"
        );
    }

    #[test]
    fn failure_leaves_request_unchanged() {
        let mut req = request(Method::GET, &[]);
        let before = format!("{:?}", req.headers);
        let err = CosSigner::new(Duration::from_secs(3600))
            .sign(
                &mut req,
                &Credentials::new(AK, SK),
                UNIX_EPOCH - Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(matches!(err, SignError::Clock(_)));
        assert_eq!(format!("{:?}", req.headers), before);
    }
}
