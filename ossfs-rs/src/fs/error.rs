//! Filesystem errors.
//!
//! Every operation of [`super::Fs`] returns `Result<_, FsError>`. The
//! variants say what went wrong in terms of the filesystem (which path, which
//! limit) and keep the store error as their source, so a log line tells an
//! operator both what the user did and what the server answered. Which
//! errno each one becomes is decided in `errno.rs` (`ToErrno`), the one
//! errno mapping, as a single exhaustive match: adding a variant without
//! deciding its errno does not compile.
//!
//! Imports: `store` (StoreError), `upload` (UploadError), `prefetch`
//! (PrefetchError), `cache` (DiskCacheError).

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

    /// An adopted staging file holds writes a dead worker did not upload,
    /// and the object changed since they were based on it (another client
    /// wrote or deleted it): the writes are not uploaded over it.
    #[error(
        "{key:?} changed in the store while this mount's worker restarted; the writes not uploaded are kept in {staging}"
    )]
    Conflict { key: String, staging: String },

    /// A restarted worker could not take over this writer's staging file
    /// (the store refused the file's HEAD, or the file vanished): the
    /// handle's writes since its last successful flush are not uploaded.
    #[error(
        "the open writer of inode {ino} was not restored after a worker restart; its unsent writes are kept in {staging}"
    )]
    NotRestored { ino: u64, staging: String },

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
