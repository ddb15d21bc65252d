//! Listing replies (`ListBucketResult`, V2 and V1) into a [`ListPage`].
//!
//! With `encoding-type=url` (which the client should always send: XML 1.0
//! cannot carry keys with control characters) the services percent-encode
//! names in the reply, but not in the same way. What each vendor's own SDK
//! does to decode, which is what we follow:
//!
//! | | decoding | `+` | `NextContinuationToken` |
//! |---|---|---|---|
//! | OSS (oss2 `xml_utils._find_object`) | `urllib.parse.unquote` | stays `+` | decoded |
//! | COS (cos-python-sdk-v5 `cos_comm.decode_result`) | `urllib.parse.unquote` | stays `+` | (V1 only) |
//! | S3 (botocore `handlers._decode_list_object`, `compat.unquote_str`) | `urllib.parse.unquote_plus` | a space | left as is |
//!
//! So on S3 a `+` in the reply means a space (for that reading to be right,
//! S3 must write a literal `+` as `%2B`), while on OSS and COS it is a literal
//! `+`. An S3-compatible server that writes a space as `%20` and a `+` as
//! `%2B` reads the same under either rule. [`UrlDecoding::for_provider`]
//! holds the table.
//!
//! Elements decoded when the reply says `<EncodingType>url</EncodingType>`:
//! `Contents/Key`, `CommonPrefixes/Prefix`, `Prefix`, `Delimiter`,
//! `StartAfter`, `Marker`, `NextMarker`, and on OSS `NextContinuationToken`.
//!
//! Paging: V2 continues with `NextContinuationToken`. V1 continues with
//! `NextMarker`, or, when a truncated reply has none (S3 sends `NextMarker`
//! only when a delimiter was given), with the greatest name on the page (the
//! last key or the last common prefix). A truncated reply that gives no way
//! to continue is an error, never a silently short listing.
//!
//! Imports: `store::dialect`, `store::types`, `store::xml`,
//! `store::xml::tree` of the crate, besides std and external crates.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::tree::{self, Element};
use super::{
    XmlError, optional_timestamp, parse_bool, parse_root, parse_u64, required, unquote_etag,
};
use crate::store::dialect::{ListStyle, Provider};
use crate::store::types::{ListEntry, ListPage};

/// How a dialect encodes names in a listing requested with `encoding-type=url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlDecoding {
    /// Whether `+` stands for a space (form encoding, as S3 writes it).
    pub plus_is_space: bool,
    /// Whether `NextContinuationToken` is percent-encoded too (OSS).
    pub token_is_encoded: bool,
}

impl UrlDecoding {
    /// The decoding each dialect's own SDK applies (see the module docs).
    pub fn for_provider(provider: Provider) -> Self {
        match provider {
            Provider::Oss => UrlDecoding {
                plus_is_space: false,
                token_is_encoded: true,
            },
            Provider::Cos => UrlDecoding {
                plus_is_space: false,
                token_is_encoded: false,
            },
            Provider::S3 => UrlDecoding {
                plus_is_space: true,
                token_is_encoded: false,
            },
        }
    }

    /// Decode one value: `+` first (only when it means a space, so `%2B`
    /// still gives `+`), then percent escapes; the result must be UTF-8.
    /// A `%` not followed by two hex digits is kept as is.
    pub(crate) fn decode(&self, element: &'static str, value: &str) -> Result<String, XmlError> {
        let plus_decoded: Cow<'_, str> = if self.plus_is_space && value.contains('+') {
            Cow::Owned(value.replace('+', " "))
        } else {
            Cow::Borrowed(value)
        };
        percent_decode_str(&plus_decoded)
            .decode_utf8()
            .map(Cow::into_owned)
            .map_err(|_| XmlError::InvalidValue {
                element,
                value: value.to_string(),
                expected: "percent-encoded UTF-8",
            })
    }
}

/// A whole `ListBucketResult`, with names already decoded. `page` is what the
/// filesystem uses; the echoed request fields let the client check the
/// server answered the question it asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListDocument {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    /// V2 `StartAfter` echo.
    pub start_after: Option<String>,
    /// V1 `Marker` echo.
    pub marker: Option<String>,
    pub is_truncated: bool,
    pub page: ListPage,
}

const DOCUMENT: &str = "ListBucketResult";

/// Parse a ListObjectsV2 reply. The next page's token is
/// `NextContinuationToken` (decoded on dialects that encode it).
pub fn parse_list_v2(body: &[u8], decoding: UrlDecoding) -> Result<ListDocument, XmlError> {
    let root = parse_root(body, &[DOCUMENT])?;
    let names = Names::new(&root, decoding);
    let mut doc = parse_common(&root, &names)?;
    doc.start_after = names.optional(&root, "StartAfter")?;
    if doc.is_truncated {
        let token = root.child_text_nonempty("NextContinuationToken").ok_or(
            XmlError::TruncatedWithoutContinuation {
                document: DOCUMENT,
                element: "NextContinuationToken",
            },
        )?;
        let token = if names.encoded && decoding.token_is_encoded {
            decoding.decode("NextContinuationToken", token)?
        } else {
            token.to_string()
        };
        doc.page.next_token = Some(token);
    }
    Ok(doc)
}

/// Parse a ListObjects (V1) reply. The next page's marker is `NextMarker`,
/// or the greatest name on the page when a truncated reply omits it.
pub fn parse_list_v1(body: &[u8], decoding: UrlDecoding) -> Result<ListDocument, XmlError> {
    let root = parse_root(body, &[DOCUMENT])?;
    let names = Names::new(&root, decoding);
    let mut doc = parse_common(&root, &names)?;
    doc.marker = names.optional(&root, "Marker")?;
    if doc.is_truncated {
        let next = match names.optional(&root, "NextMarker")? {
            Some(marker) => marker,
            None => {
                let last_key = doc.page.objects.last().map(|o| o.key.as_str());
                let last_prefix = doc.page.prefixes.last().map(String::as_str);
                last_key
                    .max(last_prefix)
                    .ok_or(XmlError::TruncatedWithoutContinuation {
                        document: DOCUMENT,
                        element: "NextMarker",
                    })?
                    .to_string()
            }
        };
        doc.page.next_token = Some(next);
    }
    Ok(doc)
}

/// Parse a listing reply of the given style into the page the filesystem uses.
pub fn parse_list_page(
    body: &[u8],
    style: ListStyle,
    decoding: UrlDecoding,
) -> Result<ListPage, XmlError> {
    let doc = match style {
        ListStyle::V2 => parse_list_v2(body, decoding)?,
        ListStyle::V1 => parse_list_v1(body, decoding)?,
    };
    Ok(doc.page)
}

/// Reads name-bearing elements, decoding them when the reply says so.
struct Names {
    encoded: bool,
    decoding: UrlDecoding,
}

impl Names {
    fn new(root: &Element, decoding: UrlDecoding) -> Self {
        let encoded = root
            .child_text("EncodingType")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("url"));
        Names { encoded, decoding }
    }

    fn value(&self, element: &'static str, raw: &str) -> Result<String, XmlError> {
        if self.encoded {
            self.decoding.decode(element, raw)
        } else {
            Ok(raw.to_string())
        }
    }

    /// A child whose absence and emptiness both mean "none".
    fn optional(
        &self,
        parent: &Element,
        element: &'static str,
    ) -> Result<Option<String>, XmlError> {
        parent
            .child_text_nonempty(element)
            .map(|raw| self.value(element, raw))
            .transpose()
    }
}

/// What V1 and V2 share: the echoed prefix and delimiter, the truncation
/// flag, the objects and the common prefixes.
fn parse_common(root: &Element, names: &Names) -> Result<ListDocument, XmlError> {
    let objects = root
        .children_named("Contents")
        .map(|c| parse_entry(c, names))
        .collect::<Result<Vec<_>, _>>()?;
    let prefixes = root
        .children_named("CommonPrefixes")
        .map(|cp| {
            let raw = required(cp, "CommonPrefixes", "Prefix")?;
            names.value("Prefix", raw)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ListDocument {
        prefix: names.optional(root, "Prefix")?,
        delimiter: names.optional(root, "Delimiter")?,
        start_after: None,
        marker: None,
        is_truncated: parse_bool(root, "IsTruncated")?,
        page: ListPage {
            objects,
            prefixes,
            next_token: None,
        },
    })
}

/// One `Contents`: `Key` and `Size` are required; a missing `ETag` is empty
/// and a missing `LastModified` unknown (some S3-compatible servers omit
/// them), but a malformed one is an error.
fn parse_entry(contents: &tree::Element, names: &Names) -> Result<ListEntry, XmlError> {
    let key = names.value("Key", required(contents, "Contents", "Key")?)?;
    let size = parse_u64("Size", required(contents, "Contents", "Size")?)?;
    Ok(ListEntry {
        key,
        size,
        etag: contents
            .child_text("ETag")
            .map(unquote_etag)
            .unwrap_or_default(),
        last_modified: optional_timestamp(contents, "LastModified")?,
    })
}

#[cfg(test)]
mod tests;
