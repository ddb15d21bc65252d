//! What a failed listing means: a pure function, [`diagnose`], from a
//! [`StoreError`] to a [`Diagnosis`] (what is wrong, how to fix it), and
//! [`credential_fix`] for a credential source that failed.
//!
//! Service errors are sorted by their code, with tables of the codes each
//! store uses for one cause (wrong keys, an STS token, a wrong region), so
//! OSS, COS and S3 phrasings of one problem get one diagnosis. Pure, so
//! every case is unit-tested without a network.
//!
//! Imports: `store` (errors, credential errors, provider names).

use std::path::Path;

use crate::store::credentials::env::EnvNames;
use crate::store::credentials::{CredentialError, passwd};
use crate::store::{Provider, StoreError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn service(status: u16, code: &str, message: &str) -> StoreError {
        StoreError::from_service(status, code, message, None, "", "bucket")
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
}
