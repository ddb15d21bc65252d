//! The arguments of `ossfs-rs demo` and their bounds (sizes the embedded
//! endpoint and S3's smallest part allow).
//!
//! Imports: [`super::error`].

use super::error::DemoError;

/// Arguments of `ossfs-rs demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Size of the multipart upload, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub size_mib: u64,

    /// Part size of the multipart upload, in MiB (S3 needs at least 5).
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    pub part_mib: u64,

    /// Parts uploaded in parallel.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallel: usize,

    /// Skip the FUSE mount part (for machines without /dev/fuse).
    #[arg(long)]
    pub no_mount: bool,

    /// The `ossfs-rs` binary the supervised mount runs (default: this one).
    #[arg(long, value_name = "PATH")]
    pub ossfs_bin: Option<std::path::PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            size_mib: 64,
            part_mib: 8,
            parallel: 4,
            no_mount: false,
            ossfs_bin: None,
        }
    }
}

impl DemoArgs {
    /// The bounds every part of the demo relies on.
    pub(super) fn validate(&self) -> Result<(), DemoError> {
        if self.size_mib == 0 || self.size_mib > 4096 {
            return Err(DemoError::Args(
                "--size-mib must be between 1 and 4096".into(),
            ));
        }
        if self.part_mib < 5 {
            return Err(DemoError::Args(
                "--part-mib must be at least 5 (S3's smallest part)".into(),
            ));
        }
        if self.parallel == 0 {
            return Err(DemoError::Args("--parallel must be at least 1".into()));
        }
        Ok(())
    }
}
