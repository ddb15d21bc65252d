//! Credentials: the key pair (and STS token) a signer needs, and where they
//! come from.
//!
//! Secrets never appear in `Debug` output, logs or error messages: the
//! `Debug` impls are written by hand and print `<redacted>`.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

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
    /// A passwd file readable by group or others beyond 0640.
    #[error(
        "passwd file {path} has mode {mode:o}, which lets other users read it: run `chmod 600 {path}`"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// A passwd file line that is not `ak:sk` or `bucket:ak:sk`.
    #[error("passwd file {path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A file that could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// STS credentials past their expiration.
    #[error("STS credentials in {path} expired; refresh the files in that directory")]
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

/// Credentials given directly (CLI, CSI secret, tests).
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
    }
}
