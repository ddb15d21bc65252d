//! The Node service: one `ossfs-rs` daemon per staged volume, bind mounts
//! for the pods, and the per-volume records that let a restarted plugin
//! carry on (see [`adopt`]).
//!
//! Every call is idempotent and serialised per volume. Paths are checked
//! by [`crate::paths::checked_path`] before anything touches them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::{CsiError, CsiResult};
use crate::launcher::MountSpec;
use crate::mounts::{self, MountHealth};
use crate::paths::checked_path;
use crate::plugin::{Plugin, check_capability, is_read_only_mode, logged};
use crate::proto::node_server::Node;
use crate::proto::node_service_capability::{self, rpc};
use crate::proto::volume_capability::AccessType;
use crate::proto::*;
use crate::secrets::{Secrets, keys};
use crate::state::VolumeRecord;
use crate::store;
use crate::volume::{PARAM_OPTIONS, PARAM_PREFIX, VolumeId, validate_options};

/// The Node service over the shared plugin.
#[derive(Debug, Clone)]
pub struct NodeService(pub Arc<Plugin>);

impl NodeService {
    fn plugin(&self) -> &Plugin {
        &self.0
    }

    fn path(&self, field: &'static str, raw: &str) -> CsiResult<PathBuf> {
        checked_path(field, raw, &self.plugin().config.kubelet_dir)
    }

    async fn stage(&self, req: NodeStageVolumeRequest) -> CsiResult<NodeStageVolumeResponse> {
        let state = self.plugin().state()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.staging_target_path.is_empty() {
            return Err(CsiError::Missing("staging_target_path"));
        }
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or(CsiError::Missing("volume_capability"))?;
        check_capability(cap)?;
        let staging = self.path("staging_target_path", &req.staging_target_path)?;
        let secrets = Secrets::from(req.secrets);
        let mut vol = VolumeId::parse(&req.volume_id)?;
        if vol.prefix.is_empty() {
            // A static PV naming a bucket may take its prefix from the
            // volume attributes or the Secret.
            let prefix = req
                .volume_context
                .get(PARAM_PREFIX)
                .map(String::as_str)
                .or_else(|| secrets.get(keys::PREFIX));
            if let Some(prefix) = prefix {
                vol = VolumeId::new(&vol.bucket, prefix)?;
            }
        }
        let mut options = req
            .volume_context
            .get(PARAM_OPTIONS)
            .cloned()
            .unwrap_or_default();
        if let Some(AccessType::Mount(m)) = &cap.access_type {
            for flag in &m.mount_flags {
                options.push(',');
                options.push_str(flag);
            }
        }
        let options = validate_options(&options)?;
        let access = secrets.access()?.with_dialect_from(&req.volume_context)?;

        let lock = self.plugin().volume_lock(&req.volume_id);
        let _guard = lock.lock().await;
        let previous = state.load(&req.volume_id)?;
        if let Some(rec) = &previous {
            if rec.staging_path != staging {
                return Err(CsiError::FailedPrecondition(format!(
                    "volume {} is already staged at {}",
                    req.volume_id,
                    rec.staging_path.display()
                )));
            }
            match mounts::health(&staging) {
                MountHealth::Live => return Ok(NodeStageVolumeResponse {}),
                MountHealth::Dead => {
                    tracing::warn!(volume_id = %req.volume_id, staging = %staging.display(), "the staged mount is dead: mounting it again");
                    mounts::unmount(&staging).await?;
                }
                MountHealth::NotMounted => {
                    tracing::warn!(volume_id = %req.volume_id, staging = %staging.display(), "the staged mount is gone: mounting it again");
                }
            }
        } else if mounts::health(&staging) != MountHealth::NotMounted {
            // Left behind by a plugin that lost its record: start afresh.
            mounts::unmount(&staging).await?;
        }

        let provider = store::effective_provider(&access);
        let mut daemon_options = vec![
            format!("url={}", access.endpoint),
            format!("provider={provider}"),
        ];
        if let Some(region) = &access.region {
            daemon_options.push(format!("region={region}"));
        }
        if store::needs_path_style(&access) {
            daemon_options.push("path_style".into());
        }
        let log_file = state.log_file(&req.volume_id);
        daemon_options.push(format!("logfile={}", log_file.display()));
        if !options.is_empty() {
            daemon_options.push(options.clone());
        }
        std::fs::create_dir_all(&staging)
            .map_err(|e| CsiError::io(format!("creating {}", staging.display()), e))?;
        let spec = MountSpec {
            volume_id: req.volume_id.clone(),
            source: vol.source(),
            staging_path: staging.clone(),
            options: daemon_options.join(","),
        };
        let started = self
            .plugin()
            .launcher
            .start(&spec, &access.credentials)
            .await?;
        let targets = previous.map(|r| r.targets).unwrap_or_default();
        let rec = VolumeRecord {
            volume_id: req.volume_id.clone(),
            bucket: vol.bucket.clone(),
            prefix: vol.prefix.clone(),
            staging_path: staging.clone(),
            options,
            endpoint: access.endpoint.clone(),
            region: access.region.clone(),
            provider: Some(provider.to_string()),
            targets: targets.clone(),
            daemon_pid: started.pid,
            unit: started.unit,
            log_file,
        };
        state.save(&rec)?;
        if let Err(e) =
            self.plugin()
                .keeper
                .keep(&req.volume_id, &staging, &access.credentials, &rec.log_file)
        {
            tracing::warn!(volume_id = %req.volume_id, error = %e, "cannot keep a copy of the volume's FUSE connection; a crash of its whole daemon would need a NodeStage");
        }
        rebind_targets(&rec).await;
        Ok(NodeStageVolumeResponse {})
    }

    async fn unstage(&self, req: NodeUnstageVolumeRequest) -> CsiResult<NodeUnstageVolumeResponse> {
        let state = self.plugin().state()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.staging_target_path.is_empty() {
            return Err(CsiError::Missing("staging_target_path"));
        }
        let staging = self.path("staging_target_path", &req.staging_target_path)?;
        let lock = self.plugin().volume_lock(&req.volume_id);
        let _guard = lock.lock().await;
        let rec = state.load(&req.volume_id)?;
        if let Some(rec) = &rec {
            for target in rec.targets.keys() {
                if mounts::is_mount_point(target) {
                    tracing::warn!(volume_id = %req.volume_id, target = %target.display(), "unstaging a volume that is still published: unmounting the target");
                    mounts::unmount(target).await?;
                }
            }
        }
        self.plugin().keeper.release(&req.volume_id);
        mounts::unmount(&staging).await?;
        let unit = rec.as_ref().and_then(|r| r.unit.clone());
        self.plugin()
            .launcher
            .stop(&staging, unit.as_deref())
            .await?;
        state.remove(&req.volume_id)?;
        Ok(NodeUnstageVolumeResponse {})
    }

    async fn publish(&self, req: NodePublishVolumeRequest) -> CsiResult<NodePublishVolumeResponse> {
        let state = self.plugin().state()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.target_path.is_empty() {
            return Err(CsiError::Missing("target_path"));
        }
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or(CsiError::Missing("volume_capability"))?;
        check_capability(cap)?;
        if req.staging_target_path.is_empty() {
            return Err(CsiError::Missing("staging_target_path"));
        }
        let target = self.path("target_path", &req.target_path)?;
        let staging = self.path("staging_target_path", &req.staging_target_path)?;
        let read_only = req.readonly || is_read_only_mode(cap);

        let lock = self.plugin().volume_lock(&req.volume_id);
        let _guard = lock.lock().await;
        let mut rec = state.load(&req.volume_id)?.ok_or_else(|| {
            CsiError::FailedPrecondition(format!(
                "volume {} is not staged on this node",
                req.volume_id
            ))
        })?;
        if rec.staging_path != staging {
            return Err(CsiError::FailedPrecondition(format!(
                "volume {} is staged at {}, not {}",
                req.volume_id,
                rec.staging_path.display(),
                staging.display()
            )));
        }
        if mounts::health(&staging) != MountHealth::Live {
            return Err(CsiError::FailedPrecondition(format!(
                "the staged mount of volume {} at {} is not live: stage it again",
                req.volume_id,
                staging.display()
            )));
        }
        match (mounts::health(&target), rec.targets.get(&target)) {
            (MountHealth::Live, Some(&ro)) if ro == read_only => {
                return Ok(NodePublishVolumeResponse {});
            }
            (MountHealth::Live, Some(_)) => {
                return Err(CsiError::AlreadyExists(format!(
                    "{} is already published with another read-only setting",
                    target.display()
                )));
            }
            (MountHealth::NotMounted, _) => {}
            _ => mounts::unmount(&target).await?,
        }
        std::fs::create_dir_all(&target)
            .map_err(|e| CsiError::io(format!("creating {}", target.display()), e))?;
        mounts::bind(&staging, &target, read_only)?;
        rec.targets.insert(target, read_only);
        state.save(&rec)?;
        Ok(NodePublishVolumeResponse {})
    }

    async fn unpublish(
        &self,
        req: NodeUnpublishVolumeRequest,
    ) -> CsiResult<NodeUnpublishVolumeResponse> {
        let state = self.plugin().state()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.target_path.is_empty() {
            return Err(CsiError::Missing("target_path"));
        }
        let target = self.path("target_path", &req.target_path)?;
        let lock = self.plugin().volume_lock(&req.volume_id);
        let _guard = lock.lock().await;
        mounts::unmount(&target).await?;
        match std::fs::remove_dir(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CsiError::io(format!("removing {}", target.display()), e)),
        }
        if let Some(mut rec) = state.load(&req.volume_id)?
            && rec.targets.remove(&target).is_some()
        {
            state.save(&rec)?;
        }
        Ok(NodeUnpublishVolumeResponse {})
    }

    async fn stats(&self, req: NodeGetVolumeStatsRequest) -> CsiResult<NodeGetVolumeStatsResponse> {
        let state = self.plugin().state()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.volume_path.is_empty() {
            return Err(CsiError::Missing("volume_path"));
        }
        let path = self.path("volume_path", &req.volume_path)?;
        let rec = state.load(&req.volume_id)?.ok_or_else(|| {
            CsiError::NotFound(format!("volume {} is not staged here", req.volume_id))
        })?;
        if rec.staging_path != path && !rec.targets.contains_key(&path) {
            return Err(CsiError::NotFound(format!(
                "volume {} is not at {}",
                req.volume_id,
                path.display()
            )));
        }
        let condition = match mounts::health(&path) {
            MountHealth::Live => None,
            other => {
                return Err(CsiError::NotFound(format!(
                    "volume {} at {} is {other:?}",
                    req.volume_id,
                    path.display()
                )));
            }
        };
        let st = nix::sys::statvfs::statvfs(&path)
            .map_err(|e| CsiError::io(format!("statvfs {}", path.display()), e.into()))?;
        let frsize = st.fragment_size() as i64;
        let bytes = VolumeUsage {
            total: st.blocks() as i64 * frsize,
            available: st.blocks_available() as i64 * frsize,
            used: (st.blocks() as i64 - st.blocks_free() as i64) * frsize,
            unit: volume_usage::Unit::Bytes as i32,
        };
        let inodes = VolumeUsage {
            total: st.files() as i64,
            available: st.files_available() as i64,
            used: st.files() as i64 - st.files_free() as i64,
            unit: volume_usage::Unit::Inodes as i32,
        };
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![bytes, inodes],
            volume_condition: condition,
        })
    }
}

/// Bind the staging path again on every known target that is not live,
/// and say which pods are affected.
async fn rebind_targets(rec: &VolumeRecord) {
    for (target, &read_only) in &rec.targets {
        let health = mounts::health(target);
        if health == MountHealth::Live {
            continue;
        }
        if health == MountHealth::Dead
            && let Err(e) = mounts::unmount(target).await
        {
            tracing::error!(volume_id = %rec.volume_id, target = %target.display(), error = %e, "cannot remove a dead target mount");
            continue;
        }
        let bound = std::fs::create_dir_all(target)
            .map_err(|e| CsiError::io(format!("creating {}", target.display()), e))
            .and_then(|()| mounts::bind(&rec.staging_path, target, read_only));
        match bound {
            Ok(()) => tracing::warn!(
                volume_id = %rec.volume_id,
                target = %target.display(),
                pod = pod_of(target).unwrap_or("?"),
                "re-bound a target to the new mount: restart this pod if it still sees errors (its containers may hold the old mount)"
            ),
            Err(e) => {
                tracing::error!(volume_id = %rec.volume_id, target = %target.display(), error = %e, "cannot re-bind a target")
            }
        }
    }
}

/// The pod uid in a kubelet target path (`.../pods/<uid>/volumes/...`).
fn pod_of(target: &Path) -> Option<&str> {
    let mut parts = target.iter();
    parts.find(|p| *p == "pods")?;
    parts.next()?.to_str()
}

/// Re-adopt the volumes a previous plugin process staged on this node.
///
/// A live staging mount is kept as is (its daemon outlived the old plugin)
/// and its known targets are re-bound if they are gone. A staging mount
/// whose daemon is gone cannot be remounted here: the credentials are not
/// kept on disk, so it is remounted at the volume's next NodeStageVolume,
/// and the pods using its targets are named in the log.
///
/// A crashed worker or supervisor is replaced by the other half of the
/// daemon on the live connection, so this function sees the mount live.
/// The plugin's own copy of the fd ([`crate::keeper`]) died with the old
/// plugin process: a volume re-adopted here is not kept again until its
/// next NodeStageVolume.
pub async fn adopt(plugin: &Plugin) {
    let Some(state) = &plugin.state else {
        return;
    };
    for mut rec in state.load_all() {
        match mounts::health(&rec.staging_path) {
            MountHealth::Live => {
                let pid = mounts::daemons_for(&rec.staging_path).first().copied();
                if pid != rec.daemon_pid {
                    rec.daemon_pid = pid;
                    if let Err(e) = state.save(&rec) {
                        tracing::warn!(volume_id = %rec.volume_id, error = %e, "cannot update a volume record");
                    }
                }
                tracing::info!(
                    volume_id = %rec.volume_id,
                    staging = %rec.staging_path.display(),
                    daemon_pid = ?rec.daemon_pid,
                    targets = rec.targets.len(),
                    "re-adopted a staged volume"
                );
                rebind_targets(&rec).await;
            }
            health => {
                let pods: BTreeMap<&str, &Path> = rec
                    .targets
                    .keys()
                    .map(|t| (pod_of(t).unwrap_or("?"), t.as_path()))
                    .collect();
                tracing::error!(
                    volume_id = %rec.volume_id,
                    staging = %rec.staging_path.display(),
                    ?health,
                    pods = ?pods.keys().collect::<Vec<_>>(),
                    "the daemon of a staged volume is gone; the volume is mounted again at its next NodeStageVolume and these pods must be restarted"
                );
            }
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("NodeStageVolume", &id, self.stage(req)).await
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("NodeUnstageVolume", &id, self.unstage(req)).await
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("NodePublishVolume", &id, self.publish(req)).await
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("NodeUnpublishVolume", &id, self.unpublish(req)).await
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("NodeGetVolumeStats", &id, self.stats(req)).await
    }

    async fn node_expand_volume(
        &self,
        _req: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeExpandVolume is not supported by csi.os",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        logged("NodeGetCapabilities", "", async {
            let cap = |t: rpc::Type| NodeServiceCapability {
                r#type: Some(node_service_capability::Type::Rpc(
                    node_service_capability::Rpc { r#type: t as i32 },
                )),
            };
            Ok(NodeGetCapabilitiesResponse {
                capabilities: vec![
                    cap(rpc::Type::StageUnstageVolume),
                    cap(rpc::Type::GetVolumeStats),
                ],
            })
        })
        .await
    }

    async fn node_get_info(
        &self,
        _req: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        let node_id = self.plugin().config.node_id.clone();
        logged("NodeGetInfo", "", async move {
            Ok(NodeGetInfoResponse {
                node_id,
                max_volumes_per_node: 0,
                accessible_topology: None,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_uid_from_target() {
        let t = Path::new("/var/lib/kubelet/pods/1234-abcd/volumes/kubernetes.io~csi/pv/mount");
        assert_eq!(pod_of(t), Some("1234-abcd"));
        assert_eq!(pod_of(Path::new("/var/lib/kubelet/plugins/x")), None);
    }
}
