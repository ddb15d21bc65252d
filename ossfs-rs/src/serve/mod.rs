//! `ossfs-rs serve` (being written).

use std::process::ExitCode;

/// Arguments of `ossfs-rs serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Run `ossfs-rs serve`.
pub async fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("ossfs-rs serve: not built yet");
    ExitCode::FAILURE
}
