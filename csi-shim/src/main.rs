//! `csi-os`: the CSI plugin (driver `csi.os`) for ossfs-rs volumes.
//!
//! This release only parses and validates its command line: the Identity,
//! Controller and Node services are not implemented yet, so the binary
//! refuses to start rather than pretend to serve a socket. See
//! docs/csi.md for what is planned.

use std::process::ExitCode;

use clap::Parser;

/// The CSI plugin for ossfs-rs volumes (driver name `csi.os`).
#[derive(Debug, Parser)]
#[command(name = "csi-os", version, about)]
struct Args {
    /// The gRPC endpoint, `unix:///csi/csi.sock`.
    #[arg(long, default_value = "unix:///csi/csi.sock")]
    endpoint: String,
    /// This node's name (Kubernetes node name).
    #[arg(long)]
    node_id: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.endpoint.starts_with("unix://") {
        eprintln!(
            "csi-os: --endpoint must be a unix socket (unix:///path), got {:?}",
            args.endpoint
        );
        return ExitCode::from(2);
    }
    let _ = args.node_id;
    eprintln!(
        "csi-os {}: the CSI services are not implemented in this release; use the ossfs-rs binary directly (see docs/csi.md)",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(3)
}
