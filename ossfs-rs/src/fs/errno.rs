//! The one errno mapping: what the kernel is told for every error.
//!
//! An error reaches the kernel as one number, so the number must not
//! depend on which operation met the error: an `AccessDenied` is EACCES
//! whether `create` PUT the object or `close` uploaded it. Every errno is
//! therefore decided here, by [`ToErrno`]:
//!
//! - [`StoreError`] is one exhaustive match (a new variant does not compile
//!   until its errno is chosen); the store layer itself knows no errnos;
//! - the errors that carry a store error ([`UploadError`], [`PrefetchError`],
//!   [`FsError`]) take that store error's errno, so the same store error
//!   gives the same errno through every path;
//! - [`FsError`]'s own variants are the filesystem's answers (EEXIST,
//!   ENOTEMPTY, ...), one arm each.
//!
//! The table, with why each errno was chosen, is in docs/semantics.md
//! ("Errors and errnos"); keep the two in step.
//!
//! Imports: `fs::error` (FsError), `store` (StoreError), `upload`
//! (UploadError), `prefetch` (PrefetchError); the constants come from libc.

use std::io;

use super::error::FsError;
use crate::prefetch::PrefetchError;
use crate::store::StoreError;
use crate::upload::UploadError;

/// An error the kernel can be told about: its errno.
pub trait ToErrno {
    /// The errno the kernel gets for this error.
    fn errno(&self) -> i32;
}

impl ToErrno for StoreError {
    fn errno(&self) -> i32 {
        match self {
            // The object (or the upload) is not there.
            StoreError::NotFound { .. } => libc::ENOENT,
            // Nothing of the mount exists without its bucket.
            StoreError::NoSuchBucket { .. } => libc::ENOENT,
            // The server refused this request with our credentials.
            StoreError::AccessDenied { .. } => libc::EACCES,
            // Also a refusal: the signature's time is not accepted.
            StoreError::ClockSkew { .. } => libc::EACCES,
            // No usable credentials: every request would be refused.
            StoreError::Credentials(_) => libc::EACCES,
            // A range the object does not have.
            StoreError::InvalidRange { .. } => libc::EINVAL,
            // We asked for something the store cannot do with these arguments.
            StoreError::InvalidArgument(_) => libc::EINVAL,
            // The object changed under us: trying again may succeed.
            StoreError::PreconditionFailed { .. } => libc::EAGAIN,
            // Another writer appended first: trying again may succeed.
            StoreError::AppendPositionMismatch { .. } => libc::EAGAIN,
            // The key is longer than this server accepts.
            StoreError::KeyTooLong { .. } => libc::ENAMETOOLONG,
            // The object or a part is larger than the service allows.
            StoreError::TooLarge(_) => libc::EFBIG,
            // The dialect has no such operation.
            StoreError::Unsupported(_) => libc::ENOTSUP,
            // The store did not answer in time (after the retries).
            StoreError::Timeout(_) => libc::ETIMEDOUT,
            // The store failed the request (5xx, or an error we do not know).
            StoreError::Service { .. } => libc::EIO,
            // The store cannot be reached: the data is not available.
            StoreError::Unreachable { .. } => libc::EIO,
            // The connection cannot be trusted, so nothing was read or written.
            StoreError::Tls { .. } => libc::EIO,
            // The connection broke mid-request.
            StoreError::Connection(_) => libc::EIO,
            // The answer cannot be understood.
            StoreError::Malformed(_) => libc::EIO,
        }
    }
}

/// The errno of a local I/O error (the staging file): its own when it has
/// one (ENOSPC, EDQUOT tell the user what to fix), else EIO.
fn io_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl ToErrno for UploadError {
    fn errno(&self) -> i32 {
        match self {
            UploadError::TooManyParts { .. } => libc::EFBIG,
            UploadError::Io(e) => io_errno(e),
            UploadError::Store(e) => e.errno(),
        }
    }
}

impl ToErrno for PrefetchError {
    fn errno(&self) -> i32 {
        match self {
            PrefetchError::Store { source, .. } => source.errno(),
            // The fetch task is gone: the bytes cannot be had.
            PrefetchError::Aborted { .. } => libc::EIO,
        }
    }
}

impl ToErrno for FsError {
    fn errno(&self) -> i32 {
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
            FsError::Store { source, .. } => source.errno(),
            // A per-key error of delete-multiple: the store error its code names.
            FsError::DeleteFailed { key, code, message } => {
                StoreError::from_service(0, code, message, None, key, "").errno()
            }
            FsError::Upload { source, .. } => source.errno(),
            FsError::Staging { source, .. } => io_errno(source),
            FsError::Read(e) => e.errno(),
            FsError::DiskCache(_) => libc::EIO,
            FsError::Conflict { .. } => libc::EIO,
            FsError::NotRestored { .. } => libc::EIO,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::ByteRange;
    use crate::store::credentials::CredentialError;

    #[test]
    fn maps_codes_to_errnos() {
        let e = StoreError::from_service(404, "NoSuchKey", "", None, "a", "b");
        assert_eq!(e.errno(), libc::ENOENT);
        let e = StoreError::from_service(403, "SignatureDoesNotMatch", "sig", None, "a", "b");
        assert_eq!(e.errno(), libc::EACCES);
        let e = StoreError::from_service(403, "RequestTimeTooSkewed", "15 min", None, "a", "b");
        assert!(e.to_string().contains("clock skew"));
        let e = StoreError::from_service(503, "SlowDown", "", None, "a", "b");
        assert!(e.is_retryable());
        assert_eq!(e.errno(), libc::EIO);
        let e = StoreError::from_service(400, "InvalidArgument", "", None, "a", "b");
        assert!(!e.is_retryable());
    }

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
    fn upload_failures_take_the_store_errno_except_too_many_parts() {
        let e = FsError::Upload {
            key: "k".into(),
            source: UploadError::Store(StoreError::Connection("reset".into())),
        };
        assert_eq!(e.errno(), libc::EIO);
        let e = FsError::Upload {
            key: "k".into(),
            source: UploadError::Store(StoreError::Timeout(Duration::from_secs(1))),
        };
        assert_eq!(e.errno(), libc::ETIMEDOUT);
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

    /// One of every store error, with its errno as docs/semantics.md
    /// ("Errors and errnos") gives it.
    fn the_table() -> Vec<(StoreError, i32)> {
        let key = || "k".to_string();
        vec![
            (StoreError::NotFound { key: key() }, libc::ENOENT),
            (StoreError::NoSuchBucket { bucket: key() }, libc::ENOENT),
            (
                StoreError::AccessDenied {
                    code: "AccessDenied".into(),
                    message: "no".into(),
                    request_id: None,
                },
                libc::EACCES,
            ),
            (
                StoreError::ClockSkew {
                    message: "15 min".into(),
                },
                libc::EACCES,
            ),
            (
                StoreError::Credentials(CredentialError::NotFound {
                    tried: "environment".into(),
                }),
                libc::EACCES,
            ),
            (
                StoreError::InvalidRange {
                    key: key(),
                    range: "bytes=9-".into(),
                },
                libc::EINVAL,
            ),
            (StoreError::InvalidArgument("key".into()), libc::EINVAL),
            (StoreError::PreconditionFailed { key: key() }, libc::EAGAIN),
            (
                StoreError::AppendPositionMismatch {
                    key: key(),
                    position: 1,
                    next: Some(2),
                },
                libc::EAGAIN,
            ),
            (StoreError::KeyTooLong { key: key() }, libc::ENAMETOOLONG),
            (StoreError::TooLarge("part".into()), libc::EFBIG),
            (StoreError::Unsupported("append"), libc::ENOTSUP),
            (
                StoreError::Timeout(Duration::from_secs(30)),
                libc::ETIMEDOUT,
            ),
            (
                StoreError::Service {
                    status: 500,
                    code: "InternalError".into(),
                    message: "oops".into(),
                    request_id: None,
                },
                libc::EIO,
            ),
            (
                StoreError::Unreachable {
                    endpoint: "e".into(),
                    detail: "refused".into(),
                },
                libc::EIO,
            ),
            (
                StoreError::Tls {
                    endpoint: "e".into(),
                    detail: "bad certificate".into(),
                },
                libc::EIO,
            ),
            (StoreError::Connection("reset".into()), libc::EIO),
            (StoreError::Malformed("xml".into()), libc::EIO),
        ]
    }

    #[test]
    fn a_store_error_has_one_errno_through_every_wrapper() {
        // StoreError is not Clone: build the table once per wrapper.
        let nth = |i: usize| the_table().swap_remove(i).0;
        for (i, (store, want)) in the_table().into_iter().enumerate() {
            assert_eq!(store.errno(), want, "{store:?}");
            let read = PrefetchError::Store {
                key: "k".into(),
                range: ByteRange::new(0, 1),
                source: Arc::new(nth(i)),
            };
            assert_eq!(read.errno(), want, "read of {store:?}");
            assert_eq!(FsError::Read(read).errno(), want, "fs read of {store:?}");
            let upload = UploadError::Store(nth(i));
            assert_eq!(upload.errno(), want, "upload of {store:?}");
            let flush = FsError::Upload {
                key: "k".into(),
                source: UploadError::Store(nth(i)),
            };
            assert_eq!(flush.errno(), want, "flush of {store:?}");
            let create = FsError::store("create k", nth(i));
            assert_eq!(create.errno(), want, "create of {store:?}");
        }
        // The case the errnos used to disagree on: EACCES in create and flush.
        let denied = || StoreError::AccessDenied {
            code: "AccessDenied".into(),
            message: "no".into(),
            request_id: None,
        };
        assert_eq!(FsError::store("create k", denied()).errno(), libc::EACCES);
        let flush = FsError::Upload {
            key: "k".into(),
            source: UploadError::Store(denied()),
        };
        assert_eq!(flush.errno(), libc::EACCES);
        // A per-key error of delete-multiple gets its code's errno.
        let delete = |code: &str| FsError::DeleteFailed {
            key: "k".into(),
            code: code.into(),
            message: "m".into(),
        };
        assert_eq!(delete("AccessDenied").errno(), libc::EACCES);
        assert_eq!(delete("InternalError").errno(), libc::EIO);
    }
}
