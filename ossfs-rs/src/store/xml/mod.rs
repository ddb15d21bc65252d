//! The XML documents of OSS, COS and S3: parsing replies and building
//! request bodies. Pure functions over bytes and strings, no I/O.
//!
//! The three services speak the same S3-shaped XML with small differences
//! (a root namespace or none, `HostId` or `TraceId`, OSS's signature
//! diagnostics, how `encoding-type=url` encodes a space). Every parser here
//! reads a small owned tree (module `tree`) and picks fields by local name, so a
//! namespace, an unknown extra element or interleaved repeated elements never
//! matter, and text (object keys) is kept byte for byte.
//!
//! A malformed reply is a typed [`XmlError`] that says which document and
//! which element were wrong; it converts into [`StoreError::Malformed`].
//! A reply that is a well-formed `<Error>` document where a result was
//! expected (COS and S3 answer a copy or a complete with `200 OK` and an
//! error body) is not a parse failure: those parsers return
//! [`Outcome::Failed`] with the [`ErrorDoc`], and the caller maps it with
//! [`ErrorDoc::to_store_error`] like any other error reply.
//!
//! What the client does with these functions:
//!
//! - any non-2xx reply: [`parse_error`] (`None` means no usable document;
//!   map from the status alone);
//! - listings: [`parse_list_page`] with the dialect's [`UrlDecoding`];
//! - multipart: [`parse_initiate_multipart`], [`parse_complete_multipart`],
//!   [`parse_list_parts`], [`complete_multipart_body`];
//! - copies: [`parse_copy_result`] for CopyObject and UploadPartCopy;
//! - delete-multiple: [`delete_objects_body`] and [`parse_delete_result`].
//!
//! Imports (besides its own submodules): `store::error` of the crate, besides
//! std and external crates.

mod list;
mod multipart;
mod tree;

use std::fmt;
use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::error::StoreError;

pub use list::{ListDocument, UrlDecoding, parse_list_page, parse_list_v1, parse_list_v2};
pub use multipart::{
    CopyResult, DeleteOutcome, MAX_DELETE_KEYS, PartsPage, complete_multipart_body,
    delete_objects_body, parse_complete_multipart, parse_copy_result, parse_delete_result,
    parse_initiate_multipart, parse_list_parts,
};

/// Why a reply (or a request body we were asked to build) is not what the
/// protocol says it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is empty where a document was expected.
    #[error("the reply has an empty body where an XML document was expected")]
    Empty,

    /// The body is not well-formed XML.
    #[error("the reply is not well-formed XML (at byte {position}): {detail}")]
    Syntax { position: u64, detail: String },

    /// A well-formed document of the wrong kind.
    #[error("expected a <{expected}> document, got <{found}>")]
    UnexpectedRoot {
        expected: &'static str,
        found: String,
    },

    /// A required element is missing or empty.
    #[error("<{document}> lacks a required <{element}> element")]
    MissingElement {
        document: &'static str,
        element: &'static str,
    },

    /// An element holds a value of the wrong form.
    #[error("<{element}> holds {value:?}, which is not {expected}")]
    InvalidValue {
        element: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A truncated listing that does not say where the next page starts;
    /// following it would repeat or lose entries.
    #[error(
        "<{document}> says the result is truncated but gives no way to continue (no <{element}>); the server is not following the protocol"
    )]
    TruncatedWithoutContinuation {
        document: &'static str,
        element: &'static str,
    },

    /// A key that XML 1.0 cannot carry, so it cannot go in a request body.
    #[error(
        "the key {key:?} contains a control character that an XML request body cannot carry; delete it with a single DELETE request instead"
    )]
    UnencodableKey { key: String },

    /// More keys than one delete-multiple request may carry.
    #[error("{count} keys in one delete-multiple request; the services accept at most {max}")]
    TooManyKeys { count: usize, max: usize },
}

impl XmlError {
    fn syntax_at(reader: &quick_xml::reader::Reader<&[u8]>, detail: &str) -> Self {
        XmlError::Syntax {
            position: reader.error_position(),
            detail: detail.to_string(),
        }
    }
}

impl From<XmlError> for StoreError {
    fn from(e: XmlError) -> Self {
        StoreError::Malformed(e.to_string())
    }
}

/// The result of a call whose `200 OK` reply may still be an error document
/// (CopyObject, UploadPartCopy and CompleteMultipartUpload on COS and S3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The expected result document.
    Done(T),
    /// An `<Error>` document: the operation failed (boxed: it is large and
    /// rare).
    Failed(Box<ErrorDoc>),
}

/// An `<Error>` document, as all three services send it.
///
/// `signature_provided` echoes our request's signature; it is kept for
/// completeness but never shown by `Debug`. The string-to-sign and canonical
/// request are safe to log (they hold no secret) and are what an operator
/// needs to see on `SignatureDoesNotMatch`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ErrorDoc {
    /// `NoSuchKey`, `SignatureDoesNotMatch`, ...; empty if the document had none.
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// `HostId` (OSS, S3).
    pub host_id: Option<String>,
    /// `TraceId` (COS).
    pub trace_id: Option<String>,
    /// `Resource` (COS, S3).
    pub resource: Option<String>,
    /// `Key` (OSS, S3, when the error is about one key).
    pub key: Option<String>,
    /// OSS `EC`: the detailed error code its help pages are indexed by.
    pub ec: Option<String>,
    /// `OSSAccessKeyId` / `AWSAccessKeyId`: which access key the server saw
    /// (an identifier, not a secret).
    pub access_key_id: Option<String>,
    /// `StringToSign` (OSS, S3): what the server signed.
    pub string_to_sign: Option<String>,
    /// `CanonicalRequest` (OSS V4, S3 SigV4).
    pub canonical_request: Option<String>,
    /// `SignatureProvided`: the signature we sent. Redacted from `Debug`.
    pub signature_provided: Option<String>,
}

impl fmt::Debug for ErrorDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorDoc")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("request_id", &self.request_id)
            .field("host_id", &self.host_id)
            .field("trace_id", &self.trace_id)
            .field("resource", &self.resource)
            .field("key", &self.key)
            .field("ec", &self.ec)
            .field("access_key_id", &self.access_key_id)
            .field("string_to_sign", &self.string_to_sign)
            .field("canonical_request", &self.canonical_request)
            .field(
                "signature_provided",
                &self.signature_provided.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ErrorDoc {
    /// The typed store error for this document (see
    /// [`StoreError::from_service`]); `key` and `bucket` name what the
    /// request was about.
    pub fn to_store_error(&self, status: u16, key: &str, bucket: &str) -> StoreError {
        StoreError::from_service(
            status,
            &self.code,
            &self.message,
            self.request_id.clone(),
            key,
            bucket,
        )
    }

    fn from_element(root: &tree::Element) -> Self {
        let opt = |name: &str| root.child_text_nonempty(name).map(str::to_string);
        ErrorDoc {
            code: root
                .child_text("Code")
                .unwrap_or_default()
                .trim()
                .to_string(),
            message: root.child_text("Message").unwrap_or_default().to_string(),
            request_id: opt("RequestId"),
            host_id: opt("HostId"),
            trace_id: opt("TraceId"),
            resource: opt("Resource"),
            key: opt("Key"),
            ec: opt("EC"),
            access_key_id: opt("OSSAccessKeyId").or_else(|| opt("AWSAccessKeyId")),
            string_to_sign: opt("StringToSign"),
            canonical_request: opt("CanonicalRequest"),
            signature_provided: opt("SignatureProvided"),
        }
    }
}

/// Parse an `<Error>` document. `None` when the body is empty, not XML, or
/// some other document (a HEAD reply, an HTML page from a proxy): the caller
/// then maps the HTTP status alone.
pub fn parse_error(body: &[u8]) -> Option<ErrorDoc> {
    let root = tree::parse(body).ok()?;
    (root.name == "Error").then(|| ErrorDoc::from_element(&root))
}

/// Whether a body (typically of a `200 OK`) is an `<Error>` document. Reads
/// only up to the root element's start tag, so it is cheap to call on every
/// copy and complete reply before parsing the expected result.
pub fn is_error_document(body: &[u8]) -> bool {
    tree::root_name(body).as_deref() == Some("Error")
}

/// Parse `body` and check its root is `expected`; an `<Error>` root becomes
/// [`Outcome::Failed`].
fn parse_outcome(body: &[u8], expected: &'static str) -> Result<Outcome<tree::Element>, XmlError> {
    let root = tree::parse(body)?;
    if root.name == "Error" {
        return Ok(Outcome::Failed(Box::new(ErrorDoc::from_element(&root))));
    }
    check_root(&root, &[expected])?;
    Ok(Outcome::Done(root))
}

/// Parse `body` and check its root is one of `expected` (the first is named
/// in the error).
fn parse_root(body: &[u8], expected: &[&'static str]) -> Result<tree::Element, XmlError> {
    let root = tree::parse(body)?;
    check_root(&root, expected)?;
    Ok(root)
}

fn check_root(root: &tree::Element, expected: &[&'static str]) -> Result<(), XmlError> {
    if expected.contains(&root.name.as_str()) {
        return Ok(());
    }
    Err(XmlError::UnexpectedRoot {
        expected: expected.first().copied().unwrap_or("?"),
        found: root.name.clone(),
    })
}

/// A required, non-empty child's text.
fn required<'a>(
    parent: &'a tree::Element,
    document: &'static str,
    element: &'static str,
) -> Result<&'a str, XmlError> {
    parent
        .child_text_nonempty(element)
        .ok_or(XmlError::MissingElement { document, element })
}

/// `IsTruncated`-style booleans; absent means false.
fn parse_bool(parent: &tree::Element, element: &'static str) -> Result<bool, XmlError> {
    match parent.child_text(element).map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(XmlError::InvalidValue {
            element,
            value: v.to_string(),
            expected: "true or false",
        }),
    }
}

fn parse_u64(element: &'static str, value: &str) -> Result<u64, XmlError> {
    value.trim().parse().map_err(|_| XmlError::InvalidValue {
        element,
        value: value.to_string(),
        expected: "a non-negative integer",
    })
}

fn parse_u32(element: &'static str, value: &str) -> Result<u32, XmlError> {
    value.trim().parse().map_err(|_| XmlError::InvalidValue {
        element,
        value: value.to_string(),
        expected: "a non-negative 32-bit integer",
    })
}

/// An ETag without its surrounding quotes (`"abc"` and `abc` both give `abc`).
pub(crate) fn unquote_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// An ISO 8601 timestamp as the services write it (`2012-02-24T08:42:32.000Z`).
/// RFC 3339 with any offset is accepted; a timestamp without an offset, as
/// some S3-compatible servers send, is read as UTC.
pub(crate) fn parse_timestamp(element: &'static str, value: &str) -> Result<SystemTime, XmlError> {
    let value = value.trim();
    let parsed = OffsetDateTime::parse(value, &Rfc3339).or_else(|_| {
        PrimitiveDateTime::parse(
            value,
            format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            ),
        )
        .map(PrimitiveDateTime::assume_utc)
    });
    parsed
        .map(SystemTime::from)
        .map_err(|_| XmlError::InvalidValue {
            element,
            value: value.to_string(),
            expected: "an ISO 8601 timestamp such as 2012-02-24T08:42:32.000Z",
        })
}

/// An optional timestamp child: absent or empty is `None`, malformed is an error.
fn optional_timestamp(
    parent: &tree::Element,
    element: &'static str,
) -> Result<Option<SystemTime>, XmlError> {
    parent
        .child_text_nonempty(element)
        .map(|v| parse_timestamp(element, v))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// OSS, from "Troubleshoot signature errors"
    /// (<https://www.alibabacloud.com/help/en/oss/developer-reference/faq-24>).
    const OSS_SIGNATURE_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>SignatureDoesNotMatch</Code>
  <Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>
  <RequestId>646DCB189AE2D1333018****</RequestId>
  <HostId>bucket.oss-cn-hangzhou.aliyuncs.com</HostId>
  <OSSAccessKeyId>LTAI****************</OSSAccessKeyId>
  <SignatureProvided>tPN3LTAI******** </SignatureProvided>
  <StringToSign>PUT\n\n\nTue, 23 May 2023 15:24:55 GMT\n/bucket/?acl</StringToSign>
  <StringToSignBytes>50 55 54 0A 0A 0A 54 75 65 2C 20 32 33 20 4D 61 79 20 32 30 32 33 20 31 35 3A 32 34 3A 35 35 20 47 4D 54 0A 2F 64 69 6E 61 72 79 2F 3F 61 63 6C </StringToSignBytes>
  <EC>0002-00000040</EC>
</Error>"#;

    /// COS, shape of the error document in "错误码"
    /// (<https://cloud.tencent.com/document/product/436/7730>): `TraceId`, no `HostId`.
    const COS_NO_SUCH_KEY: &str = r#"<?xml version='1.0' encoding='utf-8' ?>
<Error>
	<Code>NoSuchKey</Code>
	<Message>The specified key does not exist.</Message>
	<Resource>examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject</Resource>
	<RequestId>NjA3OGY2ZDBfNDk2NTBiMDlfNWMzZl8xYjRmOGM4****</RequestId>
	<TraceId>OGVmYzZiMmQzYjA2OWNhODk0NTRkMTBiOWVmMDAxODc0OWRkZjk0ZDM1NmI1M2E2MTRlY2MzZDhmNmI5MWI1OTBjYzE2MjAxN2M1MzJiOTdkZjMxMDVlYTZjN2FiMmI0NTk3NWFiNjAyMzdlM2RlMmVmOGNiNWIxYTdmNDMwNDY=</TraceId>
</Error>"#;

    /// S3, the error-response example of "Error responses"
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>).
    const S3_NO_SUCH_KEY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>"#;

    /// S3 SigV4 mismatch (elements as S3 sends them, values shortened).
    const S3_SIGNATURE_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256
20130524T000000Z
20130524/us-east-1/s3/aws4_request
7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972</StringToSign><SignatureProvided>f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41</SignatureProvided><CanonicalRequest>GET
/test.txt

host:examplebucket.s3.amazonaws.com
range:bytes=0-9
x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-amz-date:20130524T000000Z

host;range;x-amz-content-sha256;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</CanonicalRequest><RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;

    #[test]
    fn oss_signature_error_keeps_the_diagnostics() {
        let doc = parse_error(OSS_SIGNATURE_ERROR.as_bytes()).unwrap();
        assert_eq!(doc.code, "SignatureDoesNotMatch");
        assert!(
            doc.message
                .starts_with("The request signature we calculated")
        );
        assert_eq!(doc.request_id.as_deref(), Some("646DCB189AE2D1333018****"));
        assert_eq!(
            doc.host_id.as_deref(),
            Some("bucket.oss-cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(doc.ec.as_deref(), Some("0002-00000040"));
        assert_eq!(doc.access_key_id.as_deref(), Some("LTAI****************"));
        assert_eq!(
            doc.string_to_sign.as_deref(),
            Some(r"PUT\n\n\nTue, 23 May 2023 15:24:55 GMT\n/bucket/?acl")
        );
        assert_eq!(doc.signature_provided.as_deref(), Some("tPN3LTAI******** "));
        let e = doc.to_store_error(403, "k", "bucket");
        assert!(
            matches!(e, StoreError::AccessDenied { ref code, .. } if code == "SignatureDoesNotMatch")
        );
    }

    #[test]
    fn debug_redacts_the_signature() {
        let doc = parse_error(S3_SIGNATURE_ERROR.as_bytes()).unwrap();
        let shown = format!("{doc:?}");
        assert!(!shown.contains("f0e8bdb87c96"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("20130524/us-east-1/s3/aws4_request"));
        assert!(
            doc.canonical_request
                .as_deref()
                .unwrap()
                .starts_with("GET\n/test.txt\n\n")
        );
        assert_eq!(doc.access_key_id.as_deref(), Some("AKIAIOSFODNN7EXAMPLE"));
    }

    #[test]
    fn cos_and_s3_not_found() {
        let cos = parse_error(COS_NO_SUCH_KEY.as_bytes()).unwrap();
        assert_eq!(cos.code, "NoSuchKey");
        assert!(cos.trace_id.as_deref().unwrap().starts_with("OGVmYzZi"));
        assert_eq!(cos.host_id, None);
        assert_eq!(
            cos.resource.as_deref(),
            Some("examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject")
        );
        let s3 = parse_error(S3_NO_SUCH_KEY.as_bytes()).unwrap();
        assert_eq!(s3.request_id.as_deref(), Some("4442587FB7D0A2F9"));
        assert_eq!(s3.resource.as_deref(), Some("/mybucket/myfoto.jpg"));
        let e = s3.to_store_error(404, "myfoto.jpg", "mybucket");
        assert!(matches!(e, StoreError::NotFound { ref key } if key == "myfoto.jpg"));
    }

    #[test]
    fn parse_error_refuses_what_is_not_an_error_document() {
        assert_eq!(parse_error(b""), None);
        assert_eq!(
            parse_error(b"<html><body>502 Bad Gateway</body></html>"),
            None
        );
        assert_eq!(parse_error(b"Service Unavailable"), None);
        assert_eq!(parse_error(b"<Error><Code>X</Code>"), None);
        let doc = parse_error(b"<Error/>").unwrap();
        assert_eq!(doc.code, "");
    }

    #[test]
    fn recognises_error_documents_cheaply() {
        assert!(is_error_document(S3_NO_SUCH_KEY.as_bytes()));
        assert!(is_error_document(
            b"\n\n      <Error><Code>InternalError</Code></Error>"
        ));
        assert!(is_error_document(b"<Error>truncated"));
        assert!(!is_error_document(
            b"<CopyObjectResult><ETag>x</ETag></CopyObjectResult>"
        ));
        assert!(!is_error_document(b""));
        assert!(!is_error_document(b"Error"));
    }

    #[test]
    fn converts_into_malformed() {
        let e: StoreError = XmlError::MissingElement {
            document: "InitiateMultipartUploadResult",
            element: "UploadId",
        }
        .into();
        assert!(matches!(e, StoreError::Malformed(ref m) if m.contains("UploadId")));
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("LastModified", "2012-02-24T08:42:32.000Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_330_072_952));
        let t = parse_timestamp("LastModified", "2012-02-24T08:42:32.250Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_330_072_952_250));
        let t = parse_timestamp("LastModified", "2012-02-24T16:42:32+08:00").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_330_072_952));
        let t = parse_timestamp("LastModified", "2012-02-24T08:42:32").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_330_072_952));
        let t = parse_timestamp("LastModified", "1969-12-31T23:59:59Z").unwrap();
        assert_eq!(t, UNIX_EPOCH - Duration::from_secs(1));
        for bad in [
            "",
            "yesterday",
            "Fri, 24 Feb 2012 08:42:32 GMT",
            "2012-02-30T00:00:00Z",
        ] {
            assert!(parse_timestamp("LastModified", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn etag_quotes() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
        assert_eq!(unquote_etag(" \"abc-2\" "), "abc-2");
    }
}
