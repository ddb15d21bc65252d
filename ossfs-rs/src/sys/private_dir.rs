//! Directories only the daemon's uid may enter.
//!
//! The state directory, the staging files of open writers and the disk
//! block cache all live in directories made here with mode 0700, so no
//! other user of a shared host can read or pre-create what is inside.
//!
//! Imports: std only.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Create `dir` (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
