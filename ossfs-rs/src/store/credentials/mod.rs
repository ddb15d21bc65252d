//! Credentials: the key pair (and STS token) a signer needs, and where they
//! come from.
//!
//! One file per source: [`StaticProvider`] (keys given directly),
//! [`env`] (the dialect's environment variables), [`passwd`] (the
//! ossfs/cosfs/s3fs passwd files), [`sts`] (a directory of STS files that
//! is re-read before the token expires); [`resolve`] picks one in a fixed
//! order and says which it picked.
//!
//! Every source yields a [`CredentialProvider`], asked before each request.
//! Secrets never appear in `Debug` output, logs or error messages: the
//! `Debug` impls are written by hand and print `<redacted>`, and errors
//! name files and line numbers, never a line's content.
//!
//! Imports (besides its own submodules): nothing of the crate; std and
//! external crates only.

pub mod env;
pub mod passwd;
pub mod resolve;
pub mod sts;

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

pub use env::EnvLookup;
pub use passwd::{PasswdEntry, PasswdFile};
pub use resolve::{CredentialOptions, resolve};
pub use sts::StsDirProvider;

/// An access key pair, optionally with an STS session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub security_token: Option<String>,
    /// When temporary credentials stop working.
    pub expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Static keys without a token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            security_token: None,
            expires_at: None,
        }
    }

    /// Add an STS session token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why credentials could not be had. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No source had credentials; lists what was tried.
    #[error(
        "no credentials found (tried: {tried}); give them with -o passwd_file=PATH, the environment or an STS directory"
    )]
    NotFound { tried: String },
    /// A passwd file whose mode grants more than 0640 (group write, or
    /// any bit for others).
    #[error(
        "passwd file {} has mode {mode:04o}, which gives other users access to it (at most 0640 is allowed): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// A passwd file line that is not `ak:sk` or `bucket:ak:sk`.
    #[error("passwd file {} line {line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A passwd file given explicitly that has neither a line for the
    /// bucket nor a default `ak:sk` line.
    #[error(
        "passwd file {} has no line for bucket {bucket:?} and no default `ak:sk` line: add `{bucket}:ACCESS_KEY_ID:SECRET`",
        path.display()
    )]
    NoEntry { path: PathBuf, bucket: String },
    /// One of a pair of environment variables is set, the other is not.
    #[error("environment variable {set} is set but {missing} is not: set both or neither")]
    IncompleteEnv {
        set: &'static str,
        missing: &'static str,
    },
    /// A file in an STS directory that is empty or cannot be parsed.
    #[error("STS file {}: {reason}", path.display())]
    InvalidSts { path: PathBuf, reason: String },
    /// A file that could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// STS credentials past their expiration.
    #[error(
        "STS credentials in {} expired; refresh the files in that directory",
        path.display()
    )]
    Expired { path: PathBuf },
}

/// A source of credentials, asked before every request (cheap: providers
/// cache, and re-read only when the credentials are about to expire).
pub trait CredentialProvider: Send + Sync + fmt::Debug {
    /// The current credentials.
    fn credentials(&self) -> Result<Credentials, CredentialError>;

    /// Where the credentials come from, for `check` and logs
    /// (`passwd file /etc/passwd-ossfs`); never the secret.
    fn source(&self) -> String;
}

/// Credentials given directly (CLI, CSI secret, tests), or read once from
/// a source that does not change while we run (environment, passwd file).
#[derive(Debug, Clone)]
pub struct StaticProvider {
    creds: Credentials,
    source: String,
}

impl StaticProvider {
    /// Serve `creds`, describing their source as `source`.
    pub fn new(creds: Credentials, source: impl Into<String>) -> Self {
        Self {
            creds,
            source: source.into(),
        }
    }
}

impl CredentialProvider for StaticProvider {
    fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(self.creds.clone())
    }

    fn source(&self) -> String {
        self.source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::new("AKID", "very-secret").with_token("tok-secret");
        let s = format!("{c:?}");
        assert!(s.contains("AKID"));
        assert!(!s.contains("very-secret"));
        assert!(!s.contains("tok-secret"));
        let p = StaticProvider::new(c, "static keys");
        let s = format!("{p:?}");
        assert!(!s.contains("very-secret"));
        assert!(!s.contains("tok-secret"));
    }

    #[test]
    fn permission_message_names_path_and_fix() {
        let e = CredentialError::InsecurePermissions {
            path: PathBuf::from("/etc/passwd-ossfs"),
            mode: 0o644,
        };
        let s = e.to_string();
        assert!(s.contains("/etc/passwd-ossfs"), "{s}");
        assert!(s.contains("0644"), "{s}");
        assert!(s.contains("chmod 600 /etc/passwd-ossfs"), "{s}");
    }
}
