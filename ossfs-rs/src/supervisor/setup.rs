//! From a mount request to the parts of a mount: the preflight check, the
//! credentials, the store client, the filesystem settings and the kernel
//! mount options. The supervisor runs the check and resolves credentials
//! once; each worker builds its client and filesystem from the same request.
//!
//! Imports: `check`, `config`, `fs`, `fuse`, `store` and
//! `supervisor::fusedev` of the crate, besides std and external crates.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::fusedev::MountSpec;
use crate::check;
use crate::config::MountRequest;
use crate::config::plan::{Plan, StoreArgs, StoreOptionError};
use crate::fs::FsConfig;
use crate::store::credentials::{
    CredentialOptions, CredentialProvider, Credentials, EnvLookup, resolve,
};
use crate::store::retry::RetryConfig;
use crate::store::{ObjectStore, RestClient};

/// Why a mount could not start or a worker could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The options name no store (no endpoint, an unknown provider or
    /// signature).
    #[error(transparent)]
    Store(#[from] StoreOptionError),
    #[error("{0}")]
    Usage(String),
    #[error("the bucket check failed:\n{0}")]
    Preflight(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot mount at {path}: {source}")]
    Mount {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Preflight: the same steps as `ossfs-rs check`, so a wrong key, a
/// missing bucket or a closed port fails before any mount.
pub fn preflight(req: &MountRequest, runtime: &tokio::runtime::Runtime) -> Result<(), ServeError> {
    let args = StoreArgs::from_request(req)?;
    let mut report = Vec::new();
    match runtime.block_on(check::check(&args, EnvLookup::process(), &mut report)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ServeError::Preflight(
            String::from_utf8_lossy(&report).into_owned(),
        )),
        Err(e) => Err(ServeError::Usage(e.to_string())),
    }
}

fn credential_options(req: &MountRequest, plan: &Plan) -> CredentialOptions {
    let mut opts = CredentialOptions::new(plan.provider, plan.bucket.clone());
    opts.passwd_file = req.options.passwd_file.clone();
    opts.sts_dir = req.options.sts_dir.clone();
    opts
}

/// Credentials a supervisor hands each worker, read once at mount time, so
/// the passwd file or STS directory may be removed after the mount (the
/// CSI plugin does). A worker still prefers an STS directory that exists,
/// which it re-reads as the token rotates (see [`store`]).
pub fn handoff_credentials(
    req: &MountRequest,
) -> Result<Option<(Credentials, String)>, ServeError> {
    let args = StoreArgs::from_request(req)?;
    let plan = Plan::from_args(&args).map_err(|e| ServeError::Usage(e.to_string()))?;
    let provider =
        resolve(&credential_options(req, &plan)).map_err(|e| ServeError::Setup(e.to_string()))?;
    let creds = provider
        .credentials()
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    Ok(Some((creds, provider.source())))
}

/// The store client of a worker, with `creds` when the supervisor handed
/// them over.
pub fn store(
    req: &MountRequest,
    creds: Option<(Credentials, String)>,
) -> Result<Arc<dyn ObjectStore>, ServeError> {
    let args = StoreArgs::from_request(req)?;
    let plan = Plan::from_args(&args).map_err(|e| ServeError::Usage(e.to_string()))?;
    let mut config = plan.client_config(&args);
    // Bounds on lack of progress, not on total duration: a large part over
    // a slow uplink takes as long as the link needs (store::transport).
    config.send_idle_timeout = Duration::from_secs(30);
    config.first_byte_timeout = Duration::from_secs(30);
    config.read_timeout = Duration::from_secs(30);
    config.retry = RetryConfig::default();
    if req.options.retry_forever {
        config.retry.max_attempts = u32::MAX;
    }
    let mut opts = credential_options(req, &plan);
    let rotating = opts.sts_dir.as_ref().is_some_and(|d| d.is_dir());
    if let Some((keys, label)) = creds
        && !rotating
    {
        opts.static_keys = Some(keys);
        opts.static_label = label;
    }
    let credentials: Arc<dyn CredentialProvider> =
        resolve(&opts).map_err(|e| ServeError::Setup(e.to_string()))?;
    let client =
        RestClient::new(config, credentials).map_err(|e| ServeError::Setup(e.to_string()))?;
    Ok(Arc::new(client))
}

/// The filesystem settings of `req`, staging files under `staging_dir`.
pub fn fs_config(req: &MountRequest, staging_dir: &Path) -> FsConfig {
    let o = &req.options;
    let mut c = FsConfig {
        prefix: req.source.prefix.clone(),
        ..FsConfig::default()
    };
    c.uid = o.uid;
    c.gid = o.gid;
    c.umask = o.umask.unwrap_or(0);
    c.read_only = o.read_only;
    c.stat_cache_ttl = o.stat_cache_expire;
    c.stat_cache_size = o.max_stat_cache_size;
    c.negative_cache = o.negative_cache;
    c.mp_umask = o.mp_umask;
    c.multipart_size = o.multipart_size;
    c.parallel_count = o.parallel_count;
    c.memory_limit = o.memory_limit;
    c.cache_size = o.cache_size;
    c.prefetch_window = o.prefetch_window;
    c.stream_upload = !o.no_stream_upload;
    c.readdir_optimize = o.readdir_optimize;
    c.noxattr = o.noxattr;
    c.disk_cache = o.use_cache.as_ref().map(|dir| crate::fs::DiskCacheConfig {
        dir: dir.clone(),
        capacity: o.disk_cache_size,
        id: format!(
            "{}|{}|{}",
            o.url.as_deref().unwrap_or(""),
            req.source.bucket,
            req.source.prefix
        ),
    });
    c.list_cache_ttl = o.list_cache_expire;
    c.staging_dir = staging_dir.to_path_buf();
    c
}

/// Where the staging files of `req`'s open writers live:
/// `<base>/ossfs-rs-<name>`, named after the mount's state directory so
/// every worker of the mount finds the files of the one before. `fs` makes
/// it private and checks it (ours, mode 0700, not a symlink) before use.
/// `<base>` is `-o tmpdir`, else a directory on disk (not the state
/// directory's tmpfs): [`default_staging_base`].
pub fn staging_dir(req: &MountRequest, state_dir: &Path) -> std::path::PathBuf {
    let name = state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    req.options
        .tmpdir
        .clone()
        .unwrap_or_else(default_staging_base)
        .join(format!("ossfs-rs-{name}"))
}

/// Where staging directories go without `-o tmpdir`: for root
/// `/var/lib/ossfs-rs/staging` (no other user can create anything there);
/// for others `$XDG_STATE_HOME/ossfs-rs/staging` or
/// `~/.local/state/ossfs-rs/staging`, and the system temp dir only when
/// neither is known (there the checks refuse a directory someone else
/// made first).
pub fn default_staging_base() -> std::path::PathBuf {
    if nix::unistd::geteuid().is_root() {
        return std::path::PathBuf::from("/var/lib/ossfs-rs/staging");
    }
    let absolute =
        |v: Option<std::ffi::OsString>| v.map(std::path::PathBuf::from).filter(|p| p.is_absolute());
    absolute(std::env::var_os("XDG_STATE_HOME"))
        .or_else(|| absolute(std::env::var_os("HOME")).map(|h| h.join(".local/state")))
        .map_or_else(std::env::temp_dir, |d| d.join("ossfs-rs/staging"))
}

/// The kernel mount of `req`.
pub fn mount_spec(req: &MountRequest) -> MountSpec {
    MountSpec {
        fsname: format!("{}:/{}", req.source.bucket, req.source.prefix),
        subtype: "ossfs-rs".to_string(),
        read_only: req.options.read_only,
        allow_other: req.options.allow_other,
        default_permissions: req.options.default_permissions,
        max_read: crate::fuse::MAX_WRITE,
    }
}

/// Logs go to stderr, which becomes the log file once detached; colour
/// only while that is a terminal.
pub fn init_logging(filter: &str, may_colour: bool) {
    use std::io::IsTerminal;
    let filter = std::env::var("OSSFS_LOG").unwrap_or_else(|_| filter.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(may_colour && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A failed write is dropped, never reported: the report would go
        // to the same stderr with `eprintln!`, which panics when stderr is
        // a pipe whose reader died (a worker's, after its supervisor was
        // killed), and so would kill the logging thread.
        .log_internal_errors(false)
        .try_init();
}
