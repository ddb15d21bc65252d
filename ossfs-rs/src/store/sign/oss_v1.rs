//! OSS signature V1: `Authorization: OSS <ak>:<base64(HMAC-SHA1(sk, StringToSign))>`,
//! and the presigned-URL form of the same signature.
//!
//! ```text
//! StringToSign = VERB \n Content-MD5 \n Content-Type \n Date \n
//!                CanonicalizedOSSHeaders CanonicalizedResource
//! ```
//!
//! The resource is the *raw* (unencoded) `/bucket/key` followed by the
//! signed sub-resources only, sorted, written `k=v` (raw value) or `k`. Which
//! query parameters are sub-resources is a fixed list (oss2's
//! `_subresource_key_set`, which the service checks against); everything
//! else, such as the listing parameters `list-type`, `prefix`, `marker`,
//! `max-keys`, `delimiter`, `encoding-type` and `start-after`, is sent but
//! not signed. The date line is `x-oss-date` when the request has one (as
//! oss2 does), else `Date`, which the signer sets when missing.
//! Reference: <https://help.aliyun.com/zh/oss/developer-reference/include-signatures-in-the-authorization-header>.
//!
//! Imports: `store::sign::{clock, digest, encode, headers}` and `store::credentials`.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{HttpRequest, SignError, Signer, clock, digest, encode, headers};
use crate::store::credentials::Credentials;

/// Query parameters that OSS V1 signs (oss2 2.19 `_subresource_key_set`).
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "accessPoint",
    "accessPointPolicy",
    "acl",
    "append",
    "asyncFetch",
    "bucketArchiveDirectRead",
    "bucketInfo",
    "callback",
    "callback-var",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "encryption",
    "endTime",
    "group",
    "httpsConfig",
    "inventory",
    "inventoryId",
    "lifecycle",
    "link",
    "live",
    "location",
    "logging",
    "metaQuery",
    "objectInfo",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "publicAccessBlock",
    "qos",
    "qosInfo",
    "qosRequester",
    "redundancyTransition",
    "referer",
    "regionList",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "requestPayment",
    "requesterQosInfo",
    "resourceGroup",
    "resourcePool",
    "resourcePoolBuckets",
    "resourcePoolInfo",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "stat",
    "status",
    "style",
    "styleName",
    "symlink",
    "tagging",
    "transferAcceleration",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "vod",
    "website",
    "worm",
    "wormExtend",
    "wormId",
    "x-oss-ac-forward-allow",
    "x-oss-ac-source-ip",
    "x-oss-ac-subnet-mask",
    "x-oss-ac-vpc-id",
    "x-oss-access-point-name",
    "x-oss-async-process",
    "x-oss-process",
    "x-oss-redundancy-transition-taskid",
    "x-oss-request-payer",
    "x-oss-target-redundancy-type",
    "x-oss-traffic-limit",
    "x-oss-write-get-object-response",
];

/// Whether query parameter `key` is a signed sub-resource (case-sensitive,
/// as the service compares it).
pub fn is_signed_subresource(key: &str) -> bool {
    SIGNED_SUBRESOURCES.binary_search(&key).is_ok()
}

/// Signs OSS requests with signature V1 (HMAC-SHA1).
#[derive(Debug, Clone, Copy, Default)]
pub struct OssV1Signer;

impl OssV1Signer {
    /// The V1 signer (it has no settings: V1 has no region or scope).
    pub fn new() -> Self {
        Self
    }

    /// The string to sign for header authorization, from the request as it
    /// stands: the date line is `x-oss-date` or `Date` (empty if neither).
    pub fn string_to_sign(&self, req: &HttpRequest) -> Result<String, SignError> {
        let date = match headers::value(req, "x-oss-date")? {
            Some(d) => d,
            None => headers::value_or_empty(req, "date")?,
        };
        build_string_to_sign(req, &date, &[])
    }

    /// The string to sign for a presigned URL valid until `expires` (Unix
    /// seconds). With a token, `security-token` joins the sub-resources.
    pub fn presign_string_to_sign(
        &self,
        req: &HttpRequest,
        creds: &Credentials,
        expires: u64,
    ) -> Result<String, SignError> {
        let token: Vec<(String, String)> = creds
            .security_token
            .iter()
            .map(|t| ("security-token".to_string(), t.clone()))
            .collect();
        build_string_to_sign(req, &expires.to_string(), &token)
    }

    /// `base64(HMAC-SHA1(secret, string_to_sign))`.
    pub fn signature(secret: &str, string_to_sign: &str) -> String {
        BASE64.encode(digest::hmac_sha1(
            secret.as_bytes(),
            string_to_sign.as_bytes(),
        ))
    }

    /// A URL for `req` that anyone can use until `expires`: the request's
    /// own URL plus `OSSAccessKeyId`, `Expires`, `Signature` and, with a
    /// token, `security-token`. Headers in the string to sign (Content-Type,
    /// Content-MD5, `x-oss-*`) must be sent as given when the URL is used.
    pub fn presign(
        &self,
        req: &HttpRequest,
        creds: &Credentials,
        expires: SystemTime,
    ) -> Result<String, SignError> {
        let expires = clock::unix_secs(expires)?;
        let sts = self.presign_string_to_sign(req, creds, expires)?;
        let signature = Self::signature(&creds.secret_access_key, &sts);
        let mut auth = vec![
            ("OSSAccessKeyId".to_string(), creds.access_key_id.clone()),
            ("Expires".to_string(), expires.to_string()),
            ("Signature".to_string(), signature),
        ];
        if let Some(token) = &creds.security_token {
            auth.push(("security-token".to_string(), token.clone()));
        }
        let auth = encode::join_pairs(
            &encode::encode_pairs(&auth, encode::PairOrder::AsGiven),
            encode::EmptyValue::KeyOnly,
        );
        let url = req.url();
        let sep = if req.query.is_empty() { '?' } else { '&' };
        Ok(format!("{url}{sep}{auth}"))
    }
}

impl Signer for OssV1Signer {
    fn sign(
        &self,
        req: &mut HttpRequest,
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        req.try_update(|out| {
            out.set_header_if_absent("date", || clock::http_date(now))?;
            out.set_header_if_some("x-oss-security-token", creds.security_token.as_deref())?;
            let sts = self.string_to_sign(out)?;
            let signature = Self::signature(&creds.secret_access_key, &sts);
            out.set_header(
                "authorization",
                &format!("OSS {}:{}", creds.access_key_id, signature),
            )
        })
    }
}

/// `VERB\nMD5\nTYPE\n<date_line>\n<x-oss headers><resource>`, with `extra`
/// sub-resources (the presign token) merged into the resource.
fn build_string_to_sign(
    req: &HttpRequest,
    date_line: &str,
    extra: &[(String, String)],
) -> Result<String, SignError> {
    let mut s = String::with_capacity(256);
    s.push_str(req.method.as_str());
    s.push('\n');
    s.push_str(&headers::value_or_empty(req, "content-md5")?);
    s.push('\n');
    s.push_str(&headers::value_or_empty(req, "content-type")?);
    s.push('\n');
    s.push_str(date_line);
    s.push('\n');
    for (name, value) in headers::select(req, |n| n.starts_with("x-oss-"))? {
        s.push_str(&name);
        s.push(':');
        s.push_str(&value);
        s.push('\n');
    }
    s.push_str(&canonical_resource(req, extra));
    Ok(s)
}

/// The raw `/bucket/key` plus the sorted signed sub-resources.
pub fn canonical_resource(req: &HttpRequest, extra: &[(String, String)]) -> String {
    let mut resource = if req.bucket.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/{}", req.bucket, req.key)
    };
    let mut subs: Vec<(String, String)> = req
        .query
        .iter()
        .chain(extra)
        .filter(|(k, _)| is_signed_subresource(k))
        .cloned()
        .collect();
    if !subs.is_empty() {
        subs.sort();
        resource.push('?');
        resource.push_str(&encode::join_pairs(&subs, encode::EmptyValue::KeyOnly));
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use std::time::{Duration, UNIX_EPOCH};

    fn put(bucket: &str, key: &str, hdrs: &[(&str, &str)]) -> HttpRequest {
        let mut req = HttpRequest::new(
            Method::PUT,
            "https",
            format!("{bucket}.oss-cn-hangzhou.aliyuncs.com"),
            bucket,
            key,
        );
        for (k, v) in hdrs {
            req.set_header(k, v).unwrap();
        }
        req
    }

    const V1_STS: &str = "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n/examplebucket/nelson";

    fn vector1_request() -> HttpRequest {
        put(
            "examplebucket",
            "nelson",
            &[
                ("content-md5", "eB5eJF1ptWaXm4bijSPyxw=="),
                ("content-type", "text/html"),
                ("date", "Wed, 28 Dec 2022 10:27:41 GMT"),
                ("x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT"),
                ("x-oss-meta-author", "alice"),
                ("x-oss-meta-magic", "abracadabra"),
            ],
        )
    }

    // DESIGN.md section 3, OSS V1 vector 1 (given string).
    #[test]
    fn vector1_hmac_of_given_string() {
        assert_eq!(
            OssV1Signer::signature("sk", V1_STS),
            "kSHKmLxlyEAKtZPkJhG9bZb5k7M="
        );
        assert_eq!(
            OssV1Signer::signature("sk", &format!("{V1_STS}?acl")),
            "/afkugFbmWDQ967j1vr6zygBLQk="
        );
    }

    // DESIGN.md section 3, OSS V1 vector 1, built from a request.
    #[test]
    fn vector1_built_from_request() {
        let req = vector1_request();
        assert_eq!(OssV1Signer.string_to_sign(&req).unwrap(), V1_STS);

        let mut signed = req.clone();
        let creds = Credentials::new("ak", "sk");
        // `now` differs from the Date already present: Date is kept.
        OssV1Signer
            .sign(&mut signed, &creds, UNIX_EPOCH + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            signed.header("authorization"),
            Some("OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=")
        );
        assert_eq!(signed.header("date"), Some("Wed, 28 Dec 2022 10:27:41 GMT"));

        let mut acl = req;
        acl.query.push(("acl".to_string(), String::new()));
        OssV1Signer.sign(&mut acl, &creds, UNIX_EPOCH).unwrap();
        assert_eq!(
            acl.header("authorization"),
            Some("OSS ak:/afkugFbmWDQ967j1vr6zygBLQk=")
        );
    }

    // DESIGN.md section 3, OSS V1 vector 2, from the given string and a request.
    #[test]
    fn vector2() {
        let sk = "OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV";
        let sts = "PUT\nODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=\ntext/html\nThu, 17 Nov 2005 18:49:58 GMT\nx-oss-magic:abracadabra\nx-oss-meta-author:foo@bar.com\n/oss-example/nelson";
        assert_eq!(
            OssV1Signer::signature(sk, sts),
            "26NBxoKdsyly4EDv6inkoDft/yA="
        );

        let mut req = put(
            "oss-example",
            "nelson",
            &[
                (
                    "content-md5",
                    "ODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=",
                ),
                ("content-type", "text/html"),
                ("x-oss-meta-author", "foo@bar.com"),
                ("x-oss-magic", "abracadabra"),
            ],
        );
        // The signer sets Date from `now`: 2005-11-17T18:49:58Z.
        let now = UNIX_EPOCH + Duration::from_secs(1_132_253_398);
        OssV1Signer
            .sign(&mut req, &Credentials::new("44CF9590006BF252F707", sk), now)
            .unwrap();
        assert_eq!(req.header("date"), Some("Thu, 17 Nov 2005 18:49:58 GMT"));
        assert_eq!(OssV1Signer.string_to_sign(&req).unwrap(), sts);
        assert_eq!(
            req.header("authorization"),
            Some("OSS 44CF9590006BF252F707:26NBxoKdsyly4EDv6inkoDft/yA=")
        );
    }

    #[test]
    fn resource_signs_only_subresources_raw_and_sorted() {
        let mut req = put("b", "dir/a b+ü.txt", &[]);
        for (k, v) in [
            ("list-type", "2"),
            ("prefix", "dir/"),
            ("delimiter", "/"),
            ("max-keys", "100"),
            ("marker", "m"),
            ("encoding-type", "url"),
            ("start-after", "s"),
            ("uploadId", "U/1"),
            ("partNumber", "3"),
            ("continuation-token", "tok en"),
            ("uploads", ""),
        ] {
            req.query.push((k.to_string(), v.to_string()));
        }
        assert_eq!(
            canonical_resource(&req, &[]),
            "/b/dir/a b+ü.txt?continuation-token=tok en&partNumber=3&uploadId=U/1&uploads"
        );
        let mut service = req.clone();
        service.bucket = String::new();
        service.query.clear();
        assert_eq!(canonical_resource(&service, &[]), "/");
    }

    #[test]
    fn subresource_list_is_sorted_for_binary_search() {
        assert!(SIGNED_SUBRESOURCES.windows(2).all(|w| w[0] < w[1]));
        for k in [
            "acl",
            "append",
            "position",
            "uploads",
            "uploadId",
            "partNumber",
            "symlink",
            "continuation-token",
            "security-token",
            "delete",
            "response-content-type",
        ] {
            assert!(is_signed_subresource(k), "{k}");
        }
        for k in [
            "list-type",
            "prefix",
            "marker",
            "max-keys",
            "delimiter",
            "encoding-type",
            "start-after",
            "max-parts",
            "part-number-marker",
        ] {
            assert!(!is_signed_subresource(k), "{k}");
        }
    }

    #[test]
    fn token_header_is_set_and_signed() {
        let mut req = put("b", "k", &[]);
        let creds = Credentials::new("ak", "sk").with_token("TOKEN");
        OssV1Signer
            .sign(
                &mut req,
                &creds,
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )
            .unwrap();
        assert_eq!(req.header("x-oss-security-token"), Some("TOKEN"));
        let sts = OssV1Signer.string_to_sign(&req).unwrap();
        assert!(sts.contains("\nx-oss-security-token:TOKEN\n/b/k"), "{sts}");
    }

    #[test]
    fn presign_string_uses_expires_and_token_subresource() {
        let mut req = HttpRequest::new(
            Method::GET,
            "https",
            "b.oss-cn-hangzhou.aliyuncs.com",
            "b",
            "a b",
        );
        req.query.push(("uploadId".to_string(), "u".to_string()));
        let creds = Credentials::new("ak", "sk").with_token("T+/=");
        let expires = UNIX_EPOCH + Duration::from_secs(1_700_000_600);
        assert_eq!(
            OssV1Signer
                .presign_string_to_sign(&req, &creds, 1_700_000_600)
                .unwrap(),
            "GET\n\n\n1700000600\n/b/a b?security-token=T+/=&uploadId=u"
        );
        let url = OssV1Signer.presign(&req, &creds, expires).unwrap();
        let sig = OssV1Signer::signature(
            "sk",
            "GET\n\n\n1700000600\n/b/a b?security-token=T+/=&uploadId=u",
        );
        assert_eq!(
            url,
            format!(
                "https://b.oss-cn-hangzhou.aliyuncs.com/a%20b?uploadId=u&OSSAccessKeyId=ak&Expires=1700000600&Signature={}&security-token=T%2B%2F%3D",
                encode::uri_encode(&sig, true)
            )
        );
    }

    #[test]
    fn failure_leaves_request_unchanged() {
        let mut req = put("b", "k", &[]);
        req.headers.insert(
            "x-oss-meta-bad",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let before = format!("{:?}", req.headers);
        let err = OssV1Signer
            .sign(&mut req, &Credentials::new("ak", "sk"), UNIX_EPOCH)
            .unwrap_err();
        assert!(matches!(err, SignError::InvalidHeader(ref n) if n == "x-oss-meta-bad"));
        assert_eq!(format!("{:?}", req.headers), before);
        assert!(req.header("authorization").is_none());

        let mut req = put("b", "k", &[]);
        let err = OssV1Signer
            .sign(
                &mut req,
                &Credentials::new("ak", "sk"),
                UNIX_EPOCH - Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(matches!(err, SignError::Clock(_)));
        assert!(req.headers.is_empty());
    }
}
