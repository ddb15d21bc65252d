//! Unit tests of the object map, through [`MemStore`]'s public operations:
//! odd keys, listing and paging, bodies and ranges, multipart, copies,
//! write conditions and the bucket lifecycle.
//!
//! Imports: `super` (the map's public API); `bytes`, `hex`. Nothing else of the
//! crate: `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use bytes::Bytes;

use super::*;

fn store() -> MemStore {
    let s = MemStore::new(0);
    s.create_bucket("b").unwrap();
    s
}

fn put(s: &MemStore, key: &str, body: &str) {
    s.put_object(
        "b",
        key,
        Bytes::from(body.to_owned()),
        ObjectAttrs::default(),
        &WriteCondition::None,
    )
    .unwrap();
}

fn q(prefix: &str, delim: Option<&str>, after: Option<&str>, max: usize) -> ListQuery {
    ListQuery {
        prefix: prefix.to_owned(),
        delimiter: delim.map(str::to_owned),
        after: after.map(str::to_owned),
        max_keys: max,
    }
}

fn keys(o: &ListOutcome) -> Vec<&str> {
    o.objects.iter().map(|x| x.key.as_str()).collect()
}

/// Page through a listing the way a V1/V2 client does.
fn list_all(
    s: &MemStore,
    prefix: &str,
    delim: Option<&str>,
    page: usize,
) -> (Vec<String>, Vec<String>) {
    let (mut ks, mut ps) = (Vec::new(), Vec::new());
    let mut after: Option<String> = None;
    loop {
        let o = s
            .list("b", &q(prefix, delim, after.as_deref(), page))
            .unwrap();
        assert!(o.objects.len() + o.common_prefixes.len() <= page);
        ks.extend(o.objects.iter().map(|x| x.key.clone()));
        ps.extend(o.common_prefixes.iter().cloned());
        if !o.is_truncated {
            break;
        }
        after = o.next_marker.clone();
        assert!(after.is_some(), "a truncated page names where to resume");
    }
    (ks, ps)
}

#[test]
fn odd_keys_coexist() {
    let s = store();
    for k in [
        "a",
        "a/b",
        "dir/",
        "x//y",
        "sp ace",
        "plus+sign",
        "pct%41",
        "ünï/códe",
        "a/",
    ] {
        put(&s, k, k);
    }
    for k in [
        "a",
        "a/b",
        "dir/",
        "x//y",
        "sp ace",
        "plus+sign",
        "pct%41",
        "ünï/códe",
        "a/",
    ] {
        let o = s.get_object("b", k).unwrap();
        assert_eq!(o.data.to_bytes(), Bytes::from(k.to_owned()), "key {k:?}");
    }
    let (ks, _) = list_all(&s, "", None, 1000);
    let mut sorted = ks.clone();
    sorted.sort();
    assert_eq!(ks, sorted);
    assert_eq!(ks.len(), 9);
}

#[test]
fn delimiter_rolls_up_and_keeps_file_beside_dir() {
    let s = store();
    for k in ["a", "a/b", "a/c/d", "b/", "c", "x//y"] {
        put(&s, k, "1");
    }
    let o = s.list("b", &q("", Some("/"), None, 1000)).unwrap();
    assert_eq!(keys(&o), vec!["a", "c"]);
    assert_eq!(o.common_prefixes, vec!["a/", "b/", "x/"]);
    assert!(!o.is_truncated);

    let o = s.list("b", &q("a/", Some("/"), None, 1000)).unwrap();
    assert_eq!(keys(&o), vec!["a/b"]);
    assert_eq!(o.common_prefixes, vec!["a/c/"]);

    // The directory marker itself is listed under its own prefix.
    let o = s.list("b", &q("b/", Some("/"), None, 1000)).unwrap();
    assert_eq!(keys(&o), vec!["b/"]);

    // Empty path components roll up as their own level.
    let o = s.list("b", &q("x/", Some("/"), None, 1000)).unwrap();
    assert_eq!(o.common_prefixes, vec!["x//"]);
    let o = s.list("b", &q("x//", Some("/"), None, 1000)).unwrap();
    assert_eq!(keys(&o), vec!["x//y"]);
}

#[test]
fn pagination_never_repeats_or_loses_names() {
    let s = store();
    let mut all = Vec::new();
    for d in 0..5 {
        put(&s, &format!("d{d}"), "f");
        all.push(format!("d{d}"));
        for f in 0..7 {
            put(&s, &format!("d{d}/f{f}"), "x");
        }
    }
    for page in [1, 2, 3, 5, 1000] {
        let (ks, ps) = list_all(&s, "", Some("/"), page);
        assert_eq!(ks, all, "page size {page}");
        assert_eq!(ps, (0..5).map(|d| format!("d{d}/")).collect::<Vec<_>>());
        let (ks, ps) = list_all(&s, "d3/", Some("/"), page);
        assert_eq!(ks, (0..7).map(|f| format!("d3/f{f}")).collect::<Vec<_>>());
        assert!(ps.is_empty());
        let (ks, _) = list_all(&s, "", None, page);
        assert_eq!(ks.len(), 40);
    }
}

#[test]
fn truncated_page_reports_last_name() {
    let s = store();
    for k in ["a/1", "a/2", "b", "c/1"] {
        put(&s, k, "");
    }
    let o = s.list("b", &q("", Some("/"), None, 2)).unwrap();
    assert_eq!(o.common_prefixes, vec!["a/"]);
    assert_eq!(keys(&o), vec!["b"]);
    assert!(o.is_truncated);
    assert_eq!(o.next_marker.as_deref(), Some("b"));
    // Exactly filling the page without more names is not truncated.
    let o = s.list("b", &q("", Some("/"), Some("b"), 1)).unwrap();
    assert_eq!(o.common_prefixes, vec!["c/"]);
    assert!(!o.is_truncated);
    assert_eq!(o.next_marker, None);
}

#[test]
fn marker_before_prefix_and_after_prefix() {
    let s = store();
    for k in ["p/1", "p/2", "q"] {
        put(&s, k, "");
    }
    let o = s.list("b", &q("p/", None, Some("a"), 10)).unwrap();
    assert_eq!(keys(&o), vec!["p/1", "p/2"]);
    let o = s.list("b", &q("p/", None, Some("p/1"), 10)).unwrap();
    assert_eq!(keys(&o), vec!["p/2"]);
    let o = s.list("b", &q("p/", None, Some("z"), 10)).unwrap();
    assert!(keys(&o).is_empty());
    let o = s.list("b", &q("", None, None, 0)).unwrap();
    assert!(keys(&o).is_empty() && !o.is_truncated);
}

#[test]
fn multichar_delimiter() {
    let s = store();
    for k in ["a--b", "a--c--d", "a-e"] {
        put(&s, k, "");
    }
    let o = s.list("b", &q("", Some("--"), None, 10)).unwrap();
    assert_eq!(o.common_prefixes, vec!["a--"]);
    assert_eq!(keys(&o), vec!["a-e"]);
}

#[test]
fn etag_is_md5_and_ranges_slice() {
    let s = store();
    put(&s, "k", "hello world");
    let o = s.get_object("b", "k").unwrap();
    assert_eq!(o.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(o.data.slice(0..5), vec![Bytes::from_static(b"hello")]);
    assert_eq!(o.data.slice(6..100), vec![Bytes::from_static(b"world")]);
    assert!(o.data.slice(11..20).is_empty());
}

#[test]
fn slice_across_segments() {
    let d = ObjectData::from_segments(vec![
        Bytes::from_static(b"abc"),
        Bytes::new(),
        Bytes::from_static(b"defg"),
        Bytes::from_static(b"hi"),
    ]);
    assert_eq!(d.len(), 9);
    let join = |v: Vec<Bytes>| v.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>();
    assert_eq!(join(d.slice(2..8)), b"cdefgh");
    assert_eq!(join(d.slice(3..7)), b"defg");
    assert_eq!(d.slice(3..7).len(), 1);
    assert_eq!(join(d.slice(0..9)), b"abcdefghi");
    assert_eq!(join(d.slice(8..9)), b"i");
    assert_eq!(d.to_bytes(), Bytes::from_static(b"abcdefghi"));
}

#[test]
fn multipart_assembles_in_order_with_md5_of_md5s() {
    let s = MemStore::new(4);
    s.create_bucket("b").unwrap();
    let id = s
        .create_upload(
            "b",
            "big",
            ObjectAttrs {
                content_type: Some("text/plain".into()),
                metadata: [("mode".to_owned(), "420".to_owned())].into(),
            },
        )
        .unwrap();
    // Parts arrive out of order, one is replaced.
    let e2 = s
        .upload_part("b", "big", &id, 2, Bytes::from_static(b"5678"))
        .unwrap();
    let _ = s
        .upload_part("b", "big", &id, 1, Bytes::from_static(b"xxxx"))
        .unwrap();
    let e1 = s
        .upload_part("b", "big", &id, 1, Bytes::from_static(b"1234"))
        .unwrap();
    let e3 = s
        .upload_part("b", "big", &id, 3, Bytes::from_static(b"9"))
        .unwrap();
    let page = s.list_parts("b", "big", &id, 0, 2).unwrap();
    assert_eq!(
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(page.is_truncated);
    assert_eq!(page.next_marker, Some(2));
    let page = s.list_parts("b", "big", &id, 2, 2).unwrap();
    assert_eq!(page.parts.len(), 1);
    assert!(!page.is_truncated);

    // Not yet visible.
    assert!(matches!(
        s.get_object("b", "big"),
        Err(MemError::NoSuchKey(_))
    ));
    // Wrong order, wrong etag.
    let bad = [(2, e2.clone()), (1, e1.clone())];
    assert_eq!(
        s.complete_upload("b", "big", &id, &bad, &WriteCondition::None)
            .unwrap_err(),
        MemError::InvalidPartOrder
    );
    let bad = [(1, e2.clone()), (2, e2.clone())];
    assert_eq!(
        s.complete_upload("b", "big", &id, &bad, &WriteCondition::None)
            .unwrap_err(),
        MemError::InvalidPart(1)
    );

    let parts = [(1, format!("\"{e1}\"")), (2, e2.clone()), (3, e3.clone())];
    let o = s
        .complete_upload("b", "big", &id, &parts, &WriteCondition::None)
        .unwrap();
    assert_eq!(o.data.to_bytes(), Bytes::from_static(b"123456789"));
    let mut md5s = Vec::new();
    for e in [&e1, &e2, &e3] {
        md5s.extend(hex::decode(e).unwrap());
    }
    assert_eq!(o.etag, format!("{}-3", hex::encode(md5_of(&md5s))));
    assert_eq!(o.parts_count, Some(3));
    assert_eq!(o.content_type.as_deref(), Some("text/plain"));
    assert_eq!(o.metadata.get("mode").map(String::as_str), Some("420"));
    // The upload is gone.
    assert!(matches!(
        s.list_parts("b", "big", &id, 0, 10),
        Err(MemError::NoSuchUpload(_))
    ));
    assert!(matches!(
        s.abort_upload("b", "big", &id),
        Err(MemError::NoSuchUpload(_))
    ));
}

#[test]
fn multipart_small_part_and_part_numbers() {
    let s = MemStore::new(5);
    s.create_bucket("b").unwrap();
    let id = s.create_upload("b", "k", ObjectAttrs::default()).unwrap();
    let e1 = s
        .upload_part("b", "k", &id, 1, Bytes::from_static(b"1234"))
        .unwrap();
    let e2 = s
        .upload_part("b", "k", &id, 2, Bytes::from_static(b"5"))
        .unwrap();
    assert_eq!(
        s.complete_upload(
            "b",
            "k",
            &id,
            &[(1, e1.clone()), (2, e2)],
            &WriteCondition::None
        )
        .unwrap_err(),
        MemError::EntityTooSmall {
            part: 1,
            size: 4,
            min: 5
        }
    );
    // A single short part is fine (it is the last).
    let o = s
        .complete_upload("b", "k", &id, &[(1, e1)], &WriteCondition::None)
        .unwrap();
    assert_eq!(o.size(), 4);
    let id = s.create_upload("b", "k", ObjectAttrs::default()).unwrap();
    for n in [0, MAX_PART_NUMBER + 1] {
        assert!(matches!(
            s.upload_part("b", "k", &id, n, Bytes::new()),
            Err(MemError::InvalidArgument(_))
        ));
    }
    // The upload id is bound to its key.
    assert!(matches!(
        s.upload_part("b", "other", &id, 1, Bytes::new()),
        Err(MemError::NoSuchUpload(_))
    ));
    s.abort_upload("b", "k", &id).unwrap();
    assert!(matches!(
        s.upload_part("b", "k", &id, 1, Bytes::new()),
        Err(MemError::NoSuchUpload(_))
    ));
}

#[test]
fn upload_part_copy_slices_the_source() {
    let s = store();
    put(&s, "src", "0123456789");
    let id = s.create_upload("b", "dst", ObjectAttrs::default()).unwrap();
    let (e1, _) = s
        .upload_part_copy("b", "dst", &id, 1, "b", "src", Some(5..10))
        .unwrap();
    let (e2, _) = s
        .upload_part_copy("b", "dst", &id, 2, "b", "src", None)
        .unwrap();
    assert_eq!(e1, hex::encode(md5_of(b"56789")));
    assert!(matches!(
        s.upload_part_copy("b", "dst", &id, 3, "b", "src", Some(5..11)),
        Err(MemError::InvalidRange { size: 10 })
    ));
    assert!(matches!(
        s.upload_part_copy("b", "dst", &id, 3, "b", "nope", None),
        Err(MemError::NoSuchKey(_))
    ));
    let o = s
        .complete_upload("b", "dst", &id, &[(1, e1), (2, e2)], &WriteCondition::None)
        .unwrap();
    assert_eq!(o.data.to_bytes(), Bytes::from_static(b"567890123456789"));
}

#[test]
fn copy_directives_and_self_copy() {
    let s = store();
    s.create_bucket("other").unwrap();
    s.put_object(
        "b",
        "k",
        Bytes::from_static(b"v"),
        ObjectAttrs {
            content_type: Some("text/a".into()),
            metadata: [("m".to_owned(), "1".to_owned())].into(),
        },
        &WriteCondition::None,
    )
    .unwrap();
    let c = s
        .copy_object("b", "k", "other", "k2", CopyDirective::Copy)
        .unwrap();
    assert_eq!(c.metadata.get("m").map(String::as_str), Some("1"));
    assert_eq!(c.content_type.as_deref(), Some("text/a"));
    assert_eq!(
        s.get_object("other", "k2").unwrap().data.to_bytes(),
        Bytes::from_static(b"v")
    );
    assert!(matches!(
        s.copy_object("b", "k", "b", "k", CopyDirective::Copy),
        Err(MemError::InvalidRequest(_))
    ));
    let r = s
        .copy_object(
            "b",
            "k",
            "b",
            "k",
            CopyDirective::Replace(ObjectAttrs {
                content_type: None,
                metadata: [("m".to_owned(), "2".to_owned())].into(),
            }),
        )
        .unwrap();
    assert_eq!(r.metadata.get("m").map(String::as_str), Some("2"));
    assert_eq!(r.content_type, None);
    assert!(matches!(
        s.copy_object("b", "none", "b", "x", CopyDirective::Copy),
        Err(MemError::NoSuchKey(_))
    ));
    assert!(matches!(
        s.copy_object("b", "k", "nobucket", "x", CopyDirective::Copy),
        Err(MemError::NoSuchBucket(_))
    ));
}

#[test]
fn write_conditions() {
    let s = store();
    let put_if = |cond: WriteCondition| {
        s.put_object(
            "b",
            "k",
            Bytes::from_static(b"v"),
            ObjectAttrs::default(),
            &cond,
        )
    };
    assert!(matches!(
        put_if(WriteCondition::IfMatch(None)),
        Err(MemError::NoSuchKey(_))
    ));
    let first = put_if(WriteCondition::IfNoneMatchAny).unwrap();
    assert_eq!(
        put_if(WriteCondition::IfNoneMatchAny).unwrap_err(),
        MemError::PreconditionFailed
    );
    assert_eq!(
        put_if(WriteCondition::IfMatch(Some("0".repeat(32)))).unwrap_err(),
        MemError::PreconditionFailed
    );
    put_if(WriteCondition::IfMatch(Some(format!("\"{}\"", first.etag)))).unwrap();
}

#[test]
fn buckets_lifecycle() {
    let s = MemStore::new(0);
    assert!(matches!(
        s.get_object("nb", "k"),
        Err(MemError::NoSuchBucket(_))
    ));
    s.create_bucket("nb").unwrap();
    assert_eq!(
        s.create_bucket("nb").unwrap_err(),
        MemError::BucketAlreadyOwnedByYou("nb".into())
    );
    s.put_object(
        "nb",
        "k",
        Bytes::new(),
        ObjectAttrs::default(),
        &WriteCondition::None,
    )
    .unwrap();
    assert_eq!(
        s.delete_bucket("nb").unwrap_err(),
        MemError::BucketNotEmpty("nb".into())
    );
    s.delete_object("nb", "k").unwrap();
    s.delete_object("nb", "k").unwrap();
    assert_eq!(s.list_buckets().len(), 1);
    s.delete_bucket("nb").unwrap();
    assert!(!s.bucket_exists("nb"));
    assert!(matches!(
        s.delete_bucket("nb"),
        Err(MemError::NoSuchBucket(_))
    ));
}

#[test]
fn roll_up_cases() {
    assert_eq!(roll_up("a/b/c", "", Some("/")), Some("a/"));
    assert_eq!(roll_up("a/b/c", "a/", Some("/")), Some("a/b/"));
    assert_eq!(roll_up("a/b", "a/", Some("/")), None);
    assert_eq!(roll_up("a/b", "a/", Some("")), None);
    assert_eq!(roll_up("a/b", "a/", None), None);
    assert_eq!(roll_up("b/x", "a/", Some("/")), None);
}
