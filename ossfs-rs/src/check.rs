//! `ossfs-rs check` (being written).

use std::process::ExitCode;

/// Arguments of `ossfs-rs check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Run `ossfs-rs check`.
pub async fn run(_args: CheckArgs) -> ExitCode {
    eprintln!("ossfs-rs check: not built yet");
    ExitCode::FAILURE
}
