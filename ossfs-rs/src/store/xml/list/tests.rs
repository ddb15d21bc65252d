//! Unit tests of `super` (ListObjects V1/V2 and COS listing documents), with the vendors' example bodies.

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
