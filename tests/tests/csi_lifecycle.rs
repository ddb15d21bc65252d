//! `csi-os` end to end with real mounts on a real Garage (needs root and
//! /dev/fuse; CI runs as root): the volume lifecycle through two targets,
//! isolation of volumes, read-only publishing, the volume ids and Secrets
//! of os-csi and k8s-csi-s3, survival of a kill -9 of the plugin's whole
//! process group while a reader in another mount namespace keeps reading,
//! and where the secret key may and may not appear.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use csi_shim::proto::volume_capability::access_mode::Mode;
use csi_shim::proto::*;
use e2e::csi::{
    Csi, CsiPlugin, garage, garage_secrets, garage_store, keys_under, mount_capability, rwo,
    sc_params,
};
use e2e::mount::{daemons_for, is_mounted};
use e2e::unique_prefix;
use ossfs_rs::store::PutOptions;

/// The supervisor and worker pids of the daemon serving `staging`.
fn daemon_pids(staging: &str) -> (i32, i32) {
    let out = Command::new(e2e::mount::ossfs_binary())
        .args(["status", staging, "--json"])
        .output()
        .expect("ossfs-rs status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let sup = &rows[0]["supervisor"];
    (
        sup["pid"].as_i64().unwrap_or(0) as i32,
        sup["worker_pid"].as_i64().unwrap_or(0) as i32,
    )
}

/// Kill a volume's supervisor and worker so that neither can replace the
/// other: stop the worker, kill the supervisor, then kill the worker.
fn kill_whole_daemon(staging: &str) -> (i32, i32) {
    let (sup, worker) = daemon_pids(staging);
    assert!(sup > 0 && worker > 0, "no daemon pids for {staging}");
    // SAFETY: kill(2) on the pids `ossfs-rs status` reports for our volume.
    unsafe {
        libc::kill(worker, libc::SIGSTOP);
        libc::kill(sup, libc::SIGKILL);
        libc::kill(worker, libc::SIGKILL);
    }
    (sup, worker)
}

/// A volume created, staged and known by its paths.
struct Staged {
    id: String,
    context: HashMap<String, String>,
    staging: String,
}

async fn create(
    csi: &mut Csi,
    name: &str,
    params: HashMap<String, String>,
    secrets: &HashMap<String, String>,
) -> Volume {
    csi.controller
        .create_volume(CreateVolumeRequest {
            name: name.to_string(),
            volume_capabilities: vec![rwo()],
            parameters: params,
            secrets: secrets.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("CreateVolume {name}: {e}"))
        .into_inner()
        .volume
        .expect("a volume")
}

async fn stage(
    plugin: &CsiPlugin,
    csi: &mut Csi,
    id: &str,
    context: HashMap<String, String>,
    secrets: &HashMap<String, String>,
    pv: &str,
) -> Staged {
    let staging = plugin.staging_path(pv);
    csi.node
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: id.to_string(),
            staging_target_path: staging.clone(),
            volume_capability: Some(rwo()),
            secrets: secrets.clone(),
            volume_context: context.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("NodeStageVolume {id}: {e}\n{}", plugin.log_tail()));
    Staged {
        id: id.to_string(),
        context,
        staging,
    }
}

async fn publish(csi: &mut Csi, vol: &Staged, target: &str, cap: VolumeCapability, readonly: bool) {
    csi.node
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: vol.id.clone(),
            staging_target_path: vol.staging.clone(),
            target_path: target.to_string(),
            volume_capability: Some(cap),
            readonly,
            volume_context: vol.context.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("NodePublishVolume {} at {target}: {e}", vol.id));
}

async fn unpublish(csi: &mut Csi, vol: &Staged, target: &str) {
    csi.node
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: vol.id.clone(),
            target_path: target.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("NodeUnpublishVolume {target}: {e}"));
    assert!(!Path::new(target).exists(), "{target} removed");
}

async fn unstage(csi: &mut Csi, vol: &Staged) {
    csi.node
        .node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: vol.id.clone(),
            staging_target_path: vol.staging.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("NodeUnstageVolume {}: {e}", vol.id));
    assert!(
        !is_mounted(Path::new(&vol.staging)),
        "{} unmounted",
        vol.staging
    );
    assert!(
        daemons_for(Path::new(&vol.staging)).is_empty(),
        "the daemon of {} exited",
        vol.staging
    );
}

async fn delete(csi: &mut Csi, id: &str, secrets: &HashMap<String, String>) {
    csi.controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: id.to_string(),
            secrets: secrets.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("DeleteVolume {id}: {e}"));
}

/// The key prefix of a volume id `bucket/prefix`.
fn prefix_of(id: &str) -> String {
    format!("{}/", id.split_once('/').expect("bucket/prefix").1)
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_through_two_targets_twice() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-life");
    let plugin = CsiPlugin::start("life").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    for round in 0..2 {
        let name = format!("pvc-life-{round}");
        let vol = create(&mut csi, &name, sc_params(g, &base), &secrets).await;
        let staged = stage(
            &plugin,
            &mut csi,
            &vol.volume_id,
            vol.volume_context,
            &secrets,
            &name,
        )
        .await;
        let t1 = plugin.target_path(&format!("pod-a{round}"), &name);
        let t2 = plugin.target_path(&format!("pod-b{round}"), &name);
        publish(&mut csi, &staged, &t1, rwo(), false).await;
        publish(
            &mut csi,
            &staged,
            &t2,
            mount_capability(Mode::MultiNodeMultiWriter),
            false,
        )
        .await;

        std::fs::create_dir(format!("{t1}/dir")).unwrap();
        std::fs::write(format!("{t1}/dir/file.txt"), format!("round {round}")).unwrap();
        assert_eq!(
            std::fs::read_to_string(format!("{t2}/dir/file.txt")).unwrap(),
            format!("round {round}")
        );
        let prefix = prefix_of(&vol.volume_id);
        let body = store
            .get(&format!("{prefix}dir/file.txt"), None)
            .await
            .unwrap_or_else(|e| panic!("the file is not under the volume's prefix {prefix}: {e}"))
            .collect()
            .await
            .unwrap();
        assert_eq!(&body[..], format!("round {round}").as_bytes());

        unpublish(&mut csi, &staged, &t1).await;
        // The other target still works after the first is gone.
        assert!(Path::new(&format!("{t2}/dir/file.txt")).exists());
        unpublish(&mut csi, &staged, &t2).await;
        unstage(&mut csi, &staged).await;
        delete(&mut csi, &vol.volume_id, &secrets).await;
        assert_eq!(
            keys_under(store.as_ref(), &prefix).await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_volumes_cannot_see_each_other() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-iso");
    let plugin = CsiPlugin::start("iso").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let a = create(&mut csi, "pvc-a", sc_params(g, &base), &secrets).await;
    let b = create(&mut csi, "pvc-b", sc_params(g, &base), &secrets).await;
    let sa = stage(
        &plugin,
        &mut csi,
        &a.volume_id,
        a.volume_context,
        &secrets,
        "pvc-a",
    )
    .await;
    let sb = stage(
        &plugin,
        &mut csi,
        &b.volume_id,
        b.volume_context,
        &secrets,
        "pvc-b",
    )
    .await;
    let ta = plugin.target_path("pod-a", "pvc-a");
    let tb = plugin.target_path("pod-b", "pvc-b");
    publish(&mut csi, &sa, &ta, rwo(), false).await;
    publish(&mut csi, &sb, &tb, rwo(), false).await;
    std::fs::write(format!("{ta}/only-in-a"), b"a").unwrap();
    std::fs::write(format!("{tb}/only-in-b"), b"b").unwrap();
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&ta), vec!["only-in-a"]);
    assert_eq!(names(&tb), vec!["only-in-b"]);
    assert!(std::fs::metadata(format!("{tb}/../only-in-a")).is_err());
    assert_eq!(
        keys_under(store.as_ref(), &prefix_of(&a.volume_id)).await,
        vec![
            prefix_of(&a.volume_id),
            format!("{}only-in-a", prefix_of(&a.volume_id))
        ]
    );
    unpublish(&mut csi, &sa, &ta).await;
    unpublish(&mut csi, &sb, &tb).await;
    unstage(&mut csi, &sa).await;
    unstage(&mut csi, &sb).await;
    delete(&mut csi, &a.volume_id, &secrets).await;
    delete(&mut csi, &b.volume_id, &secrets).await;
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_publish_refuses_writes() {
    let g = garage().await;
    let base = unique_prefix("csi-ro");
    let plugin = CsiPlugin::start("ro").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let v = create(&mut csi, "pvc-ro", sc_params(g, &base), &secrets).await;
    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context,
        &secrets,
        "pvc-ro",
    )
    .await;
    let rw = plugin.target_path("pod-rw", "pvc-ro");
    let ro = plugin.target_path("pod-ro", "pvc-ro");
    let ro_mode = plugin.target_path("pod-ro-mode", "pvc-ro");
    publish(&mut csi, &s, &rw, rwo(), false).await;
    publish(&mut csi, &s, &ro, rwo(), true).await;
    publish(
        &mut csi,
        &s,
        &ro_mode,
        mount_capability(Mode::MultiNodeReaderOnly),
        false,
    )
    .await;
    std::fs::write(format!("{rw}/written"), b"rw").unwrap();
    for target in [&ro, &ro_mode] {
        assert_eq!(std::fs::read(format!("{target}/written")).unwrap(), b"rw");
        let err = std::fs::write(format!("{target}/refused"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{target}: {err}");
        let err = std::fs::remove_file(format!("{target}/written")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{target}: {err}");
    }
    // The same target published again with another read-only setting.
    let again = csi
        .node
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: s.id.clone(),
            staging_target_path: s.staging.clone(),
            target_path: ro.clone(),
            volume_capability: Some(rwo()),
            readonly: false,
            ..Default::default()
        })
        .await;
    assert_eq!(again.unwrap_err().code(), tonic::Code::AlreadyExists);
    for target in [&rw, &ro, &ro_mode] {
        unpublish(&mut csi, &s, target).await;
    }
    unstage(&mut csi, &s).await;
    delete(&mut csi, &v.volume_id, &secrets).await;
}

/// One pre-existing volume of the compatibility test.
struct Case {
    what: &'static str,
    id: String,
    secrets: HashMap<String, String>,
    context: HashMap<String, String>,
    prefix: String,
}

/// PVs made by os-csi (`bucket/pvc-name`), by k8s-csi-s3 (`bucket/prefix`)
/// and static ones (`bucket` plus a prefix attribute) stage and publish
/// without CreateVolume, with Secrets in os-csi's form. Garage speaks S3,
/// so the `mounter: cosfs`/`ossfs` Secrets carry `provider: s3`, which
/// wins; without it the COS dialect is chosen and Garage refuses it, which
/// shows the mapping is applied (the mapping itself is unit-tested in
/// csi-shim's `secrets` module).
#[tokio::test(flavor = "multi_thread")]
async fn os_csi_and_k8s_csi_s3_volumes_and_secrets() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-compat");
    let plugin = CsiPlugin::start("compat").await;
    let mut csi = plugin.connect().await;
    let os_csi_name = format!("pvc-{}", &base[base.len() - 9..base.len() - 1]);
    let plain = garage_secrets(g);
    let with = |pairs: &[(&str, &str)]| {
        let mut s = plain.clone();
        for (k, v) in pairs {
            s.insert(k.to_string(), v.to_string());
        }
        s
    };
    let cases = vec![
        Case {
            what: "os-csi id, plain Secret",
            id: format!("{}/{os_csi_name}", g.bucket()),
            secrets: plain.clone(),
            context: HashMap::new(),
            prefix: format!("{os_csi_name}/"),
        },
        Case {
            what: "k8s-csi-s3 id, mounter geesefs as a volume attribute",
            id: format!("{}/{}k8s", g.bucket(), base),
            secrets: plain.clone(),
            context: HashMap::from([("mounter".to_string(), "geesefs".to_string())]),
            prefix: format!("{base}k8s/"),
        },
        Case {
            what: "static bucket + prefix attribute, mounter cosfs + provider s3",
            id: g.bucket().to_string(),
            secrets: with(&[("mounter", "cosfs"), ("provider", "s3")]),
            context: HashMap::from([("prefix".to_string(), format!("{base}static"))]),
            prefix: format!("{base}static/"),
        },
        Case {
            what: "static bucket/prefix handle, mounter ossfs + provider s3, options",
            id: format!("{}/{}ossfs", g.bucket(), base),
            secrets: with(&[("mounter", "ossfs"), ("provider", "s3")]),
            context: HashMap::from([(
                "options".to_string(),
                "-o umask=022 -o max_stat_cache_size=1000".to_string(),
            )]),
            prefix: format!("{base}ossfs/"),
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let Case {
            what,
            id,
            secrets,
            context,
            prefix,
        } = case;
        store
            .put(
                &format!("{prefix}existing.txt"),
                Bytes::from(what.to_string()),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let pv = format!("pv-compat-{i}");
        let s = stage(&plugin, &mut csi, &id, context, &secrets, &pv).await;
        let target = plugin.target_path(&format!("pod-compat-{i}"), &pv);
        publish(&mut csi, &s, &target, rwo(), false).await;
        assert_eq!(
            std::fs::read_to_string(format!("{target}/existing.txt")).unwrap(),
            what,
            "{what}"
        );
        std::fs::write(format!("{target}/new.txt"), b"new").unwrap();
        unpublish(&mut csi, &s, &target).await;
        unstage(&mut csi, &s).await;
        assert_eq!(
            keys_under(store.as_ref(), &prefix).await,
            vec![format!("{prefix}existing.txt"), format!("{prefix}new.txt")],
            "{what}"
        );
        for key in ["existing.txt", "new.txt"] {
            store.delete(&format!("{prefix}{key}")).await.unwrap();
        }
    }
    // mounter: cosfs alone picks the COS dialect, which Garage refuses.
    let staging = plugin.staging_path("pv-cos-dialect");
    let err = csi
        .node
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: format!("{}/{}cos", g.bucket(), base),
            staging_target_path: staging.clone(),
            volume_capability: Some(rwo()),
            secrets: with(&[("mounter", "cosfs")]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    eprintln!(
        "mounter cosfs alone against Garage: {:?}: {}",
        err.code(),
        err.message()
    );
    assert_eq!(err.code(), tonic::Code::Internal, "{}", err.message());
    assert!(err.message().contains("provider cos"), "{}", err.message());
    assert!(!is_mounted(Path::new(&staging)));
    // An unknown option fails NodeStage with InvalidArgument naming it.
    let err = csi
        .node
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: format!("{}/{}typo", g.bucket(), base),
            staging_target_path: staging,
            volume_capability: Some(rwo()),
            secrets: plain.clone(),
            volume_context: HashMap::from([(
                "options".to_string(),
                "umask=022,allow_others".to_string(),
            )]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("allow_others"), "{}", err.message());
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}

/// A reader in another mount namespace (as a pod is) reads through its
/// target while the plugin is killed with SIGKILL together with its whole
/// process group and started again: no read fails, and the restarted
/// plugin unpublishes and unstages the volume it did not stage itself.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_kill9_and_restart_keeps_a_pod_reading() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-survive");
    let mut plugin = CsiPlugin::start("survive").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let v = create(&mut csi, "pvc-survive", sc_params(g, &base), &secrets).await;
    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context,
        &secrets,
        "pvc-survive",
    )
    .await;
    let target = plugin.target_path("pod-reader", "pvc-survive");
    publish(&mut csi, &s, &target, rwo(), false).await;
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(format!("{target}/data.bin"), &data).unwrap();
    let daemons_before = daemons_for(Path::new(&s.staging));
    assert_eq!(daemons_before.len(), 1, "one daemon per volume");

    let stop = plugin.root().join("stop-reader");
    let script = format!(
        "ok=0; err=0; while [ ! -e '{stop}' ]; do \
           if cmp -s '{target}/data.bin' '{expected}'; then ok=$((ok+1)); else err=$((err+1)); fi; \
         done; echo \"$ok $err\"",
        stop = stop.display(),
        expected = {
            let p = plugin.root().join("expected.bin");
            std::fs::write(&p, &data).unwrap();
            p.display().to_string()
        },
    );
    let mut reader = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux) runs the reader in its own mount namespace");
    tokio::time::sleep(Duration::from_secs(1)).await;

    plugin.kill_group();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        daemons_for(Path::new(&s.staging)),
        daemons_before,
        "the daemon outlived the plugin's process group"
    );
    plugin.spawn().await;
    let mut csi = plugin.connect().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    std::fs::write(&stop, b"").unwrap();
    let mut out = String::new();
    reader
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(reader.wait().unwrap().success());
    let counts: Vec<u64> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 2, "reader output {out:?}");
    eprintln!(
        "reader across the plugin restart: {} full reads, {} errors",
        counts[0], counts[1]
    );
    assert!(counts[0] > 0, "the reader read ({out})");
    assert_eq!(
        counts[1], 0,
        "read errors across the plugin restart ({out})"
    );
    assert!(
        plugin.log().contains("re-adopted a staged volume"),
        "{}",
        plugin.log_tail()
    );

    // The restarted plugin cleans up the volume it did not stage.
    unpublish(&mut csi, &s, &target).await;
    unstage(&mut csi, &s).await;
    delete(&mut csi, &v.volume_id, &secrets).await;
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}

/// Files under `dir` (not descending into other filesystems) that others
/// may read.
fn world_readable_files(dir: &Path, dev: u64, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        if meta.is_dir() {
            world_readable_files(&path, dev, out);
        } else if meta.is_file() && meta.mode() & 0o004 != 0 {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_key_stays_out_of_argv_env_logs_and_readable_files() {
    let g = garage().await;
    let base = unique_prefix("csi-secret");
    let plugin = CsiPlugin::start("secret").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let secret = g.secret_access_key().as_bytes().to_vec();
    let v = create(&mut csi, "pvc-secret", sc_params(g, &base), &secrets).await;
    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context,
        &secrets,
        "pvc-secret",
    )
    .await;
    let target = plugin.target_path("pod-secret", "pvc-secret");
    publish(&mut csi, &s, &target, rwo(), false).await;
    assert_eq!(daemons_for(Path::new(&s.staging)).len(), 1);

    // No process's argv or environment.
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                assert!(
                    !contains(&bytes, &secret),
                    "/proc/{name}/{file} holds the secret key"
                );
            }
        }
    }
    // No file others can read under the plugin's root (kubelet dir, state
    // dir, credential directories), and none of the plugin's own records
    // or logs at all.
    let root = plugin.root();
    let mut readable = Vec::new();
    world_readable_files(root, std::fs::metadata(root).unwrap().dev(), &mut readable);
    for path in readable {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !contains(&bytes, &secret),
            "{} (readable by others) holds the secret",
            path.display()
        );
    }
    let state = &plugin.state;
    for dir in ["volumes", "logs"] {
        for entry in std::fs::read_dir(state.join(dir))
            .unwrap()
            .filter_map(Result::ok)
        {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !contains(&bytes, &secret),
                "{} holds the secret",
                entry.path().display()
            );
        }
    }
    assert!(
        !contains(plugin.log().as_bytes(), &secret),
        "the plugin log holds the secret"
    );
    // The credential hand-over directory is gone once the mount is up.
    assert_eq!(std::fs::read_dir(state.join("run")).unwrap().count(), 0);
    assert_eq!(std::fs::metadata(state).unwrap().mode() & 0o777, 0o700);

    unpublish(&mut csi, &s, &target).await;
    unstage(&mut csi, &s).await;
    delete(&mut csi, &v.volume_id, &secrets).await;
}

/// A daemon killed with SIGKILL leaves a dead mount (ENOTCONN) that this
/// release cannot revive in place (that needs the supervisor's fd
/// hand-over): a restarted plugin names the affected pod, and the next
/// NodeStageVolume mounts the volume again and re-binds its known target.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_daemon_is_reported_and_restaged() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-dead");
    let mut plugin = CsiPlugin::start("dead").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let v = create(&mut csi, "pvc-dead", sc_params(g, &base), &secrets).await;
    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context.clone(),
        &secrets,
        "pvc-dead",
    )
    .await;
    let target = plugin.target_path("pod-uid-dead", "pvc-dead");
    publish(&mut csi, &s, &target, rwo(), false).await;
    std::fs::write(format!("{target}/kept"), b"kept").unwrap();

    assert_eq!(daemons_for(Path::new(&s.staging)).len(), 1);
    // The plugin goes first (a restart loses its copy of the connection),
    // then the whole daemon: supervisor and worker together.
    plugin.kill_group();
    kill_whole_daemon(&s.staging);
    let mut dead = false;
    for _ in 0..100 {
        if let Err(e) = std::fs::metadata(format!("{target}/kept"))
            && e.raw_os_error() == Some(libc::ENOTCONN)
        {
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead, "the target reports ENOTCONN once its daemon is gone");

    plugin.spawn().await;
    let mut csi = plugin.connect().await;
    let log = plugin.log();
    assert!(
        log.contains("the daemon of a staged volume is gone") && log.contains("pod-uid-dead"),
        "{}",
        plugin.log_tail()
    );
    // Publishing onto a dead staging mount is refused until it is staged again.
    let refused = csi
        .node
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: s.id.clone(),
            staging_target_path: s.staging.clone(),
            target_path: plugin.target_path("pod-uid-other", "pvc-dead"),
            volume_capability: Some(rwo()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context,
        &secrets,
        "pvc-dead",
    )
    .await;
    assert_eq!(std::fs::read(format!("{target}/kept")).unwrap(), b"kept");
    assert_eq!(daemons_for(Path::new(&s.staging)).len(), 1);
    unpublish(&mut csi, &s, &target).await;
    unstage(&mut csi, &s).await;
    delete(&mut csi, &v.volume_id, &secrets).await;
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_daemon_killed_is_restarted_on_the_kept_connection() {
    let g = garage().await;
    let store = garage_store().await;
    let base = unique_prefix("csi-kept");
    let plugin = CsiPlugin::start("kept").await;
    let mut csi = plugin.connect().await;
    let secrets = garage_secrets(g);
    let v = create(&mut csi, "pvc-kept", sc_params(g, &base), &secrets).await;
    let s = stage(
        &plugin,
        &mut csi,
        &v.volume_id,
        v.volume_context,
        &secrets,
        "pvc-kept",
    )
    .await;
    let target = plugin.target_path("pod-kept", "pvc-kept");
    publish(&mut csi, &s, &target, rwo(), false).await;
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 241) as u8).collect();
    std::fs::write(format!("{target}/data.bin"), &data).unwrap();
    let expected = plugin.root().join("expected-kept.bin");
    std::fs::write(&expected, &data).unwrap();
    let stop = plugin.root().join("stop-kept");
    let script = format!(
        "ok=0; err=0; while [ ! -e '{stop}' ]; do \
           if cmp -s '{target}/data.bin' '{expected}'; then ok=$((ok+1)); else err=$((err+1)); fi; \
         done; echo \"$ok $err\"",
        stop = stop.display(),
        expected = expected.display(),
    );
    let mut reader = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux) runs the reader in its own mount namespace");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (old_sup, old_worker) = kill_whole_daemon(&s.staging);
    // The plugin's watchdog starts a new daemon on its copy of the fd.
    let mut replaced = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (sup, worker) = daemon_pids(&s.staging);
        if sup != old_sup && worker != old_worker && sup > 0 && worker > 0 {
            replaced = Some((sup, worker));
            break;
        }
    }
    assert!(
        replaced.is_some(),
        "no new daemon on the kept connection\n{}",
        plugin.log_tail()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(&stop, b"").unwrap();
    let mut out = String::new();
    reader
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(reader.wait().unwrap().success());
    let counts: Vec<u64> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 2, "reader output {out:?}");
    eprintln!(
        "reader across the daemon's death: {} full reads, {} errors",
        counts[0], counts[1]
    );
    assert!(counts[0] > 0, "the reader read ({out})");
    assert_eq!(
        counts[1], 0,
        "read errors across the daemon's death ({out})"
    );
    assert!(
        plugin
            .log()
            .contains("daemon restarted on the kept connection"),
        "{}",
        plugin.log_tail()
    );
    // Writes work through the new daemon, and the volume still unstages.
    std::fs::write(format!("{target}/after"), b"after").unwrap();
    unpublish(&mut csi, &s, &target).await;
    unstage(&mut csi, &s).await;
    assert!(!is_mounted(Path::new(&s.staging)));
    delete(&mut csi, &v.volume_id, &secrets).await;
    assert_eq!(
        keys_under(store.as_ref(), &base).await,
        Vec::<String>::new()
    );
}
