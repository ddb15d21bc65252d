//! The whole `ossfs-rs demo`: start the embedded endpoint ([`crate::serve`])
//! in-process on a free loopback port with random keys, build the real
//! REST client ([`RestClient`], S3 dialect, path style) against it, run the
//! store steps ([`super::exercise`](mod@super::exercise)), then (unless
//! `--no-mount`) the FUSE mount tour ([`super::mount`]) and the supervised
//! restart tour ([`super::restart`]), and shut the endpoint down. The demo
//! succeeds only if every step does.
//!
//! Imports: [`super::args`], [`super::error`],
//! [`super::exercise`](mod@super::exercise), [`super::mount`],
//! [`super::restart`], [`super::progress`], `serve` and `store`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use super::args::DemoArgs;
use super::error::DemoError;
use super::exercise::exercise;
use super::progress::say;
use crate::serve::{EmbeddedServer, ServeConfig};
use crate::store::credentials::StaticProvider;
use crate::store::{ClientConfig, Provider, RestClient};

/// The bucket the demo creates on the embedded endpoint.
pub const DEMO_BUCKET: &str = "ossfs-demo";

/// Run `ossfs-rs demo`.
pub async fn run(args: DemoArgs) -> ExitCode {
    let mut out = std::io::stdout();
    match run_demo(&args, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("ossfs-rs demo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Start the embedded endpoint, run [`exercise`] through the REST client
/// against it, and shut it down. Progress goes to `out`.
pub async fn run_demo(args: &DemoArgs, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    args.validate()?;
    let server = EmbeddedServer::start(ServeConfig::with_random_keys().bucket(DEMO_BUCKET)).await?;
    say(
        out,
        format_args!(
            "ossfs-rs demo: embedded S3-compatible endpoint at {} (bucket {DEMO_BUCKET:?}, region {}, in memory, random keys)",
            server.endpoint(),
            server.region()
        ),
    );
    let mut config = ClientConfig::new(Provider::S3, server.endpoint(), DEMO_BUCKET);
    config.path_style = true;
    config.region = Some(server.region().to_owned());
    let credentials = Arc::new(StaticProvider::new(
        server.credentials(),
        "the embedded endpoint's random keys",
    ));
    let client = RestClient::new(config, credentials).map_err(DemoError::Client)?;
    let mut result = exercise(&client, args, "", out).await;
    if result.is_ok() && !args.no_mount {
        result = super::mount::tour(Arc::new(client), "mounted/", out)
            .await
            .map_err(DemoError::from);
    }
    if result.is_ok() && !args.no_mount {
        let endpoint = super::restart::Endpoint {
            url: server.endpoint(),
            region: server.region().to_owned(),
            bucket: DEMO_BUCKET.to_owned(),
            credentials: server.credentials(),
        };
        let binary = match &args.ossfs_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe().map_err(|e| {
                DemoError::Args(format!("cannot find this binary to mount with: {e}"))
            })?,
        };
        result = super::restart::run(endpoint, "supervised/", binary, out)
            .await
            .map_err(DemoError::from);
    }
    server.shutdown().await;
    match &result {
        Ok(()) => say(out, format_args!("demo passed: every step checked out")),
        Err(_) => say(out, format_args!("demo FAILED")),
    }
    result
}
