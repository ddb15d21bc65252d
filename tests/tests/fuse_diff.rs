//! Randomized differential test: the same random operations applied to a
//! FUSE mount of Garage and to a plain local directory must give the same
//! answers and leave the same trees, also after unmount and remount (so
//! what is compared came from the bucket).
//!
//! **Needs root and `/dev/fuse`** (CI runs as root).
//!
//! - Operations: create, write at random offsets (sometimes through two
//!   handles, sometimes read back before close), append, O_TRUNC rewrite,
//!   truncate (through a descriptor and of a path), utime, rename of files
//!   and directories (also RENAME_NOREPLACE),
//!   mkdir, rmdir, unlink, symlink, chmod, read; and descriptors held open
//!   across operations (written and read while their file is renamed,
//!   replaced or unlinked), which must behave as on a local filesystem. Most target existing
//!   paths of the right kind; some are deliberately wrong (missing paths,
//!   wrong kinds, non-empty directories) and must fail with the same errno.
//! - After every operation: the answer (data or errno) and both whole trees
//!   (kinds, permission bits, sizes, file mtimes (exactly when set by a
//!   utime, else only as "recent"), symlink targets, directory listings)
//!   are compared, plus the contents of the files the operation touched;
//!   all contents every [`FULL_EVERY`] operations; everything again after
//!   each remount (every [`REMOUNT_EVERY`] operations and at the end).
//! - The local directory is the reference; paths are picked from it.
//!   Data operations never go through symlinks, and symlink targets are
//!   relative, so both sides resolve the same way.
//! - Reproducible: the seed is printed; `FUSE_DIFF_SEED=<n>` replays it and
//!   `FUSE_DIFF_OPS=<n>` changes the number of operations (2000 by default),
//!   `FUSE_DIFF_MOUNT_OPTIONS=<opts>` adds `-o` options (e.g.
//!   `enable_noobj_cache`).
//! - Every run starts with `truncate -s 100 f; chmod 640 f; touch -d
//!   @1600000000 f; mv f g` as operations, then goes random.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use e2e::mount::{Mount, shared_garage};
use e2e::sys;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Operations per run unless `FUSE_DIFF_OPS` says otherwise.
const DEFAULT_OPS: usize = 2000;
/// Compare every file's contents this often (and after each remount).
const FULL_EVERY: usize = 50;
/// Unmount and mount again this often.
const REMOUNT_EVERY: usize = 500;
/// Names in the tree: few, so operations collide often.
const NAMES: [&str; 6] = ["a", "b", "c", "dd", "e e", "f.txt"];
/// Deepest directory that gets new entries (the root is 0): paths are at
/// most `a/b/c`.
const MAX_DEPTH: usize = 2;
/// Modes given to chmod and create.
const FILE_MODES: [u32; 6] = [0o644, 0o600, 0o755, 0o640, 0o444, 0o000];
const DIR_MODES: [u32; 4] = [0o755, 0o700, 0o750, 0o711];

/// One operation, on paths relative to the root of each side.
#[derive(Clone, Debug)]
enum Op {
    Create {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    WriteAt {
        path: String,
        offset: u64,
        data: Vec<u8>,
        fsync: bool,
        read_back: bool,
    },
    TwoWriters {
        path: String,
        first: (u64, Vec<u8>),
        second: (u64, Vec<u8>),
    },
    Append {
        path: String,
        data: Vec<u8>,
    },
    Rewrite {
        path: String,
        data: Vec<u8>,
    },
    Truncate {
        path: String,
        len: u64,
    },
    /// truncate(2) of the path, without opening it.
    PathTruncate {
        path: String,
        len: u64,
    },
    /// atime and mtime set to `secs` (`touch -d @secs`).
    Utime {
        path: String,
        secs: i64,
    },
    Rename {
        from: String,
        to: String,
        noreplace: bool,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Rmdir {
        path: String,
    },
    Unlink {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Read {
        path: String,
        range: Option<(u64, usize)>,
    },
    /// Open `path` read-write and keep the descriptor across operations
    /// (at most [`MAX_HELD`]; the oldest is closed first).
    Hold {
        path: String,
    },
    /// Write through a held descriptor (which may be renamed or unlinked
    /// by now, and must behave as on a local filesystem).
    HeldWrite {
        slot: usize,
        offset: u64,
        data: Vec<u8>,
    },
    HeldRead {
        slot: usize,
        offset: u64,
        len: usize,
    },
    Release {
        slot: usize,
    },
}

/// Descriptors kept open across operations, per side.
const MAX_HELD: usize = 2;

impl Op {
    /// The paths this operation names.
    fn operands(&self) -> Vec<&str> {
        match self {
            Op::Create { path, .. }
            | Op::WriteAt { path, .. }
            | Op::TwoWriters { path, .. }
            | Op::Append { path, .. }
            | Op::Rewrite { path, .. }
            | Op::Truncate { path, .. }
            | Op::Read { path, .. }
            | Op::Mkdir { path, .. }
            | Op::Rmdir { path }
            | Op::Unlink { path }
            | Op::Symlink { path, .. }
            | Op::Chmod { path, .. }
            | Op::PathTruncate { path, .. }
            | Op::Utime { path, .. } => vec![path],
            Op::Hold { path } => vec![path],
            Op::Rename { from, to, .. } => vec![from, to],
            Op::HeldWrite { .. } | Op::HeldRead { .. } | Op::Release { .. } => vec![],
        }
    }

    /// The file whose data this operation changes, if any.
    fn written(&self) -> Option<&str> {
        match self {
            Op::Create { path, .. }
            | Op::WriteAt { path, .. }
            | Op::TwoWriters { path, .. }
            | Op::Append { path, .. }
            | Op::Rewrite { path, .. }
            | Op::Truncate { path, .. }
            | Op::PathTruncate { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A one-line description (data as lengths).
    fn describe(&self) -> String {
        match self {
            Op::Create { path, mode, data } => {
                format!("create {path:?} mode {mode:o} len {}", data.len())
            }
            Op::WriteAt {
                path,
                offset,
                data,
                fsync,
                read_back,
            } => format!(
                "write {path:?} at {offset} len {} fsync {fsync} read_back {read_back}",
                data.len()
            ),
            Op::TwoWriters {
                path,
                first,
                second,
            } => format!(
                "two writers {path:?}: at {} len {}, at {} len {}",
                first.0,
                first.1.len(),
                second.0,
                second.1.len()
            ),
            Op::Append { path, data } => format!("append {path:?} len {}", data.len()),
            Op::Rewrite { path, data } => format!("O_TRUNC rewrite {path:?} len {}", data.len()),
            Op::Truncate { path, len } => format!("truncate {path:?} to {len}"),
            Op::PathTruncate { path, len } => format!("truncate(path) {path:?} to {len}"),
            Op::Utime { path, secs } => format!("utime {path:?} @{secs}"),
            Op::Rename {
                from,
                to,
                noreplace,
            } => format!("rename {from:?} -> {to:?} noreplace {noreplace}"),
            Op::Mkdir { path, mode } => format!("mkdir {path:?} mode {mode:o}"),
            Op::Rmdir { path } => format!("rmdir {path:?}"),
            Op::Unlink { path } => format!("unlink {path:?}"),
            Op::Symlink { path, target } => format!("symlink {path:?} -> {target:?}"),
            Op::Chmod { path, mode } => format!("chmod {path:?} {mode:o}"),
            Op::Read { path, range } => format!("read {path:?} {range:?}"),
            Op::Hold { path } => format!("hold {path:?} open"),
            Op::HeldWrite { slot, offset, data } => {
                format!("write held #{slot} at {offset} len {}", data.len())
            }
            Op::HeldRead { slot, offset, len } => {
                format!("read held #{slot} at {offset} len {len}")
            }
            Op::Release { slot } => format!("close held #{slot}"),
        }
    }
}

/// What an operation answered.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Data(Vec<u8>),
    Errno(i32),
}

fn outcome(r: io::Result<Option<Vec<u8>>>) -> Outcome {
    match r {
        Ok(None) => Outcome::Done,
        Ok(Some(d)) => Outcome::Data(d),
        Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(-1)),
    }
}

/// Apply `op` under `root`.
fn apply(root: &Path, held: &mut Vec<File>, op: &Op) -> io::Result<Option<Vec<u8>>> {
    let p = |rel: &str| root.join(rel);
    match op {
        Op::Hold { path } => {
            let f = OpenOptions::new().read(true).write(true).open(p(path))?;
            if held.len() >= MAX_HELD {
                held.remove(0);
            }
            held.push(f);
            Ok(None)
        }
        Op::HeldWrite { slot, offset, data } => {
            held[*slot].write_all_at(data, *offset)?;
            Ok(None)
        }
        Op::HeldRead { slot, offset, len } => {
            let mut buf = vec![0u8; *len];
            let n = read_full_at(&held[*slot], &mut buf, *offset)?;
            buf.truncate(n);
            Ok(Some(buf))
        }
        Op::Release { slot } => {
            held.remove(*slot);
            Ok(None)
        }
        Op::Create { path, mode, data } => {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(p(path))?;
            f.write_all(data)?;
            Ok(None)
        }
        Op::WriteAt {
            path,
            offset,
            data,
            fsync,
            read_back,
        } => {
            let f = OpenOptions::new().write(true).open(p(path))?;
            f.write_all_at(data, *offset)?;
            if *fsync {
                f.sync_all()?;
            }
            let seen = if *read_back {
                // Another handle sees the write before this one closes.
                Some(fs::read(p(path))?)
            } else {
                None
            };
            drop(f);
            Ok(seen)
        }
        Op::TwoWriters {
            path,
            first,
            second,
        } => {
            let a = OpenOptions::new().write(true).open(p(path))?;
            let b = OpenOptions::new().read(true).write(true).open(p(path))?;
            a.write_all_at(&first.1, first.0)?;
            b.write_all_at(&second.1, second.0)?;
            drop(a);
            // The second handle reads what both wrote.
            let len = b.metadata()?.len();
            let mut buf = vec![0u8; len as usize];
            b.read_exact_at(&mut buf, 0)?;
            drop(b);
            Ok(Some(buf))
        }
        Op::Append { path, data } => {
            let mut f = OpenOptions::new().append(true).open(p(path))?;
            f.write_all(data)?;
            Ok(None)
        }
        Op::Rewrite { path, data } => {
            let mut f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(p(path))?;
            f.write_all(data)?;
            Ok(None)
        }
        Op::Truncate { path, len } => {
            OpenOptions::new()
                .write(true)
                .open(p(path))?
                .set_len(*len)?;
            Ok(None)
        }
        Op::PathTruncate { path, len } => sys::truncate(&p(path), *len).map(|()| None),
        Op::Utime { path, secs } => sys::set_times(&p(path), *secs).map(|()| None),
        Op::Rename {
            from,
            to,
            noreplace,
        } => {
            if *noreplace {
                sys::rename_noreplace(&p(from), &p(to))?;
            } else {
                fs::rename(p(from), p(to))?;
            }
            Ok(None)
        }
        Op::Mkdir { path, mode } => {
            fs::create_dir(p(path))?;
            fs::set_permissions(p(path), fs::Permissions::from_mode(*mode))?;
            Ok(None)
        }
        Op::Rmdir { path } => fs::remove_dir(p(path)).map(|_| None),
        Op::Unlink { path } => fs::remove_file(p(path)).map(|_| None),
        Op::Symlink { path, target } => std::os::unix::fs::symlink(target, p(path)).map(|_| None),
        Op::Chmod { path, mode } => {
            fs::set_permissions(p(path), fs::Permissions::from_mode(*mode)).map(|_| None)
        }
        Op::Read { path, range } => match range {
            None => fs::read(p(path)).map(Some),
            Some((offset, len)) => {
                let f = File::open(p(path))?;
                let mut buf = vec![0u8; *len];
                let n = read_full_at(&f, &mut buf, *offset)?;
                buf.truncate(n);
                Ok(Some(buf))
            }
        },
    }
}

/// Read into `buf` at `offset` until it is full or the file ends.
fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// What one path is, as compared.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        mtime: MTime,
        content: Option<Vec<u8>>,
    },
    Symlink {
        target: PathBuf,
    },
    /// Listing the directory failed with this errno.
    Error(i32),
}

/// A file's mtime as compared: one set by [`Op::Utime`] exactly, any
/// other (a write's, an upload's) only as "recent": the two sides write at
/// slightly different moments.
#[derive(Debug, PartialEq, Eq)]
enum MTime {
    Set(i64),
    Recent,
}

/// mtimes given by [`Op::Utime`] are below this (2020-09-13 + 1000 s);
/// every other one is later (the test runs now).
const UTIME_BASE: i64 = 1_600_000_000;
const UTIME_LIMIT: i64 = UTIME_BASE + 1000;

impl MTime {
    fn of(meta: &fs::Metadata) -> MTime {
        match meta.mtime() {
            t if t < UTIME_LIMIT => MTime::Set(t),
            _ => MTime::Recent,
        }
    }
}

/// The tree under `root`: every path, with file contents for the paths
/// `content` selects.
fn snapshot(root: &Path, content: &dyn Fn(&str) -> bool) -> io::Result<BTreeMap<String, Node>> {
    let mut out = BTreeMap::new();
    walk(root, "", true, content, &mut out)?;
    Ok(out)
}

/// Add the entries of the directory `dir` (relative to `root`) to `out`,
/// and those of its subdirectories when `recursive`.
fn walk(
    root: &Path,
    dir: &str,
    recursive: bool,
    content: &dyn Fn(&str) -> bool,
    out: &mut BTreeMap<String, Node>,
) -> io::Result<()> {
    let mut dirs = vec![dir.to_string()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(root.join(&dir))? {
            let entry = entry?;
            let rel = join(&dir, &entry.file_name().to_string_lossy());
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path)?;
            let mode = meta.mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Symlink {
                    target: fs::read_link(&path)?,
                }
            } else if meta.is_dir() {
                if recursive {
                    dirs.push(rel.clone());
                }
                Node::Dir { mode }
            } else {
                Node::File {
                    mode,
                    size: meta.len(),
                    mtime: MTime::of(&meta),
                    content: if content(&rel) {
                        Some(fs::read(&path)?)
                    } else {
                        None
                    },
                }
            };
            out.insert(rel, node);
        }
    }
    Ok(())
}

/// What an operation on `operands` can have changed: the listings of
/// their parent directories and everything below those that are
/// directories (a renamed tree), with the contents of the file `written`.
fn around(root: &Path, operands: &[&str], written: Option<&str>) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let content = |p: &str| written == Some(p);
    for op in operands {
        let parent = op.rsplit_once('/').map_or("", |(dir, _)| dir);
        let mut listing = BTreeMap::new();
        match walk(root, parent, false, &content, &mut listing) {
            Ok(()) => out.extend(listing),
            Err(e) => {
                out.insert(format!("{parent}/ (listing)"), Node::Error(errno_of(&e)));
            }
        }
        if fs::symlink_metadata(root.join(op)).is_ok_and(|m| m.is_dir()) {
            let mut below = BTreeMap::new();
            match walk(root, op, true, &content, &mut below) {
                Ok(()) => out.extend(below),
                Err(e) => {
                    out.insert(format!("{op}/ (walk)"), Node::Error(errno_of(&e)));
                }
            }
        }
    }
    out
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// The local tree's paths by kind, for picking operands.
struct Paths {
    dirs: Vec<String>,
    files: Vec<String>,
    links: Vec<String>,
    all: BTreeSet<String>,
}

fn paths(local: &Path) -> Paths {
    let tree = snapshot(local, &|_| false).unwrap_or_else(|e| panic!("walk the local tree: {e}"));
    let mut p = Paths {
        dirs: vec![String::new()],
        files: Vec::new(),
        links: Vec::new(),
        all: tree.keys().cloned().collect(),
    };
    for (path, node) in tree {
        match node {
            Node::Dir { .. } => p.dirs.push(path),
            Node::File { .. } => p.files.push(path),
            Node::Symlink { .. } => p.links.push(path),
            Node::Error(_) => {}
        }
    }
    p
}

fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.split('/').count()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn random_data(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.random_range(0..10) {
        0 => 0,
        1..=6 => rng.random_range(1..4096),
        7 | 8 => rng.random_range(4096..70_000),
        _ => rng.random_range(70_000..300_000),
    };
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data
}

/// A path in an existing directory, usually of a name not taken yet.
fn new_path(rng: &mut StdRng, p: &Paths) -> String {
    let shallow: Vec<&String> = p.dirs.iter().filter(|d| depth(d) < MAX_DEPTH).collect();
    let dir = shallow.choose(rng).map(|d| d.as_str()).unwrap_or("");
    let free: Vec<String> = NAMES
        .iter()
        .map(|n| join(dir, n))
        .filter(|path| !p.all.contains(path))
        .collect();
    match free.choose(rng) {
        Some(path) if rng.random_bool(0.85) => path.clone(),
        _ => join(dir, NAMES.choose(rng).copied().unwrap_or("a")),
    }
}

/// An existing directory other than the root, usually an empty one.
fn dir_to_remove(rng: &mut StdRng, p: &Paths) -> Option<String> {
    let empty: Vec<&String> = p
        .dirs
        .iter()
        .skip(1)
        .filter(|d| !p.all.iter().any(|q| q.starts_with(&format!("{d}/"))))
        .collect();
    match empty.choose(rng) {
        Some(d) if rng.random_bool(0.7) => Some(d.to_string()),
        _ => p
            .dirs
            .iter()
            .skip(1)
            .collect::<Vec<_>>()
            .choose(rng)
            .map(|d| d.to_string()),
    }
}

/// Any existing non-root path, or a missing one.
fn any_path(rng: &mut StdRng, p: &Paths) -> String {
    let all: Vec<&String> = p
        .dirs
        .iter()
        .skip(1)
        .chain(&p.files)
        .chain(&p.links)
        .collect();
    match all.choose(rng) {
        Some(path) if rng.random_bool(0.9) => path.to_string(),
        _ => new_path(rng, p),
    }
}

/// An existing file (usually), else any path: wrong kinds must fail alike.
fn file_path(rng: &mut StdRng, p: &Paths) -> String {
    match p.files.choose(rng) {
        Some(f) if rng.random_bool(0.93) => f.clone(),
        _ => {
            // A directory or a missing name (never a symlink: it would be followed).
            let dirs: Vec<&String> = p.dirs.iter().skip(1).collect();
            match dirs.choose(rng) {
                Some(d) if rng.random_bool(0.5) => d.to_string(),
                _ => {
                    let candidate = new_path(rng, p);
                    if p.links.contains(&candidate) {
                        join("", "missing")
                    } else {
                        candidate
                    }
                }
            }
        }
    }
}

fn generate(rng: &mut StdRng, p: &Paths, held: usize) -> Op {
    let size_hint = |rng: &mut StdRng| rng.random_range(0..200_000u64);
    let roll = rng.random_range(0..124);
    if (112..118).contains(&roll) {
        return Op::PathTruncate {
            path: file_path(rng, p),
            len: match rng.random_range(0..4) {
                0 => 0,
                _ => size_hint(rng),
            },
        };
    }
    if roll >= 118 {
        return Op::Utime {
            path: file_path(rng, p),
            secs: UTIME_BASE + rng.random_range(0..UTIME_LIMIT - UTIME_BASE),
        };
    }
    if roll >= 100 {
        return match (roll, held) {
            (100..=102, _) | (_, 0) => Op::Hold {
                path: file_path(rng, p),
            },
            (103..=108, _) => {
                let mut data = random_data(rng);
                data.truncate(30_000);
                Op::HeldWrite {
                    slot: rng.random_range(0..held),
                    offset: size_hint(rng),
                    data,
                }
            }
            (109 | 110, _) => Op::HeldRead {
                slot: rng.random_range(0..held),
                offset: size_hint(rng) / 2,
                len: rng.random_range(1..50_000),
            },
            _ => Op::Release {
                slot: rng.random_range(0..held),
            },
        };
    }
    match roll {
        0..=13 => {
            let mut path = new_path(rng, p);
            if p.links.contains(&path) {
                path = join("", "fresh");
            }
            Op::Create {
                path,
                mode: *FILE_MODES[..4].choose(rng).unwrap_or(&0o644),
                data: random_data(rng),
            }
        }
        14..=25 => {
            let mut data = random_data(rng);
            data.truncate(100_000);
            Op::WriteAt {
                path: file_path(rng, p),
                offset: size_hint(rng),
                data,
                fsync: rng.random_bool(0.3),
                read_back: rng.random_bool(0.3),
            }
        }
        26..=28 => {
            let mut d1 = random_data(rng);
            let mut d2 = random_data(rng);
            d1.truncate(20_000);
            d2.truncate(20_000);
            Op::TwoWriters {
                path: file_path(rng, p),
                first: (size_hint(rng) / 4, d1),
                second: (size_hint(rng) / 4, d2),
            }
        }
        29..=36 => {
            let mut data = random_data(rng);
            data.truncate(20_000);
            Op::Append {
                path: file_path(rng, p),
                data,
            }
        }
        37..=40 => Op::Rewrite {
            path: file_path(rng, p),
            data: random_data(rng),
        },
        41..=47 => Op::Truncate {
            path: file_path(rng, p),
            len: match rng.random_range(0..4) {
                0 => 0,
                _ => size_hint(rng),
            },
        },
        48..=60 => {
            let from = any_path(rng, p);
            // Usually a fresh or existing name in some directory; sometimes
            // inside `from` itself (EINVAL) or below a file (ENOTDIR).
            let to = match rng.random_range(0..20) {
                0 => join(&from, "inner"),
                1 => match p.files.choose(rng) {
                    Some(f) => join(f, "below"),
                    None => new_path(rng, p),
                },
                2..=5 => any_path(rng, p),
                _ => new_path(rng, p),
            };
            Op::Rename {
                from,
                to,
                noreplace: rng.random_bool(0.2),
            }
        }
        61..=70 => Op::Mkdir {
            path: new_path(rng, p),
            mode: *DIR_MODES.choose(rng).unwrap_or(&0o755),
        },
        71..=76 => Op::Rmdir {
            path: match dir_to_remove(rng, p) {
                Some(d) if rng.random_bool(0.85) => d,
                _ => any_path(rng, p),
            },
        },
        77..=82 => Op::Unlink {
            path: match p
                .files
                .iter()
                .chain(&p.links)
                .collect::<Vec<_>>()
                .choose(rng)
            {
                Some(f) if rng.random_bool(0.85) => f.to_string(),
                _ => any_path(rng, p),
            },
        },
        83..=86 => {
            let target = match rng.random_range(0..3) {
                0 => NAMES.choose(rng).unwrap_or(&"a").to_string(),
                1 => format!("../{}", NAMES.choose(rng).unwrap_or(&"a")),
                _ => format!(
                    "{}/{}",
                    NAMES.choose(rng).unwrap_or(&"a"),
                    NAMES.choose(rng).unwrap_or(&"b")
                ),
            };
            Op::Symlink {
                path: new_path(rng, p),
                target,
            }
        }
        87..=91 => {
            let dirs: Vec<&String> = p.dirs.iter().skip(1).collect();
            let (path, modes): (String, &[u32]) =
                match (rng.random_bool(0.6), p.files.choose(rng), dirs.choose(rng)) {
                    (true, Some(f), _) => (f.clone(), &FILE_MODES),
                    (_, _, Some(d)) => (d.to_string(), &DIR_MODES),
                    (_, Some(f), None) => (f.clone(), &FILE_MODES),
                    (_, None, None) => (new_path(rng, p), &FILE_MODES),
                };
            Op::Chmod {
                path,
                mode: *modes.choose(rng).unwrap_or(&0o644),
            }
        }
        _ => Op::Read {
            path: file_path(rng, p),
            range: if rng.random_bool(0.5) {
                Some((size_hint(rng), rng.random_range(1..70_000)))
            } else {
                None
            },
        },
    }
}

/// Describe the first difference of two snapshots.
fn first_difference(
    local: &BTreeMap<String, Node>,
    mount: &BTreeMap<String, Node>,
) -> Option<String> {
    let keys: BTreeSet<&String> = local.keys().chain(mount.keys()).collect();
    for k in keys {
        match (local.get(k), mount.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                let show = |n: Option<&Node>| match n {
                    Some(Node::File {
                        mode,
                        size,
                        mtime,
                        content,
                    }) => format!(
                        "file mode {mode:o} size {size} mtime {mtime:?}{}",
                        content
                            .as_ref()
                            .map(|c| format!(" ({} bytes read)", c.len()))
                            .unwrap_or_default()
                    ),
                    Some(other) => format!("{other:?}"),
                    None => "missing".to_string(),
                };
                let detail = match (a, b) {
                    (
                        Some(Node::File {
                            content: Some(x), ..
                        }),
                        Some(Node::File {
                            content: Some(y), ..
                        }),
                    ) => {
                        let at = x.iter().zip(y.iter()).position(|(p, q)| p != q);
                        format!(
                            " (contents first differ at byte {at:?}, lengths {} vs {})",
                            x.len(),
                            y.len()
                        )
                    }
                    _ => String::new(),
                };
                return Some(format!(
                    "{k:?}: local {} | mount {}{detail}",
                    show(a),
                    show(b)
                ));
            }
        }
    }
    None
}

struct Run {
    seed: u64,
    log: Vec<String>,
}

impl Run {
    fn fail(&self, step: usize, what: &str, m: &Mount) -> ! {
        let recent = self.log[self.log.len().saturating_sub(40)..].join("\n  ");
        panic!(
            "fuse_diff seed {seed}, step {step}: {what}\nlast operations:\n  {recent}\n\
             replay: FUSE_DIFF_SEED={seed} cargo test -p e2e --test fuse_diff\n--- daemon log ---\n{}",
            m.log_tail(),
            seed = self.seed
        );
    }

    /// Compare both whole trees, contents included.
    fn compare_all(&self, step: usize, local: &Path, m: &Mount) {
        let a = snapshot(local, &|_| true)
            .unwrap_or_else(|e| self.fail(step, &format!("walk local: {e}"), m));
        let b = snapshot(m.path(), &|_| true)
            .unwrap_or_else(|e| self.fail(step, &format!("walk mount: {e}"), m));
        if let Some(diff) = first_difference(&a, &b) {
            self.fail(step, &format!("trees differ: {diff}"), m);
        }
    }

    /// Compare what `op` can have changed.
    fn compare_around(&self, step: usize, local: &Path, m: &Mount, op: &Op) {
        let operands = op.operands();
        let a = around(local, &operands, op.written());
        let b = around(m.path(), &operands, op.written());
        if let Some(diff) = first_difference(&a, &b) {
            self.fail(
                step,
                &format!("trees differ after the operation: {diff}"),
                m,
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

#[test]
fn random_operations_match_a_local_directory() {
    let seed = env_u64("FUSE_DIFF_SEED").unwrap_or_else(rand::random);
    let ops = env_u64("FUSE_DIFF_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    eprintln!(
        "fuse_diff: seed {seed}, {ops} operations (replay: FUSE_DIFF_SEED={seed} cargo test -p e2e --test fuse_diff)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let local_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let local = local_dir.path().join("root");
    fs::create_dir(&local).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut builder = Mount::builder(shared_garage(), "diff");
    if let Ok(options) = std::env::var("FUSE_DIFF_MOUNT_OPTIONS") {
        eprintln!("fuse_diff: mount options {options}");
        builder = builder.option(&options);
    }
    let mut m = builder.mount();
    let mut run = Run {
        seed,
        log: Vec::new(),
    };
    let mut counts: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();

    let (mut held_local, mut held_mount) = (Vec::new(), Vec::new());
    let preamble = truncate_chmod_utime_rename();
    for step in 1..=ops {
        let op = match preamble.get(step - 1) {
            Some(op) => op.clone(),
            None => generate(&mut rng, &paths(&local), held_local.len()),
        };
        run.log.push(format!("{step}: {}", op.describe()));
        let want = outcome(apply(&local, &mut held_local, &op));
        let got = outcome(apply(m.path(), &mut held_mount, &op));
        let kind = op_kind(&op);
        let entry = counts.entry(kind).or_default();
        entry.0 += 1;
        if matches!(want, Outcome::Errno(_)) {
            entry.1 += 1;
        }
        if want != got {
            let show = |o: &Outcome| match o {
                Outcome::Data(d) => format!("{} bytes", d.len()),
                Outcome::Errno(e) => format!("errno {e} ({})", io::Error::from_raw_os_error(*e)),
                Outcome::Done => "ok".to_string(),
            };
            run.fail(
                step,
                &format!(
                    "{}: local answered {}, mount answered {}",
                    op.describe(),
                    show(&want),
                    show(&got)
                ),
                &m,
            );
        }
        if step % FULL_EVERY == 0 {
            run.compare_all(step, &local, &m);
        } else {
            run.compare_around(step, &local, &m, &op);
        }
        if step % REMOUNT_EVERY == 0 || step == ops {
            // Close what is held (uploads happen here), then remount.
            held_local.clear();
            held_mount.clear();
            run.compare_all(step, &local, &m);
            m.remount();
            run.log.push(format!("{step}: (remount)"));
            run.compare_all(step, &local, &m);
        }
    }
    let tree = snapshot(&local, &|_| false).map(|t| t.len()).unwrap_or(0);
    eprintln!(
        "fuse_diff: {ops} operations (kind: count, expected failures): {counts:?}; final tree {tree} paths"
    );
}

/// The first steps of every run: `truncate -s 100 f; chmod 640 f;
/// touch -d @1600000000 f; mv f g` (a rename that once lost the mtime).
fn truncate_chmod_utime_rename() -> Vec<Op> {
    vec![
        Op::Create {
            path: "f.txt".into(),
            mode: 0o644,
            data: Vec::new(),
        },
        Op::PathTruncate {
            path: "f.txt".into(),
            len: 100,
        },
        Op::Chmod {
            path: "f.txt".into(),
            mode: 0o640,
        },
        Op::Utime {
            path: "f.txt".into(),
            secs: UTIME_BASE,
        },
        Op::Rename {
            from: "f.txt".into(),
            to: "a".into(),
            noreplace: false,
        },
    ]
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Create { .. } => "create",
        Op::WriteAt { .. } => "write",
        Op::TwoWriters { .. } => "two-writers",
        Op::Append { .. } => "append",
        Op::Rewrite { .. } => "rewrite",
        Op::Truncate { .. } => "truncate",
        Op::PathTruncate { .. } => "path-truncate",
        Op::Utime { .. } => "utime",
        Op::Rename { .. } => "rename",
        Op::Mkdir { .. } => "mkdir",
        Op::Rmdir { .. } => "rmdir",
        Op::Unlink { .. } => "unlink",
        Op::Symlink { .. } => "symlink",
        Op::Chmod { .. } => "chmod",
        Op::Read { .. } => "read",
        Op::Hold { .. } => "hold",
        Op::HeldWrite { .. } => "held-write",
        Op::HeldRead { .. } => "held-read",
        Op::Release { .. } => "release",
    }
}
