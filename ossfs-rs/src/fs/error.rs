//! Filesystem errors and the one place where they become errnos.
//!
//! Every operation of [`super::Fs`] returns `Result<_, FsError>`. The
//! variants say what went wrong in terms of the filesystem (which path, which
//! limit) and keep the store error as their source, so a log line tells an
//! operator both what the user did and what the server answered.
//! [`FsError::errno`] is a single exhaustive match: adding a variant without
//! deciding its errno does not compile. Store errors are mapped by
//! [`StoreError::to_errno`], the store's own single mapping.

use std::io;

use crate::store::StoreError;
use crate::upload::UploadError;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist (in the bucket, or any more in our tables).
    #[error("no such file or directory: {0:?}")]
    NotFound(String),

    /// The kernel named an inode we do not know (never looked up, or forgotten).
    #[error("unknown inode {0}")]
    UnknownInode(u64),

    /// The kernel named a file handle we do not know.
    #[error("unknown file handle {0}")]
    BadHandle(u64),

    /// The target name exists (create with O_EXCL, mkdir, symlink, RENAME_NOREPLACE).
    #[error("{0:?} already exists")]
    Exists(String),

    /// A file operation on a directory.
    #[error("{0:?} is a directory")]
    IsDir(String),

    /// A directory operation on something that is not a directory.
    #[error("{0:?} is not a directory")]
    NotDir(String),

    /// rmdir, or a rename over a directory, that still has entries.
    #[error("directory {0:?} is not empty")]
    NotEmpty(String),

    /// A name longer than 255 bytes, or a key longer than the store allows.
    #[error("name too long: {0:?}")]
    NameTooLong(String),

    /// A name that cannot be an object key segment (not UTF-8, `/`, NUL, `.`, `..`).
    #[error("invalid file name {0:?}")]
    InvalidName(String),

    /// The mount is read-only.
    #[error("the filesystem is mounted read-only")]
    ReadOnly,

    /// The file would need more parts than a multipart upload may have.
    #[error(
        "file too large: {size} bytes exceeds the largest uploadable size {max} (raise multipart_size)"
    )]
    TooLarge { size: u64, max: u64 },

    /// getxattr/removexattr of a name that is not set.
    #[error("no extended attribute {0:?}")]
    NoXattr(String),

    /// The caller's buffer is too small for the value.
    #[error("buffer of {given} bytes is too small for {needed} bytes")]
    Range { given: u32, needed: usize },

    /// Extended attributes outside the `user.` namespace are not stored.
    #[error("extended attribute namespace of {0:?} is not supported (only user.*)")]
    XattrNamespace(String),

    /// The mount was made with `noxattr`.
    #[error("extended attributes are turned off on this mount (noxattr)")]
    XattrsOff,

    /// The object's user metadata would exceed the store's limit.
    #[error("metadata of {key:?} would be {size} bytes, over the store's limit of {limit}")]
    MetadataTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },

    /// Something POSIX has but an object store cannot do (hard links,
    /// device nodes, RENAME_EXCHANGE).
    #[error("{0} is not supported on an object store")]
    NotSupported(&'static str),

    /// An operation that is refused on this object (chmod of the bucket root).
    #[error("operation not permitted: {0}")]
    NotPermitted(String),

    /// An argument the kernel should never send (negative offset, bad flags).
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The object store refused or failed the request.
    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: StoreError,
    },

    /// Delete-multiple could not delete a key (a directory rename's sources).
    #[error("could not delete {key:?}: {code}: {message}")]
    DeleteFailed {
        key: String,
        code: String,
        message: String,
    },

    /// Flushing a file to the store failed; the data stays staged locally.
    #[error("uploading {key:?} failed: {source}")]
    Upload {
        key: String,
        #[source]
        source: UploadError,
    },

    /// Reading through the prefetcher or the block cache failed.
    #[error(transparent)]
    Read(#[from] crate::prefetch::PrefetchError),

    /// The local staging file could not be read or written (its errno,
    /// ENOSPC say, is passed on).
    #[error("staging file {path}: {source}")]
    Staging {
        path: String,
        #[source]
        source: io::Error,
    },

    /// The disk cache directory cannot be used.
    #[error(transparent)]
    DiskCache(#[from] crate::cache::DiskCacheError),
}

impl FsError {
    /// Wrap a store error with what we were doing.
    pub fn store(context: impl Into<String>, source: StoreError) -> Self {
        FsError::Store {
            context: context.into(),
            source,
        }
    }

    /// The errno the kernel gets. The only errno mapping of the filesystem.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound(_) => libc::ENOENT,
            FsError::UnknownInode(_) => libc::ESTALE,
            FsError::BadHandle(_) => libc::EBADF,
            FsError::Exists(_) => libc::EEXIST,
            FsError::IsDir(_) => libc::EISDIR,
            FsError::NotDir(_) => libc::ENOTDIR,
            FsError::NotEmpty(_) => libc::ENOTEMPTY,
            FsError::NameTooLong(_) => libc::ENAMETOOLONG,
            FsError::InvalidName(_) => libc::EINVAL,
            FsError::ReadOnly => libc::EROFS,
            FsError::TooLarge { .. } => libc::EFBIG,
            FsError::NoXattr(_) => libc::ENODATA,
            FsError::Range { .. } => libc::ERANGE,
            FsError::XattrNamespace(_) => libc::EOPNOTSUPP,
            // ENOSYS, not EOPNOTSUPP: the kernel remembers it and stops asking.
            FsError::XattrsOff => libc::ENOSYS,
            FsError::MetadataTooLarge { .. } => libc::E2BIG,
            FsError::NotSupported(_) => libc::EOPNOTSUPP,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::Store { source, .. } => source.to_errno(),
            FsError::Upload { source, .. } => match source {
                UploadError::TooManyParts { .. } => libc::EFBIG,
                UploadError::Io(_) | UploadError::Store(_) => libc::EIO,
            },
            FsError::DeleteFailed { .. } => libc::EIO,
            // ENOSPC or EDQUOT of the staging disk tell the user what to fix.
            FsError::Staging { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            FsError::Read(e) => e.errno(),
            FsError::DiskCache(_) => libc::EIO,
        }
    }

    /// Whether this is an expected answer (ENOENT of a lookup, EEXIST, ...)
    /// rather than a failure worth a warning in the log.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            FsError::NotFound(_)
                | FsError::Exists(_)
                | FsError::IsDir(_)
                | FsError::NotDir(_)
                | FsError::NotEmpty(_)
                | FsError::NoXattr(_)
                | FsError::Range { .. }
                | FsError::XattrNamespace(_)
                | FsError::XattrsOff
                | FsError::ReadOnly
                | FsError::NameTooLong(_)
                | FsError::NotSupported(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_errno() {
        let e = FsError::store(
            "head a",
            StoreError::NotFound {
                key: "a".to_string(),
            },
        );
        assert_eq!(e.errno(), libc::ENOENT);
        let e = FsError::store(
            "put a",
            StoreError::AccessDenied {
                code: "AccessDenied".into(),
                message: "no".into(),
                request_id: None,
            },
        );
        assert_eq!(e.errno(), libc::EACCES);
    }

    #[test]
    fn upload_failures_are_eio_except_too_many_parts() {
        let e = FsError::Upload {
            key: "k".into(),
            source: UploadError::Store(StoreError::Timeout(std::time::Duration::from_secs(1))),
        };
        assert_eq!(e.errno(), libc::EIO);
        let e = FsError::Upload {
            key: "k".into(),
            source: UploadError::TooManyParts {
                size: 1,
                part_size: 1,
                max_parts: 1,
            },
        };
        assert_eq!(e.errno(), libc::EFBIG);
        assert!(e.to_string().contains("\"k\""));
    }
}
