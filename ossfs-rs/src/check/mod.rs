//! `ossfs-rs check`: diagnose credentials, endpoint and bucket before mounting.
//!
//! Three steps, each printed as one `ok`/`FAIL` line in plain words, with a
//! `fix:` line under a failure:
//! 1. credentials: resolve them in the mount's order and print the source
//!    (never the secret);
//! 2. endpoint: resolve the endpoint host and open a TCP connection with a
//!    timeout, telling a DNS failure, a refusal and a timeout apart;
//! 3. listing: list one key under the prefix through the crate's
//!    [`ObjectStore`] and turn the error into a diagnosis.
//!
//! The diagnosis is a pure function, [`diagnose`], from a [`StoreError`] to
//! a [`Diagnosis`] (what is wrong, how to fix it), unit-tested for each
//! case; the steps write to any `io::Write`, so they are tested without a
//! terminal. Exit status: 0 when every step passed, 1 when one failed, 2
//! when the arguments themselves are wrong.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::store::client::SignatureVersion;
use crate::store::credentials::env::EnvNames;
use crate::store::credentials::{CredentialError, CredentialOptions, EnvLookup, passwd, resolve};
use crate::store::retry::RetryConfig;
use crate::store::{
    ClientConfig, CredentialProvider, ListRequest, ObjectStore, Provider, RestClient, StoreError,
};

/// Arguments of `ossfs-rs check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The bucket to check, optionally with a prefix: `bucket` or
    /// `bucket:/prefix`. COS buckets carry their `-appid`.
    #[arg(value_name = "BUCKET[:/PREFIX]")]
    pub target: String,

    /// The endpoint: `https://oss-cn-hangzhou.aliyuncs.com`,
    /// `http://127.0.0.1:3900`; a bare host means https.
    #[arg(long, value_name = "ENDPOINT")]
    pub url: String,

    /// The dialect: oss, cos or s3. Inferred from the endpoint host when
    /// absent (`*.aliyuncs.com` is oss, `*.myqcloud.com` is cos, else s3).
    #[arg(long)]
    pub provider: Option<Provider>,

    /// The region (`cn-hangzhou`, `ap-beijing`, `us-east-1`). Inferred from
    /// the endpoint host when absent.
    #[arg(long)]
    pub region: Option<String>,

    /// A passwd file (`ak:sk` or `bucket:ak:sk` lines, mode 0600 or 0640).
    #[arg(long, value_name = "PATH")]
    pub passwd_file: Option<PathBuf>,

    /// A directory with STS files `AccessKeyId`, `AccessKeySecret`,
    /// `SecurityToken`, `Expiration`.
    #[arg(long, value_name = "DIR")]
    pub sts_dir: Option<PathBuf>,

    /// Put the bucket in the path instead of the host name (S3 only).
    #[arg(long)]
    pub path_style: bool,

    /// An extra PEM CA bundle to trust (a private CA).
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<PathBuf>,

    /// The signature version: v1 or v4 for OSS (default v1), v4 for S3.
    /// COS has one scheme and takes no value.
    #[arg(long, value_enum)]
    pub signature: Option<SignatureArg>,

    /// Seconds to wait for the TCP connection and DNS answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub connect_timeout: u64,
}

/// `--signature` values; `sigv1`/`sigv4` as in the mount option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureArg {
    #[value(alias = "sigv1")]
    V1,
    #[value(alias = "sigv4")]
    V4,
}

/// Arguments that cannot work together; exit status 2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("bucket {0:?}: give `bucket` or `bucket:/prefix`")]
    BadTarget(String),
    #[error("--url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "--signature {given} does not apply to {provider}: OSS takes v1 or v4, S3 takes v4, COS takes none"
    )]
    BadSignature { provider: Provider, given: String },
    #[error(
        "--path-style does not apply to {0}: it addresses buckets by host name only (drop --path-style)"
    )]
    PathStyleRefused(Provider),
}

/// The bucket and the key prefix (`""` or ending in `/`).
pub fn parse_target(target: &str) -> Result<(String, String), UsageError> {
    let (bucket, prefix) = match target.split_once(':') {
        Some((b, p)) => (b, p),
        None => (target, ""),
    };
    if bucket.is_empty() || bucket.contains('/') {
        return Err(UsageError::BadTarget(target.to_string()));
    }
    let prefix = prefix.trim_start_matches('/');
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// The parts of `--url` the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL with its scheme (`https://` added to a bare host).
    pub url: String,
    /// The host, without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parse `--url`; a bare host means https.
    pub fn parse(url: &str) -> Result<Self, UsageError> {
        let bad = |reason: &str| UsageError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        };
        let parsed = url::Url::parse(&full).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("no port"))?;
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(bad(
                "give only scheme, host and port (no path or query), e.g. https://oss-cn-hangzhou.aliyuncs.com",
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials do not belong in the URL"));
        }
        Ok(Self {
            url: full,
            host,
            port,
        })
    }

    /// Whether this is an Alibaba/Tencent `-internal` (in-region) endpoint.
    pub fn is_internal(&self) -> bool {
        self.host.contains("-internal")
    }

    /// Whether the host is an IP address rather than a name.
    pub fn is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

/// The signature scheme for `provider` and `--signature`.
pub fn signature_for(
    provider: Provider,
    arg: Option<SignatureArg>,
) -> Result<SignatureVersion, UsageError> {
    let bad = |given: SignatureArg| UsageError::BadSignature {
        provider,
        given: match given {
            SignatureArg::V1 => "v1".to_string(),
            SignatureArg::V4 => "v4".to_string(),
        },
    };
    match (provider, arg) {
        (p, None) => Ok(SignatureVersion::default_for(p)),
        (Provider::Oss, Some(SignatureArg::V1)) => Ok(SignatureVersion::OssV1),
        (Provider::Oss, Some(SignatureArg::V4)) => Ok(SignatureVersion::OssV4),
        (Provider::S3, Some(SignatureArg::V4)) => Ok(SignatureVersion::SigV4),
        (Provider::S3, Some(given @ SignatureArg::V1)) | (Provider::Cos, Some(given)) => {
            Err(bad(given))
        }
    }
}

/// Why the endpoint could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The host name did not resolve.
    Dns { host: String, detail: String },
    /// The DNS answer took longer than the timeout.
    DnsTimeout { host: String, after: Duration },
    /// Something answered with a refusal (nothing listens on the port).
    Refused { addr: SocketAddr },
    /// No answer within the timeout (firewall, wrong network).
    Timeout { addr: SocketAddr, after: Duration },
    /// Any other connection error (network unreachable, ...).
    Other { addr: SocketAddr, detail: String },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Dns { host, detail } => {
                write!(f, "the host name {host} does not resolve (DNS: {detail})")
            }
            ProbeError::DnsTimeout { host, after } => {
                write!(f, "no DNS answer for {host} within {}s", after.as_secs())
            }
            ProbeError::Refused { addr } => {
                write!(f, "{addr} refused the connection (nothing listens there)")
            }
            ProbeError::Timeout { addr, after } => {
                write!(f, "no answer from {addr} within {}s", after.as_secs())
            }
            ProbeError::Other { addr, detail } => write!(f, "cannot connect to {addr}: {detail}"),
        }
    }
}

/// Resolve `host` and open a TCP connection to `port`, trying each address
/// in turn; the first that connects wins, else the last error is returned.
pub async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, ProbeError> {
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => {
            return Err(ProbeError::DnsTimeout {
                host: host.to_string(),
                after: timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(ProbeError::Dns {
                host: host.to_string(),
                detail: e.to_string(),
            });
        }
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
    };
    let mut last = ProbeError::Dns {
        host: host.to_string(),
        detail: "no address".to_string(),
    };
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => return Ok(addr),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = ProbeError::Refused { addr };
            }
            Ok(Err(e)) => {
                last = ProbeError::Other {
                    addr,
                    detail: e.to_string(),
                };
            }
            Err(_) => {
                last = ProbeError::Timeout {
                    addr,
                    after: timeout,
                };
            }
        }
    }
    Err(last)
}

/// The advice for an unreachable endpoint.
pub fn unreachable_fix(endpoint: &Endpoint) -> String {
    let mut fix = format!(
        "check --url (scheme, host and port), that no firewall blocks this host from {}:{}, and that this host has a route there; `-internal` endpoints only work from inside the same cloud region",
        endpoint.host, endpoint.port
    );
    if endpoint.is_internal() {
        fix.push_str(
            " (this is an `-internal` endpoint: from outside the region use the public one, without `-internal`)",
        );
    }
    fix
}

/// What a store error means for an operator, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The server refused the keys (`AccessDenied`, `SignatureDoesNotMatch`,
    /// `InvalidAccessKeyId`).
    WrongKeys { code: String },
    /// The STS token is invalid or expired.
    TokenRejected { code: String },
    /// The bucket does not exist at this endpoint.
    NoSuchBucket,
    /// This host's clock is too far from the server's.
    ClockSkew,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The bucket lives in another region or behind another endpoint.
    WrongRegionOrEndpoint { code: String },
    /// The server refuses this addressing style (virtual host vs path).
    AddressingStyle { code: String },
    /// The endpoint could not be reached or the connection broke.
    Unreachable,
    /// The server did not answer in time.
    Timeout,
    /// The reply is not an object-store reply.
    NotAnObjectStore,
    /// The credential source failed while the request was made.
    Credentials,
    /// Anything else; the error's own text says what.
    Other,
}

impl Diagnosis {
    /// One line saying what is wrong.
    pub fn problem(&self) -> String {
        match self {
            Diagnosis::WrongKeys { code } => match code.as_str() {
                "InvalidAccessKeyId" => {
                    "wrong keys: the server does not know this access key id (InvalidAccessKeyId)"
                        .to_string()
                }
                "SignatureDoesNotMatch" => {
                    "wrong keys: the signature does not match, so the secret key is wrong (SignatureDoesNotMatch)"
                        .to_string()
                }
                "AccessDenied" => {
                    "wrong keys or missing permission: the server denied access (AccessDenied)"
                        .to_string()
                }
                other => format!("wrong keys: the server refused the credentials ({other})"),
            },
            Diagnosis::TokenRejected { code } => {
                format!("the STS security token is invalid or expired ({code})")
            }
            Diagnosis::NoSuchBucket => "no such bucket at this endpoint".to_string(),
            Diagnosis::ClockSkew => {
                "clock skew: this host's clock is too far from the server's".to_string()
            }
            Diagnosis::Tls => "TLS handshake or certificate check failed".to_string(),
            Diagnosis::WrongRegionOrEndpoint { code } => {
                format!("wrong region or endpoint for this bucket ({code})")
            }
            Diagnosis::AddressingStyle { code } => {
                format!("the server refuses this addressing style ({code})")
            }
            Diagnosis::Unreachable => "the endpoint is unreachable".to_string(),
            Diagnosis::Timeout => "the endpoint did not answer in time".to_string(),
            Diagnosis::NotAnObjectStore => {
                "the endpoint's reply is not an object-store reply".to_string()
            }
            Diagnosis::Credentials => "the credential source failed".to_string(),
            Diagnosis::Other => "the listing failed".to_string(),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Diagnosis::WrongKeys { code } if code == "AccessDenied" => {
                "check the access key id and secret in the credential source above, and that these keys may list this bucket (RAM/CAM/IAM policy)".to_string()
            }
            Diagnosis::WrongKeys { .. } => {
                "check the access key id and secret in the credential source above, and that --provider matches the store (oss, cos or s3)".to_string()
            }
            Diagnosis::TokenRejected { .. } => {
                "refresh the STS credentials (the files in --sts-dir, or OSS_SESSION_TOKEN/COS_SESSION_TOKEN/AWS_SESSION_TOKEN)".to_string()
            }
            Diagnosis::NoSuchBucket => {
                "check the bucket name (COS buckets end in -APPID), the region and the endpoint".to_string()
            }
            Diagnosis::ClockSkew => {
                "sync this host's clock (chrony or ntpd, e.g. `chronyc makestep`) and retry".to_string()
            }
            Diagnosis::Tls => {
                "for a private CA pass its bundle with --ca-bundle PATH (mount option -o ca_bundle=PATH); if the endpoint does not speak TLS, use an http:// URL".to_string()
            }
            Diagnosis::WrongRegionOrEndpoint { .. } => {
                "use the endpoint of the bucket's region in --url, and --region to match it".to_string()
            }
            Diagnosis::AddressingStyle { .. } => {
                "OSS needs virtual-host style (drop --path-style); an S3-compatible server without bucket host names needs --path-style".to_string()
            }
            Diagnosis::Unreachable => {
                "check --url, the firewall, and that `-internal` endpoints are only used inside their region".to_string()
            }
            Diagnosis::Timeout => {
                "check the network path to the endpoint (firewall, proxy) and retry".to_string()
            }
            Diagnosis::NotAnObjectStore => {
                "check that --url is the object-store endpoint (not a console or website URL) and that --provider matches it".to_string()
            }
            Diagnosis::Credentials => {
                "fix the credential source named in the error".to_string()
            }
            Diagnosis::Other => "see the server's message above".to_string(),
        }
    }
}

/// Error codes that mean the STS token is the problem.
const TOKEN_CODES: &[&str] = &[
    "InvalidSecurityToken",
    "SecurityTokenExpired",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
];

/// Error codes that mean the request went to the wrong region or endpoint.
const REGION_CODES: &[&str] = &[
    "AuthorizationHeaderMalformed",
    "PermanentRedirect",
    "TemporaryRedirect",
    "IllegalLocationConstraintException",
    "IncorrectEndpoint",
    "InvalidRegionName",
    "AuthorizationQueryParametersError",
];

/// Error codes that mean the keys are wrong.
const KEY_CODES: &[&str] = &[
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidAccessKey",
];

/// OSS answers a request for a bucket in another region with 403
/// `AccessDenied` and this message (plus an `<Endpoint>` element).
const OSS_WRONG_ENDPOINT_MESSAGE: &str = "must be addressed using the specified endpoint";

/// What `error`, the result of listing one key, means.
pub fn diagnose(error: &StoreError) -> Diagnosis {
    match error {
        StoreError::AccessDenied { code, message, .. } => by_code(code, message, 403),
        StoreError::Service {
            status,
            code,
            message,
            ..
        } => by_code(code, message, *status),
        StoreError::NoSuchBucket { .. } | StoreError::NotFound { .. } => Diagnosis::NoSuchBucket,
        StoreError::ClockSkew { .. } => Diagnosis::ClockSkew,
        StoreError::Tls { .. } => Diagnosis::Tls,
        StoreError::Unreachable { detail, .. } if looks_like_tls(detail) => Diagnosis::Tls,
        StoreError::Connection(detail) if looks_like_tls(detail) => Diagnosis::Tls,
        StoreError::Unreachable { .. } | StoreError::Connection(_) => Diagnosis::Unreachable,
        StoreError::Timeout(_) => Diagnosis::Timeout,
        StoreError::Malformed(_) => Diagnosis::NotAnObjectStore,
        StoreError::Credentials(_) => Diagnosis::Credentials,
        StoreError::InvalidRange { .. }
        | StoreError::PreconditionFailed { .. }
        | StoreError::AppendPositionMismatch { .. }
        | StoreError::KeyTooLong { .. }
        | StoreError::TooLarge(_)
        | StoreError::Unsupported(_)
        | StoreError::InvalidArgument(_) => Diagnosis::Other,
    }
}

/// Whether a transport error's text is about TLS (rustls says "received
/// corrupt message of type InvalidContentType" when an https URL meets a
/// plain-http server, "invalid peer certificate" for an unknown CA).
fn looks_like_tls(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "ssl",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

fn by_code(code: &str, message: &str, status: u16) -> Diagnosis {
    let code_owned = || code.to_string();
    if message.contains(OSS_WRONG_ENDPOINT_MESSAGE) || REGION_CODES.contains(&code) {
        return Diagnosis::WrongRegionOrEndpoint { code: code_owned() };
    }
    if TOKEN_CODES.contains(&code) {
        return Diagnosis::TokenRejected { code: code_owned() };
    }
    if KEY_CODES.contains(&code) {
        return Diagnosis::WrongKeys { code: code_owned() };
    }
    match code {
        "NoSuchBucket" => return Diagnosis::NoSuchBucket,
        "RequestTimeTooSkewed" => return Diagnosis::ClockSkew,
        "SecondLevelDomainForbidden" => return Diagnosis::AddressingStyle { code: code_owned() },
        _ => {}
    }
    match status {
        301 | 307 => Diagnosis::WrongRegionOrEndpoint {
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code_owned()
            },
        },
        403 if code.is_empty() => Diagnosis::WrongKeys {
            code: "HTTP 403".to_string(),
        },
        _ => Diagnosis::Other,
    }
}

/// What to do about a credential error.
pub fn credential_fix(error: &CredentialError, provider: Provider) -> String {
    match error {
        CredentialError::NotFound { .. } => {
            let names = EnvNames::for_provider(provider);
            let files = passwd::default_paths(provider, Some(Path::new("~")), Path::new("/etc"))
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            format!(
                "give --passwd-file PATH, set {} and {}, or write `ACCESS_KEY_ID:SECRET` to {files} (mode 0600)",
                names.access_key_id, names.secret
            )
        }
        CredentialError::InsecurePermissions { path, .. } => {
            format!("run `chmod 600 {}`", path.display())
        }
        CredentialError::Malformed { path, line, .. } => format!(
            "make line {line} of {} read `ACCESS_KEY_ID:SECRET` or `BUCKET:ACCESS_KEY_ID:SECRET`",
            path.display()
        ),
        CredentialError::NoEntry { path, bucket } => format!(
            "add a line `{bucket}:ACCESS_KEY_ID:SECRET` (or a default `ACCESS_KEY_ID:SECRET`) to {}",
            path.display()
        ),
        CredentialError::IncompleteEnv { set, missing } => {
            format!("set {missing} as well, or unset {set}")
        }
        CredentialError::InvalidSts { .. } | CredentialError::Expired { .. } => {
            "refresh the STS directory's files (AccessKeyId, AccessKeySecret, SecurityToken, Expiration in RFC 3339)".to_string()
        }
        CredentialError::Io { path, .. } => format!(
            "check that {} exists and that this user may read it",
            path.display()
        ),
    }
}

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

/// Everything derived from the arguments before any step runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Endpoint,
    pub provider: Provider,
    pub region: Option<String>,
    pub signature: SignatureVersion,
    pub path_style: bool,
}

impl Plan {
    /// Check the arguments and fill in what is inferred.
    pub fn from_args(args: &CheckArgs) -> Result<Self, UsageError> {
        let (bucket, prefix) = parse_target(&args.target)?;
        let endpoint = Endpoint::parse(&args.url)?;
        let provider = args
            .provider
            .unwrap_or_else(|| Provider::infer_from_host(&endpoint.host));
        let region = args
            .region
            .clone()
            .or_else(|| provider.infer_region(&endpoint.host));
        let signature = signature_for(provider, args.signature)?;
        if args.path_style && provider.requires_virtual_host() {
            return Err(UsageError::PathStyleRefused(provider));
        }
        Ok(Self {
            bucket,
            prefix,
            endpoint,
            provider,
            region,
            signature,
            path_style: args.path_style,
        })
    }

    /// The host name the client connects to: the endpoint host with path
    /// style, else `bucket.host` (unless `--url` already names the bucket).
    pub fn connect_host(&self) -> String {
        let host = &self.endpoint.host;
        if self.path_style || host.starts_with(&format!("{}.", self.bucket)) {
            host.clone()
        } else {
            format!("{}.{host}", self.bucket)
        }
    }

    /// The client configuration for the listing step.
    pub fn client_config(&self, args: &CheckArgs) -> ClientConfig {
        let mut config = ClientConfig::new(self.provider, self.endpoint.url.clone(), &self.bucket);
        config.region = self.region.clone();
        config.path_style = self.path_style;
        config.signature = self.signature;
        config.ca_bundle = args.ca_bundle.clone();
        config.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
        config.read_timeout = Duration::from_secs(15);
        config.retry = RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        };
        config
    }
}

/// Run the three steps for `args`, reading the environment through `env`
/// and writing the report to `out`. `Ok(true)` when every step passed.
pub async fn check(
    args: &CheckArgs,
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
        if plan.path_style {
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
    if !plan.path_style && plan.endpoint.is_ip() {
        return Step::Fail {
            what: format!(
                "unreachable: the bucket would be addressed as host {host}, which cannot exist for an IP address"
            ),
            fix: match plan.provider {
                Provider::S3 => "add --path-style (servers on an IP address, such as Garage, MinIO or `ossfs-rs serve`, need it)".to_string(),
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

async fn list_step(plan: &Plan, args: &CheckArgs, creds: Arc<dyn CredentialProvider>) -> Step {
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
pub async fn run(args: CheckArgs) -> ExitCode {
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
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: CheckArgs,
    }

    fn args(argv: &[&str]) -> CheckArgs {
        let mut full = vec!["check"];
        full.extend_from_slice(argv);
        Cmd::try_parse_from(full).expect("parses").args
    }

    fn service(status: u16, code: &str, message: &str) -> StoreError {
        StoreError::from_service(status, code, message, None, "", "bucket")
    }

    #[test]
    fn parses_every_option() {
        let a = args(&[
            "b-1250000000:/data/x",
            "--url",
            "https://cos.ap-beijing.myqcloud.com",
            "--provider",
            "cos",
            "--region",
            "ap-beijing",
            "--passwd-file",
            "/etc/passwd-cosfs",
            "--sts-dir",
            "/run/sts",
            "--path-style",
            "--ca-bundle",
            "/etc/ca.pem",
            "--connect-timeout",
            "3",
        ]);
        assert_eq!(a.target, "b-1250000000:/data/x");
        assert_eq!(a.provider, Some(Provider::Cos));
        assert_eq!(a.region.as_deref(), Some("ap-beijing"));
        assert_eq!(a.passwd_file, Some(PathBuf::from("/etc/passwd-cosfs")));
        assert_eq!(a.sts_dir, Some(PathBuf::from("/run/sts")));
        assert!(a.path_style);
        assert_eq!(a.ca_bundle, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(a.connect_timeout, 3);
        let a = args(&[
            "b",
            "--url",
            "oss-cn-hangzhou.aliyuncs.com",
            "--signature",
            "v4",
        ]);
        assert_eq!(a.signature, Some(SignatureArg::V4));
        let a = args(&["b", "--url", "x", "--signature", "sigv1"]);
        assert_eq!(a.signature, Some(SignatureArg::V1));
        assert!(Cmd::try_parse_from(["check", "b", "--url", "x", "--provider", "ftp"]).is_err());
        assert!(Cmd::try_parse_from(["check", "b"]).is_err());
    }

    #[test]
    fn target_forms() {
        assert_eq!(
            parse_target("b").expect("ok"),
            ("b".to_string(), String::new())
        );
        assert_eq!(
            parse_target("b:/").expect("ok"),
            ("b".to_string(), String::new())
        );
        assert_eq!(
            parse_target("b:/a/b").expect("ok"),
            ("b".to_string(), "a/b/".to_string())
        );
        assert_eq!(
            parse_target("b:a/").expect("ok"),
            ("b".to_string(), "a/".to_string())
        );
        assert!(parse_target(":/x").is_err());
        assert!(parse_target("a/b").is_err());
    }

    #[test]
    fn endpoint_forms() {
        let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").expect("ok");
        assert_eq!(e.url, "https://oss-cn-hangzhou.aliyuncs.com");
        assert_eq!(e.port, 443);
        let e = Endpoint::parse("http://127.0.0.1:3900").expect("ok");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 3900));
        let e = Endpoint::parse("http://[::1]:9000").expect("ok");
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(
            Endpoint::parse("oss-cn-hangzhou-internal.aliyuncs.com")
                .expect("ok")
                .is_internal()
        );
    }

    #[test]
    fn plan_infers_provider_region_and_signature() {
        let p = Plan::from_args(&args(&[
            "b:/p",
            "--url",
            "https://oss-cn-hangzhou.aliyuncs.com",
        ]))
        .expect("ok");
        assert_eq!(p.provider, Provider::Oss);
        assert_eq!(p.region.as_deref(), Some("cn-hangzhou"));
        assert_eq!(p.signature, SignatureVersion::OssV1);
        assert_eq!(p.prefix, "p/");

        let p =
            Plan::from_args(&args(&["b-125", "--url", "cos.ap-beijing.myqcloud.com"])).expect("ok");
        assert_eq!(p.provider, Provider::Cos);
        assert_eq!(p.region.as_deref(), Some("ap-beijing"));
        assert_eq!(p.signature, SignatureVersion::Cos);

        let a = args(&["b", "--url", "http://127.0.0.1:3900", "--region", "garage"]);
        let p = Plan::from_args(&a).expect("ok");
        assert_eq!(p.provider, Provider::S3);
        assert_eq!(p.signature, SignatureVersion::SigV4);
        let c = p.client_config(&a);
        assert_eq!(c.endpoint, "http://127.0.0.1:3900");
        assert_eq!(c.region.as_deref(), Some("garage"));

        // An explicit provider wins over the host.
        let p = Plan::from_args(&args(&[
            "b",
            "--url",
            "http://127.0.0.1:3900",
            "--provider",
            "oss",
            "--signature",
            "v4",
        ]))
        .expect("ok");
        assert_eq!(p.provider, Provider::Oss);
        assert_eq!(p.signature, SignatureVersion::OssV4);
    }

    #[test]
    fn signature_combinations() {
        assert_eq!(
            signature_for(Provider::Oss, Some(SignatureArg::V4)),
            Ok(SignatureVersion::OssV4)
        );
        assert_eq!(
            signature_for(Provider::S3, Some(SignatureArg::V4)),
            Ok(SignatureVersion::SigV4)
        );
        assert!(signature_for(Provider::S3, Some(SignatureArg::V1)).is_err());
        assert!(signature_for(Provider::Cos, Some(SignatureArg::V4)).is_err());
        assert_eq!(
            signature_for(Provider::Cos, None),
            Ok(SignatureVersion::Cos)
        );
    }

    #[test]
    fn diagnoses_wrong_keys_and_says_which_code() {
        for code in [
            "AccessDenied",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
        ] {
            let d = diagnose(&service(403, code, "denied"));
            assert_eq!(
                d,
                Diagnosis::WrongKeys {
                    code: code.to_string()
                }
            );
            assert!(d.problem().contains(code), "{}", d.problem());
            assert!(d.problem().starts_with("wrong keys"), "{}", d.problem());
        }
        assert_eq!(
            diagnose(&service(403, "", "")),
            Diagnosis::WrongKeys {
                code: "AccessDenied".to_string()
            }
        );
    }

    #[test]
    fn diagnoses_token_problems() {
        for code in [
            "InvalidSecurityToken",
            "SecurityTokenExpired",
            "ExpiredToken",
        ] {
            assert_eq!(
                diagnose(&service(403, code, "")),
                Diagnosis::TokenRejected {
                    code: code.to_string()
                }
            );
        }
    }

    #[test]
    fn diagnoses_no_such_bucket() {
        let d = diagnose(&service(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        ));
        assert_eq!(d, Diagnosis::NoSuchBucket);
        let fix = d.fix();
        assert!(fix.contains("bucket name") && fix.contains("region") && fix.contains("endpoint"));
        // A 404 with no error document on a listing.
        assert_eq!(diagnose(&service(404, "", "")), Diagnosis::NoSuchBucket);
    }

    #[test]
    fn diagnoses_clock_skew() {
        let d = diagnose(&service(
            403,
            "RequestTimeTooSkewed",
            "difference too large",
        ));
        assert_eq!(d, Diagnosis::ClockSkew);
        assert!(d.fix().contains("chrony"));
    }

    #[test]
    fn diagnoses_tls_with_ca_bundle_hint() {
        let d = diagnose(&StoreError::Tls {
            endpoint: "https://s3.local".to_string(),
            detail: "unknown issuer".to_string(),
        });
        assert_eq!(d, Diagnosis::Tls);
        assert!(d.fix().contains("--ca-bundle"));
        assert!(d.fix().contains("ca_bundle"));
    }

    #[test]
    fn diagnoses_tls_hidden_in_transport_errors() {
        // What rustls reports when an https URL meets a plain-http server.
        let e = StoreError::Unreachable {
            endpoint: "https://127.0.0.1:9000".to_string(),
            detail: "client error (Connect): received corrupt message of type InvalidContentType"
                .to_string(),
        };
        assert_eq!(diagnose(&e), Diagnosis::Tls);
        let e = StoreError::Connection("invalid peer certificate: UnknownIssuer".to_string());
        assert_eq!(diagnose(&e), Diagnosis::Tls);
    }

    #[test]
    fn credential_fixes_are_specific() {
        let fix = credential_fix(
            &CredentialError::NotFound {
                tried: String::new(),
            },
            Provider::Cos,
        );
        assert!(
            fix.contains("COS_SECRET_ID") && fix.contains("COS_SECRET_KEY"),
            "{fix}"
        );
        assert!(
            fix.contains("~/.passwd-cosfs") && fix.contains("/etc/passwd-cosfs"),
            "{fix}"
        );
        let fix = credential_fix(
            &CredentialError::InsecurePermissions {
                path: PathBuf::from("/etc/passwd-ossfs"),
                mode: 0o644,
            },
            Provider::Oss,
        );
        assert_eq!(fix, "run `chmod 600 /etc/passwd-ossfs`");
        let fix = credential_fix(
            &CredentialError::Expired {
                path: PathBuf::from("/run/sts"),
            },
            Provider::Oss,
        );
        assert!(fix.contains("refresh"), "{fix}");
        let fix = credential_fix(
            &CredentialError::NoEntry {
                path: PathBuf::from("/p"),
                bucket: "b".to_string(),
            },
            Provider::S3,
        );
        assert!(fix.contains("`b:ACCESS_KEY_ID:SECRET`"), "{fix}");
    }

    #[test]
    fn diagnoses_region_errors() {
        for code in [
            "AuthorizationHeaderMalformed",
            "PermanentRedirect",
            "IllegalLocationConstraintException",
        ] {
            assert_eq!(
                diagnose(&service(400, code, "the region 'us-east-1' is wrong")),
                Diagnosis::WrongRegionOrEndpoint {
                    code: code.to_string()
                }
            );
        }
        // A bare 301 (no error document).
        assert_eq!(
            diagnose(&service(301, "", "")),
            Diagnosis::WrongRegionOrEndpoint {
                code: "HTTP 301".to_string()
            }
        );
        // OSS: 403 AccessDenied naming the right endpoint.
        let d = diagnose(&service(
            403,
            "AccessDenied",
            "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
        ));
        assert_eq!(
            d,
            Diagnosis::WrongRegionOrEndpoint {
                code: "AccessDenied".to_string()
            }
        );
        assert!(d.fix().contains("--region"));
    }

    #[test]
    fn diagnoses_addressing_style() {
        assert_eq!(
            diagnose(&service(403, "SecondLevelDomainForbidden", "")),
            Diagnosis::AddressingStyle {
                code: "SecondLevelDomainForbidden".to_string()
            }
        );
    }

    #[test]
    fn diagnoses_transport_and_other_errors() {
        assert_eq!(
            diagnose(&StoreError::Unreachable {
                endpoint: "x".to_string(),
                detail: "refused".to_string()
            }),
            Diagnosis::Unreachable
        );
        assert_eq!(
            diagnose(&StoreError::Connection("reset".to_string())),
            Diagnosis::Unreachable
        );
        assert_eq!(
            diagnose(&StoreError::Timeout(Duration::from_secs(15))),
            Diagnosis::Timeout
        );
        assert_eq!(
            diagnose(&StoreError::Malformed("<html>".to_string())),
            Diagnosis::NotAnObjectStore
        );
        assert_eq!(
            diagnose(&StoreError::Credentials(CredentialError::Expired {
                path: PathBuf::from("/run/sts")
            })),
            Diagnosis::Credentials
        );
        assert_eq!(
            diagnose(&service(500, "InternalError", "")),
            Diagnosis::Other
        );
    }

    #[test]
    fn unreachable_advice_mentions_internal_endpoints() {
        let e = Endpoint::parse("oss-cn-hangzhou-internal.aliyuncs.com").expect("ok");
        let fix = unreachable_fix(&e);
        assert!(fix.contains("--url") && fix.contains("firewall"));
        assert!(fix.contains("without `-internal`"), "{fix}");
        let e = Endpoint::parse("http://127.0.0.1:1").expect("ok");
        assert!(!unreachable_fix(&e).contains("without `-internal`"));
    }

    #[test]
    fn probe_messages_are_plain() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let s = ProbeError::Dns {
            host: "oss-xx.aliyuncs.com".to_string(),
            detail: "failed to lookup address information".to_string(),
        }
        .to_string();
        assert!(s.contains("does not resolve") && s.contains("oss-xx.aliyuncs.com"));
        assert!(ProbeError::Refused { addr }.to_string().contains("refused"));
        let s = ProbeError::Timeout {
            addr,
            after: Duration::from_secs(5),
        }
        .to_string();
        assert!(s.contains("no answer") && s.contains("5s"), "{s}");
    }

    #[tokio::test]
    async fn probe_connects_and_sees_refusal_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let addr = probe_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .expect("reachable");
        assert_eq!(addr.port(), port);
        drop(listener);
        match probe_tcp("127.0.0.1", port, Duration::from_secs(5)).await {
            Err(ProbeError::Refused { addr }) => assert_eq!(addr.port(), port),
            other => panic!("expected Refused, got {other:?}"),
        }
    }

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

    /// An IP endpoint in virtual-host style can never work: said without
    /// any DNS lookup.
    #[tokio::test]
    async fn ip_endpoint_without_path_style_is_diagnosed() {
        let a = args(&["b", "--url", "http://127.0.0.1:9"]);
        let mut out = Vec::new();
        let passed = check(&a, EnvLookup::empty(), &mut out)
            .await
            .expect("arguments are fine");
        let text = String::from_utf8(out).expect("utf8");
        assert!(!passed);
        assert!(
            text.contains(
                "FAIL  endpoint: unreachable: the bucket would be addressed as host b.127.0.0.1"
            ),
            "{text}"
        );
        assert!(text.contains("fix: add --path-style"), "{text}");
        assert!(text.contains("skip  list:"), "{text}");
    }

    #[test]
    fn connect_host_follows_addressing_style() {
        let p = Plan::from_args(&args(&[
            "b",
            "--url",
            "https://oss-cn-hangzhou.aliyuncs.com",
        ]))
        .expect("ok");
        assert_eq!(p.connect_host(), "b.oss-cn-hangzhou.aliyuncs.com");
        let p = Plan::from_args(&args(&[
            "b-125",
            "--url",
            "https://b-125.cos.ap-beijing.myqcloud.com",
        ]))
        .expect("ok");
        assert_eq!(p.connect_host(), "b-125.cos.ap-beijing.myqcloud.com");
        let p = Plan::from_args(&args(&[
            "b",
            "--url",
            "http://localhost:3900",
            "--path-style",
        ]))
        .expect("ok");
        assert_eq!(p.connect_host(), "localhost");
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
