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
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn oss() -> UrlDecoding {
        UrlDecoding::for_provider(Provider::Oss)
    }
    fn cos() -> UrlDecoding {
        UrlDecoding::for_provider(Provider::Cos)
    }
    fn s3() -> UrlDecoding {
        UrlDecoding::for_provider(Provider::S3)
    }

    /// OSS ListObjectsV2 reply with `prefix=a/`, `delimiter=/` and
    /// `encoding-type=url`, after the example in "ListObjectsV2 (GetBucketV2)"
    /// (<https://help.aliyun.com/zh/oss/developer-reference/listobjects-v2>);
    /// one key given a space and a `+` to show OSS's encoding.
    const OSS_V2_DELIMITER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
    <Name>examplebucket</Name>
    <Prefix>a%2F</Prefix>
    <MaxKeys>3</MaxKeys>
    <StartAfter>a%2Fb</StartAfter>
    <Delimiter>%2F</Delimiter>
    <EncodingType>url</EncodingType>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>a%2Fb%20c+d.txt</Key>
        <LastModified>2020-05-18T05:45:47.000Z</LastModified>
        <ETag>"35A27C2B9EAEEB6F48FD7FB5861D****"</ETag>
        <Size>25</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner>
            <ID>1686240967192623</ID>
            <DisplayName>1686240967192623</DisplayName>
        </Owner>
    </Contents>
    <CommonPrefixes>
        <Prefix>a%2Fb%2F</Prefix>
    </CommonPrefixes>
    <KeyCount>2</KeyCount>
</ListBucketResult>"#;

    /// OSS ListObjectsV2 continued page (same document), truncated.
    const OSS_V2_TRUNCATED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>examplebucket</Name>
  <Prefix></Prefix>
  <ContinuationToken>ChR0ZXN0MS50eHQ-</ContinuationToken>
  <NextContinuationToken>CgJiYw--</NextContinuationToken>
  <MaxKeys>3</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>a</Key>
    <LastModified>2020-05-18T05:45:43.000Z</LastModified>
    <ETag>"35A27C2B9EAEEB6F48FD7FB5861D****"</ETag>
    <Size>25</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>a%2Fb</Key>
    <LastModified>2020-05-18T05:45:47.000Z</LastModified>
    <ETag>"35A27C2B9EAEEB6F48FD7FB5861D****"</ETag>
    <Size>25</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>b</Key>
    <LastModified>2020-05-18T05:45:50.000Z</LastModified>
    <ETag>"35A27C2B9EAEEB6F48FD7FB5861D****"</ETag>
    <Size>25</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <KeyCount>3</KeyCount>
</ListBucketResult>"#;

    /// COS GET Bucket (V1) reply, truncated with `NextMarker`, after the example in
    /// "GET Bucket（List Objects）" (<https://cloud.tencent.com/document/product/436/7734>),
    /// with `encoding-type=url` ("腾讯云" is `%E8%85%BE%E8%AE%AF%E4%BA%91`).
    const COS_V1_TRUNCATED: &str = r#"<?xml version='1.0' encoding='utf-8' ?>
<ListBucketResult>
	<Name>examplebucket-1250000000</Name>
	<EncodingType>url</EncodingType>
	<Prefix>example-folder-1%2F</Prefix>
	<Marker/>
	<MaxKeys>2</MaxKeys>
	<IsTruncated>true</IsTruncated>
	<NextMarker>example-folder-1%2F%E8%85%BE%E8%AE%AF%E4%BA%91+2.jpg</NextMarker>
	<Contents>
		<Key>example-folder-1%2Fexample-object-1.jpg</Key>
		<LastModified>2020-12-10T03:37:30.000Z</LastModified>
		<ETag>&quot;ee8de918d05640145b18f70f4c3aa602&quot;</ETag>
		<Size>1024</Size>
		<Owner>
			<ID>1250000000</ID>
			<DisplayName>1250000000</DisplayName>
		</Owner>
		<StorageClass>STANDARD</StorageClass>
	</Contents>
	<Contents>
		<Key>example-folder-1%2F%E8%85%BE%E8%AE%AF%E4%BA%91+2.jpg</Key>
		<LastModified>2020-12-10T03:37:30.000Z</LastModified>
		<ETag>"ee8de918d05640145b18f70f4c3aa602"</ETag>
		<Size>1024</Size>
		<Owner>
			<ID>1250000000</ID>
			<DisplayName>1250000000</DisplayName>
		</Owner>
		<StorageClass>STANDARD_IA</StorageClass>
	</Contents>
</ListBucketResult>"#;

    /// S3 ListObjects (V1) reply after the example in "ListObjects"
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjects.html>),
    /// marked truncated: no delimiter, so S3 sends no `NextMarker`.
    const S3_V1_TRUNCATED_NO_NEXT_MARKER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix/>
  <Marker/>
  <MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>my-image.jpg</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
    <Size>434234</Size>
    <StorageClass>STANDARD</StorageClass>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>mtd@amazon.com</DisplayName>
    </Owner>
  </Contents>
  <Contents>
    <Key>my-third-image.jpg</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>"1b2cf535f27731c974343645a3985328"</ETag>
    <Size>64994</Size>
    <StorageClass>STANDARD_IA</StorageClass>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>mtd@amazon.com</DisplayName>
    </Owner>
  </Contents>
</ListBucketResult>"#;

    /// S3 ListObjectsV2 reply after the example in "ListObjectsV2"
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>),
    /// listing with max-keys and a continuation token.
    const S3_V2_TRUNCATED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>1000</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"70ee1738b6b21e2c8a43f3a5ab0eee71"</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>"#;

    /// S3 ListObjectsV2 reply after the common-prefixes example (same page), url-encoded as
    /// S3 encodes: a space is `+`, a literal `+` is `%2B`.
    const S3_V2_URL_ENCODED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>my+photos%2F</Prefix>
  <KeyCount>2</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>%2F</Delimiter>
  <EncodingType>url</EncodingType>
  <IsTruncated>false</IsTruncated>
  <StartAfter>my+photos%2Fa%2Bb</StartAfter>
  <Contents>
    <Key>my+photos%2Fsample+1%2B1.jpg</Key>
    <LastModified>2011-02-26T01:56:20.000Z</LastModified>
    <ETag>"bf1d737a4d46a19f3bced6905cc8b902"</ETag>
    <Size>142863</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>my+photos%2F2006%2F</Prefix>
  </CommonPrefixes>
</ListBucketResult>"#;

    /// An empty bucket (S3 shape; OSS and COS send the same with no namespace).
    const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"#;

    #[test]
    fn oss_v2_decodes_percent_only() {
        let doc = parse_list_v2(OSS_V2_DELIMITER.as_bytes(), oss()).unwrap();
        assert_eq!(doc.prefix.as_deref(), Some("a/"));
        assert_eq!(doc.delimiter.as_deref(), Some("/"));
        assert_eq!(doc.start_after.as_deref(), Some("a/b"));
        assert!(!doc.is_truncated);
        let page = doc.page;
        assert_eq!(page.next_token, None);
        assert_eq!(page.prefixes, ["a/b/"]);
        assert_eq!(page.objects.len(), 1);
        let entry = &page.objects[0];
        assert_eq!(entry.key, "a/b c+d.txt");
        assert_eq!(entry.size, 25);
        assert_eq!(entry.etag, "35A27C2B9EAEEB6F48FD7FB5861D****");
        assert_eq!(
            entry.last_modified,
            Some(UNIX_EPOCH + Duration::from_secs(1_589_780_747))
        );
    }

    #[test]
    fn oss_v2_truncated_gives_the_token() {
        let page = parse_list_page(OSS_V2_TRUNCATED.as_bytes(), ListStyle::V2, oss()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a", "a/b", "b"]);
        assert_eq!(page.next_token.as_deref(), Some("CgJiYw--"));
    }

    #[test]
    fn oss_decodes_an_encoded_token_and_s3_does_not() {
        let body = OSS_V2_TRUNCATED.replace("CgJiYw--", "Cg%3D%3D");
        let page = parse_list_page(body.as_bytes(), ListStyle::V2, oss()).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("Cg=="));
        let body = S3_V2_TRUNCATED.replace("<Prefix></Prefix>", "<EncodingType>url</EncodingType>");
        let page = parse_list_page(body.as_bytes(), ListStyle::V2, s3()).unwrap();
        assert_eq!(
            page.next_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    #[test]
    fn cos_v1_truncated_with_next_marker() {
        let doc = parse_list_v1(COS_V1_TRUNCATED.as_bytes(), cos()).unwrap();
        assert_eq!(doc.prefix.as_deref(), Some("example-folder-1/"));
        assert_eq!(doc.marker, None);
        assert!(doc.is_truncated);
        let keys: Vec<&str> = doc.page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "example-folder-1/example-object-1.jpg",
                "example-folder-1/腾讯云+2.jpg"
            ]
        );
        assert_eq!(
            doc.page.next_token.as_deref(),
            Some("example-folder-1/腾讯云+2.jpg")
        );
        assert_eq!(doc.page.objects[0].etag, "ee8de918d05640145b18f70f4c3aa602");
        assert_eq!(doc.page.objects[1].etag, "ee8de918d05640145b18f70f4c3aa602");
    }

    #[test]
    fn s3_v1_truncated_without_next_marker_continues_after_the_last_key() {
        let page = parse_list_page(
            S3_V1_TRUNCATED_NO_NEXT_MARKER.as_bytes(),
            ListStyle::V1,
            s3(),
        )
        .unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[1].size, 64994);
        assert_eq!(page.next_token.as_deref(), Some("my-third-image.jpg"));
    }

    #[test]
    fn v1_without_next_marker_uses_the_greatest_name_on_the_page() {
        let body = r#"<ListBucketResult><IsTruncated>true</IsTruncated>
            <Contents><Key>a</Key><Size>1</Size></Contents>
            <CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse_list_page(body.as_bytes(), ListStyle::V1, s3()).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("b/"));
    }

    #[test]
    fn v1_not_truncated_has_no_next_token_even_with_a_next_marker() {
        let body = COS_V1_TRUNCATED.replace(
            "<IsTruncated>true</IsTruncated>",
            "<IsTruncated>false</IsTruncated>",
        );
        let page = parse_list_page(body.as_bytes(), ListStyle::V1, cos()).unwrap();
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn s3_v2_plain() {
        let page = parse_list_page(S3_V2_TRUNCATED.as_bytes(), ListStyle::V2, s3()).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].key, "happyface.jpg");
        assert_eq!(page.objects[0].etag, "70ee1738b6b21e2c8a43f3a5ab0eee71");
        assert_eq!(
            page.next_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    #[test]
    fn s3_url_encoding_reads_plus_as_space() {
        let doc = parse_list_v2(S3_V2_URL_ENCODED.as_bytes(), s3()).unwrap();
        assert_eq!(doc.prefix.as_deref(), Some("my photos/"));
        assert_eq!(doc.delimiter.as_deref(), Some("/"));
        assert_eq!(doc.start_after.as_deref(), Some("my photos/a+b"));
        assert_eq!(doc.page.objects[0].key, "my photos/sample 1+1.jpg");
        assert_eq!(doc.page.prefixes, ["my photos/2006/"]);
    }

    #[test]
    fn the_same_reply_read_as_oss_keeps_plus() {
        let doc = parse_list_v2(S3_V2_URL_ENCODED.as_bytes(), oss()).unwrap();
        assert_eq!(doc.page.objects[0].key, "my+photos/sample+1+1.jpg");
    }

    #[test]
    fn names_are_not_decoded_without_encoding_type() {
        let body = r#"<ListBucketResult><IsTruncated>false</IsTruncated>
            <Contents><Key>100%25 a+b &amp; c</Key><Size>0</Size></Contents></ListBucketResult>"#;
        for decoding in [oss(), cos(), s3()] {
            let page = parse_list_page(body.as_bytes(), ListStyle::V2, decoding).unwrap();
            assert_eq!(page.objects[0].key, "100%25 a+b & c");
        }
    }

    #[test]
    fn control_characters_come_back_through_url_encoding() {
        let body = r#"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
            <Contents><Key>a%01b%0D%0A%20</Key><Size>0</Size></Contents></ListBucketResult>"#;
        let page = parse_list_page(body.as_bytes(), ListStyle::V2, oss()).unwrap();
        assert_eq!(page.objects[0].key, "a\u{1}b\r\n ");
    }

    #[test]
    fn keys_keep_their_whitespace() {
        let body = "<ListBucketResult><IsTruncated>false</IsTruncated>\
            <Contents><Key>  two spaces  </Key><Size>0</Size></Contents></ListBucketResult>";
        let page = parse_list_page(body.as_bytes(), ListStyle::V2, s3()).unwrap();
        assert_eq!(page.objects[0].key, "  two spaces  ");
    }

    #[test]
    fn empty_listing() {
        for style in [ListStyle::V1, ListStyle::V2] {
            let doc = match style {
                ListStyle::V1 => parse_list_v1(EMPTY.as_bytes(), s3()),
                ListStyle::V2 => parse_list_v2(EMPTY.as_bytes(), s3()),
            }
            .unwrap();
            assert_eq!(doc.prefix.as_deref(), Some("nothing/"));
            assert_eq!(doc.page, ListPage::default());
        }
    }

    #[test]
    fn interleaved_contents_and_prefixes() {
        let body = r#"<ListBucketResult><IsTruncated>false</IsTruncated>
            <Contents><Key>a</Key><Size>1</Size></Contents>
            <CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes>
            <Contents><Key>c</Key><Size>2</Size></Contents>
            <CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse_list_page(body.as_bytes(), ListStyle::V2, s3()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(page.prefixes, ["b/", "d/"]);
        assert_eq!(page.objects[0].etag, "");
        assert_eq!(page.objects[0].last_modified, None);
    }

    #[test]
    fn truncated_without_a_way_to_continue_is_an_error() {
        let v2 = S3_V2_TRUNCATED.replace(
            "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>",
            "",
        );
        assert!(matches!(
            parse_list_v2(v2.as_bytes(), s3()),
            Err(XmlError::TruncatedWithoutContinuation {
                element: "NextContinuationToken",
                ..
            })
        ));
        let v1 = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(matches!(
            parse_list_v1(v1.as_bytes(), s3()),
            Err(XmlError::TruncatedWithoutContinuation {
                element: "NextMarker",
                ..
            })
        ));
    }

    #[test]
    fn malformed_listings_are_typed_errors() {
        type Check = fn(&XmlError) -> bool;
        let cases: [(&str, Check); 6] = [
            ("<Error><Code>AccessDenied</Code></Error>", |e| {
                matches!(e, XmlError::UnexpectedRoot { .. })
            }),
            (
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                |e| matches!(e, XmlError::MissingElement { element: "Key", .. }),
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
                |e| {
                    matches!(
                        e,
                        XmlError::MissingElement {
                            element: "Size",
                            ..
                        }
                    )
                },
            ),
            (
                "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
                |e| {
                    matches!(
                        e,
                        XmlError::InvalidValue {
                            element: "Size",
                            ..
                        }
                    )
                },
            ),
            (
                "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
                |e| {
                    matches!(
                        e,
                        XmlError::InvalidValue {
                            element: "IsTruncated",
                            ..
                        }
                    )
                },
            ),
            (
                "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>%FF</Key><Size>1</Size></Contents></ListBucketResult>",
                |e| matches!(e, XmlError::InvalidValue { element: "Key", .. }),
            ),
        ];
        for (body, check) in cases {
            let err = parse_list_v2(body.as_bytes(), s3()).unwrap_err();
            assert!(check(&err), "{body}: {err:?}");
        }
        let bad_date = "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>\
            <LastModified>soon</LastModified></Contents></ListBucketResult>";
        assert!(matches!(
            parse_list_v2(bad_date.as_bytes(), s3()),
            Err(XmlError::InvalidValue {
                element: "LastModified",
                ..
            })
        ));
    }

    #[test]
    fn decoding_table() {
        assert_eq!(
            UrlDecoding::for_provider(Provider::S3)
                .decode("Key", "a+b%2Bc%20d")
                .unwrap(),
            "a b+c d"
        );
        assert_eq!(
            UrlDecoding::for_provider(Provider::Oss)
                .decode("Key", "a+b%2Bc%20d")
                .unwrap(),
            "a+b+c d"
        );
        assert_eq!(
            UrlDecoding::for_provider(Provider::Cos)
                .decode("Key", "a+b%2Bc%20d")
                .unwrap(),
            "a+b+c d"
        );
        assert_eq!(oss().decode("Key", "100%").unwrap(), "100%");
    }
}
