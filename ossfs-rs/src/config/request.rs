//! A mount request: what `ossfs-rs mount` (and its ossfs form, and an fstab
//! line through mount.fuse3) was asked to do, checked and complete.
//!
//! [`MountArgs`] is the command line as clap parses it; [`MountRequest`] is
//! the checked result (the source parsed, the `-o` options applied, the
//! mount point canonical). The supervisor saves the command line in its
//! state directory and every worker turns it into the same request again
//! with [`request_from_argv`], so a restarted worker serves exactly what the
//! first one did.
//!
//! Imports: [`super::options`] and [`super::source`] only.

use std::path::PathBuf;

use clap::Parser;

use super::options::MountOptions;
use super::source::Source;

/// What the mount command needs besides the options.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub source: Source,
    pub mountpoint: PathBuf,
    pub options: MountOptions,
    pub notify_ready: bool,
}

/// Arguments of `ossfs-rs mount` (and of the ossfs form
/// `ossfs-rs bucket:/prefix /mnt -o ...`, which is rewritten to it).
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// `bucket` or `bucket:/prefix`.
    #[arg(value_name = "BUCKET[:/PREFIX]")]
    pub source: String,
    /// An existing, empty directory.
    pub mountpoint: PathBuf,
    /// The endpoint (also `-o url=`).
    #[arg(long)]
    pub url: Option<String>,
    /// oss, cos or s3 (also `-o provider=`); inferred from the endpoint host.
    #[arg(long)]
    pub provider: Option<String>,
    /// The region (also `-o region=`); inferred from the endpoint host.
    #[arg(long)]
    pub region: Option<String>,
    /// Mount options, comma-separated, with ossfs meaning; repeatable.
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    pub options: Vec<String>,
    /// Stay in the foreground (logs to stderr).
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Internal: report readiness on stdout, then detach (set by the
    /// background start).
    #[arg(long, hide = true)]
    pub notify_ready: bool,
}

/// Exit status for a bad command line or option.
pub const EXIT_USAGE: u8 = 2;

/// The mount request of `args`, or the exit status and message of a bad
/// command line.
pub fn build_request(args: &MountArgs) -> Result<MountRequest, (u8, String)> {
    let mut options = MountOptions::default();
    options
        .apply_all(args.options.iter().map(String::as_str))
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    if args.url.is_some() {
        options.url = args.url.clone();
    }
    if args.provider.is_some() {
        options.provider = args.provider.clone();
    }
    if args.region.is_some() {
        options.region = args.region.clone();
    }
    let source = Source::parse(&args.source).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    // Canonical, so the supervisor, its workers and `status` agree on it.
    let mountpoint = std::fs::canonicalize(&args.mountpoint).unwrap_or(args.mountpoint.clone());
    Ok(MountRequest {
        source,
        mountpoint,
        options,
        notify_ready: args.notify_ready,
    })
}

/// A saved command line: `mount ARGS`, with the binary's global `--log`
/// wherever the user put it (the command line's own grammar, `cli::Cli`,
/// is a layer above and not imported here).
#[derive(Debug, Parser)]
#[command(name = "ossfs-rs")]
struct SavedCommand {
    #[arg(long = "log", global = true, default_value = "warn")]
    _log: String,
    #[command(subcommand)]
    command: SavedSubcommand,
}

#[derive(Debug, clap::Subcommand)]
enum SavedSubcommand {
    Mount(MountArgs),
}

/// The mount request of a saved `mount ...` command line (for workers).
pub fn request_from_argv(argv: &[String]) -> Result<MountRequest, String> {
    let words = std::iter::once("ossfs-rs".to_string()).chain(argv.iter().cloned());
    match SavedCommand::try_parse_from(words) {
        Ok(SavedCommand {
            command: SavedSubcommand::Mount(args),
            ..
        }) => build_request(&args).map_err(|(_, m)| m),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_command_line_gives_the_same_request() {
        let argv: Vec<String> = [
            "--log",
            "info",
            "mount",
            "b:/p",
            "/nonexistent-mnt",
            "-o",
            "url=http://127.0.0.1:1,ro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let req = request_from_argv(&argv).unwrap();
        assert_eq!(req.source.bucket, "b");
        assert_eq!(req.source.prefix, "p/");
        assert_eq!(req.options.url.as_deref(), Some("http://127.0.0.1:1"));
        assert!(request_from_argv(&["check".to_string(), "b".to_string()]).is_err());
    }
}
