//! The plugin's shared state and the pieces every service uses: the
//! configuration, per-volume locks, capability checks and RPC logging.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tonic::{Response, Status};

use crate::error::{CsiError, CsiResult};
use crate::keeper::Keeper;
use crate::launcher::Launcher;
use crate::proto::VolumeCapability;
use crate::proto::volume_capability::{AccessType, access_mode::Mode};
use crate::state::StateDir;

/// The driver name (os-csi's, so existing StorageClasses and PVs keep working).
pub const DRIVER_NAME: &str = "csi.os";

/// Which services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeMode {
    /// Controller and node (one process, as in tests or a single-node cluster).
    All,
    /// Controller only (the provisioner Deployment).
    Controller,
    /// Node only (the DaemonSet).
    Node,
}

/// The configuration of a running plugin.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    pub mode: ServeMode,
    /// Canonical kubelet root: every RPC path must be under it.
    pub kubelet_dir: PathBuf,
}

/// State shared by the three services.
#[derive(Debug)]
pub struct Plugin {
    pub config: Config,
    /// The node's volume records (node modes only).
    pub state: Option<StateDir>,
    pub launcher: Launcher,
    /// Copies of the volumes' FUSE connections (daemon-crash recovery).
    pub keeper: Arc<Keeper>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Plugin {
    pub fn new(config: Config, state: Option<StateDir>, launcher: Launcher) -> Self {
        Plugin {
            config,
            state,
            keeper: Arc::new(Keeper::new(launcher.ossfs_bin.clone())),
            launcher,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the controller service is served.
    pub fn serves_controller(&self) -> bool {
        matches!(self.config.mode, ServeMode::All | ServeMode::Controller)
    }

    /// Whether the node service is served.
    pub fn serves_node(&self) -> bool {
        matches!(self.config.mode, ServeMode::All | ServeMode::Node)
    }

    /// The state directory; Unimplemented on a controller-only plugin.
    pub fn state(&self) -> CsiResult<&StateDir> {
        match &self.state {
            Some(state) if self.serves_node() => Ok(state),
            _ => Err(CsiError::NotServed("the node service")),
        }
    }

    /// The lock serialising operations on one volume. Held across awaits,
    /// so it is a tokio mutex; the map itself is a std mutex held briefly.
    pub fn volume_lock(&self, volume_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(volume_id.to_string()).or_default().clone()
    }
}

/// Run one RPC body, logging its name, volume id, outcome and duration.
/// Identity calls (probes every few seconds) log at debug level.
pub async fn logged<T>(
    rpc: &'static str,
    volume_id: &str,
    body: impl Future<Output = CsiResult<T>>,
) -> Result<Response<T>, Status> {
    let start = Instant::now();
    let result = body.await;
    let duration_ms = start.elapsed().as_millis() as u64;
    let quiet = matches!(
        rpc,
        "Probe"
            | "GetPluginInfo"
            | "GetPluginCapabilities"
            | "NodeGetCapabilities"
            | "ControllerGetCapabilities"
            | "NodeGetInfo"
    );
    match &result {
        Ok(_) if quiet => tracing::debug!(rpc, volume_id, outcome = "ok", duration_ms),
        Ok(_) => tracing::info!(rpc, volume_id, outcome = "ok", duration_ms),
        Err(e) => tracing::warn!(rpc, volume_id, outcome = ?e.code(), error = %e, duration_ms),
    }
    result.map(Response::new).map_err(Status::from)
}

/// Check one requested capability: a filesystem (mount) volume with a
/// known access mode. Block volumes are refused.
pub fn check_capability(cap: &VolumeCapability) -> CsiResult<()> {
    match &cap.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => {
            return Err(CsiError::Invalid(
                "block volumes are not supported: csi.os volumes are filesystems".into(),
            ));
        }
        None => {
            return Err(CsiError::Invalid(
                "volume capability has no access type".into(),
            ));
        }
    }
    let mode = cap
        .access_mode
        .as_ref()
        .map(|m| Mode::try_from(m.mode).unwrap_or(Mode::Unknown))
        .unwrap_or(Mode::Unknown);
    if mode == Mode::Unknown {
        return Err(CsiError::Invalid(
            "volume capability has no access mode".into(),
        ));
    }
    Ok(())
}

/// Whether a capability asks for read-only access.
pub fn is_read_only_mode(cap: &VolumeCapability) -> bool {
    cap.access_mode.as_ref().is_some_and(|m| {
        matches!(
            Mode::try_from(m.mode),
            Ok(Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly)
        )
    })
}
