//! The Identity service: who we are, what we serve, whether we are ready.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::plugin::{DRIVER_NAME, Plugin, logged};
use crate::proto::identity_server::Identity;
use crate::proto::plugin_capability::{self, service};
use crate::proto::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};

/// The Identity service over the shared plugin.
#[derive(Debug, Clone)]
pub struct IdentityService(pub Arc<Plugin>);

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _req: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        logged("GetPluginInfo", "", async {
            Ok(GetPluginInfoResponse {
                name: DRIVER_NAME.to_string(),
                vendor_version: env!("CARGO_PKG_VERSION").to_string(),
                manifest: Default::default(),
            })
        })
        .await
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let serves_controller = self.0.serves_controller();
        logged("GetPluginCapabilities", "", async move {
            let mut capabilities = Vec::new();
            if serves_controller {
                capabilities.push(PluginCapability {
                    r#type: Some(plugin_capability::Type::Service(
                        plugin_capability::Service {
                            r#type: service::Type::ControllerService as i32,
                        },
                    )),
                });
            }
            Ok(GetPluginCapabilitiesResponse { capabilities })
        })
        .await
    }

    async fn probe(&self, _req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        logged("Probe", "", async {
            Ok(ProbeResponse { ready: Some(true) })
        })
        .await
    }
}
