//! The operating-system layer: what talks to Linux itself and knows nothing
//! of object stores, filesystems or mounts of ours.
//!
//! - [`mountinfo`]: `/proc/self/mountinfo` (escaping, "is this a mount
//!   point"), the mount-point checks before a mount, and unmounting through
//!   fusermount3;
//! - [`private_dir`]: directories only our uid may enter (state, staging,
//!   disk cache);
//! - [`dirfd`]: a checked private directory held by descriptor, whose
//!   files are made and opened without following symlinks (staging);
//! - [`daemon`]: the background start with a readiness pipe, and the
//!   detach of the started daemon;
//! - [`fd`]: file descriptors that cross a process boundary (inherited by
//!   a child, sent with SCM_RIGHTS);
//! - [`oom`]: the kernel's count of OOM kills (was a SIGKILL the OOM
//!   killer's?);
//! - [`readahead`]: the kernel's readahead of a mount's backing device;
//! - [`heap`] and [`prefault`]: the allocator settings and the global
//!   allocator of the binary.
//!
//! Imports: std, libc, nix and thiserror only. Nothing here imports another layer of
//! the crate: every other layer may import this one.

pub mod daemon;
pub mod dirfd;
pub mod fd;
pub mod heap;
pub mod mountinfo;
pub mod oom;
pub mod prefault;
pub mod private_dir;
pub mod readahead;

/// The largest FUSE request this kernel sends, and so the largest write and
/// readahead the mount negotiates: the kernel caps a request at 256 pages
/// (`/proc/sys/fs/fuse/max_pages_limit`), so 1 MiB.
pub const FUSE_MAX_REQUEST: u32 = 1024 * 1024;
