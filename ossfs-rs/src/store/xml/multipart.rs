//! Multipart, copy and delete-multiple documents: the replies we parse and
//! the two request bodies we build.
//!
//! Complete, CopyObject and UploadPartCopy can fail after `200 OK` on COS
//! and S3 (the status is sent before the work is done), so their parsers
//! return [`Outcome`] and treat an `<Error>` root as a failure, not as a
//! malformed reply. Delete-multiple gets the same treatment for safety.
//!
//! Request bodies are built by hand: they are two fixed shapes, and the only
//! subtle part, escaping keys, is done by [`tree::escape_text`] and checked
//! against our own parser in the tests.
//!
//! Imports: `store::types`, `store::xml`, `store::xml::list`,
//! `store::xml::tree` of the crate, besides std and external crates.

use std::time::SystemTime;

use super::list::UrlDecoding;
use super::tree::{self, Element};
use super::{
    ErrorDoc, Outcome, XmlError, optional_timestamp, parse_bool, parse_outcome, parse_root,
    parse_u32, parse_u64, required, unquote_etag,
};
use crate::store::types::{CompletedPart, DeleteFailure, PartInfo, PutResult};

/// The most keys one delete-multiple request may carry (all three services).
pub const MAX_DELETE_KEYS: usize = 1000;

/// `InitiateMultipartUploadResult`: the upload id.
pub fn parse_initiate_multipart(body: &[u8]) -> Result<String, XmlError> {
    const DOC: &str = "InitiateMultipartUploadResult";
    let root = parse_root(body, &[DOC])?;
    Ok(required(&root, DOC, "UploadId")?.trim().to_string())
}

/// `CompleteMultipartUploadResult` (the new object's ETag, unquoted) or an
/// `<Error>` sent with `200 OK`.
pub fn parse_complete_multipart(body: &[u8]) -> Result<Outcome<PutResult>, XmlError> {
    const DOC: &str = "CompleteMultipartUploadResult";
    Ok(match parse_outcome(body, DOC)? {
        Outcome::Done(root) => Outcome::Done(PutResult {
            etag: unquote_etag(required(&root, DOC, "ETag")?),
        }),
        Outcome::Failed(doc) => Outcome::Failed(doc),
    })
}

/// One page of `ListPartsResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartsPage {
    pub parts: Vec<PartInfo>,
    pub is_truncated: bool,
    /// Where the next page starts (`part-number-marker`); set when truncated.
    pub next_part_number_marker: Option<u32>,
}

/// `ListPartsResult`. A truncated page must say where the next one starts.
pub fn parse_list_parts(body: &[u8]) -> Result<PartsPage, XmlError> {
    const DOC: &str = "ListPartsResult";
    let root = parse_root(body, &[DOC])?;
    let parts = root
        .children_named("Part")
        .map(|part| {
            Ok(PartInfo {
                part_number: parse_u32("PartNumber", required(part, "Part", "PartNumber")?)?,
                etag: unquote_etag(required(part, "Part", "ETag")?),
                size: parse_u64("Size", required(part, "Part", "Size")?)?,
            })
        })
        .collect::<Result<Vec<_>, XmlError>>()?;
    let is_truncated = parse_bool(&root, "IsTruncated")?;
    let next_part_number_marker = root
        .child_text_nonempty("NextPartNumberMarker")
        .map(|v| parse_u32("NextPartNumberMarker", v))
        .transpose()?;
    if is_truncated && next_part_number_marker.is_none() {
        return Err(XmlError::TruncatedWithoutContinuation {
            document: DOC,
            element: "NextPartNumberMarker",
        });
    }
    Ok(PartsPage {
        parts,
        is_truncated,
        next_part_number_marker: next_part_number_marker.filter(|_| is_truncated),
    })
}

/// What a server-side copy (of an object or into a part) produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyResult {
    /// Without quotes.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// `CopyObjectResult` or `CopyPartResult`, or an `<Error>` sent with `200 OK`.
pub fn parse_copy_result(body: &[u8]) -> Result<Outcome<CopyResult>, XmlError> {
    let root = tree::parse(body)?;
    let document = match root.name.as_str() {
        "Error" => return Ok(Outcome::Failed(Box::new(ErrorDoc::from_element(&root)))),
        "CopyObjectResult" => "CopyObjectResult",
        "CopyPartResult" => "CopyPartResult",
        other => {
            return Err(XmlError::UnexpectedRoot {
                expected: "CopyObjectResult",
                found: other.to_string(),
            });
        }
    };
    Ok(Outcome::Done(CopyResult {
        etag: unquote_etag(required(&root, document, "ETag")?),
        last_modified: optional_timestamp(&root, "LastModified")?,
    }))
}

/// What a delete-multiple reply reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Keys reported deleted (none in quiet mode).
    pub deleted: Vec<String>,
    /// Keys that could not be deleted, with the service's code and message.
    pub failed: Vec<DeleteFailure>,
}

/// `DeleteResult`, or an `<Error>` document. An empty body is success with
/// nothing to report: OSS sends no body in quiet mode when every key went.
/// Keys are decoded when the reply carries `<EncodingType>url</EncodingType>`
/// (OSS does when asked).
pub fn parse_delete_result(
    body: &[u8],
    decoding: UrlDecoding,
) -> Result<Outcome<DeleteOutcome>, XmlError> {
    const DOC: &str = "DeleteResult";
    if tree::trim_start(body).is_empty() {
        return Ok(Outcome::Done(DeleteOutcome::default()));
    }
    let root = match parse_outcome(body, DOC)? {
        Outcome::Done(root) => root,
        Outcome::Failed(doc) => return Ok(Outcome::Failed(doc)),
    };
    let encoded = root
        .child_text("EncodingType")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("url"));
    let key_of = |node: &Element, parent: &'static str| -> Result<String, XmlError> {
        let raw = required(node, parent, "Key")?;
        if encoded {
            decoding.decode("Key", raw)
        } else {
            Ok(raw.to_string())
        }
    };
    let deleted = root
        .children_named("Deleted")
        .map(|d| key_of(d, "Deleted"))
        .collect::<Result<Vec<_>, _>>()?;
    let failed = root
        .children_named("Error")
        .map(|e| {
            Ok(DeleteFailure {
                key: key_of(e, "Error")?,
                code: e.child_text("Code").unwrap_or_default().trim().to_string(),
                message: e.child_text("Message").unwrap_or_default().to_string(),
            })
        })
        .collect::<Result<Vec<_>, XmlError>>()?;
    Ok(Outcome::Done(DeleteOutcome { deleted, failed }))
}

/// The body of CompleteMultipartUpload:
/// `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…`.
///
/// Parts are written in ascending part-number order whatever order they
/// come in (the services refuse any other order, and the numbers say what
/// the order is). ETags are written quoted, as the services return them and
/// as their SDKs send them back; one already quoted is not quoted twice.
pub fn complete_multipart_body(parts: &[CompletedPart]) -> String {
    let mut sorted: Vec<&CompletedPart> = parts.iter().collect();
    sorted.sort_by_key(|p| p.part_number);
    let mut body = String::with_capacity(40 + sorted.len() * 90);
    body.push_str("<CompleteMultipartUpload>");
    for part in sorted {
        body.push_str("<Part><PartNumber>");
        body.push_str(&part.part_number.to_string());
        body.push_str("</PartNumber><ETag>\"");
        tree::escape_text(part.etag.trim().trim_matches('"'), &mut body);
        body.push_str("\"</ETag></Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// The body of a delete-multiple request in quiet mode (only failures are
/// reported back):
/// `<Delete><Quiet>true</Quiet><Object><Key>…</Key></Object>…</Delete>`.
///
/// Keys are XML-escaped (`&`, `<`, `>`, and CR as `&#13;` so the server's
/// parser does not turn it into LF). A key with a control character XML 1.0
/// cannot carry at all is refused with [`XmlError::UnencodableKey`]: delete
/// it with a single DELETE. At most [`MAX_DELETE_KEYS`] keys.
pub fn delete_objects_body<S: AsRef<str>>(keys: &[S]) -> Result<String, XmlError> {
    if keys.len() > MAX_DELETE_KEYS {
        return Err(XmlError::TooManyKeys {
            count: keys.len(),
            max: MAX_DELETE_KEYS,
        });
    }
    let mut body =
        String::with_capacity(40 + keys.iter().map(|k| k.as_ref().len() + 30).sum::<usize>());
    body.push_str("<Delete><Quiet>true</Quiet>");
    for key in keys {
        let key = key.as_ref();
        if !key.chars().all(tree::is_xml10_char) {
            return Err(XmlError::UnencodableKey {
                key: key.to_string(),
            });
        }
        body.push_str("<Object><Key>");
        tree::escape_text(key, &mut body);
        body.push_str("</Key></Object>");
    }
    body.push_str("</Delete>");
    Ok(body)
}

#[cfg(test)]
mod tests;
