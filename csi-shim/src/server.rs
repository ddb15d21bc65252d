//! Command line, startup and the gRPC server on the unix socket.
//!
//! One process serves Identity, Controller and Node on one socket (the
//! sidecars and csi-sanity-style tools call every service on it); `--mode`
//! decides which of them do real work. At startup a node plugin re-adopts
//! the volumes recorded in its state directory before it accepts calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::controller::ControllerService;
use crate::identity::IdentityService;
use crate::launcher::{Launcher, LauncherKind};
use crate::node::{NodeService, adopt};
use crate::plugin::{Config, Plugin, ServeMode};
use crate::proto::controller_server::ControllerServer;
use crate::proto::identity_server::IdentityServer;
use crate::proto::node_server::NodeServer;
use crate::state::StateDir;

/// The CSI plugin for ossfs-rs volumes (driver name `csi.os`).
#[derive(Debug, Parser)]
#[command(name = "csi-os", version, about)]
pub struct Args {
    /// The gRPC endpoint, `unix:///csi/csi.sock`.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: String,
    /// This node's name (the Kubernetes node name); required to serve the node service.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// Which services do real work.
    #[arg(long, value_enum, default_value = "all")]
    pub mode: ServeMode,
    /// Where the node keeps its per-volume records, daemon logs and
    /// short-lived credential directories (created 0700).
    #[arg(long, default_value = "/var/lib/kubelet/plugins/csi.os/state")]
    pub state_dir: PathBuf,
    /// The kubelet root; every staging and target path must be under it.
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub kubelet_dir: PathBuf,
    /// The `ossfs-rs` binary (default: next to csi-os, else on PATH).
    #[arg(long, env = "OSSFS_RS_BIN")]
    pub ossfs_bin: Option<PathBuf>,
    /// How daemons are started: `direct` (own session, survives a plugin
    /// process restart) or `systemd` (a transient unit of the host's
    /// systemd via nsenter, survives a container restart).
    #[arg(long, value_enum, default_value = "direct")]
    pub daemon_launcher: LauncherKind,
}

/// Why the plugin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--endpoint must be unix:///path, got {0:?}")]
    Endpoint(String),
    #[error("--node-id is required to serve the node service")]
    NodeId,
    #[error("kubelet dir {path}: {source}")]
    KubeletDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find the ossfs-rs binary: pass --ossfs-bin or set OSSFS_RS_BIN")]
    NoOssfsBin,
    #[error("{0}")]
    State(#[from] crate::error::CsiError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn find_ossfs_bin(given: Option<PathBuf>) -> Result<PathBuf, StartError> {
    if let Some(p) = given {
        return Ok(p);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ossfs-rs")))
        .filter(|p| p.is_file());
    if let Some(p) = beside {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("ossfs-rs"))
        .find(|p| p.is_file())
        .ok_or(StartError::NoOssfsBin)
}

/// For the systemd launcher the daemon runs in the host's mount namespace,
/// so its binary must be a host path: copy it into the state directory
/// (which deploy/ keeps under the kubelet dir, shared with the host). The
/// copy is written beside and renamed over the old one, so a daemon still
/// running the previous binary keeps its (unlinked) file.
fn install_host_binary(bin: &Path, state_root: &Path) -> Result<PathBuf, StartError> {
    let err = |source| StartError::Io {
        path: state_root.join("bin"),
        source,
    };
    let dir = state_root.join("bin");
    std::fs::create_dir_all(&dir).map_err(err)?;
    let dest = dir.join("ossfs-rs");
    let tmp = dir.join(".ossfs-rs.new");
    std::fs::copy(bin, &tmp).map_err(err)?;
    std::fs::rename(&tmp, &dest).map_err(err)?;
    Ok(dest)
}

fn bind_socket(path: &Path) -> Result<UnixListener, StartError> {
    let err = |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    UnixListener::bind(path).map_err(err)
}

/// The three services of `plugin` on one gRPC router (the unix socket in
/// production, an in-memory duplex stream in tests).
pub fn router(plugin: Arc<Plugin>) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .add_service(IdentityServer::new(IdentityService(plugin.clone())))
        .add_service(ControllerServer::new(ControllerService(plugin.clone())))
        .add_service(NodeServer::new(NodeService(plugin)))
}

/// Set everything up, re-adopt volumes, then serve until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), StartError> {
    let socket = args
        .endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| StartError::Endpoint(args.endpoint.clone()))?;
    let serves_node = matches!(args.mode, ServeMode::All | ServeMode::Node);
    let node_id = match (&args.node_id, serves_node) {
        (Some(n), _) if !n.is_empty() => n.clone(),
        (_, true) => return Err(StartError::NodeId),
        (_, false) => String::new(),
    };
    let kubelet_dir =
        std::fs::canonicalize(&args.kubelet_dir).map_err(|source| StartError::KubeletDir {
            path: args.kubelet_dir.clone(),
            source,
        })?;
    let state = if serves_node {
        Some(StateDir::open(&args.state_dir)?)
    } else {
        None
    };
    let ossfs_bin = if serves_node {
        let bin = find_ossfs_bin(args.ossfs_bin.clone())?;
        match (&state, args.daemon_launcher) {
            (Some(state), LauncherKind::Systemd) => install_host_binary(&bin, state.root())?,
            _ => bin,
        }
    } else {
        PathBuf::new()
    };
    let launcher = Launcher {
        kind: args.daemon_launcher,
        ossfs_bin,
        run_dir: state.as_ref().map(StateDir::run_dir).unwrap_or_default(),
    };
    let plugin = Arc::new(Plugin::new(
        Config {
            node_id,
            mode: args.mode,
            kubelet_dir,
        },
        state,
        launcher,
    ));
    adopt(&plugin).await;
    if plugin.serves_node() {
        plugin.keeper.clone().spawn_watchdog();
    }

    let listener = bind_socket(&socket)?;
    tracing::info!(
        endpoint = %args.endpoint,
        mode = ?args.mode,
        launcher = ?args.daemon_launcher,
        version = env!("CARGO_PKG_VERSION"),
        "csi-os serving"
    );
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => std::future::pending::<()>().await,
        }
        tracing::info!("signal received: stopping (staged volumes stay mounted)");
    };
    router(plugin)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The services in process, over a `tokio::io::duplex` pipe: argument
    //! and path checks that need no store, no mount and no binary.

    use std::collections::HashMap;

    use tonic::Code;
    use tonic::transport::{Endpoint, Uri};

    use super::*;
    use crate::proto::controller_client::ControllerClient;
    use crate::proto::identity_client::IdentityClient;
    use crate::proto::node_client::NodeClient;
    use crate::proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
    use crate::proto::*;

    struct InProcess {
        _root: tempfile::TempDir,
        kubelet: PathBuf,
        channel: tonic::transport::Channel,
    }

    async fn in_process(mode: ServeMode) -> InProcess {
        let root = tempfile::tempdir().unwrap();
        let kubelet = root.path().join("kubelet");
        std::fs::create_dir_all(kubelet.join("pods")).unwrap();
        let kubelet = kubelet.canonicalize().unwrap();
        let state = StateDir::open(&root.path().join("state")).unwrap();
        let launcher = Launcher {
            kind: LauncherKind::Direct,
            ossfs_bin: PathBuf::from("/nonexistent/ossfs-rs"),
            run_dir: state.run_dir(),
        };
        let plugin = Arc::new(Plugin::new(
            Config {
                node_id: "in-process".into(),
                mode,
                kubelet_dir: kubelet.clone(),
            },
            Some(state),
            launcher,
        ));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(
            router(plugin)
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io))),
        );
        let mut client_io = Some(client_io);
        let channel = Endpoint::from_static("http://in-process.invalid")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let io = client_io.take();
                async move {
                    io.map(hyper_util::rt::TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("the duplex pipe is used once"))
                }
            }))
            .await
            .unwrap();
        InProcess {
            _root: root,
            kubelet,
            channel,
        }
    }

    fn mount_cap() -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: 1 }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }
    }

    #[tokio::test]
    async fn identity_and_node_info() {
        let p = in_process(ServeMode::All).await;
        let info = IdentityClient::new(p.channel.clone())
            .get_plugin_info(GetPluginInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, "csi.os");
        let node = NodeClient::new(p.channel.clone())
            .node_get_info(NodeGetInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(node.node_id, "in-process");
    }

    #[tokio::test]
    async fn block_volumes_and_bad_paths_are_invalid_arguments() {
        let p = in_process(ServeMode::All).await;
        let mut controller = ControllerClient::new(p.channel.clone());
        let block = VolumeCapability {
            access_mode: Some(AccessMode { mode: 1 }),
            access_type: Some(AccessType::Block(BlockVolume {})),
        };
        let err = controller
            .create_volume(CreateVolumeRequest {
                name: "v".into(),
                volume_capabilities: vec![block],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("block"), "{}", err.message());

        let mut node = NodeClient::new(p.channel.clone());
        let staging = p.kubelet.join("plugins/x/globalmount");
        for bad in ["/etc", "relative", "/tmp/../etc"] {
            let err = node
                .node_stage_volume(NodeStageVolumeRequest {
                    volume_id: "bucket/v".into(),
                    staging_target_path: bad.into(),
                    volume_capability: Some(mount_cap()),
                    secrets: HashMap::new(),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{bad}: {}",
                err.message()
            );
        }
        // A good path but no Secret: the missing key is named.
        let err = node
            .node_stage_volume(NodeStageVolumeRequest {
                volume_id: "bucket/v".into(),
                staging_target_path: staging.display().to_string(),
                volume_capability: Some(mount_cap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("endpoint"), "{}", err.message());
        // Publishing a volume that is not staged is a failed precondition.
        let err = node
            .node_publish_volume(NodePublishVolumeRequest {
                volume_id: "bucket/v".into(),
                staging_target_path: staging.display().to_string(),
                target_path: p.kubelet.join("pods/p/mount").display().to_string(),
                volume_capability: Some(mount_cap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        // Unpublish and unstage of what was never there succeed.
        node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: "bucket/v".into(),
            target_path: p.kubelet.join("pods/p/mount").display().to_string(),
        })
        .await
        .unwrap();
        node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: "bucket/v".into(),
            staging_target_path: staging.display().to_string(),
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_controller_only_plugin_refuses_node_calls() {
        let p = in_process(ServeMode::Controller).await;
        let caps = ControllerClient::new(p.channel.clone())
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(caps.capabilities.len(), 1);
        let mut node = NodeClient::new(p.channel.clone());
        let err = node
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: "bucket/v".into(),
                staging_target_path: p.kubelet.join("plugins/x").display().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }
}
