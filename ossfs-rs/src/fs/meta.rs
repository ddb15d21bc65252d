//! POSIX attributes in object metadata, compatible with ossfs, cosfs and s3fs.
//!
//! Those tools keep a file's mode, owner and modification time in user
//! metadata named `mode`, `uid`, `gid` and `mtime` (the store adds the
//! dialect prefix: `x-oss-meta-mode`, `x-cos-meta-mode`, `x-amz-meta-mode`).
//! `mode` is the whole `st_mode` in decimal, file-type bits included
//! (`33188` is a 0644 regular file, `41471` a symlink); `uid`/`gid` are
//! decimal; `mtime` is seconds since the epoch (rclone writes a fraction,
//! which we read too). Directories are zero-byte `dir/` objects with
//! content type `application/x-directory`.
//!
//! Reading is lenient: a missing or malformed value falls back to the
//! mount's defaults (and `mtime` to Last-Modified), so trees written by
//! other tools, with no metadata at all, look like ordinary files. Writing
//! keeps every other user-metadata entry (xattrs, a foreign tool's keys) and
//! only replaces the four we own. [`NodeInfo`] is the resolved state of one
//! path: what a HEAD (or a listing) said, in filesystem terms.
//!
//! Imports: `store` (object metadata and PUT options) only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::{ObjectMeta, PutOptions, UserMetadata};

/// The user-metadata names ossfs/s3fs use.
pub const META_MODE: &str = "mode";
pub const META_UID: &str = "uid";
pub const META_GID: &str = "gid";
pub const META_MTIME: &str = "mtime";

/// Content type of directory markers (what s3fs and ossfs write).
pub const DIR_CONTENT_TYPE: &str = "application/x-directory";

/// File-type bits of `st_mode`.
const S_IFMT: u32 = libc::S_IFMT;
const S_IFREG: u32 = libc::S_IFREG;
const S_IFDIR: u32 = libc::S_IFDIR;
const S_IFLNK: u32 = libc::S_IFLNK;

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    /// The `S_IF*` bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::File => S_IFREG,
            Kind::Dir => S_IFDIR,
            Kind::Symlink => S_IFLNK,
        }
    }

    /// The fuser file type.
    pub fn file_type(self) -> fuser::FileType {
        match self {
            Kind::File => fuser::FileType::RegularFile,
            Kind::Dir => fuser::FileType::Directory,
            Kind::Symlink => fuser::FileType::Symlink,
        }
    }
}

/// The POSIX attributes stored in an object's user metadata; `None` when
/// absent or unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PosixMeta {
    /// The whole `st_mode`, as stored (type bits may be missing).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
}

impl PosixMeta {
    /// Read the four entries from user metadata.
    pub fn parse(meta: &UserMetadata) -> Self {
        let num = |name: &str| meta.get(name).and_then(|v| v.trim().parse::<u32>().ok());
        Self {
            mode: num(META_MODE),
            uid: num(META_UID),
            gid: num(META_GID),
            mtime: meta.get(META_MTIME).and_then(|v| parse_mtime(v)),
        }
    }

    /// Write the entries that are set into `meta`, leaving others alone.
    pub fn apply(&self, meta: &mut UserMetadata) {
        if let Some(mode) = self.mode {
            meta.insert(META_MODE.into(), mode.to_string());
        }
        if let Some(uid) = self.uid {
            meta.insert(META_UID.into(), uid.to_string());
        }
        if let Some(gid) = self.gid {
            meta.insert(META_GID.into(), gid.to_string());
        }
        if let Some(mtime) = self.mtime {
            meta.insert(META_MTIME.into(), format_mtime(mtime));
        }
    }
}

/// Parse `mtime`: whole seconds, optionally with a fraction (`1700000000.25`).
pub fn parse_mtime(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let secs: i64 = secs.parse().ok()?;
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits.parse::<u32>().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// Format `mtime` as whole seconds, the form every ossfs/s3fs version reads.
pub fn format_mtime(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs().to_string(),
        Err(e) => format!("-{}", e.duration().as_secs()),
    }
}

/// The resolved state of one path, from a HEAD or a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub kind: Kind,
    /// Bytes of a file; target length of a symlink; 0 for a directory.
    pub size: u64,
    /// From `mtime` metadata, else Last-Modified, else the epoch.
    pub mtime: SystemTime,
    pub posix: PosixMeta,
    pub etag: String,
    pub content_type: Option<String>,
    /// All user metadata, kept so rewrites preserve foreign entries.
    pub user_metadata: UserMetadata,
    /// For a directory: whether a `dir/` marker object exists (else implied).
    pub has_marker: bool,
    /// A native OSS/COS symlink object (read with `get_symlink`).
    pub native_symlink: bool,
}

impl NodeInfo {
    /// A file or symlink object.
    pub fn from_object(meta: &ObjectMeta) -> Self {
        let posix = PosixMeta::parse(&meta.user_metadata);
        let native_symlink = meta
            .object_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("symlink"));
        let mode_is_link = posix.mode.is_some_and(|m| m & S_IFMT == S_IFLNK);
        let kind = if native_symlink || mode_is_link {
            Kind::Symlink
        } else {
            Kind::File
        };
        let size = match (&meta.symlink_target, kind) {
            (Some(target), Kind::Symlink) => target.len() as u64,
            _ => meta.size,
        };
        Self {
            kind,
            size,
            mtime: posix.mtime.or(meta.last_modified).unwrap_or(UNIX_EPOCH),
            posix,
            etag: meta.etag.clone(),
            content_type: meta.content_type.clone(),
            user_metadata: meta.user_metadata.clone(),
            has_marker: false,
            native_symlink,
        }
    }

    /// A directory, with its marker object if there is one.
    pub fn dir(marker: Option<&ObjectMeta>) -> Self {
        match marker {
            Some(meta) => {
                let posix = PosixMeta::parse(&meta.user_metadata);
                Self {
                    kind: Kind::Dir,
                    size: 0,
                    mtime: posix.mtime.or(meta.last_modified).unwrap_or(UNIX_EPOCH),
                    posix,
                    etag: meta.etag.clone(),
                    content_type: meta.content_type.clone(),
                    user_metadata: meta.user_metadata.clone(),
                    has_marker: true,
                    native_symlink: false,
                }
            }
            None => Self::implied_dir(UNIX_EPOCH),
        }
    }

    /// A directory implied by deeper keys, with no marker object.
    pub fn implied_dir(mtime: SystemTime) -> Self {
        Self {
            kind: Kind::Dir,
            size: 0,
            mtime,
            posix: PosixMeta::default(),
            etag: String::new(),
            content_type: None,
            user_metadata: UserMetadata::new(),
            has_marker: false,
            native_symlink: false,
        }
    }

    /// A file seen in a listing only (no user metadata known).
    pub fn listed_file(size: u64, etag: &str, last_modified: Option<SystemTime>) -> Self {
        Self {
            kind: Kind::File,
            size,
            mtime: last_modified.unwrap_or(UNIX_EPOCH),
            posix: PosixMeta::default(),
            etag: etag.to_string(),
            content_type: None,
            user_metadata: UserMetadata::new(),
            has_marker: false,
            native_symlink: false,
        }
    }

    /// A node this mount creates, not stored yet: `kind` with permissions
    /// `perm`, owned by `uid`/`gid`, modified at `now`, empty, no ETag. Its
    /// user metadata holds the POSIX entries and a directory (its marker)
    /// has the marker content type, so [`NodeInfo::put_options`] gives the
    /// PUT that stores it.
    pub fn new_node(kind: Kind, perm: u32, uid: u32, gid: u32, now: SystemTime) -> Self {
        let posix = PosixMeta {
            mode: Some(stored_mode(kind, perm)),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(now),
        };
        let mut user_metadata = UserMetadata::new();
        posix.apply(&mut user_metadata);
        let dir = kind == Kind::Dir;
        Self {
            kind,
            size: 0,
            mtime: now,
            posix,
            etag: String::new(),
            content_type: dir.then(|| DIR_CONTENT_TYPE.to_string()),
            user_metadata,
            has_marker: dir,
            native_symlink: false,
        }
    }

    /// PUT options that keep this node's content type and user metadata,
    /// with `posix` laid over them.
    pub fn put_options(&self, posix: &PosixMeta) -> PutOptions {
        let mut user_metadata = self.user_metadata.clone();
        posix.apply(&mut user_metadata);
        let content_type = match self.kind {
            Kind::Dir => Some(DIR_CONTENT_TYPE.to_string()),
            _ => self.content_type.clone(),
        };
        PutOptions {
            content_type,
            user_metadata,
        }
    }
}

/// How attributes are shown for what metadata does not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPolicy {
    /// Show every node as owned by this uid/gid (ossfs `-o uid=`/`gid=`).
    pub force_uid: Option<u32>,
    pub force_gid: Option<u32>,
    /// Owner of nodes without `uid`/`gid` metadata.
    pub default_uid: u32,
    pub default_gid: u32,
    /// Permission bits of files and directories without `mode` metadata.
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Cleared from every mode shown (ossfs `-o umask=`).
    pub umask: u32,
}

impl AttrPolicy {
    /// The `st_mode` permission bits (no type bits) of `info`.
    pub fn perm(&self, info: &NodeInfo) -> u32 {
        if info.kind == Kind::Symlink {
            return 0o777;
        }
        let default = match info.kind {
            Kind::Dir => self.dir_mode,
            _ => self.file_mode,
        };
        let perm = info.posix.mode.map(|m| m & 0o7777).unwrap_or(default);
        perm & !self.umask & 0o7777
    }

    /// The fuser attributes of `info` as inode `ino`.
    pub fn attr(&self, ino: u64, info: &NodeInfo) -> fuser::FileAttr {
        let blocks = info.size.div_ceil(512);
        fuser::FileAttr {
            ino: fuser::INodeNo(ino),
            size: info.size,
            blocks,
            atime: info.mtime,
            mtime: info.mtime,
            ctime: info.mtime,
            crtime: info.mtime,
            kind: info.kind.file_type(),
            // perm() masks to 0o7777, which fits.
            perm: self.perm(info) as u16,
            nlink: if info.kind == Kind::Dir { 2 } else { 1 },
            uid: self
                .force_uid
                .or(info.posix.uid)
                .unwrap_or(self.default_uid),
            gid: self
                .force_gid
                .or(info.posix.gid)
                .unwrap_or(self.default_gid),
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }
}

/// Preferred I/O size reported in `st_blksize`: large, since every request
/// to an object store has a high fixed cost.
pub const BLKSIZE: u32 = 1024 * 1024;

/// The `mode` value to store for a new node: type bits plus permissions.
pub fn stored_mode(kind: Kind, perm: u32) -> u32 {
    kind.type_bits() | (perm & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> UserMetadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_s3fs_metadata() {
        let p = PosixMeta::parse(&meta(&[
            ("mode", "33188"),
            ("uid", "1000"),
            ("gid", "100"),
            ("mtime", "1700000000"),
        ]));
        assert_eq!(p.mode, Some(0o100644));
        assert_eq!(p.uid, Some(1000));
        assert_eq!(p.gid, Some(100));
        assert_eq!(
            p.mtime,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn malformed_metadata_is_ignored() {
        let p = PosixMeta::parse(&meta(&[("mode", "rwx"), ("uid", "-1"), ("mtime", "x")]));
        assert_eq!(p, PosixMeta::default());
    }

    #[test]
    fn mtime_with_fraction_and_round_trip() {
        assert_eq!(
            parse_mtime("1700000000.25"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000))
        );
        assert_eq!(parse_mtime("12.x"), None);
        let t = UNIX_EPOCH + Duration::from_secs(42);
        assert_eq!(parse_mtime(&format_mtime(t)), Some(t));
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(parse_mtime(&format_mtime(before)), Some(before));
    }

    #[test]
    fn apply_keeps_foreign_entries() {
        let mut m = meta(&[("xattr", "%7B%7D"), ("mode", "1")]);
        PosixMeta {
            mode: Some(stored_mode(Kind::File, 0o600)),
            uid: Some(5),
            gid: None,
            mtime: Some(UNIX_EPOCH + Duration::from_secs(9)),
        }
        .apply(&mut m);
        assert_eq!(m.get("xattr").map(String::as_str), Some("%7B%7D"));
        assert_eq!(m.get("mode").map(String::as_str), Some("33152"));
        assert_eq!(m.get("uid").map(String::as_str), Some("5"));
        assert_eq!(m.get("gid"), None);
        assert_eq!(m.get("mtime").map(String::as_str), Some("9"));
    }

    fn policy() -> AttrPolicy {
        AttrPolicy {
            force_uid: None,
            force_gid: None,
            default_uid: 7,
            default_gid: 8,
            file_mode: 0o644,
            dir_mode: 0o755,
            umask: 0o022,
        }
    }

    #[test]
    fn objects_without_metadata_get_defaults() {
        let info = NodeInfo::from_object(&ObjectMeta {
            key: "k".into(),
            size: 3,
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(100)),
            ..Default::default()
        });
        assert_eq!(info.kind, Kind::File);
        let a = policy().attr(9, &info);
        assert_eq!(a.perm, 0o644);
        assert_eq!((a.uid, a.gid), (7, 8));
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(a.size, 3);
        let mut p = policy();
        p.umask = 0o077;
        assert_eq!(p.attr(9, &info).perm, 0o600);
        p.force_uid = Some(0);
        assert_eq!(p.attr(9, &info).uid, 0);
    }

    #[test]
    fn symlinks_by_mode_or_object_type() {
        let by_mode = NodeInfo::from_object(&ObjectMeta {
            size: 6,
            user_metadata: meta(&[("mode", &(S_IFLNK | 0o777).to_string())]),
            ..Default::default()
        });
        assert_eq!(by_mode.kind, Kind::Symlink);
        assert!(!by_mode.native_symlink);
        let native = NodeInfo::from_object(&ObjectMeta {
            size: 1000,
            object_type: Some("Symlink".into()),
            symlink_target: Some("target".into()),
            ..Default::default()
        });
        assert_eq!(native.kind, Kind::Symlink);
        assert!(native.native_symlink);
        assert_eq!(native.size, 6);
        assert_eq!(policy().attr(2, &native).perm, 0o777);
    }

    #[test]
    fn directory_markers_and_implied_dirs() {
        let marker = ObjectMeta {
            user_metadata: meta(&[("mode", &(S_IFDIR | 0o700).to_string())]),
            ..Default::default()
        };
        let d = NodeInfo::dir(Some(&marker));
        assert!(d.has_marker);
        let a = policy().attr(3, &d);
        assert_eq!(a.perm, 0o700);
        assert_eq!(a.kind, fuser::FileType::Directory);
        let implied = NodeInfo::dir(None);
        assert!(!implied.has_marker);
        assert_eq!(policy().attr(3, &implied).perm, 0o755);
        assert_eq!(
            implied
                .put_options(&PosixMeta::default())
                .content_type
                .as_deref(),
            Some(DIR_CONTENT_TYPE)
        );
    }
}
