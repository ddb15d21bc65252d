//! The Controller service: a volume is a prefix of a bucket.
//!
//! Capabilities: CREATE_DELETE_VOLUME only. Capacity is advisory (an
//! object store has no quota per prefix); it is recorded so that the same
//! name with another capacity is refused, as the spec requires. Every
//! other controller RPC answers Unimplemented, as the spec allows for
//! capabilities not advertised.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::{CsiError, CsiResult};
use crate::plugin::{Plugin, check_capability, logged};
use crate::proto::controller_server::Controller;
use crate::proto::controller_service_capability::{self, rpc};
use crate::proto::validate_volume_capabilities_response::Confirmed;
use crate::proto::*;
use crate::secrets::{Secrets, keys};
use crate::store;
use crate::volume::{PARAM_OPTIONS, VolumeId, validate_options, volume_for_create};

/// The Controller service over the shared plugin.
#[derive(Debug, Clone)]
pub struct ControllerService(pub Arc<Plugin>);

fn path_style_in(options: &str) -> bool {
    options
        .split(',')
        .any(|o| o == "path_style" || o == "use_path_request_style")
}

impl ControllerService {
    fn ensure_served(&self) -> CsiResult<()> {
        if self.0.serves_controller() {
            Ok(())
        } else {
            Err(CsiError::NotServed("the controller service"))
        }
    }

    async fn create(&self, req: CreateVolumeRequest) -> CsiResult<CreateVolumeResponse> {
        self.ensure_served()?;
        if req.name.is_empty() {
            return Err(CsiError::Missing("name"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(CsiError::Missing("volume_capabilities"));
        }
        for cap in &req.volume_capabilities {
            check_capability(cap)?;
        }
        if req.volume_content_source.is_some() {
            return Err(CsiError::Invalid(
                "volume content sources (snapshots, clones) are not supported".into(),
            ));
        }
        let capacity = req
            .capacity_range
            .as_ref()
            .map(|r| {
                if r.required_bytes > 0 {
                    r.required_bytes
                } else {
                    r.limit_bytes
                }
            })
            .unwrap_or(0)
            .max(0);
        let secrets = Secrets::from(req.secrets);
        let options = validate_options(
            req.parameters
                .get(PARAM_OPTIONS)
                .map(String::as_str)
                .unwrap_or(""),
        )?;
        let vol = volume_for_create(&req.name, &req.parameters, &secrets)?;
        let access = secrets.access()?.with_dialect_from(&req.parameters)?;
        let lock = self.0.volume_lock(&vol.id());
        let _guard = lock.lock().await;
        let client = store::client(&access, &vol.bucket, path_style_in(&options))?;
        store::create_volume(client.as_ref(), &vol, capacity).await?;
        // What NodeStage needs besides the id and the Secret reaches it as
        // the PV's volume attributes.
        let mut context = HashMap::new();
        if !options.is_empty() {
            context.insert(PARAM_OPTIONS.to_string(), options);
        }
        for key in [keys::MOUNTER, keys::PROVIDER] {
            if let Some(v) = req.parameters.get(key).filter(|v| !v.trim().is_empty()) {
                context.insert(key.to_string(), v.trim().to_string());
            }
        }
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: capacity,
                volume_id: vol.id(),
                volume_context: context,
                ..Default::default()
            }),
        })
    }

    async fn delete(&self, req: DeleteVolumeRequest) -> CsiResult<DeleteVolumeResponse> {
        self.ensure_served()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        let vol = match VolumeId::parse(&req.volume_id) {
            Ok(v) => v,
            Err(_) => {
                tracing::info!(volume_id = %req.volume_id, "not a volume id of ours: nothing to delete");
                return Ok(DeleteVolumeResponse {});
            }
        };
        if vol.prefix.is_empty() {
            // A static PV naming a whole bucket: never empty a bucket.
            tracing::warn!(volume_id = %req.volume_id, "whole-bucket volume: DeleteVolume leaves the bucket's objects in place");
            return Ok(DeleteVolumeResponse {});
        }
        let secrets = Secrets::from(req.secrets);
        let access = secrets.access()?;
        let client = store::client(&access, &vol.bucket, false)?;
        let n = store::delete_volume(client.as_ref(), &vol).await?;
        tracing::info!(volume_id = %req.volume_id, objects = n, "deleted the volume's objects");
        Ok(DeleteVolumeResponse {})
    }

    async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> CsiResult<ValidateVolumeCapabilitiesResponse> {
        self.ensure_served()?;
        if req.volume_id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(CsiError::Missing("volume_capabilities"));
        }
        let vol = VolumeId::parse(&req.volume_id)?;
        let secrets = Secrets::from(req.secrets);
        let access = secrets.access()?.with_dialect_from(&req.volume_context)?;
        let client = store::client(&access, &vol.bucket, false)?;
        // The volume exists when its marker (or, for a whole bucket or a
        // prefix made by another tool, any object under it) exists.
        let listing = ossfs_rs::store::ListRequest {
            prefix: vol.prefix.clone(),
            delimiter: Some("/".into()),
            max_keys: Some(1),
            start_after: None,
        };
        let page = match client.list_page(&listing, None).await {
            Ok(p) => p,
            Err(ossfs_rs::store::StoreError::NoSuchBucket { .. }) => {
                return Err(CsiError::NotFound(format!(
                    "volume {} does not exist",
                    req.volume_id
                )));
            }
            Err(e) => return Err(CsiError::store(format!("listing {:?}", vol.prefix), e)),
        };
        if !vol.prefix.is_empty() && page.objects.is_empty() && page.prefixes.is_empty() {
            return Err(CsiError::NotFound(format!(
                "volume {} does not exist",
                req.volume_id
            )));
        }
        let message = match req
            .volume_capabilities
            .iter()
            .try_for_each(check_capability)
        {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        let confirmed = message.is_empty().then_some(Confirmed {
            volume_context: req.volume_context,
            volume_capabilities: req.volume_capabilities,
            parameters: req.parameters,
            mutable_parameters: req.mutable_parameters,
        });
        Ok(ValidateVolumeCapabilitiesResponse { confirmed, message })
    }
}

fn unimplemented<T>(rpc: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{rpc} is not supported by csi.os"
    )))
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let req = req.into_inner();
        let name = req.name.clone();
        logged("CreateVolume", &name, self.create(req)).await
    }

    async fn delete_volume(
        &self,
        req: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("DeleteVolume", &id, self.delete(req)).await
    }

    async fn controller_publish_volume(
        &self,
        _req: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        unimplemented("ControllerPublishVolume")
    }

    async fn controller_unpublish_volume(
        &self,
        _req: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        unimplemented("ControllerUnpublishVolume")
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        logged("ValidateVolumeCapabilities", &id, self.validate(req)).await
    }

    async fn list_volumes(
        &self,
        _req: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        unimplemented("ListVolumes")
    }

    async fn get_capacity(
        &self,
        _req: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        unimplemented("GetCapacity")
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        let serves = self.0.serves_controller();
        logged("ControllerGetCapabilities", "", async move {
            let capabilities = if serves {
                vec![ControllerServiceCapability {
                    r#type: Some(controller_service_capability::Type::Rpc(
                        controller_service_capability::Rpc {
                            r#type: rpc::Type::CreateDeleteVolume as i32,
                        },
                    )),
                }]
            } else {
                Vec::new()
            };
            Ok(ControllerGetCapabilitiesResponse { capabilities })
        })
        .await
    }

    async fn create_snapshot(
        &self,
        _req: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        unimplemented("CreateSnapshot")
    }

    async fn delete_snapshot(
        &self,
        _req: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        unimplemented("DeleteSnapshot")
    }

    async fn list_snapshots(
        &self,
        _req: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        unimplemented("ListSnapshots")
    }

    async fn get_snapshot(
        &self,
        _req: Request<GetSnapshotRequest>,
    ) -> Result<Response<GetSnapshotResponse>, Status> {
        unimplemented("GetSnapshot")
    }

    async fn controller_expand_volume(
        &self,
        _req: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        unimplemented("ControllerExpandVolume")
    }

    async fn controller_get_volume(
        &self,
        _req: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        unimplemented("ControllerGetVolume")
    }

    async fn controller_modify_volume(
        &self,
        _req: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        unimplemented("ControllerModifyVolume")
    }
}
