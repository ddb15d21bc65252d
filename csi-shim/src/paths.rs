//! Checks on every path that arrives in an RPC.
//!
//! Staging and target paths come from the CO; a plugin that mounts or
//! removes whatever path it is given is a root-level primitive for anyone
//! who can write a PV. So a path must be absolute, must not contain `..`,
//! must lie lexically under the kubelet directory, and the deepest part of
//! it that exists must still be under the (canonical) kubelet directory
//! once symlinks are resolved; the last component itself must not be a
//! symlink. A dead FUSE mount (`ENOTCONN`) at the path is accepted: it is
//! exactly what Unpublish and Unstage have to clean up.

use std::path::{Component, Path, PathBuf};

use crate::error::{CsiError, CsiResult};

/// Validate `raw` (the request's `field`) against `kubelet_dir`, which
/// must already be canonical. Returns the path to use.
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
    if !path.starts_with(kubelet_dir) || path == kubelet_dir {
        return Err(bad(&format!(
            "not under the kubelet dir {}",
            kubelet_dir.display()
        )));
    }
    // The deepest existing ancestor, resolved, must stay under the kubelet dir.
    let mut probe: &Path = &path;
    loop {
        match std::fs::canonicalize(probe) {
            Ok(real) => {
                if !real.starts_with(kubelet_dir) {
                    return Err(bad(&format!(
                        "resolves to {} outside the kubelet dir",
                        real.display()
                    )));
                }
                break;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) && probe == path => {
                // A dead FUSE mount point: its parent decides.
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CsiError::io(format!("resolving {}", probe.display()), e));
            }
        }
        probe = match probe.parent() {
            Some(p) => p,
            None => break,
        };
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(bad("is a symlink")),
        _ => Ok(path),
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
    }
}
