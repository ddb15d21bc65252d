//! The staging directory against another local user and against cleaners
//! of temporary directories: real daemon-mode mounts of Garage, a second
//! uid made with `useradd`.
//!
//! The staging directory of a mount is `<tmpdir>/ossfs-rs-<state name>`,
//! a predictable name. Here `tmpdir` is a shared sticky directory (as /tmp
//! is), and the second user plants a directory or a symlink under that
//! name before the mount: the mount must refuse it and write nothing there.
//! A staging directory emptied (`rm -rf`) under an idle mount must be made
//! again at the next write, with no EIO. A full staging disk (a 1 MiB
//! tmpfs) fails the write with ENOSPC, and the mount goes on.
//!
//! **Needs root, `/dev/fuse`, `useradd` and `mount -t tmpfs`** (CI runs as
//! root).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::mount::{Bucket, Mount, shared_garage};
use e2e::sys::{SECOND_USER, second_user_runs};

/// Run `sh -c script` as the other user; panics when it fails.
fn as_other(script: &str) {
    second_user_runs("sh", &["-c", script]);
}

/// A directory everyone may create entries in (mode 1777, like /tmp).
fn shared_tmp() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ossfs-e2e-shared-tmp-")
        .tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    dir
}

/// Where the mount at `m` keeps its staging files under `tmpdir`.
fn staging_of(m: &Mount, tmpdir: &Path) -> PathBuf {
    let mountpoint = fs::canonicalize(m.path()).unwrap_or_else(|e| panic!("canonicalize: {e}"));
    let state = ossfs_rs::supervisor::state::state_dir_for(&mountpoint);
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tmpdir.join(format!("ossfs-rs-{name}"))
}

/// Mount with `tmpdir` and unmount again: the mount whose staging
/// directory name is now known; returns it and that directory.
fn known_mount(name: &str, tmpdir: &Path) -> (Mount, PathBuf) {
    let mut m = Mount::builder(shared_garage(), name)
        .option(&format!("tmpdir={}", tmpdir.display()))
        .mount();
    let staging = staging_of(&m, tmpdir);
    fs::write(m.join("probe"), b"probe").unwrap_or_else(|e| panic!("write: {e}"));
    m.unmount_ok();
    // An empty staging directory goes with the mount.
    assert!(
        !staging.exists(),
        "{} is left after the unmount",
        staging.display()
    );
    (m, staging)
}

/// Mount `m` again; the panic message of a refused mount, if refused.
fn remount_refused(m: &mut Mount) -> Option<String> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.remount()));
    match r {
        Ok(()) => None,
        Err(p) => Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// Whatever is below `dir`, as names (the other user's directory).
fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_staging_directory_another_user_made_first_is_refused() {
    let tmp = shared_tmp();
    let (mut m, staging) = known_mount("staging-planted-dir", tmp.path());
    // The other user makes the directory first, open to all.
    as_other(&format!("mkdir {0} && chmod 0777 {0}", staging.display()));
    let refused = remount_refused(&mut m);
    if refused.is_none() {
        // The old behaviour: writes go into the other user's directory.
        fs::write(m.join("secret"), b"root's data").unwrap_or_else(|e| panic!("{e}"));
    }
    let planted = entries(&staging);
    let refused = refused.unwrap_or_else(|| {
        panic!("the mount used a staging directory of uid {SECOND_USER}; it now holds {planted:?}")
    });
    assert!(
        refused.contains("refusing to keep files there"),
        "refused for another reason: {refused}"
    );
    assert!(planted.is_empty(), "files were written there: {planted:?}");
}

#[test]
fn a_symlink_planted_as_the_staging_directory_is_not_followed() {
    let tmp = shared_tmp();
    let (mut m, staging) = known_mount("staging-planted-link", tmp.path());
    // The other user's own directory, and a link to it under the name.
    let theirs = tmp.path().join("theirs");
    as_other(&format!(
        "mkdir {0} && chmod 0777 {0} && ln -s {0} {1}",
        theirs.display(),
        staging.display()
    ));
    let refused = remount_refused(&mut m);
    if refused.is_none() {
        fs::write(m.join("secret"), b"root's data").unwrap_or_else(|e| panic!("{e}"));
    }
    let planted = entries(&theirs);
    assert!(
        refused.is_some(),
        "the mount followed the symlink; the other user's directory holds {planted:?}"
    );
    assert!(planted.is_empty(), "files were written there: {planted:?}");
    let link = fs::symlink_metadata(&staging).unwrap_or_else(|e| panic!("{e}"));
    assert!(link.file_type().is_symlink(), "the link was replaced");
}

#[test]
fn an_emptied_staging_directory_is_made_again_at_the_next_write() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let m = Mount::builder(shared_garage(), "staging-emptied")
        .option(&format!("tmpdir={}", tmp.path().display()))
        .mount();
    let staging = staging_of(&m, tmp.path());
    fs::write(m.join("before"), b"before").unwrap_or_else(|e| panic!("write: {e}"));
    assert!(staging.is_dir(), "{} is not there", staging.display());
    // A cleaner of temporary directories (`rm -rf $TMPDIR/*`), while the
    // mount is idle.
    fs::remove_dir_all(&staging).unwrap_or_else(|e| panic!("rm -rf: {e}"));
    for i in 0..5 {
        let name = format!("after-{i}");
        fs::write(m.join(&name), name.as_bytes())
            .unwrap_or_else(|e| panic!("write {name} after the rm -rf: {e}\n{}", m.log_tail()));
    }
    let bucket = Bucket::garage();
    let key = format!("{}after-4", m.prefix());
    let got = bucket
        .block_on(async { bucket.store().get(&key, None).await?.collect().await })
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    assert_eq!(&got[..], b"after-4");
    let md = fs::metadata(&staging).unwrap_or_else(|e| panic!("staging dir: {e}"));
    assert_eq!(md.mode() & 0o7777, 0o700, "made again private");
    assert_eq!(md.uid(), 0);
}

/// A tmpfs of `size` at a fresh directory, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("mount tmpfs: {e}"));
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_staging_disk_fails_the_write_with_enospc_and_the_mount_goes_on() {
    let small = SmallFs::new("1m");
    let m = Mount::builder(shared_garage(), "staging-full")
        .option(&format!("tmpdir={}", small.0.path().display()))
        .mount();
    let big = vec![7u8; 2 << 20];
    let wrote = fs::write(m.join("big"), &big);
    assert_eq!(
        wrote.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(libc::ENOSPC),
        "a 2 MiB write into a 1 MiB staging disk: {wrote:?}"
    );
    // Room again once that file is gone: small files still work.
    fs::write(m.join("small"), b"small").unwrap_or_else(|e| panic!("write small: {e}"));
    assert_eq!(fs::read(m.join("small")).unwrap_or_default(), b"small");
}
