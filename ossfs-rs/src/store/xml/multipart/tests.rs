//! Unit tests of `super` (the multipart, copy and delete documents), with the vendors' example bodies.

use super::*;
use crate::store::dialect::Provider;
use std::time::{Duration, UNIX_EPOCH};

fn done<T: std::fmt::Debug>(o: Outcome<T>) -> T {
    match o {
        Outcome::Done(v) => v,
        Outcome::Failed(doc) => panic!("unexpected error document {doc:?}"),
    }
}

/// OSS InitiateMultipartUpload reply, as in oss2's tests
/// (`tests/test_mock_multipart.py`).
const OSS_INITIATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult>
  <Bucket>ming-oss-share</Bucket>
  <Key>uosvelpvgjwtxaciqtxoplnx</Key>
  <UploadId>97BD544A65DB46F9A8735C93917A960F</UploadId>
</InitiateMultipartUploadResult>"#;

/// S3 CreateMultipartUpload reply after the example in
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html>).
const S3_INITIATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>"#;

/// OSS CompleteMultipartUpload reply (oss2 `tests/test_mock_multipart.py`).
const OSS_COMPLETE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult>
  <Location>http://ming-oss-share.oss-cn-hangzhou.aliyuncs.com/pasncdoyuvuvuiyewfsobdwn</Location>
  <Bucket>ming-oss-share</Bucket>
  <Key>pasncdoyuvuvuiyewfsobdwn</Key>
  <ETag>"1C787C506EABFB9B45EAAA8DB039F4B2-2"</ETag>
</CompleteMultipartUploadResult>"#;

/// COS Complete Multipart Upload reply after the example in
/// (<https://cloud.tencent.com/document/product/436/7742>).
const COS_COMPLETE: &str = r#"<?xml version='1.0' encoding='utf-8' ?>
<CompleteMultipartUploadResult>
	<Location>examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject</Location>
	<Bucket>examplebucket-1250000000</Bucket>
	<Key>exampleobject</Key>
	<ETag>&quot;aa259a62513358f69e98e72e59856d88-3&quot;</ETag>
</CompleteMultipartUploadResult>"#;

/// S3 CompleteMultipartUpload `200 OK` with an error body, after the example in
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>),
/// preceded by the whitespace S3 sends while it works.
const S3_COMPLETE_200_ERROR: &str = "\n\n\n            <?xml version=\"1.0\" encoding=\"UTF-8\"?>
<Error>
  <Code>InternalError</Code>
  <Message>We encountered an internal error. Please try again.</Message>
  <RequestId>656c76696e6727732072657175657374</RequestId>
  <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>
</Error>";

/// S3 ListParts reply after the example in
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html>).
const S3_LIST_PARTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <Initiator>
  <ID>arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx</ID>
  <DisplayName>umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx</DisplayName>
  </Initiator>
  <Owner>
<ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
<DisplayName>someName</DisplayName>
  </Owner>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <Part>
<PartNumber>2</PartNumber>
<LastModified>2010-11-10T20:48:34.000Z</LastModified>
<ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag>
<Size>10485760</Size>
  </Part>
  <Part>
<PartNumber>3</PartNumber>
<LastModified>2010-11-10T20:48:33.000Z</LastModified>
<ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
<Size>10485760</Size>
  </Part>
</ListPartsResult>"#;

/// OSS ListParts reply (last page) after the example in
/// (<https://help.aliyun.com/zh/oss/developer-reference/listparts>).
const OSS_LIST_PARTS_LAST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://doc.oss-cn-hangzhou.aliyuncs.com">
<Bucket>multipart_upload</Bucket>
<Key>multipart.data</Key>
<UploadId>0004B999EF5A239BB9138C6227D69F95</UploadId>
<NextPartNumberMarker>5</NextPartNumberMarker>
<MaxParts>1000</MaxParts>
<IsTruncated>false</IsTruncated>
<Part>
    <PartNumber>1</PartNumber>
    <LastModified>2012-02-23T07:01:34.000Z</LastModified>
    <ETag>"3349DC700140D7F86A0784842780****"</ETag>
    <Size>6291456</Size>
</Part>
<Part>
    <PartNumber>2</PartNumber>
    <LastModified>2012-02-23T07:01:12.000Z</LastModified>
    <ETag>"3349DC700140D7F86A0784842780****"</ETag>
    <Size>6291456</Size>
</Part>
<Part>
    <PartNumber>5</PartNumber>
    <LastModified>2012-02-23T07:02:03.000Z</LastModified>
    <ETag>"7265F4D211B56873A381D321F586****"</ETag>
    <Size>1024</Size>
</Part>
</ListPartsResult>"#;

/// OSS CopyObject reply (oss2 `tests/test_mock_object.py`).
const OSS_COPY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CopyObjectResult>
  <ETag>"164F32EF262006C5EE6C8D1AA30DD2CD"</ETag>
  <LastModified>2015-12-12T00:37:53.000Z</LastModified>
</CopyObjectResult>"#;

/// OSS UploadPartCopy reply (oss2 `tests/test_mock_multipart.py`).
const OSS_COPY_PART: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CopyPartResult>
  <LastModified>2015-12-12T00:36:26.000Z</LastModified>
  <ETag>"4DE8075FB607DF4D13FBC480EA488EFA"</ETag>
</CopyPartResult>"#;

/// COS PUT Object - Copy reply after the example in (<https://cloud.tencent.com/document/product/436/10881>).
const COS_COPY: &str = r#"<?xml version='1.0' encoding='utf-8' ?>
<CopyObjectResult>
	<ETag>"ee8de918d05640145b18f70f4c3aa602"</ETag>
	<CRC64>16749565679157681890</CRC64>
	<LastModified>2020-12-10T03:37:30Z</LastModified>
</CopyObjectResult>"#;

/// S3 CopyObject `200 OK` with an error body, as described in
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>.
const S3_COPY_200_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;

/// S3 DeleteObjects reply after the example in (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html>).
const S3_DELETE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted>
<Key>sample1.txt</Key>
  </Deleted>
  <Error>
<Key>sample2.txt</Key>
<Code>AccessDenied</Code>
<Message>Access Denied</Message>
  </Error>
</DeleteResult>"#;

/// OSS DeleteMultipleObjects reply with `encoding-type=url`
/// (oss2 `tests/test_mock_object.py`, one key made awkward).
const OSS_DELETE_ENCODED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult>
<EncodingType>url</EncodingType>
<Deleted>
<Key>hello</Key>
</Deleted>
<Deleted>
<Key>wor%20ld+%26%E4%B8%96</Key>
</Deleted>
</DeleteResult>"#;

#[test]
fn initiate() {
    assert_eq!(
        parse_initiate_multipart(OSS_INITIATE.as_bytes()).unwrap(),
        "97BD544A65DB46F9A8735C93917A960F"
    );
    assert_eq!(
        parse_initiate_multipart(S3_INITIATE.as_bytes()).unwrap(),
        "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    );
    assert!(matches!(
        parse_initiate_multipart(
            b"<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>"
        ),
        Err(XmlError::MissingElement {
            element: "UploadId",
            ..
        })
    ));
}

#[test]
fn complete() {
    let r = done(parse_complete_multipart(OSS_COMPLETE.as_bytes()).unwrap());
    assert_eq!(r.etag, "1C787C506EABFB9B45EAAA8DB039F4B2-2");
    let r = done(parse_complete_multipart(COS_COMPLETE.as_bytes()).unwrap());
    assert_eq!(r.etag, "aa259a62513358f69e98e72e59856d88-3");
}

#[test]
fn complete_answered_200_with_an_error() {
    assert!(super::super::is_error_document(
        S3_COMPLETE_200_ERROR.as_bytes()
    ));
    match parse_complete_multipart(S3_COMPLETE_200_ERROR.as_bytes()).unwrap() {
        Outcome::Failed(doc) => {
            assert_eq!(doc.code, "InternalError");
            assert_eq!(
                doc.request_id.as_deref(),
                Some("656c76696e6727732072657175657374")
            );
            let e = doc.to_store_error(200, "k", "b");
            assert!(e.is_retryable(), "{e}");
        }
        Outcome::Done(r) => panic!("took an error for a result: {r:?}"),
    }
}

#[test]
fn list_parts_pages() {
    let page = parse_list_parts(S3_LIST_PARTS.as_bytes()).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.next_part_number_marker, Some(3));
    assert_eq!(
        page.parts,
        [
            PartInfo {
                part_number: 2,
                etag: "7778aef83f66abc1fa1e8477f296d394".into(),
                size: 10_485_760
            },
            PartInfo {
                part_number: 3,
                etag: "aaaa18db4cc2f85cedef654fccc4a4x8".into(),
                size: 10_485_760
            },
        ]
    );
    let last = parse_list_parts(OSS_LIST_PARTS_LAST.as_bytes()).unwrap();
    assert!(!last.is_truncated);
    assert_eq!(last.next_part_number_marker, None);
    let numbers: Vec<u32> = last.parts.iter().map(|p| p.part_number).collect();
    assert_eq!(numbers, [1, 2, 5]);
    assert_eq!(last.parts[2].size, 1024);
}

#[test]
fn list_parts_truncated_without_marker_is_an_error() {
    let body = S3_LIST_PARTS.replace("<NextPartNumberMarker>3</NextPartNumberMarker>", "");
    assert!(matches!(
        parse_list_parts(body.as_bytes()),
        Err(XmlError::TruncatedWithoutContinuation {
            element: "NextPartNumberMarker",
            ..
        })
    ));
    let body = "<ListPartsResult><Part><PartNumber>x</PartNumber><ETag>e</ETag><Size>1</Size></Part></ListPartsResult>";
    assert!(matches!(
        parse_list_parts(body.as_bytes()),
        Err(XmlError::InvalidValue {
            element: "PartNumber",
            ..
        })
    ));
}

#[test]
fn copy_results() {
    let r = done(parse_copy_result(OSS_COPY.as_bytes()).unwrap());
    assert_eq!(r.etag, "164F32EF262006C5EE6C8D1AA30DD2CD");
    assert_eq!(
        r.last_modified,
        Some(UNIX_EPOCH + Duration::from_secs(1_449_880_673))
    );
    let r = done(parse_copy_result(OSS_COPY_PART.as_bytes()).unwrap());
    assert_eq!(r.etag, "4DE8075FB607DF4D13FBC480EA488EFA");
    assert_eq!(
        r.last_modified,
        Some(UNIX_EPOCH + Duration::from_secs(1_449_880_586))
    );
    let r = done(parse_copy_result(COS_COPY.as_bytes()).unwrap());
    assert_eq!(r.etag, "ee8de918d05640145b18f70f4c3aa602");
}

#[test]
fn copy_answered_200_with_an_error() {
    match parse_copy_result(S3_COPY_200_ERROR.as_bytes()).unwrap() {
        Outcome::Failed(doc) => assert_eq!(doc.code, "SlowDown"),
        Outcome::Done(r) => panic!("took an error for a result: {r:?}"),
    }
    assert!(matches!(
        parse_copy_result(b"<ListBucketResult/>"),
        Err(XmlError::UnexpectedRoot { .. })
    ));
    assert!(matches!(
        parse_copy_result(b"<CopyObjectResult><LastModified>2015-12-12T00:37:53.000Z</LastModified></CopyObjectResult>"),
        Err(XmlError::MissingElement { element: "ETag", .. })
    ));
}

#[test]
fn delete_result_s3() {
    let s3 = UrlDecoding::for_provider(Provider::S3);
    let out = done(parse_delete_result(S3_DELETE.as_bytes(), s3).unwrap());
    assert_eq!(out.deleted, ["sample1.txt"]);
    assert_eq!(
        out.failed,
        [DeleteFailure {
            key: "sample2.txt".into(),
            code: "AccessDenied".into(),
            message: "Access Denied".into(),
        }]
    );
}

#[test]
fn delete_result_oss_encoded_and_quiet() {
    let oss = UrlDecoding::for_provider(Provider::Oss);
    let out = done(parse_delete_result(OSS_DELETE_ENCODED.as_bytes(), oss).unwrap());
    assert_eq!(out.deleted, ["hello", "wor ld+&世"]);
    assert!(out.failed.is_empty());
    assert_eq!(
        done(parse_delete_result(b"", oss).unwrap()),
        DeleteOutcome::default()
    );
    assert_eq!(
        done(parse_delete_result(b"<DeleteResult/>", oss).unwrap()),
        DeleteOutcome::default()
    );
    assert!(matches!(
        parse_delete_result(b"<Error><Code>MalformedXML</Code></Error>", oss).unwrap(),
        Outcome::Failed(doc) if doc.code == "MalformedXML"
    ));
}

#[test]
fn complete_body_is_ordered_and_quoted() {
    let parts = [
        CompletedPart {
            part_number: 2,
            etag: "AF947EC157726CEA88ED83B3C989063B".into(),
        },
        CompletedPart {
            part_number: 1,
            etag: "\"4DE8075FB607DF4D13FBC480EA488EFA\"".into(),
        },
    ];
    // Byte for byte what oss2 sends for these parts (tests/test_mock_multipart.py).
    assert_eq!(
        complete_multipart_body(&parts),
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"4DE8075FB607DF4D13FBC480EA488EFA\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"AF947EC157726CEA88ED83B3C989063B\"</ETag></Part></CompleteMultipartUpload>"
    );
    let root = tree::parse(complete_multipart_body(&parts).as_bytes()).unwrap();
    assert_eq!(root.name, "CompleteMultipartUpload");
    assert_eq!(root.children_named("Part").count(), 2);
}

#[test]
fn delete_body_round_trips_awkward_keys() {
    let keys = [
        "plain",
        "a&b",
        "<tag>",
        "x > y",
        "quote\"and'apos",
        "with space ",
        " leading",
        "dir/sub dir/file+plus%percent",
        "日本語/ファイル.txt",
        "emoji 😀",
        "cr\rlf\ncrlf\r\ntab\t",
        "&amp; literally",
        "]]> cdata end",
    ];
    let body = delete_objects_body(&keys).unwrap();
    assert!(body.starts_with("<Delete><Quiet>true</Quiet><Object><Key>plain</Key></Object>"));
    assert!(body.contains("<Key>a&amp;b</Key>"));
    assert!(body.contains("<Key>&lt;tag&gt;</Key>"));
    assert!(!body.contains('\r'));
    let root = tree::parse(body.as_bytes()).unwrap();
    assert_eq!(root.name, "Delete");
    assert_eq!(root.child_text("Quiet"), Some("true"));
    let back: Vec<&str> = root
        .children_named("Object")
        .map(|o| o.child_text("Key").unwrap_or("<missing>"))
        .collect();
    assert_eq!(back, keys);
}

#[test]
fn delete_body_refuses_what_it_cannot_carry() {
    assert!(matches!(
        delete_objects_body(&["ok", "bell\u{7}"]),
        Err(XmlError::UnencodableKey { ref key }) if key == "bell\u{7}"
    ));
    let many: Vec<String> = (0..=MAX_DELETE_KEYS).map(|i| format!("k{i}")).collect();
    assert!(matches!(
        delete_objects_body(&many),
        Err(XmlError::TooManyKeys {
            count: 1001,
            max: 1000
        })
    ));
    assert!(delete_objects_body(&many[..MAX_DELETE_KEYS]).is_ok());
    assert_eq!(
        delete_objects_body::<&str>(&[]).unwrap(),
        "<Delete><Quiet>true</Quiet></Delete>"
    );
}
