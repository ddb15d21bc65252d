//! Why the demo failed: one error for every part of the tour, naming the
//! step that did not check out.
//!
//! Imports: [`super::mount`] and [`super::restart`] (their errors), `serve`
//! and `store` (their errors).

use super::mount::MountTourError;
use super::restart::RestartTourError;
use crate::serve::ServeError;
use crate::store::StoreError;

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error("cannot start the embedded endpoint: {0}")]
    Serve(#[from] ServeError),
    #[error("cannot build the REST client: {0}")]
    Client(#[source] StoreError),
    #[error("step \"{step}\" failed: {source}")]
    Store {
        step: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("step \"{step}\" did not check out: {detail}")]
    Check { step: &'static str, detail: String },
    #[error(transparent)]
    Mount(#[from] MountTourError),
    #[error(transparent)]
    Supervised(#[from] RestartTourError),
}
