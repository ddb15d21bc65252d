//! `ossfs-rs serve`: an embedded S3-compatible endpoint held in memory.
//!
//! It lets anyone try ossfs-rs without a cloud account, and gives tests a
//! fast real server on loopback. Three layers, each testable on its own:
//! - [`memstore`]: the object map with S3 object semantics (arbitrary keys,
//!   `dir/` markers, `a` beside `a/b`, metadata, ETags, multipart), pure
//!   and synchronous;
//! - [`service`]: the `s3s::S3` operations over that map; `s3s` provides
//!   HTTP parsing, SigV4 verification and XML;
//! - [`server`]: binding, the hyper accept loop and shutdown, as the
//!   [`EmbeddedServer`] value tests and the demo hold in-process.
//!
//! This file is the command line. Secrets never go on it: the secret comes
//! from a file, from `OSSFS_SERVE_SECRET_KEY`, or is generated and written
//! to a fresh mode-0600 file whose path is printed. The endpoint has no
//! persistence and no TLS, so a non-loopback listen address is refused
//! unless `--allow-remote` is given.
//!
//! Imports (besides its own submodules): nothing of the crate; std and
//! external crates only.

pub mod memstore;
pub mod server;
pub mod service;

pub use server::{EmbeddedServer, S3_MIN_PART_SIZE, ServeConfig, ServeError, random_key_pair};

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Environment variable holding the secret key, when no file is given.
pub const SECRET_ENV: &str = "OSSFS_SERVE_SECRET_KEY";

/// Arguments of `ossfs-rs serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback only, unless --allow-remote.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Bucket to create at start (repeatable). Default: one bucket named `ossfs`.
    #[arg(long = "bucket", value_name = "NAME")]
    pub buckets: Vec<String>,

    /// Access key id clients sign with. Default: a random one, printed at start.
    #[arg(long, value_name = "AK", env = "OSSFS_SERVE_ACCESS_KEY")]
    pub access_key: Option<String>,

    /// File with the secret key. Read when it exists (it must not be readable
    /// by group or others); otherwise a random secret is written to it with
    /// mode 0600. Without this option the secret comes from
    /// OSSFS_SERVE_SECRET_KEY or is generated into a private temporary file.
    #[arg(long, value_name = "PATH")]
    pub secret_key_file: Option<PathBuf>,

    /// Region clients must sign for.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,

    /// Smallest allowed multipart part (all but the last), in bytes. S3's rule is 5 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = S3_MIN_PART_SIZE)]
    pub min_part_size: u64,

    /// Allow a non-loopback listen address. The endpoint keeps everything in
    /// memory and speaks plain HTTP: it is meant for local use.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Why `serve` could not start (printed as is; never contains the secret).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(
        "refusing to listen on {0}: the embedded endpoint keeps data in memory and speaks plain HTTP; listen on 127.0.0.1 or pass --allow-remote"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot read the secret key file {path}: {source}")]
    ReadSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key file {0} is empty")]
    EmptySecret(PathBuf),
    #[error(
        "secret key file {path} has mode {mode:o}, which lets other users read it: run `chmod 600 {path}`"
    )]
    InsecureSecret { path: PathBuf, mode: u32 },
    #[error("cannot write the secret key file {path}: {source}")]
    WriteSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot install the signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Where the secret came from; a generated temporary file is removed at exit.
struct SecretSource {
    secret: String,
    description: String,
    cleanup_dir: Option<PathBuf>,
}

/// Run `ossfs-rs serve`.
pub async fn run(args: ServeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ossfs-rs serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    if !args.allow_remote && !args.listen.ip().is_loopback() {
        return Err(CliError::NotLoopback(args.listen));
    }
    let (random_ak, random_sk) = random_key_pair();
    let access_key = args.access_key.clone().unwrap_or(random_ak);
    let env_secret = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
    let secret = resolve_secret(args.secret_key_file.as_deref(), env_secret, random_sk)?;

    let buckets = if args.buckets.is_empty() {
        vec!["ossfs".to_owned()]
    } else {
        args.buckets.clone()
    };
    let config = ServeConfig {
        listen: args.listen,
        access_key,
        secret_key: secret.secret.clone(),
        region: args.region.clone(),
        buckets: buckets.clone(),
        min_part_size: args.min_part_size,
    };
    // With a generated secret, also leave an ossfs-style passwd file
    // (`ak:sk`, mode 0600) beside it, so a mount can use it as is.
    let passwd = match &secret.cleanup_dir {
        Some(dir) => {
            let path = dir.join("passwd");
            let line = format!("{}:{}", config.access_key, config.secret_key);
            match write_secret_file(&path, &line) {
                Ok(()) => Some(path),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(dir);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let result = run_until_signal(config, &secret, passwd.as_deref(), &buckets).await;
    if let Some(dir) = &secret.cleanup_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn run_until_signal(
    config: ServeConfig,
    secret: &SecretSource,
    passwd: Option<&Path>,
    buckets: &[String],
) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(CliError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(CliError::Signal)?;
    let server = EmbeddedServer::start(config).await?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "ossfs-rs serve: S3-compatible endpoint in memory (nothing is persisted)"
    );
    let _ = writeln!(out, "  endpoint:   {} (path-style)", server.endpoint());
    let _ = writeln!(out, "  region:     {}", server.region());
    let _ = writeln!(out, "  buckets:    {}", buckets.join(", "));
    let _ = writeln!(out, "  access key: {}", server.access_key());
    let _ = writeln!(out, "  secret key: {}", secret.description);
    if let Some(p) = passwd {
        let _ = writeln!(out, "  passwd:     {} (ak:sk, mode 0600)", p.display());
        let _ = writeln!(
            out,
            "  mount with: -o url={},use_path_request_style,passwd_file={}",
            server.endpoint(),
            p.display()
        );
    }
    let _ = writeln!(out, "Stop with Ctrl-C or SIGTERM.");
    let _ = out.flush();
    drop(out);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("ossfs-rs serve: stopping");
    server.shutdown().await;
    Ok(())
}

/// Pick the secret: an existing `--secret-key-file`, else the environment,
/// else `generated`, written to `--secret-key-file` or a private temp file.
fn resolve_secret(
    file: Option<&Path>,
    env_secret: Option<String>,
    generated: String,
) -> Result<SecretSource, CliError> {
    if let Some(path) = file
        && path.exists()
    {
        return Ok(SecretSource {
            secret: read_secret_file(path)?,
            description: format!("read from {}", path.display()),
            cleanup_dir: None,
        });
    }
    if file.is_none()
        && let Some(secret) = env_secret
    {
        return Ok(SecretSource {
            secret,
            description: format!("from ${SECRET_ENV}"),
            cleanup_dir: None,
        });
    }
    let (path, cleanup_dir) = match file {
        Some(p) => (p.to_path_buf(), None),
        None => {
            let dir = private_temp_dir()?;
            (dir.join("secret-key"), Some(dir))
        }
    };
    write_secret_file(&path, &generated)?;
    Ok(SecretSource {
        secret: generated,
        description: format!("generated, in {} (mode 0600)", path.display()),
        cleanup_dir,
    })
}

fn read_secret_file(path: &Path) -> Result<String, CliError> {
    let read_err = |source| CliError::ReadSecret {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::InsecureSecret {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        return Err(CliError::EmptySecret(path.to_path_buf()));
    }
    Ok(secret)
}

fn write_secret_file(path: &Path, secret: &str) -> Result<(), CliError> {
    let write_err = |source| CliError::WriteSecret {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    f.write_all(secret.as_bytes()).map_err(write_err)?;
    f.write_all(b"\n").map_err(write_err)?;
    f.sync_all().map_err(write_err)
}

/// A fresh mode-0700 directory under `$XDG_RUNTIME_DIR` or the temp dir.
fn private_temp_dir() -> Result<PathBuf, CliError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let tag = hex::encode(rand::random::<[u8; 6]>());
    let dir = base.join(format!("ossfs-rs-serve-{}-{tag}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| CliError::WriteSecret {
            path: dir.clone(),
            source,
        })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_from_existing_file_wins_and_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sk");
        write_secret_file(&path, "from-file").unwrap();
        let s = resolve_secret(Some(&path), Some("from-env".into()), "gen".into()).unwrap();
        assert_eq!(s.secret, "from-file");
        assert!(!s.description.contains("from-file"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            resolve_secret(Some(&path), None, "gen".into()),
            Err(CliError::InsecureSecret { .. })
        ));
    }

    #[test]
    fn missing_file_gets_the_generated_secret_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-sk");
        let s = resolve_secret(
            Some(&path),
            Some("from-env".into()),
            "generated-secret".into(),
        )
        .unwrap();
        assert_eq!(s.secret, "generated-secret");
        assert!(!s.description.contains("generated-secret"));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            "generated-secret"
        );
        // Read back on the next start.
        let again = resolve_secret(Some(&path), None, "other".into()).unwrap();
        assert_eq!(again.secret, "generated-secret");
    }

    #[test]
    fn env_secret_is_used_without_a_file() {
        let s = resolve_secret(None, Some("from-env".into()), "gen".into()).unwrap();
        assert_eq!(s.secret, "from-env");
        assert!(s.cleanup_dir.is_none());
    }

    #[test]
    fn generated_secret_goes_to_a_private_dir() {
        let s = resolve_secret(None, None, "gen-secret".into()).unwrap();
        let dir = s.cleanup_dir.clone().unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = dir.join("secret-key");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn non_loopback_is_refused_without_allow_remote() {
        let args = ServeArgs {
            listen: "0.0.0.0:0".parse().unwrap(),
            buckets: vec![],
            access_key: None,
            secret_key_file: None,
            region: "us-east-1".into(),
            min_part_size: 0,
            allow_remote: false,
        };
        assert!(matches!(serve(args).await, Err(CliError::NotLoopback(_))));
    }
}
