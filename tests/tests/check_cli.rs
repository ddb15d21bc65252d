//! `ossfs-rs check` end to end, as an operator runs it: a separate process,
//! its stdout report and its exit status, against a real Garage.
//!
//! The `ossfs-rs` binary of another crate is not built for this crate's
//! tests (`CARGO_BIN_EXE_*` only covers the own package), so this test
//! binary *is* the CLI when re-executed with [`AS_CLI`] set: its `main` then
//! does exactly what the `ossfs-rs` binary's `main` does, `ossfs_rs::cli::run()`,
//! with the same argument vector. That keeps the test independent of build
//! order while running the real command-line path (parsing, dispatch,
//! credential resolution from a file or the environment, exit codes).
//!
//! The cases run in this process one after another (the file has its own
//! `main`, `harness = false`), and print libtest-style lines so the test
//! script's summary counts them. A non-flag argument filters by substring.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::Duration;

use e2e::Garage;

/// Set in the environment of a re-executed copy of this binary to make it
/// behave as `ossfs-rs`.
const AS_CLI: &str = "E2E_RUN_AS_OSSFS_RS";

/// Credential variables a developer's shell may export; the child never
/// inherits them, so each case says exactly where its keys come from.
const CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
    "OSS_SECURITY_TOKEN",
    "COS_SECRET_ID",
    "COS_SECRET_KEY",
    "COS_SESSION_TOKEN",
];

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    (
        "check_passes_with_a_passwd_file",
        check_passes_with_a_passwd_file,
    ),
    (
        "check_chooses_path_style_for_an_ip_endpoint",
        check_chooses_path_style_for_an_ip_endpoint,
    ),
    (
        "check_passes_with_environment_keys",
        check_passes_with_environment_keys,
    ),
    (
        "check_diagnoses_a_wrong_secret",
        check_diagnoses_a_wrong_secret,
    ),
    (
        "check_diagnoses_a_wrong_bucket",
        check_diagnoses_a_wrong_bucket,
    ),
    (
        "check_diagnoses_a_closed_port",
        check_diagnoses_a_closed_port,
    ),
    ("check_rejects_bad_arguments", check_rejects_bad_arguments),
];

fn main() -> ExitCode {
    if std::env::var_os(AS_CLI).is_some() {
        return ossfs_rs::cli::run();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in CASES {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, case) in &selected {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(case));
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        CASES.len() - selected.len(),
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------- helpers

fn garage() -> &'static Garage {
    Garage::shared().unwrap_or_else(|e| panic!("Garage did not start: {e}"))
}

/// A private directory for one case: HOME of the child, passwd files.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Write `ak:sk` to a mode-0600 passwd file in `dir`.
fn passwd_file(dir: &Path, access_key: &str, secret: &str) -> PathBuf {
    let path = dir.join("passwd-s3fs");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create the passwd file");
    writeln!(f, "{access_key}:{secret}").expect("write the passwd file");
    path
}

/// Run `ossfs-rs check ARGS` with `env` (and a private HOME), at most 60 s.
fn run_check(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.arg("check")
        .args(args)
        .env(AS_CLI, "1")
        .env("HOME", home);
    for var in CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    e2e::process::run(cmd, Duration::from_secs(60))
        .expect("spawn ossfs-rs check")
        .expect("ossfs-rs check finished within 60 s")
}

/// The arguments for Garage's endpoint, bucket `bucket`, path style.
fn garage_args<'a>(g: &'a Garage, target: &'a str) -> Vec<&'a str> {
    vec![
        target,
        "--url",
        g.endpoint(),
        "--provider",
        "s3",
        "--region",
        g.region(),
        "--path-style",
        "--connect-timeout",
        "3",
    ]
}

struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Report {
    fn from(out: Output) -> Self {
        Report {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn assert_has(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "expected {needle:?} in the report:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn assert_no_secret(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "the secret key appears in the output"
        );
    }
}

// ---------------------------------------------------------------- cases

fn check_passes_with_a_passwd_file() {
    let g = garage();
    let home = scratch();
    let passwd = passwd_file(home.path(), g.access_key_id(), g.secret_access_key());
    let target = format!("{}:/some/prefix", g.bucket());
    let mut args = garage_args(g, &target);
    let passwd_arg = passwd.display().to_string();
    args.extend(["--passwd-file", &passwd_arg]);
    let r = Report::from(run_check(home.path(), &args, &[]));
    r.assert_has("ok    credentials: found in passwd file");
    r.assert_has("ok    endpoint:");
    r.assert_has(&format!("ok    list: bucket {} answered", g.bucket()));
    r.assert_has("all checks passed");
    r.assert_no_secret(g.secret_access_key());
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

/// Garage on 127.0.0.1 without `--path-style`: `bucket.127.0.0.1` cannot
/// exist, so path style is chosen by itself and the check passes.
fn check_chooses_path_style_for_an_ip_endpoint() {
    let g = garage();
    let home = scratch();
    let passwd = passwd_file(home.path(), g.access_key_id(), g.secret_access_key());
    let target = g.bucket().to_string();
    let passwd_arg = passwd.display().to_string();
    let mut args: Vec<&str> = garage_args(g, &target)
        .into_iter()
        .filter(|a| *a != "--path-style")
        .collect();
    args.extend(["--passwd-file", &passwd_arg]);
    let r = Report::from(run_check(home.path(), &args, &[]));
    r.assert_has("path style, chosen because the endpoint is an IP address or localhost");
    r.assert_has(&format!("ok    list: bucket {} answered", g.bucket()));
    r.assert_has("all checks passed");
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

fn check_passes_with_environment_keys() {
    let g = garage();
    let home = scratch();
    let target = g.bucket().to_string();
    let r = Report::from(run_check(
        home.path(),
        &garage_args(g, &target),
        &[
            ("AWS_ACCESS_KEY_ID", g.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", g.secret_access_key()),
        ],
    ));
    r.assert_has("ok    credentials: found in environment");
    r.assert_has("ok    list:");
    r.assert_has("all checks passed");
    r.assert_no_secret(g.secret_access_key());
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

fn check_diagnoses_a_wrong_secret() {
    let g = garage();
    let home = scratch();
    let wrong = "f".repeat(g.secret_access_key().len());
    let passwd = passwd_file(home.path(), g.access_key_id(), &wrong);
    let target = g.bucket().to_string();
    let mut args = garage_args(g, &target);
    let passwd_arg = passwd.display().to_string();
    args.extend(["--passwd-file", &passwd_arg]);
    let r = Report::from(run_check(home.path(), &args, &[]));
    r.assert_has("ok    credentials:");
    r.assert_has("ok    endpoint:");
    r.assert_has("FAIL  list: wrong keys");
    r.assert_has("      fix: check the access key id and secret");
    r.assert_has("some checks failed");
    r.assert_no_secret(&wrong);
    r.assert_no_secret(g.secret_access_key());
    assert_eq!(r.code, Some(1), "{}", r.stdout);
}

fn check_diagnoses_a_wrong_bucket() {
    let g = garage();
    let home = scratch();
    let passwd = passwd_file(home.path(), g.access_key_id(), g.secret_access_key());
    let mut args = garage_args(g, "e2e-no-such-bucket");
    let passwd_arg = passwd.display().to_string();
    args.extend(["--passwd-file", &passwd_arg]);
    let r = Report::from(run_check(home.path(), &args, &[]));
    r.assert_has("FAIL  list: no such bucket at this endpoint");
    r.assert_has("      fix: check the bucket name");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
}

fn check_diagnoses_a_closed_port() {
    let g = garage();
    let home = scratch();
    let passwd = passwd_file(home.path(), g.access_key_id(), g.secret_access_key());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("local address")
    };
    let url = format!("http://{closed}");
    let passwd_arg = passwd.display().to_string();
    let args = [
        g.bucket(),
        "--url",
        &url,
        "--provider",
        "s3",
        "--path-style",
        "--connect-timeout",
        "3",
        "--passwd-file",
        &passwd_arg,
    ];
    let r = Report::from(run_check(home.path(), &args, &[]));
    r.assert_has("ok    credentials:");
    r.assert_has(&format!(
        "FAIL  endpoint: unreachable: {closed} refused the connection"
    ));
    r.assert_has("skip  list:");
    r.assert_has("some checks failed");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
}

fn check_rejects_bad_arguments() {
    let home = scratch();
    let r = Report::from(run_check(
        home.path(),
        &["bucket", "--url", "ftp://127.0.0.1:1"],
        &[],
    ));
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--url"), "{}", r.stderr);
}
