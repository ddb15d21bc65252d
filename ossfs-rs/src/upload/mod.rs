//! Getting written data into the store: the whole-file upload at close,
//! the upload streamed while a file is written, and the server-side copy
//! of an object of any size. Everything here works on the
//! [`ObjectStore`](crate::store::ObjectStore) primitives (PUT, the
//! multipart calls, CopyObject), so it runs the same over the REST client,
//! the metrics wrapper and test doubles.
//!
//! The folder's files, each importing only the ones listed before it:
//! - `error.rs`: [`UploadError`], why an upload failed;
//! - `part.rs`: the part plan ([`UploadConfig`], [`UploadPlan`],
//!   [`max_file_size`]) and the part-upload step both uploads share;
//! - `whole.rs`: [`upload_file`], one PUT or a multipart upload of the
//!   staged file at flush, fsync or close;
//! - `stream.rs`: [`stream::StreamUpload`], parts sent while the file is
//!   written in order, falling back to the whole-file upload;
//! - `copy.rs`: [`copy_object`], one CopyObject or a multipart copy.
//!
//! This file only declares them and re-exports what the filesystem uses.
//!
//! Imports: nothing itself; the files import `memory`, `metrics` and `store`.

mod copy;
mod error;
mod part;
pub mod stream;
mod whole;

pub use copy::copy_object;
pub use error::UploadError;
pub use part::{UploadConfig, UploadPlan, max_file_size};
pub use whole::upload_file;
