//! The `csi-os` command line: bad arguments fail at once with a message
//! that names what is wrong, before any socket is opened. (Also makes
//! `cargo test` build the `csi-os` binary, which the e2e suites run.)

use std::process::Command;

fn csi_os(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_csi-os"))
        .args(args)
        .env("CSI_OS_LOG", "error")
        .output()
        .expect("csi-os runs")
}

#[test]
fn help_names_the_driver_options() {
    let out = csi_os(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--endpoint",
        "--node-id",
        "--mode",
        "--state-dir",
        "--kubelet-dir",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn an_unknown_mode_is_refused() {
    let out = csi_os(&[
        "--endpoint=unix:///tmp/csi-cli-test.sock",
        "--node-id=n1",
        "--mode=everything",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("everything"), "{err}");
}

#[test]
fn a_non_unix_endpoint_is_refused() {
    let dir = std::env::temp_dir();
    let out = csi_os(&[
        "--endpoint=tcp://127.0.0.1:1",
        "--node-id=n1",
        "--mode=controller",
        &format!("--state-dir={}", dir.join("csi-cli-test-state").display()),
    ]);
    assert!(!out.status.success(), "a tcp endpoint must be refused");
    assert!(
        !std::path::Path::new("/tmp/csi-cli-test.sock").exists(),
        "nothing may be bound"
    );
}
