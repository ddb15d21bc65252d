//! Bad input to `ossfs-rs mount`: each mistake exits non-zero with a
//! message that names the problem, and leaves no mount and no daemon.
//!
//! **Needs root and `/dev/fuse`** (CI runs as root): the control case
//! mounts for real, and the failures are checked against the kernel's
//! mount table (`/proc/self/mountinfo`).

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use e2e::mount::{
    daemons_for, garage_options, is_mounted, ossfs_binary, run_ossfs, shared_garage, write_passwd,
};

/// A scratch directory with a mount point and a good passwd file.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let g = shared_garage();
        write_passwd(
            &dir.path().join("passwd"),
            g.access_key_id(),
            g.secret_access_key(),
            0o600,
        );
        Scene { dir }
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn passwd(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    /// `ossfs-rs mount BUCKET:/PREFIX MP -o <good options>,<extra>`.
    fn mount(&self, bucket: &str, mountpoint: &Path, options: &str) -> Output {
        let args: Vec<OsString> = vec![
            "mount".into(),
            format!("{bucket}:/e2e/bad-input/").into(),
            mountpoint.into(),
            "-o".into(),
            options.into(),
        ];
        run_ossfs(&ossfs_binary(), &args)
    }

    fn good_options(&self) -> String {
        garage_options(shared_garage(), &self.passwd())
    }
}

/// The command failed, said `expected` (all of them, case-insensitively)
/// on stderr, and left neither a mount nor a daemon at `mountpoint`.
#[track_caller]
fn assert_refused(out: &Output, mountpoint: &Path, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the mount succeeded; stderr: {stderr}"
    );
    let lower = stderr.to_lowercase();
    for word in expected {
        assert!(
            lower.contains(&word.to_lowercase()),
            "stderr does not mention {word:?}:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(shared_garage().secret_access_key()),
        "the secret key appears in the error output"
    );
    assert!(
        !is_mounted(mountpoint),
        "{} is mounted",
        mountpoint.display()
    );
    assert!(
        daemons_for(mountpoint).is_empty(),
        "a daemon for {} is still running",
        mountpoint.display()
    );
}

#[test]
fn wrong_secret() {
    let s = Scene::new();
    let g = shared_garage();
    let bad = s.dir.path().join("passwd-bad");
    write_passwd(&bad, g.access_key_id(), &"0".repeat(64), 0o600);
    let opts = garage_options(g, &bad);
    let out = s.mount(g.bucket(), &s.mnt(), &opts);
    assert_refused(&out, &s.mnt(), &["secret"]);
}

#[test]
fn missing_bucket() {
    let s = Scene::new();
    let out = s.mount("e2e-no-such-bucket", &s.mnt(), &s.good_options());
    assert_refused(&out, &s.mnt(), &["no such bucket", "e2e-no-such-bucket"]);
}

#[test]
fn closed_port() {
    let s = Scene::new();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
        // dropped here: nothing listens on the port any more
    };
    let opts = format!(
        "url=http://127.0.0.1:{port},passwd_file={},path_style,region={}",
        s.passwd().display(),
        shared_garage().region()
    );
    let out = s.mount(shared_garage().bucket(), &s.mnt(), &opts);
    assert_refused(&out, &s.mnt(), &[&format!("127.0.0.1:{port}"), "refused"]);
}

#[test]
fn non_empty_mountpoint_needs_nonempty() {
    let s = Scene::new();
    std::fs::write(s.mnt().join("already-here"), b"x").unwrap();
    let out = s.mount(shared_garage().bucket(), &s.mnt(), &s.good_options());
    assert_refused(&out, &s.mnt(), &["not empty", "nonempty"]);

    // Control: with -o nonempty the same command mounts over the file.
    let opts = format!("{},nonempty", s.good_options());
    let out = s.mount(shared_garage().bucket(), &s.mnt(), &opts);
    assert!(
        out.status.success(),
        "mount with nonempty failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mounted = is_mounted(&s.mnt());
    let hidden = !s.mnt().join("already-here").exists();
    let umount = run_ossfs(&ossfs_binary(), &["umount".into(), s.mnt().into()]);
    assert!(mounted, "not in mountinfo after a successful mount");
    assert!(hidden, "the directory's own file shows through the mount");
    assert!(
        umount.status.success(),
        "umount: {}",
        String::from_utf8_lossy(&umount.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !daemons_for(&s.mnt()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        daemons_for(&s.mnt()).is_empty(),
        "the daemon outlived umount"
    );
    assert!(s.mnt().join("already-here").exists());
}

#[test]
fn mountpoint_that_does_not_exist() {
    let s = Scene::new();
    let missing = s.dir.path().join("no/such/dir");
    let out = s.mount(shared_garage().bucket(), &missing, &s.good_options());
    assert_refused(&out, &missing, &["does not exist", "no/such/dir"]);
}

#[test]
fn unknown_mount_option() {
    let s = Scene::new();
    let opts = format!("{},allow_others", s.good_options());
    let out = s.mount(shared_garage().bucket(), &s.mnt(), &opts);
    assert_refused(&out, &s.mnt(), &["unknown mount option", "allow_others"]);
}

#[test]
fn passwd_file_readable_by_others() {
    let s = Scene::new();
    std::fs::set_permissions(
        s.passwd(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = s.mount(shared_garage().bucket(), &s.mnt(), &s.good_options());
    let path = s.passwd().display().to_string();
    assert_refused(&out, &s.mnt(), &[&path, "644"]);
}
