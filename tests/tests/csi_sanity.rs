//! Conformance of `csi-os` with the CSI spec: every case of the Go
//! csi-sanity suite (kubernetes-csi/csi-test, pkg/sanity) that applies to
//! the capabilities csi-os advertises, re-implemented over the real socket
//! with the generated tonic client, against a real Garage and real FUSE
//! mounts (needs root and /dev/fuse; CI runs as root). The checklist is
//! ../shared/csi-sanity.md; each test names the cases it covers.

use std::collections::HashMap;

use csi_shim::proto::controller_service_capability;
use csi_shim::proto::node_service_capability;
use csi_shim::proto::plugin_capability;
use csi_shim::proto::*;
use e2e::csi::{CsiPlugin, garage, garage_secrets, garage_store, keys_under, rwo, sc_params};
use e2e::unique_prefix;
use tonic::Code;

const GIB: i64 = 1024 * 1024 * 1024;

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn create_request(
    name: &str,
    params: HashMap<String, String>,
    secrets: HashMap<String, String>,
    capacity: Option<i64>,
) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_string(),
        capacity_range: capacity.map(|c| CapacityRange {
            required_bytes: c,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![rwo()],
        parameters: params,
        secrets,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity() {
    let plugin = CsiPlugin::start("identity").await;
    let mut csi = plugin.connect().await;
    // GetPluginCapabilities: only known capability types.
    let caps = csi
        .identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!caps.capabilities.is_empty());
    for cap in caps.capabilities {
        match cap.r#type {
            Some(plugin_capability::Type::Service(s)) => assert!(
                plugin_capability::service::Type::try_from(s.r#type)
                    .is_ok_and(|t| t != plugin_capability::service::Type::Unknown),
                "unknown service type {}",
                s.r#type
            ),
            other => panic!("unexpected plugin capability {other:?}"),
        }
    }
    // Probe: OK, ready optional.
    let probe = csi
        .identity
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(probe.ready, Some(false));
    // GetPluginInfo: name valid, vendor_version non-empty.
    let info = csi
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.os");
    assert!(info.name.len() <= 63);
    let bytes = info.name.as_bytes();
    assert!(bytes[0].is_ascii_alphabetic() && bytes[bytes.len() - 1].is_ascii_alphabetic());
    assert!(
        info.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    );
    assert!(!info.vendor_version.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn node_capabilities_info_and_argument_checks() {
    let plugin = CsiPlugin::start("nodeargs").await;
    let mut csi = plugin.connect().await;
    let caps = csi
        .node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    for cap in caps.capabilities {
        match cap.r#type {
            Some(node_service_capability::Type::Rpc(rpc)) => types.push(
                node_service_capability::rpc::Type::try_from(rpc.r#type)
                    .expect("known node capability"),
            ),
            other => panic!("node capability without an RPC type: {other:?}"),
        }
    }
    assert!(types.contains(&node_service_capability::rpc::Type::StageUnstageVolume));
    assert!(types.contains(&node_service_capability::rpc::Type::GetVolumeStats));
    let info = csi
        .node
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, plugin.node_id);

    let staging = plugin.staging_path("pv-args");
    let target = plugin.target_path("pod-args", "pv-args");
    // NodePublishVolume: no volume id, no target path, no capability.
    let publish = NodePublishVolumeRequest {
        volume_id: "bucket/vol".into(),
        staging_target_path: staging.clone(),
        target_path: target.clone(),
        volume_capability: Some(rwo()),
        ..Default::default()
    };
    for bad in [
        NodePublishVolumeRequest {
            volume_id: String::new(),
            ..publish.clone()
        },
        NodePublishVolumeRequest {
            target_path: String::new(),
            ..publish.clone()
        },
        NodePublishVolumeRequest {
            volume_capability: None,
            ..publish.clone()
        },
    ] {
        assert_eq!(
            code(csi.node.node_publish_volume(bad).await),
            Code::InvalidArgument
        );
    }
    // NodeUnpublishVolume: no volume id, no target path.
    assert_eq!(
        code(
            csi.node
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: String::new(),
                    target_path: target.clone(),
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            csi.node
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: "bucket/vol".into(),
                    target_path: String::new(),
                })
                .await
        ),
        Code::InvalidArgument
    );
    // NodeStageVolume: no volume id, no staging path, no capability.
    let stage = NodeStageVolumeRequest {
        volume_id: "bucket/vol".into(),
        staging_target_path: staging.clone(),
        volume_capability: Some(rwo()),
        ..Default::default()
    };
    for bad in [
        NodeStageVolumeRequest {
            volume_id: String::new(),
            ..stage.clone()
        },
        NodeStageVolumeRequest {
            staging_target_path: String::new(),
            ..stage.clone()
        },
        NodeStageVolumeRequest {
            volume_capability: None,
            ..stage.clone()
        },
    ] {
        assert_eq!(
            code(csi.node.node_stage_volume(bad).await),
            Code::InvalidArgument
        );
    }
    // NodeUnstageVolume: no volume id, no staging path.
    for (id, path) in [("", staging.as_str()), ("bucket/vol", "")] {
        assert_eq!(
            code(
                csi.node
                    .node_unstage_volume(NodeUnstageVolumeRequest {
                        volume_id: id.into(),
                        staging_target_path: path.into(),
                    })
                    .await
            ),
            Code::InvalidArgument
        );
    }
    // NodeGetVolumeStats: no id, no path, unknown volume.
    for (id, path) in [("", staging.as_str()), ("bucket/vol", "")] {
        assert_eq!(
            code(
                csi.node
                    .node_get_volume_stats(NodeGetVolumeStatsRequest {
                        volume_id: id.into(),
                        volume_path: path.into(),
                        staging_target_path: String::new(),
                    })
                    .await
            ),
            Code::InvalidArgument
        );
    }
    assert_eq!(
        code(
            csi.node
                .node_get_volume_stats(NodeGetVolumeStatsRequest {
                    volume_id: "bucket/no-such-volume".into(),
                    volume_path: staging.clone(),
                    staging_target_path: String::new(),
                })
                .await
        ),
        Code::NotFound
    );
    // Paths outside the kubelet dir, with `..`, or relative are refused.
    for path in [
        "/etc".to_string(),
        format!("{}/pods/../../x", plugin.kubelet.display()),
        "relative/path".to_string(),
    ] {
        let r = csi
            .node
            .node_publish_volume(NodePublishVolumeRequest {
                target_path: path.clone(),
                ..publish.clone()
            })
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{path}");
        let r = csi
            .node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: "bucket/vol".into(),
                target_path: path.clone(),
            })
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{path}");
    }
    assert!(std::path::Path::new("/etc").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_create_delete_validate() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-sanity-ctl");
    let plugin = CsiPlugin::start("controller").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let params = sc_params(g, &base);

    // ControllerGetCapabilities: known types only.
    let caps = csi
        .controller
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!caps.capabilities.is_empty());
    for cap in caps.capabilities {
        match cap.r#type {
            Some(controller_service_capability::Type::Rpc(rpc)) => {
                let t = controller_service_capability::rpc::Type::try_from(rpc.r#type)
                    .expect("known controller capability");
                assert_ne!(t, controller_service_capability::rpc::Type::Unknown);
            }
            other => panic!("controller capability without an RPC type: {other:?}"),
        }
    }

    // CreateVolume: no name, no capabilities.
    let mut bad = create_request("", params.clone(), secrets.clone(), None);
    assert_eq!(
        code(csi.controller.create_volume(bad.clone()).await),
        Code::InvalidArgument
    );
    bad.name = "sanity-nocaps".into();
    bad.volume_capabilities.clear();
    assert_eq!(
        code(csi.controller.create_volume(bad).await),
        Code::InvalidArgument
    );
    // An unknown daemon option is refused by name.
    let mut with_typo = params.clone();
    with_typo.insert("options".into(), "allow_others".into());
    let err = csi
        .controller
        .create_volume(create_request(
            "sanity-typo",
            with_typo,
            secrets.clone(),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("allow_others"), "{}", err.message());

    // Works without capacity (and with os-csi's `mounter` parameter, which
    // is handed on to NodeStage in the volume context).
    let mut with_mounter = params.clone();
    with_mounter.insert("mounter".into(), "s3fs".into());
    let v0 = csi
        .controller
        .create_volume(create_request(
            "sanity-nocap",
            with_mounter,
            secrets.clone(),
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(!v0.volume_id.is_empty());
    assert_eq!(
        v0.volume_context.get("mounter").map(String::as_str),
        Some("s3fs")
    );
    // Works with 1 GiB; same name + capacity = same id; another capacity = AlreadyExists.
    let v1 = csi
        .controller
        .create_volume(create_request(
            "sanity-1g",
            params.clone(),
            secrets.clone(),
            Some(GIB),
        ))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v1.capacity_bytes, GIB);
    let again = csi
        .controller
        .create_volume(create_request(
            "sanity-1g",
            params.clone(),
            secrets.clone(),
            Some(GIB),
        ))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, v1.volume_id);
    assert_eq!(
        code(
            csi.controller
                .create_volume(create_request(
                    "sanity-1g",
                    params.clone(),
                    secrets.clone(),
                    Some(2 * GIB)
                ))
                .await
        ),
        Code::AlreadyExists
    );
    // A 128-character name works and its id is stable.
    let long = format!("sanity-{}", "x".repeat(121));
    assert_eq!(long.len(), 128);
    let a = csi
        .controller
        .create_volume(create_request(&long, params.clone(), secrets.clone(), None))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let b = csi
        .controller
        .create_volume(create_request(&long, params.clone(), secrets.clone(), None))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(a.volume_id, b.volume_id);
    assert_eq!(a.volume_id, format!("{}/{}{long}", g.bucket(), base));

    // ValidateVolumeCapabilities: no id, no capabilities, supported, unknown.
    let validate = ValidateVolumeCapabilitiesRequest {
        volume_id: v1.volume_id.clone(),
        volume_capabilities: vec![rwo()],
        secrets: secrets.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(
            csi.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: String::new(),
                    ..validate.clone()
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            csi.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_capabilities: Vec::new(),
                    ..validate.clone()
                })
                .await
        ),
        Code::InvalidArgument
    );
    let confirmed = csi
        .controller
        .validate_volume_capabilities(validate.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(confirmed.confirmed.is_some(), "{}", confirmed.message);
    assert_eq!(
        code(
            csi.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: format!("{}/{}no-such-volume", g.bucket(), base),
                    ..validate.clone()
                })
                .await
        ),
        Code::NotFound
    );

    // DeleteVolume: no id; unknown and malformed ids are OK; real ones go.
    assert_eq!(
        code(
            csi.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: String::new(),
                    secrets: secrets.clone(),
                })
                .await
        ),
        Code::InvalidArgument
    );
    for id in [
        format!("{}/{}never-created", g.bucket(), base),
        "not a volume id/..".to_string(),
    ] {
        csi.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id,
                secrets: secrets.clone(),
            })
            .await
            .unwrap();
    }
    for v in [&v0, &v1, &a] {
        csi.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id.clone(),
                secrets: secrets.clone(),
            })
            .await
            .unwrap();
    }
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
    // Deleted means gone: validate now answers NotFound.
    assert_eq!(
        code(csi.controller.validate_volume_capabilities(validate).await),
        Code::NotFound
    );
}

/// The node lifecycle of csi-sanity: "should work" (with volume stats) and
/// "should be idempotent" (every call repeated), plus "NodeUnpublish
/// removes the target" and "volume not at that path -> NotFound".
#[tokio::test(flavor = "multi_thread")]
async fn node_lifecycle_works_and_is_idempotent() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-sanity-node");
    let plugin = CsiPlugin::start("lifecycle").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    for (round, repeat) in [(0, 1), (1, 10)] {
        let name = format!("sanity-life-{round}");
        let create = create_request(&name, sc_params(g, &base), secrets.clone(), Some(GIB));
        let mut vol = None;
        for _ in 0..repeat {
            vol = csi
                .controller
                .create_volume(create.clone())
                .await
                .unwrap()
                .into_inner()
                .volume;
        }
        let vol = vol.unwrap();
        let staging = plugin.staging_path(&name);
        let target = plugin.target_path(&format!("pod-{round}"), &name);
        let stage = NodeStageVolumeRequest {
            volume_id: vol.volume_id.clone(),
            staging_target_path: staging.clone(),
            volume_capability: Some(rwo()),
            secrets: secrets.clone(),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        };
        for _ in 0..repeat {
            csi.node
                .node_stage_volume(stage.clone())
                .await
                .unwrap_or_else(|e| panic!("NodeStageVolume: {e}\n{}", plugin.log_tail()));
        }
        let publish = NodePublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            staging_target_path: staging.clone(),
            target_path: target.clone(),
            volume_capability: Some(rwo()),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        };
        for _ in 0..repeat {
            csi.node.node_publish_volume(publish.clone()).await.unwrap();
        }
        std::fs::write(format!("{target}/hello"), b"world").unwrap();
        for path in [&staging, &target] {
            let stats = csi
                .node
                .node_get_volume_stats(NodeGetVolumeStatsRequest {
                    volume_id: vol.volume_id.clone(),
                    volume_path: path.clone(),
                    staging_target_path: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!stats.usage.is_empty(), "usage present");
        }
        // The volume is not at another (existing) path.
        let elsewhere = plugin.staging_path("elsewhere");
        assert_eq!(
            code(
                csi.node
                    .node_get_volume_stats(NodeGetVolumeStatsRequest {
                        volume_id: vol.volume_id.clone(),
                        volume_path: elsewhere,
                        staging_target_path: String::new(),
                    })
                    .await
            ),
            Code::NotFound
        );
        for _ in 0..repeat {
            csi.node
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    target_path: target.clone(),
                })
                .await
                .unwrap();
        }
        assert!(
            !std::path::Path::new(&target).exists(),
            "NodeUnpublish removes the target"
        );
        for _ in 0..repeat {
            csi.node
                .node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    staging_target_path: staging.clone(),
                })
                .await
                .unwrap();
        }
        assert!(e2e::mount::daemons_for(std::path::Path::new(&staging)).is_empty());
        for _ in 0..repeat {
            csi.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    secrets: secrets.clone(),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            keys_under(store.as_ref(), &base).await,
            Vec::<String>::new()
        );
    }
}

/// `--mode node` (the DaemonSet) still answers ControllerGetCapabilities,
/// as sanity tools and sidecars call it, but advertises nothing and serves
/// no controller RPC; `--mode controller` (the provisioner Deployment)
/// advertises the controller service and serves no node RPC.
#[tokio::test(flavor = "multi_thread")]
async fn node_only_and_controller_only_modes() {
    let g = garage().await;
    let node = CsiPlugin::start_mode("mode-node", "node").await;
    let mut csi = node.connect().await;
    let caps = csi
        .controller
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(caps.capabilities.is_empty());
    let plugin_caps = csi
        .identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(plugin_caps.capabilities.is_empty());
    let create = create_request(
        "mode-node",
        sc_params(g, "e2e/never"),
        garage_secrets(g),
        None,
    );
    assert_eq!(
        code(csi.controller.create_volume(create.clone()).await),
        Code::Unimplemented
    );

    let controller = CsiPlugin::start_mode("mode-ctl", "controller").await;
    let mut csi = controller.connect().await;
    let plugin_caps = csi
        .identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plugin_caps.capabilities.len(), 1);
    let staging = controller.staging_path("pv-mode");
    let stage = NodeStageVolumeRequest {
        volume_id: format!("{}/e2e/never", g.bucket()),
        staging_target_path: staging,
        volume_capability: Some(rwo()),
        secrets: garage_secrets(g),
        ..Default::default()
    };
    assert_eq!(
        code(csi.node.node_stage_volume(stage).await),
        Code::Unimplemented
    );
}

/// Concurrent NodeStageVolume calls for one volume (a CO retrying while the
/// first is still mounting) start one daemon, not two.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_stage_calls_start_one_daemon() {
    let g = garage().await;
    let base = unique_prefix("csi-sanity-concurrent");
    let plugin = CsiPlugin::start("concurrent").await;
    let csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let vol = csi
        .controller
        .clone()
        .create_volume(create_request(
            "concurrent",
            sc_params(g, &base),
            secrets.clone(),
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let staging = plugin.staging_path("concurrent");
    let stage = NodeStageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.clone(),
        volume_capability: Some(rwo()),
        secrets: secrets.clone(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    };
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let mut node = csi.node.clone();
            let stage = stage.clone();
            tokio::spawn(async move { node.node_stage_volume(stage).await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        e2e::mount::daemons_for(std::path::Path::new(&staging)).len(),
        1,
        "one daemon per volume"
    );
    let mut node = csi.node.clone();
    node.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging,
    })
    .await
    .unwrap();
    csi.controller
        .clone()
        .delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id,
            secrets,
        })
        .await
        .unwrap();
}
