//! `ossfs-rs demo` (being written).

use std::process::ExitCode;

/// Arguments of `ossfs-rs demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Run `ossfs-rs demo`.
pub async fn run(_args: DemoArgs) -> ExitCode {
    eprintln!("ossfs-rs demo: not built yet");
    ExitCode::FAILURE
}
