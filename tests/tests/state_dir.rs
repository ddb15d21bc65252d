//! The state directory on a shared host: a directory (or a link) another
//! user made where the daemon keeps a mount's state is refused, and
//! nothing is written through it.
//!
//! The non-root fallback `/tmp/ossfs-rs-<uid>` is a name any local user
//! can take first; these tests point the daemon (root) at a runtime
//! directory of their own with `OSSFS_RS_RUNTIME_DIR` and let a second
//! uid (made with `useradd`) prepare it, as such a user would in /tmp.
//!
//! **Needs root, `/dev/fuse` and `useradd`** (CI runs as root).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::mount::{garage_options, is_mounted, ossfs_binary, shared_garage, write_passwd};
use e2e::sys::{second_user, second_user_runs};

/// A shared, sticky, world-writable directory like /tmp, and in it a
/// mount point and a passwd file of root's.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new(name: &str) -> Host {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ossfs-e2e-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir(dir.path().join("mnt")).unwrap_or_else(|e| panic!("{e}"));
        let garage = shared_garage();
        write_passwd(
            &dir.path().join("passwd"),
            garage.access_key_id(),
            garage.secret_access_key(),
            0o600,
        );
        Host { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A runtime directory of root's with `mode`, and the state directory
    /// the daemon derives under it for this host's mount point.
    fn root_runtime(&self, mode: u32) -> (PathBuf, PathBuf) {
        let runtime = self.path("runtime");
        fs::create_dir(&runtime).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&runtime, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
        let state = self.state_dir(&runtime);
        (runtime, state)
    }

    /// The state directory the daemon derives for this host's mount point
    /// with its runtime directory at `runtime`.
    fn state_dir(&self, runtime: &Path) -> PathBuf {
        let mnt = fs::canonicalize(self.path("mnt")).unwrap_or_else(|e| panic!("{e}"));
        let under_default = ossfs_rs::facade::state_dir_for(&mnt);
        runtime.join(under_default.file_name().unwrap_or_default())
    }

    /// `ossfs-rs mount` (as root) with its state under `runtime`.
    fn mount(&self, runtime: &Path, name: &str) -> Output {
        let garage = shared_garage();
        let opts = garage_options(garage, &self.path("passwd"));
        let args: Vec<OsString> = vec![
            "mount".into(),
            format!("{}:/{}", garage.bucket(), e2e::unique_prefix(name)).into(),
            self.path("mnt").into(),
            "-o".into(),
            opts.into(),
        ];
        let mut cmd = Command::new(ossfs_binary());
        cmd.args(&args)
            .env_remove("OSSFS_LOG")
            .env("OSSFS_RS_RUNTIME_DIR", runtime);
        let out = e2e::process::run(cmd, Duration::from_secs(150))
            .unwrap_or_else(|e| panic!("cannot run ossfs-rs: {e}"))
            .unwrap_or_else(|| panic!("ossfs-rs mount did not finish"));
        if is_mounted(&self.path("mnt")) {
            // It should not have mounted: do not leave it behind.
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(self.path("mnt"))
                .status();
        }
        out
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    names.sort();
    names
}

#[test]
fn a_runtime_dir_another_user_made_is_refused() {
    let host = Host::new("state-owner");
    let (uid, _) = second_user();
    // The second user takes the name first, open to all, and plants a
    // link where the mount's state directory will be, to a directory of
    // root's (it could as well point at its own, to read the journal).
    let runtime = host.path("ossfs-rs-0");
    second_user_runs("mkdir", &[&runtime]);
    second_user_runs("chmod", &[Path::new("0777"), &runtime]);
    let victim = host.path("victim");
    fs::create_dir(&victim).unwrap_or_else(|e| panic!("{e}"));
    let link = host.state_dir(&runtime);
    let state_name = link
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    second_user_runs("ln", &[Path::new("-s"), &victim, &link]);
    assert_eq!(
        fs::metadata(&runtime).map(|m| m.uid()).unwrap_or(0),
        uid,
        "set-up: the runtime dir is the second user's"
    );

    let out = host.mount(&runtime, "state-owner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the mount accepted a runtime dir of uid {uid}: {stderr}"
    );
    assert!(
        stderr.contains("belongs to uid") && stderr.contains(&runtime.display().to_string()),
        "the error does not say what is wrong: {stderr}"
    );
    assert!(
        stderr.contains("OSSFS_RS_RUNTIME_DIR"),
        "the error does not say what to do: {stderr}"
    );
    assert_eq!(
        entries(&victim),
        Vec::<String>::new(),
        "written through the link"
    );
    assert_eq!(
        entries(&runtime),
        vec![state_name.to_string_lossy().into_owned()],
        "written into the other user's directory"
    );
}

#[test]
fn a_link_at_the_state_dir_is_refused_and_not_followed() {
    let host = Host::new("state-link");
    // The runtime directory is root's and private, but a link sits where
    // the mount's state directory goes (left by someone who could write
    // there once): refused, not followed.
    let (runtime, link) = host.root_runtime(0o700);
    let victim = host.path("victim");
    second_user_runs("mkdir", &[&victim]);
    std::os::unix::fs::symlink(&victim, &link).unwrap_or_else(|e| panic!("{e}"));

    let out = host.mount(&runtime, "state-link");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the mount followed the link: {stderr}"
    );
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(
        entries(&victim),
        Vec::<String>::new(),
        "written through the link"
    );
}

#[test]
fn a_state_dir_others_can_write_is_refused() {
    let host = Host::new("state-mode");
    // Root's runtime directory, which others may enter (0711, made 0700
    // by the daemon), with a state directory in it that anyone may write.
    let (runtime, state) = host.root_runtime(0o711);
    fs::create_dir(&state).unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("{e}"));
    // What the second user left there, for a supervisor to exec.
    second_user_runs("touch", &[&state.join("supervisor.json")]);

    let out = host.mount(&runtime, "state-mode");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the mount used a 0777 state dir: {stderr}"
    );
    assert!(stderr.contains("other users can write"), "{stderr}");
    assert_eq!(entries(&state), vec!["supervisor.json".to_string()]);
}
