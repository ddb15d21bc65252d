//! The mount's configuration: everything a mount was asked for, parsed and
//! checked before any part of the mount starts.
//!
//! - [`options`]: the `-o` mount options with their ossfs meaning;
//! - [`source`]: the `bucket[:/prefix]` of the command line;
//! - [`request`]: the mount command line and the checked [`MountRequest`]
//!   a supervisor and each of its workers build from it;
//! - [`plan`]: the store a mount (or `ossfs-rs check`) talks to: the
//!   endpoint, bucket and credential arguments ([`StoreArgs`], also built
//!   from a [`MountRequest`]) and the [`Plan`] with the provider, region and
//!   signature inferred, from which every worker builds its store client.
//!
//! Imports: `memory` (the default budget), `store` (providers and the
//! client configuration) and external crates; nothing of check (its peer,
//! which imports this module) or of the layers above (supervisor, cli).

pub mod options;
pub mod plan;
pub mod request;
pub mod source;

pub use options::MountOptions;
pub use plan::{Plan, StoreArgs};
pub use request::{MountArgs, MountRequest};
pub use source::Source;
