//! The plugin's one error type and its single mapping onto gRPC statuses.
//!
//! Every service method returns `Result<_, CsiError>`; the conversion to
//! [`tonic::Status`] happens here and nowhere else, so the code a CO sees
//! for a given failure is decided in one `match`. Messages never carry a
//! secret: the variants hold names, paths and store error texts only (the
//! store's own errors are written without credentials).

use std::path::PathBuf;

use ossfs_rs::store::StoreError;
use tonic::{Code, Status};

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    /// A required request field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A request field is present but unusable.
    #[error("{0}")]
    Invalid(String),
    /// A path from the request is not acceptable (outside the kubelet dir, `..`, symlink out).
    #[error("path {path}: {reason}")]
    BadPath { path: PathBuf, reason: String },
    /// The volume (or the volume at that path) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A volume of that name exists with other parameters.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request conflicts with the volume's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The object store refused or failed an operation.
    #[error("object store: {context}: {source}")]
    Store {
        context: String,
        #[source]
        source: StoreError,
    },
    /// Starting, stopping or checking an `ossfs-rs` daemon failed.
    #[error("mount: {0}")]
    Mount(String),
    /// A local file or mount system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The plugin's state directory could not be read or written.
    #[error("state: {0}")]
    State(String),
    /// This process does not serve that service (`--mode`).
    #[error("{0} is not served by this plugin (see --mode)")]
    NotServed(&'static str),
}

impl CsiError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CsiError::Io {
            context: context.into(),
            source,
        }
    }

    /// A store error with what was being done.
    pub fn store(context: impl Into<String>, source: StoreError) -> Self {
        CsiError::Store {
            context: context.into(),
            source,
        }
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            CsiError::Missing(_) | CsiError::Invalid(_) | CsiError::BadPath { .. } => {
                Code::InvalidArgument
            }
            CsiError::NotFound(_) => Code::NotFound,
            CsiError::AlreadyExists(_) => Code::AlreadyExists,
            CsiError::FailedPrecondition(_) => Code::FailedPrecondition,
            CsiError::Store { source, .. } => match source {
                StoreError::AccessDenied { .. } => Code::PermissionDenied,
                StoreError::NoSuchBucket { .. } => Code::NotFound,
                StoreError::InvalidArgument(_) => Code::InvalidArgument,
                _ if source.is_retryable() => Code::Unavailable,
                _ => Code::Internal,
            },
            CsiError::Mount(_) | CsiError::Io { .. } | CsiError::State(_) => Code::Internal,
            CsiError::NotServed(_) => Code::Unimplemented,
        }
    }
}

impl From<CsiError> for Status {
    fn from(e: CsiError) -> Self {
        // `{:#}`-style chain: the source is part of the Display of each variant.
        Status::new(e.code(), e.to_string())
    }
}

/// Result of the plugin's internal operations.
pub type CsiResult<T> = Result<T, CsiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(CsiError::Missing("volume_id").code(), Code::InvalidArgument);
        assert_eq!(CsiError::NotFound("x".into()).code(), Code::NotFound);
        assert_eq!(
            CsiError::AlreadyExists("x".into()).code(),
            Code::AlreadyExists
        );
        let denied = CsiError::store(
            "head",
            StoreError::AccessDenied {
                code: "AccessDenied".into(),
                message: "no".into(),
                request_id: None,
            },
        );
        assert_eq!(denied.code(), Code::PermissionDenied);
        let status: Status = CsiError::Missing("target_path").into();
        assert_eq!(status.message(), "target_path is required");
    }
}
