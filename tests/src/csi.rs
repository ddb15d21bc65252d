//! Running the real `csi-os` plugin for the CSI tests and talking to it.
//!
//! [`CsiPlugin`] starts the binary in its own process group (as a
//! container's processes are) with a private kubelet directory, state
//! directory and socket under one temporary root, and can kill -9 the
//! whole group and start it again, as a container restart does. On drop it
//! kills the plugin, unmounts whatever is still mounted under its root and
//! stops the daemons it left behind. [`Csi`] holds tonic clients of the
//! three services, connected over the unix socket.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csi_shim::proto::VolumeCapability;
use csi_shim::proto::controller_client::ControllerClient;
use csi_shim::proto::identity_client::IdentityClient;
use csi_shim::proto::node_client::NodeClient;
use csi_shim::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use ossfs_rs::store::{ListRequest, ObjectStore};
use tonic::transport::Channel;

use crate::backend::Backend;
use crate::garage::Garage;
use crate::mount::{daemons_for, ossfs_binary};

/// How long the plugin may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `csi-os` binary: `CSI_OS_BIN`, else the one cargo built next to
/// this test executable.
pub fn csi_os_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CSI_OS_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current exe: {e}"));
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("csi-os"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the csi-os binary was not found next to {}: build it with `cargo build -p csi-shim` \
                 (or run `cargo test --workspace`), or point CSI_OS_BIN at it",
                exe.display()
            )
        })
}

/// Clients of the three services on one connection.
#[derive(Clone)]
pub struct Csi {
    pub identity: IdentityClient<Channel>,
    pub controller: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
}

/// A running `csi-os` with its own kubelet dir, state dir and socket.
pub struct CsiPlugin {
    root: tempfile::TempDir,
    /// Canonical kubelet directory given to the plugin.
    pub kubelet: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub node_id: String,
    /// `--mode`: all, controller or node.
    mode: &'static str,
    log: PathBuf,
    child: Option<Child>,
}

impl CsiPlugin {
    /// Start a plugin serving every service with the direct launcher.
    pub async fn start(name: &str) -> CsiPlugin {
        Self::start_mode(name, "all").await
    }

    /// Start a plugin with `--mode mode` (all, controller, node).
    pub async fn start_mode(name: &str, mode: &'static str) -> CsiPlugin {
        let root = tempfile::Builder::new()
            .prefix(&format!("csi-e2e-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary root: {e}"));
        let kubelet = root.path().join("kubelet");
        std::fs::create_dir_all(kubelet.join("pods")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let kubelet = kubelet
            .canonicalize()
            .unwrap_or_else(|e| panic!("canonicalize: {e}"));
        let mut plugin = CsiPlugin {
            state: root.path().join("state"),
            socket: root.path().join("csi/csi.sock"),
            log: root.path().join("csi-os.log"),
            node_id: format!("node-{name}"),
            mode,
            kubelet,
            root,
            child: None,
        };
        plugin.spawn().await;
        plugin
    }

    /// Start (again) the plugin process and wait for its socket.
    pub async fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(csi_os_binary())
            .arg(format!("--endpoint=unix://{}", self.socket.display()))
            .arg(format!("--node-id={}", self.node_id))
            .arg(format!("--state-dir={}", self.state.display()))
            .arg(format!("--kubelet-dir={}", self.kubelet.display()))
            .arg(format!("--ossfs-bin={}", ossfs_binary().display()))
            .arg("--daemon-launcher=direct")
            .arg(format!("--mode={}", self.mode))
            .env("CSI_OS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, like the processes of a container.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start csi-os: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::UnixStream::connect(&self.socket).await.is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("csi-os exited with {status} at start:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "csi-os did not open its socket within {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9 the plugin's whole process group, as a container restart does.
    pub fn kill_group(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// The plugin's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Clients connected over the socket.
    pub async fn connect(&self) -> Csi {
        let path = self.socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://csi.invalid")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to csi-os: {e}"));
        Csi {
            identity: IdentityClient::new(channel.clone()),
            controller: ControllerClient::new(channel.clone()),
            node: NodeClient::new(channel),
        }
    }

    /// The end of the plugin's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The whole plugin log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The temporary root (kubelet dir, state dir, socket, log).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A staging path as kubelet makes it (kubelet creates the directory).
    pub fn staging_path(&self, pv: &str) -> String {
        let p = self
            .kubelet
            .join("plugins/kubernetes.io/csi/csi.os")
            .join(pv)
            .join("globalmount");
        // A dead FUSE mount there (ENOTCONN, or EEXIST from mkdir) is fine:
        // it is what a test of a dead daemon stages again.
        if let Err(e) = std::fs::create_dir_all(&p)
            && !matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTCONN))
        {
            panic!("mkdir {}: {e}", p.display());
        }
        p.display().to_string()
    }

    /// A pod's target path (its parent exists; the plugin creates the target).
    pub fn target_path(&self, pod: &str, pv: &str) -> String {
        let parent = self
            .kubelet
            .join("pods")
            .join(pod)
            .join("volumes/kubernetes.io~csi")
            .join(pv);
        std::fs::create_dir_all(&parent)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        parent.join("mount").display().to_string()
    }
}

impl Drop for CsiPlugin {
    fn drop(&mut self) {
        self.kill_group();
        // Unmount whatever a failed test left under the root, deepest first,
        // then make sure no daemon of ours is left running.
        let root = self.root.path().to_path_buf();
        let mut mounted: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
            .filter(|p| p.starts_with(&root) || p.starts_with(&self.kubelet))
            .collect();
        mounted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mp in &mounted {
            let _ = nix_umount_detach(mp);
        }
        for mp in &mounted {
            for pid in daemons_for(mp) {
                // SAFETY: kill(2) on a pid we found serving our mount point.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

fn nix_umount_detach(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: umount2 with a valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The Secret of os-csi's form for the shared Garage.
pub fn garage_secrets(garage: &Garage) -> HashMap<String, String> {
    HashMap::from([
        (
            "accessKeyID".to_string(),
            garage.access_key_id().to_string(),
        ),
        (
            "secretAccessKey".to_string(),
            garage.secret_access_key().to_string(),
        ),
        ("endpoint".to_string(), garage.endpoint().to_string()),
        ("region".to_string(), garage.region().to_string()),
    ])
}

/// A filesystem capability with `mode`.
pub fn mount_capability(mode: access_mode::Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

/// The single-node-writer capability kubelet sends for RWO volumes.
pub fn rwo() -> VolumeCapability {
    mount_capability(access_mode::Mode::SingleNodeWriter)
}

/// StorageClass parameters: the Garage bucket, volumes under `base`.
pub fn sc_params(garage: &Garage, base: &str) -> HashMap<String, String> {
    HashMap::from([
        ("bucket".to_string(), garage.bucket().to_string()),
        ("prefix".to_string(), base.trim_end_matches('/').to_string()),
    ])
}

/// The shared Garage, started off the async runtime.
pub async fn garage() -> &'static Garage {
    tokio::task::spawn_blocking(Garage::shared)
        .await
        .unwrap_or_else(|e| panic!("starting Garage panicked: {e}"))
        .unwrap_or_else(|e| panic!("Garage did not start: {e}"))
}

/// A store client for the shared Garage's bucket.
pub async fn garage_store() -> Arc<dyn ObjectStore> {
    Backend::garage().await.store()
}

/// Every key under `prefix`.
pub async fn keys_under(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = ListRequest {
            prefix: prefix.to_string(),
            delimiter: None,
            max_keys: Some(1000),
            start_after: None,
        };
        let page = store
            .list_page(&req, token.as_deref())
            .await
            .unwrap_or_else(|e| panic!("listing {prefix:?}: {e}"));
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_token {
            Some(t) => token = Some(t),
            None => return keys,
        }
    }
}
