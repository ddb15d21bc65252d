//! The `ossfs-rs` binary's command line, run as a user runs it, for the
//! answers that need neither a server nor FUSE: version, usage errors.
//!
//! Being an integration test of the `ossfs-rs` package, this file also
//! makes cargo build the binary (`target/<profile>/ossfs-rs`) whenever
//! `cargo test --workspace` runs, before any test starts: the end-to-end
//! FUSE tests of the `e2e` crate (tests/tests/fuse_*.rs) run that binary
//! and cannot ask cargo for it themselves, since a crate can only name the
//! binaries of its own package (`CARGO_BIN_EXE_*`).

use std::process::{Command, Output};

fn ossfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ossfs-rs"))
        .args(args)
        .env_remove("OSSFS_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run ossfs-rs: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn prints_its_version() {
    let out = ossfs(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("ossfs-rs {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_mount_option_is_a_usage_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap();
    // Both command-line forms: `mount ...` and the ossfs form.
    for args in [
        vec![
            "mount",
            "bkt:/p",
            mp,
            "-o",
            "url=http://127.0.0.1:1,allow_others",
        ],
        vec!["bkt:/p", mp, "-o", "url=http://127.0.0.1:1,allow_others"],
    ] {
        let out = ossfs(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("unknown mount option \"allow_others\""),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_bad_source_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap();
    let out = ossfs(&["mount", "bkt:/a/../b", mp, "-o", "url=http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not bucket or bucket:/prefix"),
        "{}",
        stderr(&out)
    );
}
