//! The `ossfs-rs check` report: the three steps run in order, each printed
//! as one `ok`/`FAIL`/`skip` line in plain words, with a `fix:` line under
//! a failure:
//! 1. credentials: resolve them in the mount's order and print the source
//!    (never the secret);
//! 2. endpoint: the TCP probe of [`super::probe`] to the host the client
//!    will connect to;
//! 3. listing: list one key under the prefix through the crate's
//!    [`ObjectStore`] and turn the error into a diagnosis
//!    ([`super::diagnose`](mod@super::diagnose)).
//!
//! The steps write to any `io::Write`, so they are tested without a
//! terminal. Exit status of [`run`]: 0 when every step passed, 1 when one
//! failed, 2 when the arguments themselves are wrong.
//!
//! Imports: [`super::probe`], [`super::diagnose`](mod@super::diagnose),
//! `config` (the plan) and `store` (credentials, the REST client).

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::diagnose::{credential_fix, diagnose};
use super::probe::{probe_tcp, unreachable_fix};
use crate::config::plan::{Plan, StoreArgs, UsageError};
use crate::store::credentials::{CredentialOptions, EnvLookup, resolve};
use crate::store::{
    CredentialProvider, ListRequest, ObjectStore, Provider, RestClient, StoreError,
};

/// The result of one step.
enum Step {
    Ok(String),
    Fail { what: String, fix: String },
    Skip(String),
}

fn print_step(out: &mut dyn Write, name: &str, step: &Step) -> io::Result<()> {
    match step {
        Step::Ok(what) => writeln!(out, "ok    {name}: {what}"),
        Step::Fail { what, fix } => {
            writeln!(out, "FAIL  {name}: {what}")?;
            writeln!(out, "      fix: {fix}")
        }
        Step::Skip(why) => writeln!(out, "skip  {name}: {why}"),
    }
}

/// Run the three steps for `args`, reading the environment through `env`
/// and writing the report to `out`. `Ok(true)` when every step passed.
pub async fn check(
    args: &StoreArgs,
    env: EnvLookup,
    out: &mut dyn Write,
) -> Result<bool, UsageError> {
    let plan = Plan::from_args(args)?;
    let prefix_shown = if plan.prefix.is_empty() {
        "(whole bucket)".to_string()
    } else {
        plan.prefix.clone()
    };
    let _ = writeln!(
        out,
        "checking bucket {} prefix {} at {} (provider {}, region {}, signature {:?}, {})",
        plan.bucket,
        prefix_shown,
        plan.endpoint.url,
        plan.provider,
        plan.client_config(args).effective_region(),
        plan.signature,
        if plan.path_style_chosen {
            "path style, chosen because the endpoint is an IP address or localhost"
        } else if plan.path_style {
            "path style"
        } else {
            "virtual-host style"
        },
    );

    // 1. Credentials.
    let mut opts = CredentialOptions::new(plan.provider, plan.bucket.clone());
    opts.passwd_file = args.passwd_file.clone();
    opts.sts_dir = args.sts_dir.clone();
    opts.env = env;
    let creds = resolve(&opts);
    let step = match &creds {
        Ok(p) => Step::Ok(format!("found in {}", p.source())),
        Err(e) => Step::Fail {
            what: e.to_string(),
            fix: credential_fix(e, plan.provider),
        },
    };
    let _ = print_step(out, "credentials", &step);

    // 2. Endpoint.
    let step = endpoint_step(&plan, Duration::from_secs(args.connect_timeout.max(1))).await;
    let reachable = matches!(step, Step::Ok(_));
    let _ = print_step(out, "endpoint", &step);

    // 3. List one key.
    let step = match creds {
        Ok(creds) if reachable => list_step(&plan, args, creds).await,
        _ => Step::Skip("needs credentials and a reachable endpoint".to_string()),
    };
    let _ = print_step(out, "list", &step);
    let passed = matches!(step, Step::Ok(_));
    let _ = writeln!(
        out,
        "{}",
        if passed {
            "all checks passed"
        } else {
            "some checks failed"
        }
    );
    Ok(passed)
}

async fn endpoint_step(plan: &Plan, timeout: Duration) -> Step {
    let host = plan.connect_host();
    let port = plan.endpoint.port;
    // Only when virtual-host style is forced: otherwise such an endpoint
    // gets path style by itself (config::plan).
    if !plan.path_style && plan.endpoint.has_no_bucket_hosts() {
        return Step::Fail {
            what: format!(
                "unreachable: virtual-host style is forced, so the bucket would be addressed as host {host}, which cannot exist for an IP address or localhost"
            ),
            fix: match plan.provider {
                Provider::S3 => "drop --virtual-host (-o virtual_host): path style is then chosen by itself for this endpoint".to_string(),
                Provider::Oss | Provider::Cos => format!(
                    "{} addresses buckets by host name: give the endpoint as a host name in --url",
                    plan.provider
                ),
            },
        };
    }
    match probe_tcp(&host, port, timeout).await {
        Ok(addr) => Step::Ok(format!("{host}:{port} reachable (connected to {addr})")),
        Err(e) => {
            let mut fix = unreachable_fix(&plan.endpoint);
            if !plan.path_style && plan.provider == Provider::S3 {
                fix.push_str(&format!(
                    "; the bucket is addressed as host {host} (virtual-host style): a server without per-bucket host names needs --path-style"
                ));
            }
            Step::Fail {
                what: format!("unreachable: {e}"),
                fix,
            }
        }
    }
}

async fn list_step(plan: &Plan, args: &StoreArgs, creds: Arc<dyn CredentialProvider>) -> Step {
    let store: Arc<dyn ObjectStore> = match RestClient::new(plan.client_config(args), creds) {
        Ok(client) => Arc::new(client),
        Err(e) => {
            return Step::Fail {
                what: format!("cannot set up the client: {e}"),
                fix: "check --url and --ca-bundle".to_string(),
            };
        }
    };
    let request = ListRequest {
        prefix: plan.prefix.clone(),
        delimiter: None,
        max_keys: Some(1),
        start_after: None,
    };
    match store.list_page(&request, None).await {
        Ok(page) => {
            let found = page
                .objects
                .first()
                .map(|o| format!("first key {:?}", o.key))
                .or_else(|| page.prefixes.first().map(|p| format!("first prefix {p:?}")));
            Step::Ok(match found {
                Some(found) => format!("bucket {} answered; {found}", plan.bucket),
                None if plan.prefix.is_empty() => {
                    format!("bucket {} answered; it is empty", plan.bucket)
                }
                None => format!(
                    "bucket {} answered; no keys under {}",
                    plan.bucket, plan.prefix
                ),
            })
        }
        Err(e) => failed_listing(&e),
    }
}

fn failed_listing(error: &StoreError) -> Step {
    let diagnosis = diagnose(error);
    Step::Fail {
        what: format!("{} ({error})", diagnosis.problem()),
        fix: diagnosis.fix(),
    }
}

/// Run `ossfs-rs check`.
pub async fn run(args: StoreArgs) -> ExitCode {
    let mut stdout = io::stdout();
    match check(&args, EnvLookup::process(), &mut stdout).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ossfs-rs check: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::plan::tests::args;

    /// Credentials missing and the endpoint closed: both fail, the listing
    /// is skipped, the result is a failure, and no secret is printed.
    #[tokio::test]
    async fn failing_steps_are_reported_and_listing_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "b:AKID:printed-never\n").expect("write");
        std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let a = args(&[
            "b:/p",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--passwd-file",
            passwd.to_str().expect("utf8"),
            "--path-style",
        ]);
        let mut out = Vec::new();
        let passed = check(&a, EnvLookup::empty(), &mut out)
            .await
            .expect("arguments are fine");
        let text = String::from_utf8(out).expect("utf8");
        assert!(!passed, "{text}");
        assert!(
            text.contains(&format!(
                "ok    credentials: found in passwd file {} (bucket-specific line)",
                passwd.display()
            )),
            "{text}"
        );
        assert!(
            text.contains("FAIL  endpoint: unreachable:") && text.contains("refused"),
            "{text}"
        );
        assert!(text.contains("fix: check --url"), "{text}");
        assert!(text.contains("skip  list:"), "{text}");
        assert!(!text.contains("printed-never"), "{text}");
    }

    /// An IP endpoint with virtual-host style forced can never work: said
    /// without any DNS lookup.
    #[tokio::test]
    async fn ip_endpoint_with_virtual_host_forced_is_diagnosed() {
        let a = args(&["b", "--url", "http://127.0.0.1:9", "--virtual-host"]);
        let mut out = Vec::new();
        let passed = check(&a, EnvLookup::empty(), &mut out)
            .await
            .expect("arguments are fine");
        let text = String::from_utf8(out).expect("utf8");
        assert!(!passed);
        assert!(
            text.contains(
                "FAIL  endpoint: unreachable: virtual-host style is forced, so the bucket would be addressed as host b.127.0.0.1"
            ),
            "{text}"
        );
        assert!(text.contains("fix: drop --virtual-host"), "{text}");
        assert!(text.contains("skip  list:"), "{text}");
    }

    /// Without either option, an IP endpoint gets path style and the
    /// header says why; the endpoint step then probes the IP itself.
    #[tokio::test]
    async fn ip_endpoint_gets_path_style_by_itself() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let a = args(&["b", "--url", &format!("http://127.0.0.1:{port}")]);
        let mut out = Vec::new();
        check(&a, EnvLookup::empty(), &mut out)
            .await
            .expect("arguments are fine");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("path style, chosen because the endpoint is an IP address or localhost"),
            "{text}"
        );
        assert!(
            text.contains(&format!("ok    endpoint: 127.0.0.1:{port} reachable")),
            "{text}"
        );
        assert!(!text.contains("virtual-host"), "{text}");
    }

    #[tokio::test]
    async fn bad_arguments_are_usage_errors() {
        let a = args(&[
            "b",
            "--url",
            "https://cos.ap-beijing.myqcloud.com",
            "--signature",
            "v4",
        ]);
        let mut out = Vec::new();
        assert!(matches!(
            check(&a, EnvLookup::empty(), &mut out).await,
            Err(UsageError::BadSignature { .. })
        ));
        for url in ["ftp://x", "https://host/path", "http://user:pw@host"] {
            let a = args(&["b", "--url", url]);
            assert!(
                matches!(
                    check(&a, EnvLookup::empty(), &mut out).await,
                    Err(UsageError::BadUrl { .. })
                ),
                "{url}"
            );
        }
        let a = args(&["b", "--url", "oss-cn-hangzhou.aliyuncs.com", "--path-style"]);
        assert_eq!(
            check(&a, EnvLookup::empty(), &mut out).await.err(),
            Some(UsageError::PathStyleRefused(Provider::Oss))
        );
        let a = args(&["b/c", "--url", "http://127.0.0.1:1"]);
        assert!(matches!(
            check(&a, EnvLookup::empty(), &mut out).await,
            Err(UsageError::BadTarget(_))
        ));
    }
}
