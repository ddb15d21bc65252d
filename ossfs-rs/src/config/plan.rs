//! The store a mount or `ossfs-rs check` talks to: the arguments that name
//! an endpoint, a bucket and the credential sources ([`StoreArgs`]), and
//! the [`Plan`] derived from them (provider, region and signature inferred
//! from the endpoint host where not given, the addressing style checked, or
//! chosen: path style by itself for an IP-address or `localhost` endpoint,
//! which cannot carry bucket host names).
//!
//! One description serves both commands: `ossfs-rs check` parses
//! [`StoreArgs`] from its command line, and every mount builds the same
//! arguments from its options ([`StoreArgs::from_request`]), so a mount's
//! preflight runs exactly the diagnosis `ossfs-rs check` prints and every
//! worker builds its store client from the same [`Plan`].
//!
//! Imports: [`super::request`] and `store` (provider, client configuration,
//! retry settings); nothing of the layers above.

use std::path::PathBuf;
use std::time::Duration;

use super::request::MountRequest;
use crate::store::client::SignatureVersion;
use crate::store::dialect::UnknownProvider;
use crate::store::retry::RetryConfig;
use crate::store::{ClientConfig, Provider};

/// A store endpoint, a bucket and its credential sources: the arguments
/// of `ossfs-rs check`, and what a mount builds from its options.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
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
    /// Chosen by itself for an IP-address or `localhost` endpoint.
    #[arg(long, conflicts_with = "virtual_host")]
    pub path_style: bool,

    /// Put the bucket in the host name even for an IP-address or
    /// `localhost` endpoint (where path style is otherwise chosen).
    #[arg(long)]
    pub virtual_host: bool,

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

/// Why a mount's options do not describe a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreOptionError {
    #[error("no endpoint: give it with --url URL or -o url=URL")]
    NoEndpoint,
    #[error(transparent)]
    Provider(#[from] UnknownProvider),
    #[error("signature={0:?}: use v1 or v4")]
    Signature(String),
}

impl StoreArgs {
    /// The arguments equivalent to the mount `req`, so the mount runs
    /// exactly the diagnosis `ossfs-rs check` prints.
    pub fn from_request(req: &MountRequest) -> Result<Self, StoreOptionError> {
        let o = &req.options;
        let url = o.url.clone().ok_or(StoreOptionError::NoEndpoint)?;
        let provider = match &o.provider {
            Some(p) => Some(p.parse::<Provider>()?),
            None => None,
        };
        let signature = match o.signature.as_deref() {
            None => None,
            Some("v1" | "sigv1") => Some(SignatureArg::V1),
            Some("v4" | "sigv4") => Some(SignatureArg::V4),
            Some(other) => return Err(StoreOptionError::Signature(other.to_string())),
        };
        Ok(Self {
            target: format!("{}:/{}", req.source.bucket, req.source.prefix),
            url,
            provider,
            region: o.region.clone(),
            passwd_file: o.passwd_file.clone(),
            sts_dir: o.sts_dir.clone(),
            path_style: o.path_style,
            virtual_host: o.virtual_host,
            ca_bundle: o.ca_bundle.clone(),
            signature,
            connect_timeout: 10,
        })
    }
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
    #[error("path style and virtual-host style both forced: give only one of them")]
    StyleConflict,
    #[error(
        "provider {provider} addresses buckets by host name only (bucket.{host}), which an IP-address or localhost endpoint cannot carry, and it refuses path style: give the endpoint's host name in --url (or --provider s3 for an S3-compatible server)"
    )]
    HostNameNeeded { provider: Provider, host: String },
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

/// The parts of `--url` the client and the checks need.
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

    /// Whether `bucket.host` cannot be a host name here: an IP address,
    /// or `localhost` (`bucket.localhost` resolves on some hosts only).
    pub fn has_no_bucket_hosts(&self) -> bool {
        self.is_ip() || self.host.eq_ignore_ascii_case("localhost")
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
    /// Path style was chosen for an endpoint without bucket host names,
    /// not asked for.
    pub path_style_chosen: bool,
}

impl Plan {
    /// Check the arguments and fill in what is inferred.
    pub fn from_args(args: &StoreArgs) -> Result<Self, UsageError> {
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
        if args.path_style && args.virtual_host {
            return Err(UsageError::StyleConflict);
        }
        if args.path_style && provider.requires_virtual_host() {
            return Err(UsageError::PathStyleRefused(provider));
        }
        let choose = !args.path_style && !args.virtual_host && endpoint.has_no_bucket_hosts();
        if choose && provider.requires_virtual_host() {
            return Err(UsageError::HostNameNeeded {
                provider,
                host: endpoint.host.clone(),
            });
        }
        if choose {
            tracing::info!(
                host = endpoint.host,
                "the endpoint is an IP address or localhost, which cannot carry bucket host names: using path style (force virtual-host style with -o virtual_host or --virtual-host)"
            );
        }
        Ok(Self {
            bucket,
            prefix,
            endpoint,
            provider,
            region,
            signature,
            path_style: args.path_style || choose,
            path_style_chosen: choose,
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
    pub fn client_config(&self, args: &StoreArgs) -> ClientConfig {
        let mut config = ClientConfig::new(self.provider, self.endpoint.url.clone(), &self.bucket);
        config.region = self.region.clone();
        config.path_style = self.path_style;
        config.signature = self.signature;
        config.ca_bundle = args.ca_bundle.clone();
        config.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
        // The check answers quickly or says why: 15 s without progress in
        // any phase (a mount's workers use 30 s, supervisor::setup).
        config.send_idle_timeout = Duration::from_secs(15);
        config.first_byte_timeout = Duration::from_secs(15);
        config.read_timeout = Duration::from_secs(15);
        config.retry = RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        };
        config
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: StoreArgs,
    }

    pub(crate) fn args(argv: &[&str]) -> StoreArgs {
        let mut full = vec!["check"];
        full.extend_from_slice(argv);
        Cmd::try_parse_from(full).expect("parses").args
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
            "http://oss.example.internal:3900",
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

    /// `bucket.127.0.0.1` cannot exist: an IP-address or localhost
    /// endpoint gets path style by itself, unless virtual-host style is
    /// forced; OSS and COS, which refuse path style, get a clear error.
    #[test]
    fn endpoints_without_bucket_host_names_choose_path_style() {
        for url in [
            "http://127.0.0.1:3900",
            "http://[::1]:3900",
            "http://localhost:3900",
        ] {
            let p = Plan::from_args(&args(&["b", "--url", url])).expect("ok");
            assert!(p.path_style && p.path_style_chosen, "{url}");
            assert!(p.client_config(&args(&["b", "--url", url])).path_style);
            // Asked for: the same style, but not chosen.
            let p = Plan::from_args(&args(&["b", "--url", url, "--path-style"])).expect("ok");
            assert!(p.path_style && !p.path_style_chosen, "{url}");
            // Forced the other way: kept (check says it cannot work).
            let p = Plan::from_args(&args(&["b", "--url", url, "--virtual-host"])).expect("ok");
            assert!(!p.path_style && !p.path_style_chosen, "{url}");
        }
        // A host name keeps virtual-host style unless path style is asked for.
        let p = Plan::from_args(&args(&["b", "--url", "https://s3.example.com"])).expect("ok");
        assert!(!p.path_style && !p.path_style_chosen);
        assert_eq!(p.connect_host(), "b.s3.example.com");
        // OSS and COS on an IP address: the conflict, explained.
        for provider in ["oss", "cos"] {
            let err = Plan::from_args(&args(&[
                "b",
                "--url",
                "http://10.0.0.7",
                "--provider",
                provider,
            ]))
            .expect_err("refused");
            assert!(matches!(err, UsageError::HostNameNeeded { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains("bucket.10.0.0.7"), "{text}");
            assert!(text.contains("refuses path style"), "{text}");
        }
        // Both forced: refused by the parser for check, by the plan for a mount.
        assert!(
            Cmd::try_parse_from(["check", "b", "--url", "x", "--path-style", "--virtual-host"])
                .is_err()
        );
        let mut a = args(&["b", "--url", "http://127.0.0.1:1"]);
        a.path_style = true;
        a.virtual_host = true;
        assert_eq!(Plan::from_args(&a).err(), Some(UsageError::StyleConflict));
    }

    /// A mount's options give the arguments `ossfs-rs check` would take.
    #[test]
    fn store_args_follow_the_mount_options() {
        let req = |opts: &str| {
            let argv: Vec<String> = ["mount", "b:/p", "/nonexistent-mnt", "-o", opts]
                .iter()
                .map(|s| s.to_string())
                .collect();
            crate::config::request::request_from_argv(&argv).expect("parses")
        };
        let a = StoreArgs::from_request(&req(
            "url=http://127.0.0.1:3900,provider=s3,region=garage,path_style,sigv4,passwd_file=/p",
        ))
        .expect("ok");
        assert_eq!(a.target, "b:/p/");
        assert_eq!(a.url, "http://127.0.0.1:3900");
        assert_eq!(a.provider, Some(Provider::S3));
        assert_eq!(a.region.as_deref(), Some("garage"));
        assert!(a.path_style);
        assert_eq!(a.signature, Some(SignatureArg::V4));
        assert_eq!(a.passwd_file, Some(PathBuf::from("/p")));
        let p = Plan::from_args(&a).expect("ok");
        assert_eq!((p.bucket.as_str(), p.prefix.as_str()), ("b", "p/"));
        // `-o virtual_host` forces virtual-host style; without either
        // option an IP endpoint gets path style.
        let a =
            StoreArgs::from_request(&req("url=http://127.0.0.1:3900,virtual_host")).expect("ok");
        assert!(a.virtual_host && !a.path_style);
        assert!(!Plan::from_args(&a).expect("ok").path_style);
        let a = StoreArgs::from_request(&req("url=http://127.0.0.1:3900")).expect("ok");
        assert!(Plan::from_args(&a).expect("ok").path_style_chosen);
        let a = StoreArgs::from_request(&req("url=http://127.0.0.1:3900,path_style,virtual_host"))
            .expect("ok");
        assert_eq!(Plan::from_args(&a).err(), Some(UsageError::StyleConflict));

        assert!(matches!(
            StoreArgs::from_request(&req("ro")),
            Err(StoreOptionError::NoEndpoint)
        ));
        assert!(matches!(
            StoreArgs::from_request(&req("url=x,provider=ftp")),
            Err(StoreOptionError::Provider(_))
        ));
        let e = StoreArgs::from_request(&req("url=x,signature=v2")).expect_err("bad");
        assert_eq!(e.to_string(), "signature=\"v2\": use v1 or v4");
    }
}
