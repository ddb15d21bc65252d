//! Checks on every path that arrives in an RPC.
//!
//! Staging and target paths come from the CO; a plugin that mounts or
//! removes whatever path it is given is a root-level primitive for anyone
//! who can write a PV. So a path must be absolute and must not contain
//! `..`; its deepest existing ancestor is resolved (symlinks followed) and
//! the result, with the not-yet-existing rest appended, must lie under the
//! canonical kubelet directory, so no symlink can lead out of it; the last
//! component itself must not be a symlink. The resolved path is what the
//! plugin then uses, which is also how the mount table spells it. A dead
//! FUSE mount (`ENOTCONN`) at the path is accepted: it is
//! exactly what Unpublish and Unstage have to clean up.

use std::path::{Component, Path, PathBuf};

use crate::error::{CsiError, CsiResult};

/// Validate `raw` (the request's `field`) against `kubelet_dir`, which
/// must already be canonical. Returns the path resolved through its
/// existing ancestors, the form the mount table uses.
pub fn checked_path(field: &'static str, raw: &str, kubelet_dir: &Path) -> CsiResult<PathBuf> {
    if raw.is_empty() {
        return Err(CsiError::Missing(field));
    }
    let path = PathBuf::from(raw);
    let bad = |reason: &str| CsiError::BadPath {
        path: path.clone(),
        reason: reason.to_string(),
    };
    if !path.is_absolute() {
        return Err(bad("not absolute"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad("contains '..'"));
    }
    // Resolve the deepest existing ancestor; the rest does not exist yet.
    let mut probe: &Path = &path;
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(probe) {
            Ok(real) => break rest.iter().rev().fold(real, |acc, c| acc.join(c)),
            // A dead FUSE mount point at the path itself: its parent decides.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) && probe == path => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CsiError::io(format!("resolving {}", probe.display()), e));
            }
        }
        match (probe.parent(), probe.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                probe = parent;
            }
            _ => return Err(bad("cannot be resolved")),
        }
    };
    if !resolved.starts_with(kubelet_dir) || resolved == kubelet_dir {
        return Err(bad(&format!(
            "resolves to {}, not under the kubelet dir {}",
            resolved.display(),
            kubelet_dir.display()
        )));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(bad("is a symlink")),
        _ => Ok(resolved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_or_tricky() {
        let root = tempfile::tempdir().unwrap();
        let kubelet = root
            .path()
            .join("kubelet")
            .canonicalize()
            .unwrap_or_else(|_| {
                std::fs::create_dir(root.path().join("kubelet")).unwrap();
                root.path().join("kubelet").canonicalize().unwrap()
            });
        std::fs::create_dir_all(kubelet.join("pods/p1")).unwrap();
        let ok = kubelet.join("pods/p1/vol/mount");
        assert_eq!(
            checked_path("target_path", ok.to_str().unwrap(), &kubelet).unwrap(),
            ok
        );
        let check = |p: &str| checked_path("target_path", p, &kubelet);
        assert!(matches!(check(""), Err(CsiError::Missing(_))));
        assert!(matches!(check("relative/x"), Err(CsiError::BadPath { .. })));
        assert!(matches!(
            check("/etc/passwd"),
            Err(CsiError::BadPath { .. })
        ));
        let dotdot = format!("{}/pods/../../etc", kubelet.display());
        assert!(matches!(check(&dotdot), Err(CsiError::BadPath { .. })));
        // A symlink inside the kubelet dir that leads out of it.
        std::os::unix::fs::symlink("/etc", kubelet.join("pods/p1/evil")).unwrap();
        let via = format!("{}/pods/p1/evil/x", kubelet.display());
        assert!(matches!(check(&via), Err(CsiError::BadPath { .. })));
        let last = format!("{}/pods/p1/evil", kubelet.display());
        assert!(matches!(check(&last), Err(CsiError::BadPath { .. })));
        assert!(matches!(
            check(kubelet.to_str().unwrap()),
            Err(CsiError::BadPath { .. })
        ));
        // The kubelet dir reached through a symlink resolves to the real path.
        std::os::unix::fs::symlink(&kubelet, root.path().join("link")).unwrap();
        let via_link = format!("{}/link/pods/p1/vol/mount", root.path().display());
        assert_eq!(check(&via_link).unwrap(), ok);
    }
}
