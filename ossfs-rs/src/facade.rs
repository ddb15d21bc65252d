//! The library's surface for csi-shim (the CSI plugin): the few items it
//! needs to validate a volume's source and options, find its mounts, and
//! keep a volume's mount alive (the supervisor's state directory, its
//! control socket, and the command that starts a supervisor on a live
//! connection). csi-shim imports this module and `store`, nothing else, so
//! the supervisor's internals can change without touching it.
//!
//! Imports: re-exports only, from `config`, `sys` and `supervisor`.

pub use crate::config::{MountOptions, Source};
pub use crate::supervisor::control;
pub use crate::supervisor::protocol::supervise_command;
pub use crate::supervisor::state::{StateDir, SupervisorInfo, state_dir_for};
pub use crate::supervisor::supervise::watch::alive;
pub use crate::sys::mountinfo::unescape_mountinfo;
