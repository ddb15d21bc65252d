//! The command line: `ossfs-rs check | serve | demo`.
//!
//! Each subcommand's arguments and behaviour live in its own module; this
//! file only dispatches and sets up logging. Logs go to stderr and never
//! contain secrets (credentials redact themselves in `Debug`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ossfs-rs: mount Alibaba Cloud OSS, Tencent Cloud COS and S3-compatible buckets.
#[derive(Debug, Parser)]
#[command(name = "ossfs-rs", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing-subscriber syntax): error, warn, info, debug, trace.
    #[arg(long, global = true, env = "OSSFS_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose credentials, endpoint and bucket before mounting.
    Check(crate::check::CheckArgs),
    /// Run the embedded S3-compatible endpoint (in memory) on a local port.
    Serve(crate::serve::ServeArgs),
    /// Self-contained demo: start the embedded endpoint and exercise it.
    Demo(crate::demo::DemoArgs),
}

/// Parse the command line, set up logging and run the subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ossfs-rs: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Check(args) => crate::check::run(args).await,
            Command::Serve(args) => crate::serve::run(args).await,
            Command::Demo(args) => crate::demo::run(args).await,
        }
    })
}

fn init_logging(filter: &str) {
    // s3s (the embedded endpoint's HTTP layer) logs every client error, even
    // a 404, at ERROR: keep it silent unless the filter names it.
    let quiet_s3s = |f: &str| {
        if f.contains("s3s") {
            f.to_owned()
        } else {
            format!("{f},s3s=off")
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(quiet_s3s(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_s3s("warn")));
    // A second initialisation (tests) is harmless: ignore its error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
