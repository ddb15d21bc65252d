//! A randomized differential test: the same random operations applied to
//! [`Fs`] (over a real S3 server) and to a plain local directory, with the
//! two trees compared after every step, and again from a fresh `Fs` (empty
//! caches and tables, so everything is read back from the bucket). The
//! seed is printed; `OSSFS_DIFF_SEED=N` replays a run.
//!
//! Invariants: same names, kinds, sizes, contents, permission bits and
//! symlink targets; the same success or errno for every operation.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{Env, caller};
use crate::fs::{FsError, Kind, SetAttr, ToErrno};

const DIRS: [&str; 3] = ["d0", "d1", "d2"];
const FILES: [&str; 3] = ["f0", "f1", "f2"];

#[derive(Debug, Clone)]
enum Op {
    Write {
        path: String,
        offset: u64,
        len: usize,
    },
    Append {
        path: String,
        len: usize,
    },
    Truncate {
        path: String,
        size: u64,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Unlink {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        noreplace: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
}

fn random_path(rng: &mut StdRng, leaf_kinds: &[&str]) -> String {
    let depth = rng.random_range(0..3);
    let mut parts: Vec<&str> = (0..depth)
        .map(|_| DIRS[rng.random_range(0..DIRS.len())])
        .collect();
    parts.push(leaf_kinds[rng.random_range(0..leaf_kinds.len())]);
    parts.join("/")
}

fn random_op(rng: &mut StdRng) -> Op {
    let any: Vec<&str> = DIRS.iter().chain(FILES.iter()).copied().collect();
    match rng.random_range(0..100) {
        0..25 => Op::Write {
            path: random_path(rng, &FILES),
            offset: rng.random_range(0..3000),
            len: rng.random_range(0..2000),
        },
        25..32 => Op::Append {
            path: random_path(rng, &FILES),
            len: rng.random_range(1..500),
        },
        32..40 => Op::Truncate {
            path: random_path(rng, &FILES),
            size: rng.random_range(0..4000),
        },
        40..55 => Op::Mkdir {
            path: random_path(rng, &DIRS),
        },
        55..62 => Op::Rmdir {
            path: random_path(rng, &any),
        },
        62..70 => Op::Unlink {
            path: random_path(rng, &any),
        },
        70..88 => Op::Rename {
            from: random_path(rng, &any),
            to: random_path(rng, &any),
            noreplace: rng.random_range(0..4) == 0,
        },
        88..93 => Op::Symlink {
            path: random_path(rng, &FILES),
            target: format!("t{}", rng.random_range(0..5)),
        },
        _ => Op::Chmod {
            path: random_path(rng, &any),
            mode: [0o600, 0o644, 0o700, 0o755, 0o640][rng.random_range(0..5)],
        },
    }
}

/// An errno from a local operation.
fn local(r: std::io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn remote(r: Result<(), FsError>) -> Result<(), i32> {
    r.map_err(|e| e.errno())
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    }
}

/// Whether some directory on the way to `path` is a symlink locally: the
/// kernel would follow it, the filesystem API does not; such ops are skipped.
fn crosses_symlink(root: &Path, path: &str) -> bool {
    let mut p = root.to_path_buf();
    let (dir, _) = split(path);
    for part in dir.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

fn leaf_is_symlink(root: &Path, path: &str) -> bool {
    std::fs::symlink_metadata(root.join(path)).is_ok_and(|m| m.file_type().is_symlink())
}

fn payload(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Open for writing, creating with mode 0644 (whatever the umask) as the
/// filesystem side does.
fn create_0644(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .append(append)
        .create(true)
        .open(path)?;
    if !existed {
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(f)
}

/// renameat2(2), which std does not expose.
fn renameat2(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive
    // the call; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Apply `op` locally.
fn apply_local(root: &Path, op: &Op, data: &[u8]) -> Result<(), i32> {
    let p = |s: &str| root.join(s);
    match op {
        Op::Write { path, offset, .. } => local((|| {
            let f = create_0644(&p(path), false)?;
            if !data.is_empty() {
                f.write_all_at(data, *offset)?;
            }
            Ok(())
        })()),
        Op::Append { path, .. } => local((|| {
            let mut f = create_0644(&p(path), true)?;
            f.write_all(data)
        })()),
        Op::Truncate { path, size } => local((|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p(path))?
                .set_len(*size)
        })()),
        Op::Mkdir { path } => local((|| {
            std::fs::create_dir(p(path))?;
            std::fs::set_permissions(p(path), std::fs::Permissions::from_mode(0o755))
        })()),
        Op::Rmdir { path } => local(std::fs::remove_dir(p(path))),
        Op::Unlink { path } => local(std::fs::remove_file(p(path))),
        Op::Rename {
            from,
            to,
            noreplace,
        } => {
            let flags = if *noreplace {
                libc::RENAME_NOREPLACE
            } else {
                0
            };
            local(renameat2(&p(from), &p(to), flags))
        }
        Op::Symlink { path, target } => local(std::os::unix::fs::symlink(target, p(path))),
        Op::Chmod { path, mode } => local(std::fs::set_permissions(
            p(path),
            std::fs::Permissions::from_mode(*mode),
        )),
    }
}

/// Apply `op` through the filesystem, the way the kernel would.
async fn apply_remote(env: &Env, op: &Op, data: &[u8]) -> Result<(), i32> {
    let parent_of = |path: &str| {
        let (dir, name) = split(path);
        (dir.to_string(), name.to_string())
    };
    // The kernel's walk to a parent: ENOTDIR when it is not a directory.
    let parent = |dir: String| async move {
        let e = env.lookup_path(&dir).await?;
        if e.attr.kind != fuser::FileType::Directory {
            return Err(FsError::NotDir(dir));
        }
        Ok(e.attr.ino.0)
    };
    match op {
        Op::Write { path, .. } | Op::Append { path, .. } => {
            let (append, offset) = match op {
                Op::Write { offset, .. } => (false, *offset),
                _ => (true, 0),
            };
            let (dir, name) = parent_of(path);
            let dir_ino = parent(dir).await.map_err(|e| e.errno())?;
            let flags = libc::O_WRONLY | if append { libc::O_APPEND } else { 0 };
            let (ino, fh) = match env.fs.lookup(dir_ino, OsStr::new(&name)).await {
                Ok(e) => {
                    let ino = e.attr.ino.0;
                    let fh = env.fs.open(ino, flags).await.map_err(|e| e.errno())?;
                    (ino, fh)
                }
                Err(FsError::NotFound(_)) => {
                    let c = env
                        .fs
                        .create(dir_ino, OsStr::new(&name), 0o644, flags, caller())
                        .await
                        .map_err(|e| e.errno())?;
                    (c.entry.attr.ino.0, c.fh)
                }
                Err(e) => return Err(e.errno()),
            };
            let written = if data.is_empty() {
                Ok(0)
            } else {
                env.fs
                    .write(ino, fh, offset, Bytes::copy_from_slice(data))
                    .await
            };
            let flushed = env.fs.flush(ino, fh).await;
            let released = env.fs.release(ino, fh).await;
            written.map_err(|e| e.errno())?;
            remote(flushed)?;
            remote(released)
        }
        Op::Truncate { path, size } => {
            let e = env.lookup_path(path).await.map_err(|e| e.errno())?;
            if e.attr.kind == fuser::FileType::Directory {
                return Err(libc::EISDIR);
            }
            let changes = SetAttr {
                size: Some(*size),
                ..Default::default()
            };
            env.fs
                .setattr(e.attr.ino.0, changes)
                .await
                .map(|_| ())
                .map_err(|e| e.errno())
        }
        Op::Mkdir { path } => {
            let (dir, name) = parent_of(path);
            let d = parent(dir).await.map_err(|e| e.errno())?;
            env.fs
                .mkdir(d, OsStr::new(&name), 0o755, caller())
                .await
                .map(|_| ())
                .map_err(|e| e.errno())
        }
        Op::Rmdir { path } => {
            let (dir, name) = parent_of(path);
            let d = parent(dir).await.map_err(|e| e.errno())?;
            remote(env.fs.rmdir(d, OsStr::new(&name)).await)
        }
        Op::Unlink { path } => {
            let (dir, name) = parent_of(path);
            let d = parent(dir).await.map_err(|e| e.errno())?;
            remote(env.fs.unlink(d, OsStr::new(&name)).await)
        }
        Op::Rename {
            from,
            to,
            noreplace,
        } => {
            let (fdir, fname) = parent_of(from);
            let (tdir, tname) = parent_of(to);
            let fd = parent(fdir).await.map_err(|e| e.errno())?;
            let td = parent(tdir).await.map_err(|e| e.errno())?;
            // The kernel looks both names up first (ENOENT for a missing
            // source comes from there, before the target checks).
            env.fs
                .lookup(fd, OsStr::new(&fname))
                .await
                .map_err(|e| e.errno())?;
            let flags = if *noreplace {
                libc::RENAME_NOREPLACE
            } else {
                0
            };
            remote(
                env.fs
                    .rename(fd, OsStr::new(&fname), td, OsStr::new(&tname), flags)
                    .await,
            )
        }
        Op::Symlink { path, target } => {
            let (dir, name) = parent_of(path);
            let d = parent(dir).await.map_err(|e| e.errno())?;
            env.fs
                .symlink(d, OsStr::new(&name), Path::new(target), caller())
                .await
                .map(|_| ())
                .map_err(|e| e.errno())
        }
        Op::Chmod { path, mode } => {
            let e = env.lookup_path(path).await.map_err(|e| e.errno())?;
            let changes = SetAttr {
                mode: Some(*mode),
                ..Default::default()
            };
            env.fs
                .setattr(e.attr.ino.0, changes)
                .await
                .map(|_| ())
                .map_err(|e| e.errno())
        }
    }
}

/// One node of a tree as compared.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir { perm: u32 },
    File { perm: u32, data: Vec<u8> },
    Link { target: String },
}

fn local_tree(root: &Path) -> Vec<(String, Node)> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<(String, Node)>) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(root.join(&path))
                .unwrap_or_else(|e| panic!("stat {path}: {e}"));
            let perm = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(root.join(&path))
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((path, Node::Link { target }));
            } else if meta.is_dir() {
                out.push((path.clone(), Node::Dir { perm }));
                walk(root, &path, out);
            } else {
                let data = std::fs::read(root.join(&path)).unwrap_or_default();
                out.push((path, Node::File { perm, data }));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

async fn remote_tree(env: &Env) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let mut children = Vec::new();
        for (name, kind) in env.list(&rel).await {
            if name == "." || name == ".." {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let e = env
                .lookup_path(&path)
                .await
                .unwrap_or_else(|e| panic!("lookup {path}: {e}"));
            let perm = u32::from(e.attr.perm);
            let node = match kind {
                Kind::Dir => {
                    children.push(path.clone());
                    Node::Dir { perm }
                }
                _ if e.attr.kind == fuser::FileType::Symlink => {
                    let target = env.fs.readlink(e.attr.ino.0).await.unwrap_or_default();
                    Node::Link {
                        target: String::from_utf8_lossy(&target).into_owned(),
                    }
                }
                _ => Node::File {
                    perm,
                    data: env.read_file(&path).await,
                },
            };
            out.push((path, node));
        }
        // Depth-first in name order, like the local walk.
        for c in children.into_iter().rev() {
            stack.push(c);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn local_tree_names(root: &Path) -> Vec<String> {
    local_tree(root)
        .into_iter()
        .map(|(p, n)| match n {
            Node::Dir { .. } => format!("{p}/"),
            Node::Link { target } => format!("{p} -> {target}"),
            Node::File { .. } => p,
        })
        .collect()
}

fn sorted(mut v: Vec<(String, Node)>) -> Vec<(String, Node)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn random_operations_match_a_local_directory() {
    let seed: u64 = std::env::var("OSSFS_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let steps: usize = std::env::var("OSSFS_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    println!("differential seed {seed} ({steps} steps; replay with OSSFS_DIFF_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let env = Env::new().await;
    let model = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = model.path();
    let mut applied = 0;
    for step in 0..steps {
        let op = random_op(&mut rng);
        let touches_link = match &op {
            Op::Write { path, .. }
            | Op::Append { path, .. }
            | Op::Truncate { path, .. }
            | Op::Chmod { path, .. } => leaf_is_symlink(root, path),
            _ => false,
        };
        let paths: Vec<&String> = match &op {
            Op::Rename { from, to, .. } => vec![from, to],
            Op::Write { path, .. }
            | Op::Append { path, .. }
            | Op::Truncate { path, .. }
            | Op::Mkdir { path }
            | Op::Rmdir { path }
            | Op::Unlink { path }
            | Op::Symlink { path, .. }
            | Op::Chmod { path, .. } => vec![path],
        };
        if touches_link || paths.iter().any(|p| crosses_symlink(root, p)) {
            continue;
        }
        let len = match &op {
            Op::Write { len, .. } | Op::Append { len, .. } => *len,
            _ => 0,
        };
        let data = payload(&mut rng, len);
        let want = apply_local(root, &op, &data);
        let got = apply_remote(&env, &op, &data).await;
        if got != want {
            eprintln!("local tree before: {:?}", local_tree_names(root));
        }
        assert_eq!(
            got, want,
            "seed {seed} step {step}: {op:?} gave {got:?}, a local directory {want:?}"
        );
        applied += 1;
        let local = local_tree(root);
        let remote = remote_tree(&env).await;
        assert_eq!(
            remote,
            sorted(local),
            "seed {seed} step {step}: trees differ after {op:?}"
        );
    }
    assert!(applied > steps / 2, "seed {seed}: too many ops skipped");
    // A fresh filesystem reads everything back from the bucket.
    let fresh = Env::sharing(&env, |_| {}).await;
    assert_eq!(
        remote_tree(&fresh).await,
        sorted(local_tree(root)),
        "seed {seed}: the bucket differs after a remount"
    );
}
