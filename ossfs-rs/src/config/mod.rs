//! The mount's configuration: everything a mount was asked for, parsed and
//! checked before any part of the mount starts.
//!
//! - [`options`]: the `-o` mount options with their ossfs meaning;
//! - [`source`]: the `bucket[:/prefix]` of the command line;
//! - [`request`]: the mount command line and the checked [`MountRequest`]
//!   a supervisor and each of its workers build from it.
//!
//! Imports: `memory` (the default budget) and external crates; nothing of
//! the layers above (check, supervisor, cli).

pub mod options;
pub mod request;
pub mod source;

pub use options::MountOptions;
pub use request::{MountArgs, MountRequest};
pub use source::Source;
