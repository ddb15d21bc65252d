//! Interoperation with other tools through the bucket: objects put
//! straight through the store (no metadata, nested keys without directory
//! markers, ossfs/s3fs metadata) look right through a mount, and what the
//! mount writes carries ossfs-compatible metadata (`mode`, `uid`, `gid`,
//! `mtime` user metadata, `dir/` markers, s3fs-style symlinks and xattrs).
//!
//! **Needs root and `/dev/fuse`** (CI runs as root).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use e2e::mount::{Bucket, Mount, assert_errno, shared_garage, unix_secs};
use e2e::{sys, unique_prefix};
use ossfs_rs::store::{ListRequest, PutOptions};

fn put(bucket: &Bucket, key: &str, body: &[u8], meta: &[(&str, &str)]) {
    let mut opts = PutOptions::default();
    for (k, v) in meta {
        opts.user_metadata.insert(k.to_string(), v.to_string());
    }
    bucket
        .block_on(bucket.store().put(key, Bytes::copy_from_slice(body), &opts))
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every key under `prefix`, relative to it.
fn keys(bucket: &Bucket, prefix: &str) -> BTreeSet<String> {
    let req = ListRequest {
        prefix: prefix.to_string(),
        delimiter: None,
        max_keys: Some(1000),
        start_after: None,
    };
    let page = bucket
        .block_on(bucket.store().list_page(&req, None))
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert!(page.next_token.is_none());
    page.objects
        .into_iter()
        .map(|o| o.key[prefix.len()..].to_string())
        .collect()
}

#[test]
fn objects_written_by_other_tools_appear_with_defaults() {
    let garage = shared_garage();
    let bucket = Bucket::garage();
    let prefix = unique_prefix("foreign");
    let k = |rel: &str| format!("{prefix}{rel}");
    // What another tool leaves: no metadata at all, no directory markers.
    put(&bucket, &k("top.txt"), b"top", &[]);
    put(&bucket, &k("deep/nested/file.bin"), &[7u8; 10_000], &[]);
    put(&bucket, &k("deep/other"), b"o", &[]);
    put(&bucket, &k("implied/x/y/z.txt"), b"z", &[]);
    put(&bucket, &k("marker-only/"), b"", &[]);
    // What ossfs/s3fs leave: st_mode, owner and mtime in user metadata.
    put(
        &bucket,
        &k("owned"),
        b"mine",
        &[
            ("mode", "33152"), // S_IFREG | 0600
            ("uid", "1000"),
            ("gid", "1001"),
            ("mtime", "1600000000"),
        ],
    );
    put(
        &bucket,
        &k("meta-dir/"),
        b"",
        &[("mode", "16832"), ("uid", "5"), ("gid", "6")], // S_IFDIR | 0700
    );
    // An s3fs symlink: the target in the body, S_IFLNK | 0777 in `mode`.
    put(&bucket, &k("link"), b"top.txt", &[("mode", "41471")]);

    let mut m = Mount::builder(garage, "foreign").prefix(&prefix).mount();
    assert_eq!(
        names(m.path()),
        set(&[
            "deep",
            "implied",
            "link",
            "marker-only",
            "meta-dir",
            "owned",
            "top.txt"
        ])
    );
    let check_defaults = |m: &Mount, deep_names: &[&str]| {
        let top = fs::metadata(m.join("top.txt")).unwrap();
        assert!(top.is_file());
        assert_eq!(top.len(), 3);
        assert_eq!(top.mode() & 0o7777, 0o644, "default file mode");
        assert_eq!(
            (top.uid(), top.gid()),
            (0, 0),
            "the mounting user owns foreign objects"
        );
        assert_eq!(fs::read(m.join("top.txt")).unwrap(), b"top");
        // Last-Modified stands in for a missing mtime.
        let age = SystemTime::now()
            .duration_since(top.modified().unwrap())
            .unwrap_or_default();
        assert!(
            age < Duration::from_secs(3600),
            "mtime {:?}",
            top.modified()
        );

        let deep = fs::metadata(m.join("deep")).unwrap();
        assert!(deep.is_dir(), "a directory implied by deeper keys");
        assert_eq!(deep.mode() & 0o7777, 0o755, "default directory mode");
        assert_eq!(names(&m.join("deep")), set(deep_names));
        assert_eq!(names(&m.join("deep/nested")), set(&["file.bin"]));
        assert_eq!(
            fs::read(m.join("deep/nested/file.bin")).unwrap(),
            vec![7u8; 10_000]
        );
        assert!(fs::metadata(m.join("implied/x/y")).unwrap().is_dir());
        assert_eq!(fs::read(m.join("implied/x/y/z.txt")).unwrap(), b"z");
        assert!(fs::metadata(m.join("marker-only")).unwrap().is_dir());
        assert!(names(&m.join("marker-only")).is_empty());

        let owned = fs::metadata(m.join("owned")).unwrap();
        assert_eq!(owned.mode() & 0o7777, 0o600);
        assert_eq!((owned.uid(), owned.gid()), (1000, 1001));
        assert_eq!(unix_secs(owned.modified().unwrap()), 1_600_000_000);
        let md = fs::metadata(m.join("meta-dir")).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.mode() & 0o7777, 0o700);
        assert_eq!((md.uid(), md.gid()), (5, 6));

        let link = fs::symlink_metadata(m.join("link")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(fs::read_link(m.join("link")).unwrap(), Path::new("top.txt"));
        assert_eq!(fs::read(m.join("link")).unwrap(), b"top");
    };
    check_defaults(&m, &["nested", "other"]);

    // The mount works inside implied directories.
    fs::write(m.join("implied/x/new.txt"), b"new").unwrap();
    assert_eq!(names(&m.join("implied/x")), set(&["new.txt", "y"]));
    assert_errno(
        fs::remove_dir(m.join("implied/x")),
        libc::ENOTEMPTY,
        "rmdir of a non-empty implied directory",
    );
    fs::create_dir(m.join("deep/made-here")).unwrap();
    m.remount();
    check_defaults(&m, &["made-here", "nested", "other"]);
    assert_eq!(fs::read(m.join("implied/x/new.txt")).unwrap(), b"new");
    assert!(keys(&bucket, &prefix).contains("implied/x/new.txt"));
    assert!(keys(&bucket, &prefix).contains("deep/made-here/"));

    // uid, gid and umask options apply to every node, metadata or not.
    let forced = Mount::builder(garage, "foreign-forced")
        .prefix(&prefix)
        .option("uid=1234,gid=4321,umask=027")
        .mount();
    let top = fs::metadata(forced.join("top.txt")).unwrap();
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o7777),
        (1234, 4321, 0o640)
    );
    let owned = fs::metadata(forced.join("owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 4321, 0o600)
    );
    let deep = fs::metadata(forced.join("deep")).unwrap();
    assert_eq!((deep.uid(), deep.mode() & 0o7777), (1234, 0o750));
}

#[test]
fn files_written_through_the_mount_carry_ossfs_metadata() {
    let bucket = Bucket::garage();
    let m = Mount::new("ossfsmeta");
    let umask = sys::umask();
    let before = unix_secs(SystemTime::now());

    fs::write(m.join("plain"), b"plain content").unwrap();
    fs::write(m.join("tuned"), b"tuned").unwrap();
    fs::set_permissions(m.join("tuned"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(m.join("tuned"), Some(1000), Some(1001)).unwrap();
    fs::File::options()
        .write(true)
        .open(m.join("tuned"))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .unwrap();
    sys::setxattr(&m.join("tuned"), "user.k", b"v", 0).unwrap();
    fs::create_dir(m.join("d")).unwrap();
    fs::create_dir(m.join("d/e")).unwrap();
    std::os::unix::fs::symlink("plain", m.join("l")).unwrap();
    let after = unix_secs(SystemTime::now());

    let prefix = m.prefix().to_string();
    assert_eq!(
        keys(&bucket, &prefix),
        set(&["d/", "d/e/", "l", "plain", "tuned"]),
        "directories are `dir/` markers; nothing else is written"
    );
    let head = |rel: &str| {
        bucket
            .block_on(bucket.store().head(&format!("{prefix}{rel}")))
            .unwrap_or_else(|e| panic!("head {rel}: {e}"))
    };
    let meta = |rel: &str| -> BTreeMap<String, String> { head(rel).user_metadata };
    let mtime_of = |m: &BTreeMap<String, String>| -> u64 {
        m.get("mtime")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric mtime in {m:?}"))
    };

    let plain = meta("plain");
    assert_eq!(head("plain").size, 13);
    assert_eq!(
        plain.get("mode").map(String::as_str),
        Some(&*(0o100666 & !umask).to_string())
    );
    assert_eq!(plain.get("uid").map(String::as_str), Some("0"));
    assert_eq!(plain.get("gid").map(String::as_str), Some("0"));
    let t = mtime_of(&plain);
    assert!(
        (before..=after).contains(&t),
        "mtime {t} not in {before}..={after}"
    );

    let tuned = meta("tuned");
    assert_eq!(tuned.get("mode").map(String::as_str), Some("33184")); // S_IFREG | 0640
    assert_eq!(tuned.get("uid").map(String::as_str), Some("1000"));
    assert_eq!(tuned.get("gid").map(String::as_str), Some("1001"));
    assert_eq!(tuned.get("mtime").map(String::as_str), Some("1600000000"));
    // s3fs' xattr encoding: percent-encoded JSON of base64 values.
    assert_eq!(
        tuned.get("xattr").map(String::as_str),
        Some("%7B%22user.k%22%3A%22dg%3D%3D%22%7D")
    );
    let body = bucket
        .block_on(async {
            bucket
                .store()
                .get(&format!("{prefix}tuned"), None)
                .await?
                .collect()
                .await
        })
        .unwrap();
    assert_eq!(&body[..], b"tuned", "metadata changes keep the data");

    let d = head("d/");
    assert_eq!(d.size, 0);
    assert_eq!(d.content_type.as_deref(), Some("application/x-directory"));
    assert_eq!(
        d.user_metadata.get("mode").map(String::as_str),
        Some(&*(0o40777 & !umask).to_string())
    );
    assert_eq!(d.user_metadata.get("uid").map(String::as_str), Some("0"));
    let t = mtime_of(&d.user_metadata);
    assert!((before..=after).contains(&t), "directory mtime {t}");

    let l = meta("l");
    assert_eq!(l.get("mode").map(String::as_str), Some("41471")); // S_IFLNK | 0777
    let target = bucket
        .block_on(async {
            bucket
                .store()
                .get(&format!("{prefix}l"), None)
                .await?
                .collect()
                .await
        })
        .unwrap();
    assert_eq!(
        &target[..],
        b"plain",
        "an s3fs symlink keeps its target in the body"
    );
}
