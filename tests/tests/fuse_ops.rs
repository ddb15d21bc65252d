//! Every filesystem operation through a real FUSE mount of Garage, with
//! `std::fs` and `std::os::unix` (plus `e2e::sys` for renameat2, statvfs
//! and xattrs), including the error answers.
//!
//! **Needs root and `/dev/fuse`** (CI runs as root): each test mounts a
//! fresh prefix of the shared Garage bucket with the real `ossfs-rs`
//! binary (see `e2e::mount`), so the tests run in parallel.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use e2e::mount::{Bucket, Mount, assert_errno, shared_garage, unix_secs};
use e2e::sys;

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn small_file_create_write_read_overwrite() {
    let m = Mount::new("small");
    let p = m.join("hello.txt");
    fs::write(&p, b"hello, world\n").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"hello, world\n");
    let meta = fs::metadata(&p).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.len(), 13);
    assert_eq!(meta.mode() & 0o7777, 0o666 & !sys::umask());

    // Write in several calls through one handle, read back in pieces.
    let mut f = File::create(m.join("pieces")).unwrap();
    for i in 0..10u8 {
        f.write_all(&[i; 1000]).unwrap();
    }
    drop(f);
    let mut f = File::open(m.join("pieces")).unwrap();
    let mut buf = [0u8; 1000];
    f.seek(SeekFrom::Start(7000)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [7u8; 1000]);
    assert_eq!(f.read_at(&mut buf[..10], 9995).unwrap(), 5);
    assert_eq!(&buf[..5], &[9u8; 5]);
    assert_eq!(f.read_at(&mut buf, 10_000).unwrap(), 0, "read at EOF");
    drop(f);

    // fs::write on an existing file truncates it (O_TRUNC).
    fs::write(&p, b"short").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"short");

    // An empty file.
    File::create(m.join("empty")).unwrap();
    assert_eq!(fs::metadata(m.join("empty")).unwrap().len(), 0);
    assert_eq!(fs::read(m.join("empty")).unwrap(), b"");

    // Still there after a remount (read from the bucket).
    let mut m = m;
    m.remount();
    assert_eq!(fs::read(m.join("hello.txt")).unwrap(), b"short");
    assert_eq!(fs::read(m.join("pieces")).unwrap().len(), 10_000);
    assert_eq!(fs::metadata(m.join("empty")).unwrap().len(), 0);
}

/// Garage's endpoint is `127.0.0.1`: without `path_style` the daemon
/// chooses path style by itself (`bucket.127.0.0.1` cannot exist), says so
/// in its log, and the mount works.
#[test]
fn an_ip_endpoint_mounts_without_path_style() {
    let m = Mount::builder(shared_garage(), "ops-ip-endpoint")
        .without_path_style()
        .option("dbglevel=info")
        .mount();
    fs::write(m.join("f"), b"by path style").unwrap_or_else(|e| panic!("write: {e}"));
    assert_eq!(fs::read(m.join("f")).unwrap_or_default(), b"by path style");
    let bucket = Bucket::garage();
    let (size, _) = bucket.object_sha256(&format!("{}f", m.prefix()));
    assert_eq!(size, 13);
    let log = fs::read_to_string(m.log_path()).unwrap_or_default();
    assert!(log.contains("using path style"), "{log}");
}

#[test]
fn large_file_goes_up_in_parts() {
    // 5 MiB parts (the S3 minimum), a file of a bit more than two parts.
    let mut m = Mount::builder(shared_garage(), "multipart")
        .option("multipart_size=5")
        .mount();
    let len = 2 * 5 * 1024 * 1024 + 123_457;
    let data = pattern(len, 1);
    let p = m.join("big.bin");
    let mut f = File::create(&p).unwrap();
    for chunk in data.chunks(128 * 1024 + 7) {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), len as u64);

    // A multipart upload's ETag is `md5-of-md5s-<parts>`.
    let bucket = Bucket::garage();
    let head = bucket
        .block_on(bucket.store().head(&format!("{}big.bin", m.prefix())))
        .unwrap();
    assert_eq!(head.size, len as u64);
    assert!(
        head.etag.ends_with("-3"),
        "expected a 3-part upload, ETag is {}",
        head.etag
    );

    m.remount();
    let back = fs::read(&p).unwrap();
    assert!(back == data, "content of the multipart file differs");
    // A ranged read across a part boundary.
    let f = File::open(&p).unwrap();
    let mut buf = vec![0u8; 100_000];
    let at = 5 * 1024 * 1024 - 50_000;
    f.read_exact_at(&mut buf, at as u64).unwrap();
    assert!(buf[..] == data[at..at + 100_000]);
    drop(f);

    // A small change in the middle rewrites the object, still in parts.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"PATCH", 6_000_000).unwrap();
    drop(f);
    let mut expected = data;
    expected[6_000_000..6_000_005].copy_from_slice(b"PATCH");
    m.remount();
    assert!(fs::read(&p).unwrap() == expected);

    // Rename and chmod of a multipart object are server-side copies.
    fs::rename(&p, m.join("renamed.bin")).unwrap();
    fs::set_permissions(m.join("renamed.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    m.remount();
    assert_eq!(mode_of(&m.join("renamed.bin")), 0o600);
    assert!(fs::read(m.join("renamed.bin")).unwrap() == expected);
    assert_errno(fs::metadata(&p), libc::ENOENT, "the old name after rename");
}

/// The metrics page of the mount serving them on `addr`.
fn metrics_text(addr: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

/// `ossfs_store_bytes_total{direction="write"}` of the mount serving
/// metrics on `addr`.
fn bytes_written(addr: &str) -> u64 {
    let text = metrics_text(addr);
    text.lines()
        .find_map(|l| l.strip_prefix("ossfs_store_bytes_total{direction=\"write\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no written-bytes counter in:\n{text}"))
}

/// The value of the metric line starting with `series ` on `addr`.
fn metric(addr: &str, series: &str) -> u64 {
    let text = metrics_text(addr);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn the_disk_cache_serves_a_remount_and_never_a_changed_object() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let cache = tempfile::tempdir().unwrap();
    let mut m = Mount::builder(shared_garage(), "diskcache")
        .option(&format!(
            "use_cache={},disk_cache_size=64,metrics={addr}",
            cache.path().display()
        ))
        .mount();
    let data = pattern(3 * 1024 * 1024 + 77, 21);
    let bucket = Bucket::garage();
    let key = format!("{}data.bin", m.prefix());
    bucket
        .block_on(
            bucket
                .store()
                .put(&key, data.clone().into(), &Default::default()),
        )
        .unwrap();
    assert!(fs::read(m.join("data.bin")).unwrap() == data);
    // The blocks reach the disk in the background; the unmount waits for
    // nothing, so wait for the files here.
    let files = || {
        walk(cache.path())
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
            .count()
    };
    for _ in 0..200 {
        if files() >= 25 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(files(), 25, "3 MiB + 77 bytes in blocks of 128 KiB");
    // A remount (cold memory, cold page cache) reads it from disk: no GET.
    m.remount();
    let gets = |addr: &str| {
        metric(
            addr,
            "ossfs_store_requests_total{op=\"get\",outcome=\"ok\"}",
        )
    };
    let before = gets(&addr);
    assert!(fs::read(m.join("data.bin")).unwrap() == data);
    assert_eq!(gets(&addr), before, "served from the disk cache");
    assert!(metric(&addr, "ossfs_cache_hits_total{cache=\"disk\"}") >= 25);
    // The object changes behind the mount's back: after a remount the new
    // ETag misses every old block, and the new bytes are read.
    let changed = pattern(3 * 1024 * 1024 + 77, 22);
    bucket
        .block_on(
            bucket
                .store()
                .put(&key, changed.clone().into(), &Default::default()),
        )
        .unwrap();
    m.remount();
    assert!(fs::read(m.join("data.bin")).unwrap() == changed);
    // Every file is private to the mount's user (looked at once the
    // daemon, and with it the cache's writer, is gone).
    m.unmount_ok();
    for p in walk(cache.path()) {
        let mode = fs::symlink_metadata(&p).unwrap().mode() & 0o077;
        assert_eq!(mode, 0, "{} is readable by others", p.display());
    }
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_sequential_writer_is_uploaded_while_it_writes() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let m = Mount::builder(shared_garage(), "streamed")
        .option(&format!("multipart_size=5,metrics={addr}"))
        .mount();
    let data = pattern(32 * 1024 * 1024 + 999, 9);
    let src = tempfile::NamedTempFile::new().unwrap();
    fs::write(src.path(), &data).unwrap();
    let p = m.join("streamed.bin");
    // The writer is a process of its own that keeps the file open until
    // told to close it: an fd of this (multi-threaded) test process would
    // be inherited by every child another test spawns meanwhile, and each
    // such child's exec closes it, which is a FLUSH, which uploads.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3>"$1"; cat "$2" >&3; echo written; read -r _; exec 3>&-"#)
        .arg("writer")
        .arg(&p)
        .arg(src.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "written");
    // Still open: the parts written past are already in the store (or on
    // their way: wait for them, at most a while).
    let mut sent = 0;
    for _ in 0..200 {
        sent = bytes_written(&addr);
        if sent >= 25 * 1024 * 1024 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        sent >= 25 * 1024 * 1024,
        "only {sent} bytes sent before close"
    );
    // Let the writer close the file.
    drop(writer.stdin.take());
    assert!(writer.wait().unwrap().success());
    let bucket = Bucket::garage();
    let head = bucket
        .block_on(bucket.store().head(&format!("{}streamed.bin", m.prefix())))
        .unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert!(
        head.etag.ends_with("-7"),
        "7 parts of 5 MiB, ETag {}",
        head.etag
    );
    let got = bucket
        .block_on(async {
            bucket
                .store()
                .get(&format!("{}streamed.bin", m.prefix()), None)
                .await?
                .collect()
                .await
        })
        .unwrap();
    assert!(got[..] == data[..], "the streamed object differs");
    // Every byte went up once: parts while writing, the last at close.
    let total = bytes_written(&addr);
    assert!(
        total < data.len() as u64 + 1024 * 1024,
        "{total} bytes sent for {}: a part went twice\n{}\n{}",
        data.len(),
        m.log_tail(),
        metrics_text(&addr)
    );
}

#[test]
fn parallel_writers_and_readers() {
    let mut m = Mount::new("parallel");
    fs::create_dir(m.join("d")).unwrap();
    let threads = 8;
    std::thread::scope(|s| {
        for t in 0..threads {
            let m = &m;
            s.spawn(move || {
                for i in 0..5u64 {
                    let p = m.join(format!("d/t{t}-{i}"));
                    let data = pattern(150_000 + i as usize * 1000, t * 100 + i);
                    fs::write(&p, &data).unwrap();
                    assert!(fs::read(&p).unwrap() == data, "{} read back", p.display());
                    // Listings run while others create files.
                    assert!(names(&m.join("d")).contains(&format!("t{t}-{i}")));
                }
            });
        }
        // One file written through several handles from several threads,
        // each thread its own region.
        let shared = m.join("shared");
        File::create(&shared).unwrap().set_len(8 * 4096).unwrap();
        for t in 0..8u64 {
            let shared = shared.clone();
            s.spawn(move || {
                let f = OpenOptions::new().write(true).open(&shared).unwrap();
                f.write_all_at(&[t as u8 + 1; 4096], t * 4096).unwrap();
            });
        }
    });
    m.remount();
    assert_eq!(names(&m.join("d")).len(), threads as usize * 5);
    for t in 0..threads {
        for i in 0..5u64 {
            let data = pattern(150_000 + i as usize * 1000, t * 100 + i);
            assert!(fs::read(m.join(format!("d/t{t}-{i}"))).unwrap() == data);
        }
    }
    let shared = fs::read(m.join("shared")).unwrap();
    assert_eq!(shared.len(), 8 * 4096);
    for t in 0..8usize {
        assert!(
            shared[t * 4096..(t + 1) * 4096]
                .iter()
                .all(|b| *b == t as u8 + 1),
            "region {t} of the shared file"
        );
    }
}

#[test]
fn random_writes_at_offsets() {
    let mut m = Mount::new("randwrite");
    let p = m.join("f");
    let mut model = pattern(100_000, 2);
    fs::write(&p, &model).unwrap();

    let writes: [(u64, usize); 6] = [
        (0, 10),
        (4095, 2),
        (50_000, 70_000),
        (99_999, 1),
        (150_000, 1000), // beyond EOF: leaves a hole of zeros
        (123, 4096),
    ];
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    for (i, (off, len)) in writes.into_iter().enumerate() {
        let data = pattern(len, 100 + i as u64);
        f.write_all_at(&data, off).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
    }
    // Reading through another handle while the writer is open sees the writes.
    assert!(fs::read(&p).unwrap() == model);
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), model.len() as u64);
    m.remount();
    assert!(fs::read(&p).unwrap() == model, "content after remount");
}

#[test]
fn append_mode() {
    let mut m = Mount::new("append");
    let p = m.join("log");
    fs::write(&p, b"one\n").unwrap();
    for line in [&b"two\n"[..], b"three\n"] {
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(line).unwrap();
    }
    // O_APPEND ignores the offset of pwrite on Linux: still appends.
    let f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all_at(b"four\n", 0).unwrap();
    drop(f);
    // append + create on a missing file.
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(m.join("new"))
        .unwrap();
    f.write_all(b"a").unwrap();
    f.write_all(b"b").unwrap();
    drop(f);
    m.remount();
    assert_eq!(fs::read(&p).unwrap(), b"one\ntwo\nthree\nfour\n");
    assert_eq!(fs::read(m.join("new")).unwrap(), b"ab");
}

#[test]
fn open_with_o_trunc() {
    let mut m = Mount::new("otrunc");
    let p = m.join("f");
    fs::write(&p, pattern(50_000, 3)).unwrap();
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    f.write_all(b"new").unwrap();
    drop(f);
    // O_TRUNC with nothing written leaves an empty file.
    let q = m.join("g");
    fs::write(&q, b"something").unwrap();
    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&q)
            .unwrap(),
    );
    m.remount();
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert_eq!(fs::read(&q).unwrap(), b"");
}

#[test]
fn truncate_to_larger_smaller_and_zero() {
    let mut m = Mount::new("truncate");
    let p = m.join("f");
    let data = pattern(10_000, 4);
    fs::write(&p, &data).unwrap();

    // Larger: zero-filled.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(30_000).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), 30_000);
    let mut expected = data.clone();
    expected.resize(30_000, 0);
    assert!(fs::read(&p).unwrap() == expected);

    // Smaller.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(1234).unwrap();
    drop(f);
    m.remount();
    assert_eq!(fs::metadata(&p).unwrap().len(), 1234);
    assert!(fs::read(&p).unwrap() == data[..1234]);

    // Zero, then grow again from nothing.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(5).unwrap();
    drop(f);
    m.remount();
    assert_eq!(fs::read(&p).unwrap(), vec![0u8; 5]);
}

#[test]
fn mkdir_rmdir_and_nested_directories() {
    let mut m = Mount::new("dirs");
    let d = m.join("d");
    fs::create_dir(&d).unwrap();
    assert!(fs::metadata(&d).unwrap().is_dir());
    assert_eq!(mode_of(&d), 0o777 & !sys::umask());
    assert_errno(
        fs::create_dir(&d),
        libc::EEXIST,
        "mkdir of an existing directory",
    );

    fs::create_dir_all(m.join("a/b/c")).unwrap();
    fs::write(m.join("a/b/c/file"), b"x").unwrap();
    assert_eq!(names(&m.join("a")), BTreeSet::from(["b".to_string()]));
    assert_errno(
        fs::remove_dir(m.join("a/b")),
        libc::ENOTEMPTY,
        "rmdir of a non-empty directory",
    );
    assert_errno(
        fs::remove_dir(m.join("a/b/c")),
        libc::ENOTEMPTY,
        "rmdir of a directory with a file",
    );

    // An empty directory survives a remount (its marker object).
    m.remount();
    assert!(fs::metadata(&d).unwrap().is_dir());
    assert!(names(&d).is_empty());
    fs::remove_dir(&d).unwrap();
    assert_errno(fs::metadata(&d), libc::ENOENT, "stat after rmdir");

    fs::remove_file(m.join("a/b/c/file")).unwrap();
    fs::remove_dir(m.join("a/b/c")).unwrap();
    fs::remove_dir(m.join("a/b")).unwrap();
    fs::remove_dir(m.join("a")).unwrap();
    assert!(names(m.path()).is_empty());
    m.remount();
    assert!(names(m.path()).is_empty(), "nothing left in the bucket");
}

#[test]
fn unlink_files_and_symlinks() {
    let mut m = Mount::new("unlink");
    fs::write(m.join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("f", m.join("l")).unwrap();
    fs::create_dir(m.join("d")).unwrap();
    fs::remove_file(m.join("l")).unwrap();
    assert!(fs::metadata(m.join("f")).is_ok(), "the target stays");
    fs::remove_file(m.join("f")).unwrap();
    assert_errno(fs::metadata(m.join("f")), libc::ENOENT, "stat after unlink");
    assert_errno(fs::remove_file(m.join("f")), libc::ENOENT, "unlink twice");
    assert_errno(
        fs::remove_file(m.join("d")),
        libc::EISDIR,
        "unlink of a directory",
    );
    m.remount();
    assert_eq!(names(m.path()), BTreeSet::from(["d".to_string()]));
}

#[test]
fn rename_file_keeps_content_and_metadata() {
    let mut m = Mount::new("renamefile");
    fs::create_dir(m.join("dst")).unwrap();
    let src = m.join("src.txt");
    let data = pattern(70_000, 5);
    fs::write(&src, &data).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&src, Some(1001), Some(1002)).unwrap();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    sys::setxattr(&src, "user.tag", b"kept", 0).unwrap();

    let dst = m.join("dst/renamed.txt");
    fs::rename(&src, &dst).unwrap();
    assert_errno(fs::metadata(&src), libc::ENOENT, "old name after rename");
    m.remount();
    let meta = fs::metadata(&dst).unwrap();
    assert!(fs::read(&dst).unwrap() == data);
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (1001, 1002));
    assert_eq!(unix_secs(meta.modified().unwrap()), 1_600_000_000);
    assert_eq!(sys::getxattr(&dst, "user.tag").unwrap(), b"kept");
    assert!(names(m.path()).contains("dst") && !names(m.path()).contains("src.txt"));

    // Renaming onto an existing file replaces it.
    fs::write(m.join("other"), b"other content").unwrap();
    fs::rename(&dst, m.join("other")).unwrap();
    assert!(fs::read(m.join("other")).unwrap() == data);
    assert_errno(
        fs::metadata(&dst),
        libc::ENOENT,
        "source after replacing rename",
    );
    m.remount();
    assert!(fs::read(m.join("other")).unwrap() == data);
    assert_eq!(
        names(m.path()),
        BTreeSet::from(["dst".into(), "other".into()])
    );
    assert!(names(&m.join("dst")).is_empty());
}

#[test]
fn rename_directory_with_nested_content() {
    let mut m = Mount::new("renamedir");
    fs::create_dir_all(m.join("a/b/c")).unwrap();
    fs::create_dir(m.join("a/empty")).unwrap();
    fs::write(m.join("a/top"), b"top").unwrap();
    fs::write(m.join("a/b/mid"), b"mid").unwrap();
    fs::write(m.join("a/b/c/deep"), pattern(30_000, 6)).unwrap();
    std::os::unix::fs::symlink("../top", m.join("a/b/link")).unwrap();
    fs::set_permissions(m.join("a/b"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::create_dir(m.join("z")).unwrap();

    fs::rename(m.join("a"), m.join("z/a2")).unwrap();
    assert_errno(
        fs::metadata(m.join("a")),
        libc::ENOENT,
        "old directory after rename",
    );
    let check = |m: &Mount| {
        assert_eq!(fs::read(m.join("z/a2/top")).unwrap(), b"top");
        assert_eq!(fs::read(m.join("z/a2/b/mid")).unwrap(), b"mid");
        assert!(fs::read(m.join("z/a2/b/c/deep")).unwrap() == pattern(30_000, 6));
        assert_eq!(
            fs::read_link(m.join("z/a2/b/link")).unwrap(),
            Path::new("../top")
        );
        assert_eq!(fs::read(m.join("z/a2/b/link")).unwrap(), b"top");
        assert!(fs::metadata(m.join("z/a2/empty")).unwrap().is_dir());
        assert_eq!(mode_of(&m.join("z/a2/b")), 0o750);
        assert_eq!(
            names(&m.join("z/a2")),
            BTreeSet::from(["b".into(), "empty".into(), "top".into()])
        );
        assert_eq!(names(m.path()), BTreeSet::from(["z".to_string()]));
    };
    check(&m);
    m.remount();
    check(&m);

    // Onto an existing empty directory: replaces it; onto a non-empty one: ENOTEMPTY.
    fs::create_dir(m.join("empty2")).unwrap();
    fs::rename(m.join("z/a2/empty"), m.join("empty2")).unwrap();
    fs::create_dir(m.join("full")).unwrap();
    fs::write(m.join("full/x"), b"x").unwrap();
    assert_errno(
        fs::rename(m.join("z/a2/b"), m.join("full")),
        libc::ENOTEMPTY,
        "rename onto a non-empty directory",
    );
    assert_errno(
        fs::rename(m.join("z/a2"), m.join("z/a2/b/c/inside")),
        libc::EINVAL,
        "rename into its own subdirectory",
    );
    assert_errno(
        fs::rename(m.join("z/a2"), m.join("full/x")),
        libc::ENOTDIR,
        "rename of a directory onto a file",
    );
    assert_errno(
        fs::rename(m.join("full/x"), m.join("z/a2")),
        libc::EISDIR,
        "rename of a file onto a directory",
    );
    m.remount();
    assert!(names(&m.join("z/a2")).contains("b"));
    assert!(!names(&m.join("z/a2")).contains("empty"));
    assert!(fs::metadata(m.join("empty2")).unwrap().is_dir());
}

#[test]
fn rename_noreplace_refuses_an_existing_target() {
    let mut m = Mount::new("noreplace");
    fs::write(m.join("a"), b"a").unwrap();
    fs::write(m.join("b"), b"b").unwrap();
    fs::create_dir(m.join("d1")).unwrap();
    fs::create_dir(m.join("d2")).unwrap();
    assert_errno(
        sys::rename_noreplace(&m.join("a"), &m.join("b")),
        libc::EEXIST,
        "RENAME_NOREPLACE onto a file",
    );
    assert_errno(
        sys::rename_noreplace(&m.join("d1"), &m.join("d2")),
        libc::EEXIST,
        "RENAME_NOREPLACE onto a directory",
    );
    assert_eq!(fs::read(m.join("a")).unwrap(), b"a");
    assert_eq!(fs::read(m.join("b")).unwrap(), b"b");
    sys::rename_noreplace(&m.join("a"), &m.join("c")).unwrap();
    sys::rename_noreplace(&m.join("d1"), &m.join("d3")).unwrap();
    m.remount();
    assert_eq!(
        names(m.path()),
        BTreeSet::from(["b".into(), "c".into(), "d2".into(), "d3".into()])
    );
    assert_eq!(fs::read(m.join("c")).unwrap(), b"a");
}

#[test]
fn symlinks_and_readlink() {
    let mut m = Mount::new("symlink");
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("dir/target"), b"through the link").unwrap();
    std::os::unix::fs::symlink("dir/target", m.join("rel")).unwrap();
    std::os::unix::fs::symlink("dir", m.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", m.join("dangling")).unwrap();
    let long_target = "x".repeat(1000);
    std::os::unix::fs::symlink(&long_target, m.join("long")).unwrap();
    assert_errno(
        std::os::unix::fs::symlink("x", m.join("rel")),
        libc::EEXIST,
        "symlink over an existing name",
    );
    m.remount();
    let meta = fs::symlink_metadata(m.join("rel")).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(meta.len(), "dir/target".len() as u64);
    assert_eq!(
        fs::read_link(m.join("rel")).unwrap(),
        Path::new("dir/target")
    );
    assert_eq!(fs::read(m.join("rel")).unwrap(), b"through the link");
    assert_eq!(
        fs::read(m.join("dirlink/target")).unwrap(),
        b"through the link"
    );
    assert_eq!(
        fs::read_link(m.join("dangling")).unwrap(),
        Path::new("nowhere/at/all")
    );
    assert_errno(
        fs::metadata(m.join("dangling")),
        libc::ENOENT,
        "following a dangling link",
    );
    assert_eq!(
        fs::read_link(m.join("long")).unwrap(),
        Path::new(&long_target)
    );
    assert_errno(
        fs::read_link(m.join("dir/target")),
        libc::EINVAL,
        "readlink of a file",
    );
    let kinds: Vec<(String, bool)> = fs::read_dir(m.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.file_type().unwrap().is_symlink(),
            )
        })
        .filter(|(_, link)| *link)
        .collect();
    assert_eq!(
        kinds.len(),
        4,
        "readdir reports the symlinks as symlinks: {kinds:?}"
    );
}

#[test]
fn chmod_chown_and_utimens() {
    let mut m = Mount::new("attrs");
    let f = m.join("f");
    fs::write(&f, b"data").unwrap();
    fs::create_dir(m.join("d")).unwrap();

    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(mode_of(&f), 0o600);
    fs::set_permissions(m.join("d"), fs::Permissions::from_mode(0o711)).unwrap();
    assert_eq!(mode_of(&m.join("d")), 0o711);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(
        mode_of(&f),
        0o4755,
        "setuid bit kept (mounted nosuid, but stored)"
    );
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();

    std::os::unix::fs::chown(&f, Some(4242), None).unwrap();
    std::os::unix::fs::chown(&f, None, Some(4343)).unwrap();
    std::os::unix::fs::lchown(m.join("d"), Some(7), Some(8)).unwrap();

    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let file = File::options().write(true).open(&f).unwrap();
    file.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
    drop(file);
    assert_eq!(
        unix_secs(fs::metadata(&f).unwrap().modified().unwrap()),
        1_234_567_890
    );

    // Everything above was stored: check it from the bucket.
    m.remount();
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(unix_secs(meta.modified().unwrap()), 1_234_567_890);
    assert_eq!(
        fs::read(&f).unwrap(),
        b"data",
        "content untouched by metadata changes"
    );
    let d = fs::metadata(m.join("d")).unwrap();
    assert_eq!(d.mode() & 0o7777, 0o711);
    assert_eq!((d.uid(), d.gid()), (7, 8));

    // The root's attributes come from the mount options.
    assert_errno(
        fs::set_permissions(m.path(), fs::Permissions::from_mode(0o700)),
        libc::EPERM,
        "chmod of the mount root",
    );
}

#[test]
fn statfs_reports_a_large_constant_capacity() {
    let m = Mount::new("statfs");
    let st = sys::statvfs(m.path()).unwrap();
    assert_eq!(st.bsize, 4096);
    assert_eq!(st.frsize, 4096);
    assert_eq!(st.namemax, 255);
    assert!(st.blocks >= 1 << 30, "{st:?}");
    assert!(st.bavail > 0 && st.bfree > 0 && st.ffree > 0, "{st:?}");
    assert_eq!(st.flag & libc::ST_RDONLY, 0, "a read-write mount");
    assert_eq!(st.flag & libc::ST_NOSUID, libc::ST_NOSUID);
}

#[test]
fn user_xattrs() {
    let mut m = Mount::new("xattr");
    let f = m.join("f");
    fs::write(&f, b"content").unwrap();
    fs::create_dir(m.join("d")).unwrap();
    assert!(sys::listxattr(&f).unwrap().is_empty());
    assert_errno(
        sys::getxattr(&f, "user.none"),
        libc::ENODATA,
        "getxattr of a missing attribute",
    );

    let binary: Vec<u8> = (0..=255).collect();
    sys::setxattr(&f, "user.bin", &binary, 0).unwrap();
    sys::setxattr(&f, "user.text", b"hello", 0).unwrap();
    sys::setxattr(&f, "user.empty", b"", 0).unwrap();
    sys::setxattr(&m.join("d"), "user.ondir", b"dir value", 0).unwrap();
    assert_errno(
        sys::setxattr(&f, "user.text", b"again", libc::XATTR_CREATE),
        libc::EEXIST,
        "XATTR_CREATE of an existing attribute",
    );
    assert_errno(
        sys::setxattr(&f, "user.nothere", b"v", libc::XATTR_REPLACE),
        libc::ENODATA,
        "XATTR_REPLACE of a missing attribute",
    );
    sys::setxattr(&f, "user.text", b"replaced", libc::XATTR_REPLACE).unwrap();
    assert_errno(
        sys::getxattr_sized(&f, "user.text", 3),
        libc::ERANGE,
        "getxattr into a short buffer",
    );
    assert_errno(
        sys::setxattr(&f, "trusted.x", b"v", 0),
        libc::EOPNOTSUPP,
        "an xattr outside the user namespace",
    );

    m.remount();
    assert_eq!(sys::getxattr(&f, "user.bin").unwrap(), binary);
    assert_eq!(sys::getxattr(&f, "user.text").unwrap(), b"replaced");
    assert_eq!(sys::getxattr(&f, "user.empty").unwrap(), b"");
    assert_eq!(
        sys::listxattr(&f).unwrap(),
        ["user.bin", "user.empty", "user.text"]
    );
    assert_eq!(
        sys::getxattr(&m.join("d"), "user.ondir").unwrap(),
        b"dir value"
    );
    assert_eq!(fs::read(&f).unwrap(), b"content");

    sys::removexattr(&f, "user.bin").unwrap();
    assert_errno(
        sys::removexattr(&f, "user.bin"),
        libc::ENODATA,
        "removexattr twice",
    );
    m.remount();
    assert_eq!(sys::listxattr(&f).unwrap(), ["user.empty", "user.text"]);
}

#[test]
fn readdir_with_more_entries_than_one_list_page() {
    const FILES: usize = 1500;
    let m = Mount::new("manyfiles");
    fs::create_dir(m.join("big")).unwrap();
    let expected: BTreeSet<String> = (0..FILES).map(|i| format!("file-{i:05}")).collect();
    let list: Vec<String> = expected.iter().cloned().collect();
    std::thread::scope(|s| {
        for chunk in list.chunks(FILES / 8 + 1) {
            let dir = m.join("big");
            s.spawn(move || {
                for name in chunk {
                    File::create(dir.join(name)).unwrap();
                }
            });
        }
    });
    fs::create_dir(m.join("big/zz-subdir")).unwrap();
    let mut all = expected.clone();
    all.insert("zz-subdir".into());
    assert_eq!(names(&m.join("big")), all);

    // A second mount of the same prefix lists straight from the bucket.
    let other = Mount::builder(shared_garage(), "manyfiles2")
        .prefix(m.prefix())
        .mount();
    let entries: Vec<(String, bool)> = fs::read_dir(other.join("big"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.file_type().unwrap().is_dir(),
            )
        })
        .collect();
    assert_eq!(entries.len(), FILES + 1, "no duplicates, nothing missing");
    let listed: BTreeSet<String> = entries.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(listed, all);
    assert!(entries.iter().all(|(n, dir)| *dir == (n == "zz-subdir")));
    drop(other);

    // Renaming it copies and deletes more keys than one LIST page and one
    // delete-multiple request hold.
    fs::rename(m.join("big"), m.join("moved")).unwrap();
    let again = Mount::builder(shared_garage(), "manyfiles3")
        .prefix(m.prefix())
        .mount();
    assert_eq!(names(again.path()), BTreeSet::from(["moved".to_string()]));
    assert_eq!(names(&again.join("moved")), all);
}

#[test]
fn error_answers() {
    let m = Mount::new("errors");
    fs::write(m.join("file"), b"x").unwrap();
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("dir/inner"), b"y").unwrap();

    // ENOENT
    assert_errno(
        File::open(m.join("missing")),
        libc::ENOENT,
        "open of a missing file",
    );
    assert_errno(
        fs::metadata(m.join("missing/deeper")),
        libc::ENOENT,
        "stat below a missing directory",
    );
    assert_errno(
        fs::read_dir(m.join("missing")),
        libc::ENOENT,
        "readdir of a missing directory",
    );
    assert_errno(
        fs::remove_dir(m.join("missing")),
        libc::ENOENT,
        "rmdir of a missing directory",
    );
    assert_errno(
        fs::rename(m.join("missing"), m.join("x")),
        libc::ENOENT,
        "rename of a missing file",
    );
    assert_errno(
        File::create(m.join("missing/new")),
        libc::ENOENT,
        "create in a missing directory",
    );
    // EEXIST
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("file")),
        libc::EEXIST,
        "create_new of an existing file",
    );
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("dir")),
        libc::EEXIST,
        "create_new of an existing directory",
    );
    assert_errno(
        fs::create_dir(m.join("file")),
        libc::EEXIST,
        "mkdir over a file",
    );
    assert_errno(
        fs::create_dir(m.join("dir")),
        libc::EEXIST,
        "mkdir over a directory",
    );
    // ENOTEMPTY
    assert_errno(
        fs::remove_dir(m.join("dir")),
        libc::ENOTEMPTY,
        "rmdir of a non-empty directory",
    );
    // EISDIR
    assert_errno(
        OpenOptions::new().write(true).open(m.join("dir")),
        libc::EISDIR,
        "open of a directory for writing",
    );
    assert_errno(
        fs::remove_file(m.join("dir")),
        libc::EISDIR,
        "unlink of a directory",
    );
    let mut f = File::open(m.join("dir")).unwrap();
    let mut buf = [0u8; 4];
    assert_errno(f.read(&mut buf), libc::EISDIR, "read of a directory");
    // ENOTDIR
    assert_errno(
        fs::metadata(m.join("file/x")),
        libc::ENOTDIR,
        "stat through a file",
    );
    assert_errno(
        File::create(m.join("file/x")),
        libc::ENOTDIR,
        "create through a file",
    );
    assert_errno(
        fs::create_dir(m.join("file/x")),
        libc::ENOTDIR,
        "mkdir through a file",
    );
    assert_errno(
        fs::read_dir(m.join("file")),
        libc::ENOTDIR,
        "readdir of a file",
    );
    assert_errno(
        fs::remove_dir(m.join("file")),
        libc::ENOTDIR,
        "rmdir of a file",
    );
    // ENAMETOOLONG
    let long = "n".repeat(256);
    assert_errno(
        File::create(m.join(&long)),
        libc::ENAMETOOLONG,
        "a 256-byte name",
    );
    File::create(m.join("n".repeat(255))).unwrap();
    assert!(names(m.path()).contains(&"n".repeat(255)));
}

/// Run `cmd` as the user `nobody` (65534); returns (success, stdout, stderr).
fn as_nobody(program: &str, args: &[&Path]) -> (bool, Vec<u8>, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(program)
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} as nobody: {e}"));
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn eacces_with_default_permissions() {
    let m = Mount::builder(shared_garage(), "eacces")
        .option("allow_other,default_permissions")
        .mount();
    fs::write(m.join("open"), b"readable").unwrap();
    fs::write(m.join("closed"), b"secret").unwrap();
    fs::set_permissions(m.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir(m.join("private")).unwrap();
    fs::write(m.join("private/inside"), b"x").unwrap();
    fs::set_permissions(m.join("private"), fs::Permissions::from_mode(0o700)).unwrap();

    // Control: another user can read a 0644 file, so a refusal below is
    // the permission check and not an unreachable mount.
    let (ok, out, err) = as_nobody("cat", &[&m.join("open")]);
    assert!(ok, "nobody cannot read a 0644 file: {err}");
    assert_eq!(out, b"readable");

    let (ok, _, err) = as_nobody("cat", &[&m.join("closed")]);
    assert!(!ok, "nobody read a 000 file");
    assert!(err.contains("Permission denied"), "{err}");
    let (ok, _, err) = as_nobody("ls", &[&m.join("private")]);
    assert!(
        !ok && err.contains("Permission denied"),
        "listing a 0700 directory: {err}"
    );
    let (ok, _, err) = as_nobody("touch", &[&m.join("new-by-nobody")]);
    assert!(
        !ok && err.contains("Permission denied"),
        "creating in a 0755 root owned by root: {err}"
    );
    let (ok, _, err) = as_nobody("rm", &[&m.join("open")]);
    assert!(
        !ok && err.contains("Permission denied"),
        "unlinking in a directory nobody cannot write: {err}"
    );
    assert!(fs::metadata(m.join("open")).is_ok());
    // root still may (CAP_DAC_OVERRIDE), as on a local filesystem.
    assert_eq!(fs::read(m.join("closed")).unwrap(), b"secret");
}

#[test]
fn read_only_mount_refuses_changes_with_erofs() {
    let garage = shared_garage();
    let rw = Mount::new("rosrc");
    fs::write(rw.join("f"), b"data").unwrap();
    fs::create_dir(rw.join("d")).unwrap();
    // The ossfs form of the command line: `ossfs-rs BUCKET:/PREFIX MP -o ro,...`.
    let ro = Mount::builder(garage, "ro")
        .prefix(rw.prefix())
        .option("ro")
        .ossfs_form()
        .mount();
    assert_eq!(fs::read(ro.join("f")).unwrap(), b"data");
    assert_eq!(names(ro.path()), BTreeSet::from(["d".into(), "f".into()]));
    let erofs = libc::EROFS;
    assert_errno(File::create(ro.join("new")), erofs, "create");
    assert_errno(
        OpenOptions::new().write(true).open(ro.join("f")),
        erofs,
        "open for writing",
    );
    assert_errno(
        OpenOptions::new().append(true).open(ro.join("f")),
        erofs,
        "open for appending",
    );
    assert_errno(fs::create_dir(ro.join("nd")), erofs, "mkdir");
    assert_errno(fs::remove_file(ro.join("f")), erofs, "unlink");
    assert_errno(fs::remove_dir(ro.join("d")), erofs, "rmdir");
    assert_errno(fs::rename(ro.join("f"), ro.join("g")), erofs, "rename");
    assert_errno(
        std::os::unix::fs::symlink("f", ro.join("l")),
        erofs,
        "symlink",
    );
    assert_errno(
        fs::set_permissions(ro.join("f"), fs::Permissions::from_mode(0o600)),
        erofs,
        "chmod",
    );
    assert_errno(
        std::os::unix::fs::chown(ro.join("f"), Some(1), None),
        erofs,
        "chown",
    );
    assert_errno(
        sys::setxattr(&ro.join("f"), "user.a", b"b", 0),
        erofs,
        "setxattr",
    );
    let st = sys::statvfs(ro.path()).unwrap();
    assert_eq!(st.flag & libc::ST_RDONLY, libc::ST_RDONLY);
    // Nothing changed underneath.
    assert_eq!(fs::read(rw.join("f")).unwrap(), b"data");
}
