//! Filesystem tests: [`Fs`] driven directly (no FUSE) against a real S3
//! server, each test under its own random prefix of the bucket.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::*;
use crate::store::StoreError;

mod adoption;
mod differential;
mod harness;
mod listing;
mod rename_writer;
mod streaming;
use harness::{Env, caller};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[tokio::test]
async fn created_files_read_back_and_carry_ossfs_metadata() {
    let env = Env::new().await;
    let ino = env.write_file("hello.txt", b"hello world", 0o640).await;
    assert_eq!(env.read_file("hello.txt").await, b"hello world");
    let head = env
        .head("hello.txt")
        .await
        .unwrap_or_else(|| panic!("not uploaded"));
    assert_eq!(head.size, 11);
    let meta = &head.user_metadata;
    assert_eq!(meta.get("mode").map(String::as_str), Some("33184")); // S_IFREG | 0640
    assert_eq!(meta.get("uid").map(String::as_str), Some("1234"));
    assert_eq!(meta.get("gid").map(String::as_str), Some("5678"));
    assert!(meta.get("mtime").is_some_and(|m| m.parse::<u64>().is_ok()));
    let attr = env
        .fs
        .getattr(ino)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!(attr.size, 11);
    assert_eq!(attr.perm, 0o640);
    assert_eq!((attr.uid, attr.gid), (1234, 5678));
}

#[tokio::test]
async fn foreign_objects_get_the_mount_defaults_and_ranged_reads() {
    let env = Env::new().await;
    let body: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    env.put("data/blob.bin", &body, &[]).await;
    let e = env
        .lookup_path("data/blob.bin")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.attr.perm, 0o644);
    assert_eq!(
        (e.attr.uid, e.attr.gid),
        (env.fs.config().default_uid, env.fs.config().default_gid)
    );
    assert_eq!(e.attr.size, 300_000);
    let ino = e.attr.ino.0;
    let fh = env
        .fs
        .open(ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mid = env
        .fs
        .read(ino, fh, 100_000, 4096)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&mid[..], &body[100_000..104_096]);
    let tail = env
        .fs
        .read(ino, fh, 299_990, 4096)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&tail[..], &body[299_990..]);
    let past = env
        .fs
        .read(ino, fh, 400_000, 4096)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(past.is_empty());
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The implied parent directory.
    let d = env
        .lookup_path("data")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.attr.kind, fuser::FileType::Directory);
    assert_eq!(d.attr.perm, 0o755);
}

#[tokio::test]
async fn listings_merge_markers_prefixes_and_implied_dirs() {
    let env = Env::new().await;
    env.put("d/", b"", &[]).await; // marker of d
    env.put("d/file", b"x", &[]).await;
    env.put("d/marked/", b"", &[]).await;
    env.put("d/implied/deep/f", b"y", &[]).await;
    env.put("d/both", b"file half", &[]).await;
    env.put("d/both/inner", b"dir half", &[]).await;
    env.put("d/bad//x", b"", &[]).await; // d/bad is fine, the empty segment is not
    // (`d/./x` keys are covered by the unit tests of `dir`: the REST client
    // cannot PUT one yet, its URL parser drops the `.` segment.)
    env.put(&format!("d/{}", "n".repeat(256)), b"", &[]).await;
    let names = env.list("d").await;
    assert_eq!(
        names,
        vec![
            (".".to_string(), Kind::Dir),
            ("..".to_string(), Kind::Dir),
            ("bad".to_string(), Kind::Dir),
            ("both".to_string(), Kind::Dir),
            ("file".to_string(), Kind::File),
            ("implied".to_string(), Kind::Dir),
            ("marked".to_string(), Kind::Dir),
        ]
    );
    // Directory wins in lookups too, every time.
    for _ in 0..2 {
        let both = env
            .lookup_path("d/both")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both.attr.kind, fuser::FileType::Directory);
    }
    assert_eq!(env.list("d/bad").await.len(), 2, "x//y shows nothing below");
}

#[tokio::test]
async fn readdir_offsets_index_the_snapshot() {
    // No listing cache: the last opendir must list again.
    let env = Env::with(|c| c.list_cache_ttl = std::time::Duration::ZERO).await;
    for i in 0..5 {
        env.put(&format!("s/f{i}"), b"", &[]).await;
    }
    let dir = env
        .lookup_path("s")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let fh = env
        .fs
        .opendir(dir, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Created after opendir: not in this handle's snapshot.
    env.put("s/late", b"", &[]).await;
    let mut first = harness::Names::with_capacity(3);
    env.fs
        .readdir(dir, fh, 0, &mut first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.names(), vec![".", "..", "f0"]);
    assert_eq!(first.0[0].ino, dir);
    let next = first.0.last().map(|e| e.offset).unwrap_or(0);
    let mut rest = harness::Names::with_capacity(100);
    env.fs
        .readdir(dir, fh, next, &mut rest)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest.names(), vec!["f1", "f2", "f3", "f4"]);
    env.fs.releasedir(fh).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.list("s").await.len(), 2 + 6);
}

/// `p/` holding a file `a` (0700, uid 42, 3 bytes), a directory `sub`
/// (0700) and a plain object `z` (2 bytes), opened: (dir ino, handle).
async fn open_listed_dir(env: &Env) -> (u64, u64) {
    env.put("p/a", b"abc", &[("mode", "33216"), ("uid", "42")])
        .await; // 0700
    env.put("p/sub/", b"", &[("mode", "16832")]).await; // dir 0700
    env.put("p/z", b"zz", &[]).await;
    let dir = env
        .lookup_path("p")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let fh = env
        .fs
        .opendir(dir, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, fh)
}

#[tokio::test]
async fn readdirplus_gives_full_attributes_and_counts_lookups() {
    let env = Env::new().await;
    let (dir, fh) = open_listed_dir(&env).await;
    // Room for ".", "..", and one entry.
    let mut sink = harness::PlusNames::with_capacity(3);
    env.fs
        .readdirplus(dir, fh, 0, &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sink.0.len(), 3);
    let (name, offset, a) = sink.0[2].clone();
    assert_eq!(name, "a");
    assert_eq!((a.attr.perm, a.attr.uid, a.attr.size), (0o700, 42, 3));
    // "a" was delivered: one kernel reference. "sub" was not: none.
    let a_ino = a.attr.ino.0;
    let rec = lock(&env.fs.inodes).get(a_ino).cloned();
    assert_eq!(rec.map(|r| r.lookups), Some(1));
    assert_eq!(lock(&env.fs.inodes).child(dir, "sub"), None);
    let mut rest = harness::PlusNames::with_capacity(100);
    env.fs
        .readdirplus(dir, fh, offset, &mut rest)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = rest.0.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, vec!["sub", "z"]);
    assert_eq!(rest.0[0].2.attr.perm, 0o700);
    assert_eq!(rest.0[0].2.attr.kind, fuser::FileType::Directory);
    env.fs.forget(a_ino, 1);
    assert!(lock(&env.fs.inodes).get(a_ino).is_none());
}

#[tokio::test]
async fn readdir_optimize_answers_from_the_listing_and_keeps_the_stat_cache_exact() {
    let counts = harness::FailingParts::new();
    let wrapper = counts.clone();
    let env = Env::with_store_wrapper(
        |c| c.readdir_optimize = true,
        move |s| Arc::new(harness::Faulty::new(s, wrapper)),
    )
    .await;
    let (dir, fh) = open_listed_dir(&env).await;
    let heads_before = counts.heads();
    let mut sink = harness::PlusNames::with_capacity(100);
    env.fs
        .readdirplus(dir, fh, 0, &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.heads(), heads_before, "no HEAD per entry");
    let by_name = |n: &str| {
        sink.0
            .iter()
            .find(|(name, _, _)| name == n)
            .map(|(_, _, e)| e.attr)
            .unwrap_or_else(|| panic!("{n} not listed"))
    };
    let (a, sub, z) = (by_name("a"), by_name("sub"), by_name("z"));
    // Sizes come from the listing; modes and owners are the defaults.
    assert_eq!((a.size, z.size), (3, 2));
    assert_eq!((a.perm, a.uid), (z.perm, z.uid));
    assert_ne!(a.perm, 0o700);
    assert_eq!(sub.kind, fuser::FileType::Directory);
    // The partial attributes stayed out of the stat cache: the kernel's
    // next getattr sees the object's own metadata.
    let full = env
        .fs
        .getattr(a.ino.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!((full.perm, full.uid, full.size), (0o700, 42, 3));
    assert!(counts.heads() > heads_before);
}

#[tokio::test]
async fn mkdir_rmdir_and_their_errors() {
    let env = Env::new().await;
    let root = Fs::root();
    let d = env
        .fs
        .mkdir(root, os("dir"), 0o750, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.attr.perm, 0o750);
    let marker = env
        .head("dir/")
        .await
        .unwrap_or_else(|| panic!("no marker"));
    assert_eq!(
        marker.content_type.as_deref(),
        Some("application/x-directory")
    );
    assert_eq!(
        marker.user_metadata.get("mode").map(String::as_str),
        Some("16872")
    );
    let again = env.fs.mkdir(root, os("dir"), 0o750, caller()).await;
    assert_eq!(again.map_err(|e| e.errno()).err(), Some(libc::EEXIST));
    env.write_file("dir/f", b"1", 0o644).await;
    let busy = env.fs.rmdir(root, os("dir")).await;
    assert_eq!(busy.map_err(|e| e.errno()).err(), Some(libc::ENOTEMPTY));
    let dir_ino = d.attr.ino.0;
    assert_eq!(
        env.fs
            .unlink(root, os("dir"))
            .await
            .map_err(|e| e.errno())
            .err(),
        Some(libc::EISDIR)
    );
    assert_eq!(
        env.fs
            .rmdir(dir_ino, os("f"))
            .await
            .map_err(|e| e.errno())
            .err(),
        Some(libc::ENOTDIR)
    );
    env.fs
        .unlink(dir_ino, os("f"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.head("dir/f").await.is_none());
    env.fs
        .rmdir(root, os("dir"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.head("dir/").await.is_none());
    let gone = env.fs.lookup(root, os("dir")).await;
    assert_eq!(gone.map_err(|e| e.errno()).err(), Some(libc::ENOENT));
}

#[tokio::test]
async fn rename_files_keeps_metadata_and_honours_noreplace() {
    let env = Env::new().await;
    let root = Fs::root();
    env.write_file("a", b"alpha", 0o600).await;
    env.write_file("b", b"beta", 0o644).await;
    let noreplace = env
        .fs
        .rename(root, os("a"), root, os("b"), libc::RENAME_NOREPLACE)
        .await;
    assert_eq!(noreplace.map_err(|e| e.errno()).err(), Some(libc::EEXIST));
    env.fs
        .rename(root, os("a"), root, os("b"), 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.head("a").await.is_none());
    assert_eq!(env.get("b").await.as_deref(), Some(&b"alpha"[..]));
    let b = env.head("b").await.unwrap_or_else(|| panic!("b missing"));
    assert_eq!(
        b.user_metadata.get("mode").map(String::as_str),
        Some("33152")
    );
    let e = env.lookup_path("b").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.attr.perm, 0o600);
    let exchange = env
        .fs
        .rename(root, os("b"), root, os("c"), libc::RENAME_EXCHANGE)
        .await;
    assert_eq!(exchange.map_err(|e| e.errno()).err(), Some(libc::EINVAL));
    let missing = env.fs.rename(root, os("nope"), root, os("c"), 0).await;
    assert_eq!(missing.map_err(|e| e.errno()).err(), Some(libc::ENOENT));
}

#[tokio::test]
async fn rename_directories_moves_every_key() {
    let env = Env::new().await;
    let root = Fs::root();
    env.fs
        .mkdir(root, os("src"), 0o755, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.write_file("src/one", b"1", 0o644).await;
    env.put("src/deep/er/two", b"2", &[]).await;
    env.put("src/odd//key", b"3", &[]).await;
    let src_ino = env
        .lookup_path("src")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let one_ino = env
        .lookup_path("src/one")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    // A file cannot replace a directory, nor a directory a file.
    env.write_file("plain", b"p", 0o644).await;
    let r = env.fs.rename(root, os("src"), root, os("plain"), 0).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::ENOTDIR));
    let r = env.fs.rename(root, os("plain"), root, os("src"), 0).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::EISDIR));
    // Not over a non-empty directory.
    env.put("full/x", b"", &[]).await;
    let r = env.fs.rename(root, os("src"), root, os("full"), 0).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::ENOTEMPTY));
    env.fs
        .rename(root, os("src"), root, os("dst"), 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = env.keys().await;
    assert_eq!(
        keys,
        vec![
            "dst/",
            "dst/deep/er/two",
            "dst/odd//key",
            "dst/one",
            "full/x",
            "plain"
        ]
    );
    // Node ids followed the move.
    assert_eq!(
        env.lookup_path("dst").await.map(|e| e.attr.ino.0).ok(),
        Some(src_ino)
    );
    assert_eq!(
        env.lookup_path("dst/one").await.map(|e| e.attr.ino.0).ok(),
        Some(one_ino)
    );
    assert_eq!(env.read_file("dst/one").await, b"1");
    // Over an empty directory it works.
    env.fs
        .mkdir(root, os("empty"), 0o755, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .rename(root, os("dst"), root, os("empty"), 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.read_file("empty/deep/er/two").await, b"2");
}

#[tokio::test]
async fn symlinks_round_trip() {
    let env = Env::new().await;
    let root = Fs::root();
    let l = env
        .fs
        .symlink(
            root,
            os("link"),
            std::path::Path::new("../target/file"),
            caller(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.attr.kind, fuser::FileType::Symlink);
    assert_eq!(l.attr.size, 14);
    let ino = l.attr.ino.0;
    assert_eq!(
        env.fs.readlink(ino).await.ok().as_deref(),
        Some(&b"../target/file"[..])
    );
    // On S3 the target is the body, with S_IFLNK in the mode (s3fs' form).
    let head = env
        .head("link")
        .await
        .unwrap_or_else(|| panic!("no link object"));
    assert_eq!(
        head.user_metadata.get("mode").map(String::as_str),
        Some("41471")
    );
    // Written by s3fs: read the same way.
    env.put("s3fs-link", b"dest", &[("mode", "41471")]).await;
    let e = env
        .lookup_path("s3fs-link")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.attr.kind, fuser::FileType::Symlink);
    assert_eq!(
        env.fs.readlink(e.attr.ino.0).await.ok().as_deref(),
        Some(&b"dest"[..])
    );
    let dup = env
        .fs
        .symlink(root, os("link"), std::path::Path::new("x"), caller())
        .await;
    assert_eq!(dup.map_err(|e| e.errno()).err(), Some(libc::EEXIST));
}

#[tokio::test]
async fn chmod_chown_utimens_rewrite_metadata() {
    let env = Env::new().await;
    let ino = env.write_file("f", b"content", 0o644).await;
    let t = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let changes = SetAttr {
        mode: Some(libc::S_IFREG | 0o600),
        uid: Some(7),
        gid: Some(8),
        mtime: Some(t),
        ..Default::default()
    };
    let a = env
        .fs
        .setattr(ino, changes)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!((a.perm, a.uid, a.gid, a.mtime), (0o600, 7, 8, t));
    let head = env.head("f").await.unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        head.user_metadata.get("mode").map(String::as_str),
        Some("33152")
    );
    assert_eq!(head.user_metadata.get("uid").map(String::as_str), Some("7"));
    assert_eq!(
        head.user_metadata.get("mtime").map(String::as_str),
        Some("1600000000")
    );
    assert_eq!(env.get("f").await.as_deref(), Some(&b"content"[..]));
    // An implied directory gets a marker.
    env.put("imp/x", b"", &[]).await;
    let d = env
        .lookup_path("imp")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let chmod = SetAttr {
        mode: Some(0o700),
        ..Default::default()
    };
    let a = env
        .fs
        .setattr(d, chmod)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!(a.perm, 0o700);
    assert!(env.head("imp/").await.is_some());
    // The root's attributes are the mount's.
    let root = env.fs.setattr(Fs::root(), chmod).await;
    assert_eq!(root.map_err(|e| e.errno()).err(), Some(libc::EPERM));
}

#[tokio::test]
async fn truncate_to_any_size_without_a_writer() {
    let env = Env::new().await;
    let ino = env.write_file("t", b"0123456789", 0o644).await;
    let shrink = SetAttr {
        size: Some(4),
        ..Default::default()
    };
    env.fs
        .setattr(ino, shrink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("t").await.as_deref(), Some(&b"0123"[..]));
    let grow = SetAttr {
        size: Some(6),
        ..Default::default()
    };
    let a = env
        .fs
        .setattr(ino, grow)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!(a.size, 6);
    assert_eq!(env.get("t").await.as_deref(), Some(&b"0123\0\0"[..]));
    let zero = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    env.fs
        .setattr(ino, zero)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("t").await.as_deref(), Some(&b""[..]));
    // Metadata survived every rewrite.
    let head = env.head("t").await.unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        head.user_metadata.get("uid").map(String::as_str),
        Some("1234")
    );
}

#[tokio::test]
async fn random_writes_append_and_trunc_on_existing_objects() {
    let env = Env::new().await;
    env.put("w", b"hello world", &[]).await;
    let ino = env
        .lookup_path("w")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    // A write in the middle keeps the rest (the object is staged first).
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, fh, 6, Bytes::from_static(b"WORLD"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Reads of that inode see the staged data before any upload.
    let rfh = env
        .fs
        .open(ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = env.fs.read(ino, rfh, 0, 100).await.unwrap_or_default();
    assert_eq!(&seen[..], b"hello WORLD");
    assert_eq!(env.get("w").await.as_deref(), Some(&b"hello world"[..]));
    env.fs
        .flush(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("w").await.as_deref(), Some(&b"hello WORLD"[..]));
    env.fs
        .release(ino, rfh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // O_APPEND writes at the end whatever the offset.
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY | libc::O_APPEND)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, fh, 0, Bytes::from_static(b"!"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("w").await.as_deref(), Some(&b"hello WORLD!"[..]));
    // O_TRUNC starts empty, without downloading.
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, fh, 0, Bytes::from_static(b"new"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.get("w").await.as_deref(), Some(&b"new"[..]));
    // The foreign object now carries ossfs metadata.
    let head = env.head("w").await.unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        head.user_metadata.get("mode").map(String::as_str),
        Some("33188")
    );
}

/// Write `data` through `fh` as the given attempt; the count answered.
async fn attempt(
    env: &Env,
    ino: u64,
    fh: u64,
    offset: u64,
    data: &'static [u8],
    a: Attempt,
) -> u32 {
    env.fs
        .write_attempt(ino, fh, offset, Bytes::from_static(data), a)
        .await
        .unwrap_or_else(|e| panic!("write {data:?} at {offset} ({a:?}): {e}"))
}

/// Release `fh` of `ino` ("log"); the object must then hold `want`.
async fn closed_as(env: &Env, ino: u64, fh: u64, want: &[u8]) {
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
    assert_eq!(env.get("log").await.as_deref(), Some(want));
}

#[tokio::test]
async fn a_resent_append_already_applied_is_not_applied_again() {
    let env = Env::new().await;
    env.put("log", b"", &[]).await;
    let (ino, fh) = env.open_path("log", libc::O_WRONLY | libc::O_APPEND).await;
    // Applied, its answer lost to a kill; then resent with the same
    // arguments (the kernel's offset is the size it was first sent at).
    assert_eq!(
        attempt(&env, ino, fh, 0, b"rec-1\n", Attempt::First).await,
        6
    );
    assert_eq!(
        attempt(&env, ino, fh, 0, b"rec-1\n", Attempt::Resent).await,
        6
    );
    // Resent but never applied: applied now.
    assert_eq!(
        attempt(&env, ino, fh, 6, b"rec-2\n", Attempt::Resent).await,
        6
    );
    // Not resent: the same bytes again are a second record.
    assert_eq!(
        attempt(&env, ino, fh, 12, b"rec-2\n", Attempt::First).await,
        6
    );
    // A resent append the kill cut in the middle is completed in place.
    attempt(&env, ino, fh, 18, b"rec-", Attempt::First).await;
    assert_eq!(
        attempt(&env, ino, fh, 18, b"rec-3\n", Attempt::Resent).await,
        6
    );
    // Resent, the same bytes as the last record but at the size it was
    // sent at, which holds nothing yet: applied.
    assert_eq!(
        attempt(&env, ino, fh, 24, b"rec-3\n", Attempt::Resent).await,
        6
    );
    closed_as(&env, ino, fh, b"rec-1\nrec-2\nrec-2\nrec-3\nrec-3\n").await;
    // Writes at an offset are the same first or resent.
    let (ino, fh) = env.open_path("log", libc::O_WRONLY).await;
    attempt(&env, ino, fh, 0, b"REC", Attempt::First).await;
    attempt(&env, ino, fh, 0, b"REC", Attempt::Resent).await;
    attempt(&env, ino, fh, 30, b"!", Attempt::Resent).await;
    closed_as(&env, ino, fh, b"REC-1\nrec-2\nrec-2\nrec-3\nrec-3\n!").await;
}

#[tokio::test]
async fn handles_of_one_inode_share_the_staging_file() {
    let env = Env::new().await;
    let created = env
        .fs
        .create(Fs::root(), os("shared"), 0o644, libc::O_RDWR, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = created.entry.attr.ino.0;
    // Exists at once, empty, for other clients.
    assert_eq!(env.get("shared").await.as_deref(), Some(&b""[..]));
    let second = env
        .fs
        .open(ino, libc::O_RDWR)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, created.fh, 0, Bytes::from_static(b"aaaa"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, second, 2, Bytes::from_static(b"bb"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = env
        .fs
        .read(ino, created.fh, 0, 10)
        .await
        .unwrap_or_default();
    assert_eq!(&seen[..], b"aabb");
    assert_eq!(env.fs.getattr(ino).await.map(|e| e.attr.size).ok(), Some(4));
    env.fs
        .release(ino, created.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // One writer is left: nothing uploaded yet, the staging file stays.
    assert_eq!(env.staging_count(), 1);
    assert_eq!(env.get("shared").await.as_deref(), Some(&b""[..]));
    env.fs
        .release(ino, second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.staging_count(), 0);
    assert_eq!(env.get("shared").await.as_deref(), Some(&b"aabb"[..]));
    assert_eq!(env.staging_files(), 0, "staging files are removed");
}

#[tokio::test]
async fn unlinked_open_files_are_not_resurrected() {
    let env = Env::new().await;
    let c = env
        .fs
        .create(Fs::root(), os("tmp"), 0o600, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = c.entry.attr.ino.0;
    env.fs
        .write(ino, c.fh, 0, Bytes::from_static(b"scratch"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .unlink(Fs::root(), os("tmp"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .flush(ino, c.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, c.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.head("tmp").await.is_none());
}

#[tokio::test]
async fn noxattr_answers_enosys_to_every_xattr_call() {
    let env = Env::with(|c| c.noxattr = true).await;
    let ino = env.write_file("x", b"", 0o644).await;
    let errno = |r: Result<(), FsError>| r.map_err(|e| e.errno()).err();
    let set = env.fs.setxattr(ino, os("user.color"), b"blue", 0).await;
    assert_eq!(errno(set), Some(libc::ENOSYS));
    let get = env.fs.getxattr(ino, os("security.selinux"), 0).await;
    assert_eq!(errno(get.map(|_| ())), Some(libc::ENOSYS));
    let list = env.fs.listxattr(ino, 0).await;
    assert_eq!(errno(list.map(|_| ())), Some(libc::ENOSYS));
    let remove = env.fs.removexattr(ino, os("user.color")).await;
    assert_eq!(errno(remove), Some(libc::ENOSYS));
    let head = env.head("x").await.unwrap_or_else(|| panic!("missing"));
    assert!(!head.user_metadata.contains_key("xattr"));
}

#[tokio::test]
async fn xattrs_are_stored_the_s3fs_way() {
    let env = Env::new().await;
    let ino = env.write_file("x", b"", 0o644).await;
    env.fs
        .setxattr(ino, os("user.color"), b"blue", 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = env.head("x").await.unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        head.user_metadata.get("xattr").map(String::as_str),
        Some("%7B%22user.color%22%3A%22Ymx1ZQ%3D%3D%22%7D")
    );
    assert_eq!(
        env.fs.getxattr(ino, os("user.color"), 0).await.ok(),
        Some(XattrReply::Size(4))
    );
    assert_eq!(
        env.fs.getxattr(ino, os("user.color"), 10).await.ok(),
        Some(XattrReply::Data(b"blue".to_vec()))
    );
    let small = env.fs.getxattr(ino, os("user.color"), 2).await;
    assert_eq!(small.map_err(|e| e.errno()).err(), Some(libc::ERANGE));
    let create = env
        .fs
        .setxattr(ino, os("user.color"), b"red", libc::XATTR_CREATE)
        .await;
    assert_eq!(create.map_err(|e| e.errno()).err(), Some(libc::EEXIST));
    let replace = env
        .fs
        .setxattr(ino, os("user.size"), b"1", libc::XATTR_REPLACE)
        .await;
    assert_eq!(replace.map_err(|e| e.errno()).err(), Some(libc::ENODATA));
    env.fs
        .setxattr(ino, os("user.size"), b"1", 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.fs.listxattr(ino, 100).await.ok(),
        Some(XattrReply::Data(b"user.color\0user.size\0".to_vec()))
    );
    let security = env.fs.getxattr(ino, os("security.capability"), 0).await;
    assert_eq!(security.map_err(|e| e.errno()).err(), Some(libc::ENODATA));
    let trusted = env.fs.setxattr(ino, os("trusted.x"), b"1", 0).await;
    assert_eq!(trusted.map_err(|e| e.errno()).err(), Some(libc::EOPNOTSUPP));
    env.fs
        .removexattr(ino, os("user.color"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .removexattr(ino, os("user.size"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = env.head("x").await.unwrap_or_else(|| panic!("missing"));
    assert!(!head.user_metadata.contains_key("xattr"));
    let gone = env.fs.removexattr(ino, os("user.size")).await;
    assert_eq!(gone.map_err(|e| e.errno()).err(), Some(libc::ENODATA));
}

#[tokio::test]
async fn large_files_go_multipart() {
    let env = Env::with(|c| c.multipart_size = 5 * 1024 * 1024).await;
    let body: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let c = env
        .fs
        .create(Fs::root(), os("big"), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = c.entry.attr.ino.0;
    for (i, chunk) in body.chunks(1024 * 1024).enumerate() {
        let off = (i * 1024 * 1024) as u64;
        env.fs
            .write(ino, c.fh, off, Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    env.fs
        .flush(ino, c.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, c.fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = env.head("big").await.unwrap_or_else(|| panic!("missing"));
    assert_eq!(head.size, body.len() as u64);
    assert!(
        head.etag.ends_with("-3"),
        "a 3-part upload, etag {}",
        head.etag
    );
    assert!(env.get("big").await.as_deref() == Some(&body[..]));
    // Past 10000 parts of 5 MiB: EFBIG before anything is sent.
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let far = 10_000 * 5 * 1024 * 1024;
    let r = env.fs.write(ino, fh, far, Bytes::from_static(b"x")).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::EFBIG));
    let r = env
        .fs
        .setattr(
            ino,
            SetAttr {
                size: Some(far + 1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::EFBIG));
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_failed_upload_is_eio_and_leaves_the_old_object() {
    let faults = harness::FailingParts::new();
    let env = Env::with_store_wrapper(
        |c| {
            c.multipart_size = 5 * 1024 * 1024;
            // The upload at close is what this test fails; streaming has
            // its own (`streaming::a_failed_part_falls_back_to_the_whole_file`).
            c.stream_upload = false;
        },
        |inner| Arc::new(harness::Faulty::new(inner, faults.clone())),
    )
    .await;
    env.write_file("victim", b"old content", 0o644).await;
    let ino = env
        .lookup_path("victim")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let fh = env
        .fs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let big = Bytes::from(vec![7u8; 11 * 1024 * 1024]);
    env.fs
        .write(ino, fh, 0, big.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    faults.fail_part(2);
    let r = env.fs.flush(ino, fh).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::EIO));
    assert_eq!(
        env.get("victim").await.as_deref(),
        Some(&b"old content"[..])
    );
    assert_eq!(faults.aborted(), 1, "the multipart upload was aborted");
    // The data stayed staged; once the store is healthy, close uploads it.
    faults.heal();
    env.fs
        .release(ino, fh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.get("victim").await.as_deref() == Some(&big[..]));
}

#[tokio::test]
async fn read_only_mounts_refuse_every_change() {
    let env = Env::with(|c| c.read_only = true).await;
    env.put("ro", b"data", &[]).await;
    let root = Fs::root();
    let ino = env
        .lookup_path("ro")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    let errs = vec![
        env.fs.open(ino, libc::O_WRONLY).await.err(),
        env.fs
            .create(root, os("n"), 0o644, libc::O_WRONLY, caller())
            .await
            .err(),
        env.fs.mkdir(root, os("d"), 0o755, caller()).await.err(),
        env.fs.unlink(root, os("ro")).await.err(),
        env.fs.rmdir(root, os("x")).await.err(),
        env.fs.rename(root, os("ro"), root, os("r2"), 0).await.err(),
        env.fs
            .symlink(root, os("l"), std::path::Path::new("t"), caller())
            .await
            .err(),
        env.fs
            .setattr(
                ino,
                SetAttr {
                    mode: Some(0o600),
                    ..Default::default()
                },
            )
            .await
            .err(),
        env.fs.setxattr(ino, os("user.a"), b"1", 0).await.err(),
    ];
    for e in errs {
        assert_eq!(e.map(|e| e.errno()), Some(libc::EROFS));
    }
    let fh = env
        .fs
        .open(ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        &env.fs.read(ino, fh, 0, 10).await.unwrap_or_default()[..],
        b"data"
    );
}

#[tokio::test]
async fn caches_and_name_limits() {
    let env = Env::with(|c| c.negative_cache = true).await;
    let root = Fs::root();
    let long = "n".repeat(256);
    let r = env.fs.lookup(root, os(&long)).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::ENAMETOOLONG));
    let missing = env.fs.lookup(root, os("later")).await;
    assert_eq!(missing.map_err(|e| e.errno()).err(), Some(libc::ENOENT));
    // Another client creates it: the negative cache hides it for the TTL...
    env.put("later", b"", &[]).await;
    let hidden = env.fs.lookup(root, os("later")).await;
    assert_eq!(hidden.map_err(|e| e.errno()).err(), Some(libc::ENOENT));
    // ...but a change through the mount is seen at once.
    env.fs
        .create(root, os("mine"), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.fs.lookup(root, os("mine")).await.is_ok());
    let root_attr = env
        .fs
        .getattr(root)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr;
    assert_eq!(root_attr.perm, 0o755);
    let statfs = env.fs.statfs();
    assert_eq!(statfs.namelen, 255);
    assert!(statfs.bavail > 0);
    // Without the negative cache, the new object shows at once.
    let env = Env::new().await;
    assert!(env.fs.lookup(root, os("later")).await.is_err());
    env.put("later", b"", &[]).await;
    assert!(env.fs.lookup(root, os("later")).await.is_ok());
}

#[tokio::test]
async fn a_mount_prefix_scopes_every_key() {
    let env = Env::with(|c| c.mp_umask = Some(0o027)).await;
    let root = env
        .fs
        .getattr(Fs::root())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.attr.perm, 0o750);
    env.put("outside", b"", &[]).await;
    env.put("mnt/inside", b"in", &[]).await;
    let sub = Env::sharing(&env, |c| c.prefix = format!("{}mnt", env.prefix)).await;
    let names = sub.list("").await;
    assert_eq!(
        names,
        vec![
            (".".to_string(), Kind::Dir),
            ("..".to_string(), Kind::Dir),
            ("inside".to_string(), Kind::File)
        ]
    );
    sub.write_file("made", b"m", 0o644).await;
    assert!(env.head("mnt/made").await.is_some());
}

#[tokio::test]
async fn store_errors_keep_their_meaning() {
    let env = Env::new().await;
    let e = env.fs.getattr(999_999).await;
    assert_eq!(e.map_err(|e| e.errno()).err(), Some(libc::ESTALE));
    let e = env.fs.read(1, 12345, 0, 1).await;
    assert_eq!(e.map_err(|e| e.errno()).err(), Some(libc::EBADF));
    let err = FsError::store("x", StoreError::NotFound { key: "k".into() });
    assert_eq!(err.errno(), libc::ENOENT);
}

#[tokio::test]
async fn a_failed_last_close_keeps_the_staged_data_on_disk() {
    let faults = harness::FailingParts::new();
    let env = Env::with_store_wrapper(
        |c| c.multipart_size = 5 * 1024 * 1024,
        |inner| Arc::new(harness::Faulty::new(inner, faults.clone())),
    )
    .await;
    let c = env
        .fs
        .create(Fs::root(), os("lost"), 0o644, libc::O_WRONLY, caller())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = c.entry.attr.ino.0;
    let data = Bytes::from(vec![1u8; 6 * 1024 * 1024]);
    env.fs
        .write(ino, c.fh, 0, data)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    faults.fail_part(1);
    let r = env.fs.release(ino, c.fh).await;
    assert_eq!(r.map_err(|e| e.errno()).err(), Some(libc::EIO));
    assert_eq!(env.staging_count(), 0, "the inode no longer has a writer");
    assert_eq!(env.staging_files(), 1, "but its data stays on disk");
    assert_eq!(env.get("lost").await.as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn readers_follow_uploads_and_keep_the_page_cache_only_when_unchanged() {
    let env = Env::new().await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    env.put("r", &big, &[]).await;
    let ino = env
        .lookup_path("r")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .attr
        .ino
        .0;
    // Read sequentially in kernel-sized pieces through the prefetcher.
    assert_eq!(env.read_file("r").await, big);
    // Opened again unchanged: the kernel may keep its page cache.
    let a = env
        .fs
        .open(ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(env.fs.keep_cache(a), "same ETag as the last open");
    let head = env.fs.read(ino, a, 0, 10).await.unwrap_or_default();
    assert_eq!(&head[..], &big[..10]);
    // Rewritten through this mount while `a` stays open.
    let w = env
        .fs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .write(ino, w, 0, Bytes::from_static(b"brand new"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.fs
        .release(ino, w)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The open reader now reads the new version, not its prefetched bytes.
    let seen = env.fs.read(ino, a, 0, 100).await.unwrap_or_default();
    assert_eq!(&seen[..], b"brand new");
    let past = env
        .fs
        .read(ino, a, 1_000_000, 100)
        .await
        .unwrap_or_default();
    assert!(past.is_empty(), "the new version is 9 bytes long");
    env.fs
        .release(ino, a)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The next open sees another ETag: no page cache kept.
    let b = env
        .fs
        .open(ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!env.fs.keep_cache(b));
    env.fs
        .release(ino, b)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.read_file("r").await, b"brand new");
}

#[tokio::test]
async fn uploads_and_reads_stay_within_a_small_memory_budget() {
    let env = Env::with(|c| {
        c.memory_limit = 16 * 1024 * 1024;
        c.cache_size = 4 * 1024 * 1024;
        c.multipart_size = 5 * 1024 * 1024;
    })
    .await;
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    env.write_file("big", &data, 0o644).await;
    assert_eq!(env.read_file("big").await, data);
    // Everything reserved was given back.
    assert_eq!(env.fs.memory_budget().used(), {
        // The block cache keeps what it holds; nothing else remains.
        env.fs.block_cache_bytes()
    });
    assert!(env.fs.block_cache_bytes() <= 4 * 1024 * 1024);
}

#[tokio::test]
async fn listings_are_reused_until_a_name_changes_through_the_mount() {
    let env = Env::with(|c| c.list_cache_ttl = std::time::Duration::from_secs(600)).await;
    env.put("d/a", b"", &[]).await;
    assert_eq!(env.list("d").await.len(), 2 + 1);
    // Another client adds a name: the cached listing does not show it yet.
    env.put("d/b", b"", &[]).await;
    assert_eq!(env.list("d").await.len(), 2 + 1);
    // A change of names through this mount drops every cached listing.
    env.write_file("d/c", b"x", 0o644).await;
    let names: Vec<String> = env.list("d").await.into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"b".to_string()) && names.contains(&"c".to_string()),
        "{names:?}"
    );
}

/// `truncate -s 100 f; chmod 640 f; touch -d @1600000000 f; mv f g`: g
/// keeps mode, size and the mtime set last, in the mount and in the
/// metadata (a fresh mount of the bucket sees it too).
#[tokio::test]
async fn path_truncate_chmod_utime_then_rename_keeps_the_mtime() {
    let env = Env::new().await;
    let ino = env.write_file("f", b"", 0o644).await;
    let at = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for change in [
        SetAttr {
            size: Some(100),
            ..Default::default()
        },
        SetAttr {
            mode: Some(0o640),
            ..Default::default()
        },
        SetAttr {
            atime: Some(at),
            mtime: Some(at),
            ..Default::default()
        },
    ] {
        env.fs
            .setattr(ino, change)
            .await
            .unwrap_or_else(|e| panic!("setattr {change:?}: {e}"));
    }
    env.fs
        .rename(Fs::root(), os("f"), Fs::root(), os("g"), 0)
        .await
        .unwrap_or_else(|e| panic!("rename: {e}"));
    let shown = env
        .lookup_path("g")
        .await
        .unwrap_or_else(|e| panic!("lookup g: {e}"))
        .attr;
    assert_eq!((shown.size, shown.perm, shown.mtime), (100, 0o640, at));
    let stored = env.head("g").await.map(|m| m.user_metadata);
    assert_eq!(
        stored
            .as_ref()
            .and_then(|m| m.get("mtime"))
            .map(String::as_str),
        Some("1600000000"),
        "{stored:?}"
    );
    let fresh = Env::sharing(&env, |_| {}).await;
    let again = fresh
        .lookup_path("g")
        .await
        .unwrap_or_else(|e| panic!("lookup g in a new mount: {e}"))
        .attr;
    assert_eq!((again.size, again.perm, again.mtime), (100, 0o640, at));
}
