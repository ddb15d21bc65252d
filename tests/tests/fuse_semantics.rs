//! Claims of `docs/semantics.md`, each quoted above the test that checks
//! it through a real FUSE mount of Garage.
//!
//! **Needs root and `/dev/fuse`** (CI runs as root).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use e2e::mount::{Bucket, Mount, assert_errno, shared_garage, unix_secs};
use e2e::{sys, unique_prefix};
use ossfs_rs::store::{ListRequest, PutOptions};

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn put(bucket: &Bucket, key: &str, body: &[u8]) {
    bucket
        .block_on(
            bucket
                .store()
                .put(key, Bytes::copy_from_slice(body), &PutOptions::default()),
        )
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

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
    page.objects
        .into_iter()
        .map(|o| o.key[prefix.len()..].to_string())
        .collect()
}

/// "A name that is both a file and a directory (`a` and `a/x` both exist,
/// which other tools can create) is a directory, always: in lookups and in
/// listings, whatever order the keys arrive in. The file `a` stays in the
/// bucket, hidden, until the directory is gone."
#[test]
fn a_name_that_is_both_file_and_directory_is_a_directory() {
    let bucket = Bucket::garage();
    let prefix = unique_prefix("both");
    put(&bucket, &format!("{prefix}both"), b"the file");
    put(&bucket, &format!("{prefix}both/child"), b"the child");
    // Sorted after `both/` in a listing: `both-x` < `both/` in byte order.
    put(&bucket, &format!("{prefix}both-x"), b"x");
    let mut m = Mount::builder(shared_garage(), "both")
        .prefix(&prefix)
        .mount();
    for _ in 0..2 {
        let entries: Vec<(String, bool)> = fs::read_dir(m.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type().unwrap().is_dir(),
                )
            })
            .collect();
        assert_eq!(
            entries.iter().filter(|(n, _)| n == "both").count(),
            1,
            "listed once: {entries:?}"
        );
        assert!(entries.contains(&("both".into(), true)), "{entries:?}");
        assert!(fs::metadata(m.join("both")).unwrap().is_dir());
        assert_eq!(fs::read(m.join("both/child")).unwrap(), b"the child");
        m.remount();
    }
    // Once the directory is gone, the file shows again.
    fs::remove_file(m.join("both/child")).unwrap();
    m.remount();
    let meta = fs::metadata(m.join("both")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(m.join("both")).unwrap(), b"the file");
}

/// "Keys that cannot be file names are not shown: a key with an empty
/// segment (`a//b`), a `.` or `..` segment, a NUL byte, or a segment longer
/// than 255 bytes. Each such key is logged once per mount (at warn level),
/// not on every listing. They stay in the bucket, and a directory rename
/// carries them along."
#[test]
fn keys_that_cannot_be_file_names_are_skipped_with_a_warning() {
    let bucket = Bucket::garage();
    let prefix = unique_prefix("badkeys");
    let long = "l".repeat(300);
    // `.` and `..` segments are left out: the store client cannot write
    // them (the URL library folds them away, so the signature no longer
    // matches the path sent).
    let bad = [
        "d//double".to_string(),
        "d/holder//inner".to_string(),
        format!("d/{long}"),
    ];
    for key in &bad {
        put(&bucket, &format!("{prefix}{key}"), b"bad");
    }
    put(&bucket, &format!("{prefix}d/good"), b"good");
    let mut m = Mount::builder(shared_garage(), "badkeys")
        .prefix(&prefix)
        .mount();
    for _ in 0..3 {
        // `holder` is a valid directory (implied by the key below it); only
        // the key with the empty segment inside it is not shown.
        assert_eq!(names(&m.join("d")), set(&["good", "holder"]));
        assert!(names(&m.join("d/holder")).is_empty());
    }
    assert_eq!(fs::read(m.join("d/good")).unwrap(), b"good");
    assert_errno(
        fs::metadata(m.join("d").join(&long)),
        libc::ENAMETOOLONG,
        "a 300-byte name",
    );
    m.unmount_ok();
    let log = fs::read_to_string(m.log_path()).unwrap_or_default();
    let warnings = log
        .lines()
        .filter(|l| l.contains("cannot be a file name"))
        .count();
    assert!(
        warnings >= 1,
        "no warning about unusable keys in the log:\n{log}"
    );
    let empty_segment_warnings = log
        .lines()
        .filter(|l| l.contains("cannot be a file name") && l.contains("d//double"))
        .count();
    assert!(
        empty_segment_warnings <= 1,
        "warned {empty_segment_warnings} times about one key"
    );
    m.remount();
    fs::rename(m.join("d"), m.join("moved")).unwrap();
    assert_eq!(names(&m.join("moved")), set(&["good", "holder"]));
    let after = keys(&bucket, &prefix);
    for key in &bad {
        let moved = format!("moved/{}", &key["d/".len()..]);
        assert!(
            after.contains(&moved),
            "{moved} not carried along: {after:?}"
        );
        assert!(!after.contains(key), "{key} left behind: {after:?}");
    }
}

/// "Files unlinked while open keep working for their writers but are never
/// uploaded again."
#[test]
fn a_file_unlinked_while_open_is_not_uploaded_again() {
    let mut m = Mount::new("unlinkopen");
    let p = m.join("f");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap();
    f.write_all(b"before").unwrap();
    fs::remove_file(&p).unwrap();
    f.write_all(b" after").unwrap();
    let mut buf = [0u8; 12];
    f.read_exact_at(&mut buf, 0)
        .unwrap_or_else(|e| panic!("read back through the writer: {e}"));
    assert_eq!(&buf, b"before after");
    f.sync_all().unwrap();
    drop(f);
    assert_errno(
        fs::metadata(&p),
        libc::ENOENT,
        "stat after unlink and close",
    );
    m.remount();
    assert!(names(m.path()).is_empty(), "the unlinked file came back");
}

/// Regression (fuse_diff seed 10653206661236088681): a descriptor opened
/// for writing, unlinked (or replaced by a rename) before its first write,
/// still has the content the name had, as on a local filesystem; it used
/// to start empty because the object was gone when the first write
/// filled the staging file.
#[test]
fn a_writer_keeps_the_content_of_a_file_unlinked_before_its_first_write() {
    let mut m = Mount::new("unlinkfirst");
    fs::write(m.join("doomed"), b"original content").unwrap();
    fs::write(m.join("replaced"), b"replaced content").unwrap();
    fs::write(m.join("winner"), b"winner").unwrap();
    let rw = || OpenOptions::new().read(true).write(true).to_owned();
    let doomed = rw().open(m.join("doomed")).unwrap();
    let replaced = rw().open(m.join("replaced")).unwrap();
    fs::remove_file(m.join("doomed")).unwrap();
    fs::rename(m.join("winner"), m.join("replaced")).unwrap();
    for (f, expected) in [
        (&doomed, &b"XXiginal content"[..]),
        (&replaced, &b"XXplaced content"[..]),
    ] {
        f.write_all_at(b"XX", 0).unwrap();
        let mut buf = vec![0u8; expected.len()];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, expected);
    }
    drop((doomed, replaced));
    m.remount();
    assert_eq!(names(m.path()), set(&["replaced"]));
    assert_eq!(fs::read(m.join("replaced")).unwrap(), b"winner");
}

/// Regression (fuse_diff seed 4563456971539356839 with
/// `-o max_stat_cache_size=2`): "While a writer has unflushed data, the
/// change rides on its upload instead" -- and until then the mount shows
/// it, also to a lookup that finds the stat cache entry gone (evicted, or
/// expired after `stat_cache_expire`). Lookups used to answer with the
/// store's older mode and mtime.
#[test]
fn pending_metadata_of_an_open_writer_survives_a_stat_cache_eviction() {
    let mut m = Mount::builder(shared_garage(), "evict")
        .option("max_stat_cache_size=1")
        .mount();
    for name in ["f", "other1", "other2"] {
        fs::write(m.join(name), b"x").unwrap();
    }
    let f = OpenOptions::new().write(true).open(m.join("f")).unwrap();
    f.write_all_at(b"more", 1).unwrap();
    fs::set_permissions(m.join("f"), fs::Permissions::from_mode(0o444)).unwrap();
    // Push `f` out of the one-entry stat cache, and let the kernel's own
    // 1 s cache of names and attributes lapse, so the next stat of `f` is
    // a lookup that resolves it again.
    std::thread::sleep(Duration::from_millis(1200));
    for other in ["other1", "other2"] {
        fs::metadata(m.join(other)).unwrap();
    }
    let meta = fs::metadata(m.join("f")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o444, "mode shown while writing");
    assert_eq!(meta.len(), 5);
    drop(f);
    m.remount();
    assert_eq!(fs::metadata(m.join("f")).unwrap().mode() & 0o7777, 0o444);
    assert_eq!(fs::read(m.join("f")).unwrap(), b"xmore");
}

/// "A rename of an open file moves its staged data along (uploads go to
/// the new name)."
#[test]
fn a_file_renamed_while_open_for_writing_keeps_its_writes() {
    let mut m = Mount::new("renameopen");
    let mut f = File::create(m.join("old")).unwrap();
    f.write_all(b"first half, ").unwrap();
    fs::rename(m.join("old"), m.join("new")).unwrap();
    f.write_all(b"second half").unwrap();
    drop(f);
    m.remount();
    assert_eq!(names(m.path()), set(&["new"]));
    assert_eq!(fs::read(m.join("new")).unwrap(), b"first half, second half");
}

/// "While a writer has unflushed data, the change rides on its upload
/// instead."
#[test]
fn metadata_changes_while_writing_ride_on_the_upload() {
    let mut m = Mount::new("metawhilewriting");
    let p = m.join("f");
    let mut f = File::create(&p).unwrap();
    f.write_all(b"data").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&p, Some(321), Some(654)).unwrap();
    sys::setxattr(&p, "user.during", b"write", 0).unwrap();
    f.write_all(b" more").unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    f.set_modified(when).unwrap();
    drop(f);
    m.remount();
    let meta = fs::metadata(&p).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"data more");
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (321, 654));
    assert_eq!(unix_secs(meta.modified().unwrap()), 1_500_000_000);
    assert_eq!(sys::getxattr(&p, "user.during").unwrap(), b"write");
}

/// "Directory listings are taken at `opendir`" and "a listing is stable
/// while `rm -r` deletes under it".
#[test]
fn recursive_delete_of_a_populated_tree() {
    let mut m = Mount::new("rmtree");
    for d in ["t", "t/a", "t/a/b", "t/c"] {
        fs::create_dir(m.join(d)).unwrap();
    }
    for i in 0..120 {
        let dir = ["t", "t/a", "t/a/b", "t/c"][i % 4];
        fs::write(m.join(format!("{dir}/f{i:03}")), [i as u8; 10]).unwrap();
    }
    fs::remove_dir_all(m.join("t")).unwrap();
    assert!(names(m.path()).is_empty());
    m.remount();
    assert!(names(m.path()).is_empty(), "something under t survived");
}

/// The "Refused" table: hard links EPERM, FIFOs EOPNOTSUPP,
/// RENAME_EXCHANGE EINVAL, names over 255 bytes ENAMETOOLONG; and for
/// xattrs, "Other namespaces: ENODATA on read ... EOPNOTSUPP on write. The
/// store's metadata limit applies (... 2 KB ... S3): past it, E2BIG."
#[test]
fn refused_operations_answer_the_documented_errno() {
    let m = Mount::new("refused");
    fs::write(m.join("f"), b"x").unwrap();
    fs::write(m.join("g"), b"y").unwrap();
    assert_errno(fs::hard_link(m.join("f"), m.join("h")), libc::EPERM, "link");
    let fifo =
        std::ffi::CString::new(m.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
    assert_errno(
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        },
        libc::EOPNOTSUPP,
        "mkfifo",
    );
    let (a, b) = (
        std::ffi::CString::new(m.join("f").into_os_string().into_encoded_bytes()).unwrap(),
        std::ffi::CString::new(m.join("g").into_os_string().into_encoded_bytes()).unwrap(),
    );
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_errno(
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        },
        libc::EINVAL,
        "RENAME_EXCHANGE",
    );
    assert_eq!(fs::read(m.join("f")).unwrap(), b"x");
    assert_errno(
        File::create(m.join("n".repeat(256))),
        libc::ENAMETOOLONG,
        "a 256-byte name",
    );
    assert_errno(
        sys::getxattr(&m.join("f"), "security.selinux"),
        libc::ENODATA,
        "getxattr outside user.",
    );
    assert_errno(
        sys::setxattr(&m.join("f"), "user.big", &[b'v'; 3000], 0),
        libc::E2BIG,
        "an xattr past the metadata limit",
    );
    assert!(sys::listxattr(&m.join("f")).unwrap().is_empty());
}

/// "The root of the mount shows `dir_mode` (or `0777 & !mp_umask`), owned
/// by the defaults".
#[test]
fn mount_root_mode_follows_mp_umask() {
    let m = Mount::builder(shared_garage(), "mpumask")
        .option("mp_umask=027")
        .mount();
    let root = fs::metadata(m.path()).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o750);
    assert_eq!((root.uid(), root.gid()), (0, 0));
}

/// Names that need escaping in URLs and signatures (space, `+`, `%`, `?`,
/// `#`, `&`, `=`, `;`, quotes, non-ASCII) round-trip through create,
/// listing, rename, xattrs and a remount.
#[test]
fn names_that_need_escaping() {
    let mut m = Mount::new("escaping");
    let names_in = [
        "with space",
        "plus+sign",
        "percent%20literal",
        "question?mark",
        "hash#tag",
        "amp&and=eq",
        "semi;colon",
        "quote'\"",
        "tilde~star*",
        "ünïcødé-日本語",
        "emoji-🦀",
    ];
    fs::create_dir(m.join("dir with space & more")).unwrap();
    for (i, n) in names_in.iter().enumerate() {
        fs::write(m.join(n), n.as_bytes()).unwrap();
        fs::write(m.join("dir with space & more").join(n), [i as u8; 3]).unwrap();
    }
    sys::setxattr(&m.join("plus+sign"), "user.k", b"v", 0).unwrap();
    fs::rename(m.join("hash#tag"), m.join("hash#tag renamed?")).unwrap();
    fs::rename(m.join("dir with space & more"), m.join("renamed dir + ünï")).unwrap();
    m.remount();
    let mut expected = set(&names_in);
    expected.remove("hash#tag");
    expected.insert("hash#tag renamed?".into());
    expected.insert("renamed dir + ünï".into());
    assert_eq!(names(m.path()), expected);
    for n in names_in.iter().filter(|n| **n != "hash#tag") {
        assert_eq!(fs::read(m.join(n)).unwrap(), n.as_bytes(), "{n}");
    }
    assert_eq!(fs::read(m.join("hash#tag renamed?")).unwrap(), b"hash#tag");
    assert_eq!(names(&m.join("renamed dir + ünï")), set(&names_in));
    assert_eq!(sys::getxattr(&m.join("plus+sign"), "user.k").unwrap(), b"v");
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.join("percent%20literal"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    assert_eq!(
        fs::read(m.join("percent%20literal")).unwrap(),
        b"percent%20literal!"
    );
}

/// "`truncate(path)` then `chmod`, `utime`, then `rename`": the renamed
/// file keeps the mode, size and mtime set last, in the mount and after a
/// remount (so the object's metadata holds them too). The shell's own
/// tools, as a user runs them, on a new and on an existing file, some
/// with another descriptor writing it meanwhile, many times (the kernel's
/// RELEASE of truncate's descriptor races with the next steps).
#[test]
fn path_truncate_chmod_utime_then_rename_keeps_the_mtime() {
    let mut m = Mount::new("trunc-chmod-utime-mv");
    let rounds = 20;
    let sh = format!(
        "cd {} && for i in $(seq {rounds}); do \
           if [ $((i % 2)) = 0 ]; then echo hello > f$i; fi; \
           if [ $((i % 3)) = 0 ]; then exec 3<>f$i; printf x >&3; fi; \
           truncate -s 100 f$i && chmod 640 f$i && touch -d @1600000000 f$i && mv f$i g$i || exit 1; \
         done",
        m.path().display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = |m: &Mount, when: &str| {
        for i in 1..=rounds {
            let g = m.join(format!("g{i}"));
            let md = fs::metadata(&g).unwrap_or_else(|e| panic!("stat g{i} {when}: {e}"));
            assert_eq!(
                (md.len(), md.mode() & 0o7777, md.mtime()),
                (100, 0o640, 1_600_000_000),
                "size, mode, mtime of g{i} {when}\n{}",
                m.log_tail()
            );
        }
    };
    check(&m, "in the mount");
    m.remount();
    check(&m, "after a remount");
}
