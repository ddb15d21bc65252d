//! File names and object keys: which keys can be shown as names, and how a
//! path inside the mount becomes a key.
//!
//! Paths inside the mount are relative, `/`-separated, without a leading or
//! trailing slash; the root is `""`. A file at path `p` is the object
//! `prefix + p`; a directory at `p` is everything under `prefix + p + "/"`
//! (its marker object is exactly that key). Keeping paths relative and the
//! prefix in one place ([`Keys`]) means the mount prefix is applied exactly
//! once, on the way to the store.
//!
//! Object keys are more permissive than file names: `x//y` has an empty
//! segment, `a/./b` a `.`, a key may hold NUL or a 300-byte segment. Such
//! keys cannot be shown; [`check_listed_name`] says why, and the listing code
//! skips them (with one warning per key).
//!
//! Imports: `fs::error` of the crate, besides std and external crates.

use std::ffi::OsStr;
use std::fmt;

use super::error::FsError;

/// The longest file name, in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The longest object key, in bytes, that S3, OSS and COS accept. Some
/// servers accept fewer (Garage with lmdb); their error maps to an errno.
pub const KEY_MAX: usize = 1023;

/// Why a key segment cannot be a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadName {
    /// An empty segment (`x//y`).
    Empty,
    /// `.` or `..`.
    Dot,
    /// A NUL byte.
    Nul,
    /// Longer than [`NAME_MAX`] bytes.
    TooLong,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadName::Empty => "it has an empty path segment",
            BadName::Dot => "a path segment is \".\" or \"..\"",
            BadName::Nul => "it contains a NUL byte",
            BadName::TooLong => "a path segment is longer than 255 bytes",
        })
    }
}

/// Whether a segment found in a listing can be shown as a file name.
pub fn check_listed_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() {
        Err(BadName::Empty)
    } else if name == "." || name == ".." {
        Err(BadName::Dot)
    } else if name.contains('\0') {
        Err(BadName::Nul)
    } else if name.len() > NAME_MAX {
        Err(BadName::TooLong)
    } else {
        Ok(())
    }
}

/// Validate a name the kernel gave us for a new or looked-up entry.
pub fn check_name(name: &OsStr) -> Result<&str, FsError> {
    let s = name
        .to_str()
        .ok_or_else(|| FsError::InvalidName(name.to_string_lossy().into_owned()))?;
    if s.len() > NAME_MAX {
        return Err(FsError::NameTooLong(s.to_string()));
    }
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(FsError::InvalidName(s.to_string()));
    }
    Ok(s)
}

/// The path of `name` inside the directory at `parent`.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `path` is `dir` or lies below it.
pub fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Replace the leading `from` of `path` (which [`is_within`] `from`) by `to`.
pub fn rebase(path: &str, from: &str, to: &str) -> String {
    let rest = &path[from.len()..];
    if to.is_empty() {
        rest.trim_start_matches('/').to_string()
    } else if from.is_empty() && !rest.is_empty() {
        format!("{to}/{rest}")
    } else {
        format!("{to}{rest}")
    }
}

/// Turns mount paths into object keys under the mount prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` is `""` or ends with `/`; a missing trailing slash is added.
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        Self { prefix }
    }

    /// The mount prefix (`""` or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of the file at `path`.
    pub fn object(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    /// The key prefix of the directory at `path` (its marker key); the
    /// root's is the mount prefix itself.
    pub fn dir(&self, path: &str) -> String {
        if path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{}/", self.prefix, path)
        }
    }

    /// Refuse paths whose keys the store cannot hold.
    pub fn check_len(&self, path: &str) -> Result<(), FsError> {
        if self.prefix.len() + path.len() + 1 > KEY_MAX {
            return Err(FsError::NameTooLong(path.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::ToErrno;

    #[test]
    fn listed_names_that_cannot_be_files() {
        assert_eq!(check_listed_name("a"), Ok(()));
        assert_eq!(check_listed_name(""), Err(BadName::Empty));
        assert_eq!(check_listed_name("."), Err(BadName::Dot));
        assert_eq!(check_listed_name(".."), Err(BadName::Dot));
        assert_eq!(check_listed_name("..."), Ok(()));
        assert_eq!(check_listed_name("a\0b"), Err(BadName::Nul));
        assert_eq!(check_listed_name(&"x".repeat(255)), Ok(()));
        assert_eq!(check_listed_name(&"x".repeat(256)), Err(BadName::TooLong));
    }

    #[test]
    fn kernel_names() {
        assert_eq!(check_name(OsStr::new("ok")).ok(), Some("ok"));
        assert_eq!(
            check_name(OsStr::new(&"y".repeat(256))).map_err(|e| e.errno()),
            Err(libc::ENAMETOOLONG)
        );
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            check_name(OsStr::from_bytes(b"\xff")).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn keys_under_a_prefix() {
        let k = Keys::new("data/set");
        assert_eq!(k.prefix(), "data/set/");
        assert_eq!(k.object("a/b"), "data/set/a/b");
        assert_eq!(k.dir("a"), "data/set/a/");
        assert_eq!(k.dir(""), "data/set/");
        let k = Keys::new("");
        assert_eq!(k.object("f"), "f");
        assert_eq!(k.dir(""), "");
        assert!(k.check_len(&"a".repeat(1022)).is_ok());
        assert!(k.check_len(&"a".repeat(1023)).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
        assert!(is_within("a/b", "a"));
        assert!(is_within("a", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", ""));
        assert_eq!(rebase("a/b/c", "a/b", "z"), "z/c");
        assert_eq!(rebase("a/b", "a/b", "z"), "z");
        assert_eq!(rebase("a/b", "a", ""), "b");
    }
}
