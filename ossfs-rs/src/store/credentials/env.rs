//! Credentials from the dialect's environment variables, read through an
//! injectable lookup.
//!
//! Each dialect has the variable names its vendor's tools use (OSS
//! `OSS_ACCESS_KEY_ID`, COS `COS_SECRET_ID`, S3 `AWS_ACCESS_KEY_ID`, ...).
//! The lookup is a value ([`EnvLookup`]) rather than `std::env::var` so tests
//! and embedders (the CSI plugin) hand in their own map instead of mutating
//! the process environment, which is shared by every thread.
//!
//! The variables are read once, when the provider is resolved: the process
//! environment does not change while the daemon runs.
//!
//! Imports: `store::credentials`, `store::dialect` of the crate, besides std
//! and external crates.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{CredentialError, Credentials, StaticProvider};
use crate::store::dialect::Provider;

/// A function from a variable's name to its value.
type LookupFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Looks a variable up by name; `None` when unset.
#[derive(Clone)]
pub struct EnvLookup(Arc<LookupFn>);

impl EnvLookup {
    /// The process environment. A variable that is not valid UTF-8 counts
    /// as unset.
    pub fn process() -> Self {
        Self(Arc::new(|name| std::env::var(name).ok()))
    }

    /// A fixed map (tests, the CSI plugin's secret).
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self(Arc::new(move |name| map.get(name).cloned()))
    }

    /// A fixed list of `(name, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// An environment where nothing is set.
    pub fn empty() -> Self {
        Self(Arc::new(|_| None))
    }

    /// The value of `name`; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }
}

impl Default for EnvLookup {
    fn default() -> Self {
        Self::process()
    }
}

impl fmt::Debug for EnvLookup {
    /// Values may be secrets: print nothing of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvLookup(..)")
    }
}

/// The names of one dialect's variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvNames {
    pub access_key_id: &'static str,
    pub secret: &'static str,
    /// Token variables in order of preference.
    pub tokens: &'static [&'static str],
}

impl EnvNames {
    /// The variables `provider`'s own tools read.
    pub fn for_provider(provider: Provider) -> Self {
        match provider {
            Provider::Oss => EnvNames {
                access_key_id: "OSS_ACCESS_KEY_ID",
                secret: "OSS_ACCESS_KEY_SECRET",
                tokens: &["OSS_SESSION_TOKEN", "OSS_SECURITY_TOKEN"],
            },
            Provider::Cos => EnvNames {
                access_key_id: "COS_SECRET_ID",
                secret: "COS_SECRET_KEY",
                tokens: &["COS_SESSION_TOKEN", "COS_SECURITY_TOKEN"],
            },
            Provider::S3 => EnvNames {
                access_key_id: "AWS_ACCESS_KEY_ID",
                secret: "AWS_SECRET_ACCESS_KEY",
                tokens: &["AWS_SESSION_TOKEN"],
            },
        }
    }
}

/// Credentials from `provider`'s variables: `Ok(None)` when neither the id
/// nor the secret is set, an error when only one of them is.
pub fn from_env(
    provider: Provider,
    env: &EnvLookup,
) -> Result<Option<StaticProvider>, CredentialError> {
    let names = EnvNames::for_provider(provider);
    let id = env.get(names.access_key_id);
    let secret = env.get(names.secret);
    let (id, secret) = match (id, secret) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(CredentialError::IncompleteEnv {
                set: names.access_key_id,
                missing: names.secret,
            });
        }
        (None, Some(_)) => {
            return Err(CredentialError::IncompleteEnv {
                set: names.secret,
                missing: names.access_key_id,
            });
        }
        (Some(id), Some(secret)) => (id, secret),
    };
    let mut creds = Credentials::new(id, secret);
    let mut source = format!("environment ({})", names.access_key_id);
    if let Some((name, token)) = names
        .tokens
        .iter()
        .find_map(|name| env.get(name).map(|t| (*name, t)))
    {
        creds = creds.with_token(token);
        source = format!("environment ({}, {name})", names.access_key_id);
    }
    Ok(Some(StaticProvider::new(creds, source)))
}

/// What `from_env` looked at, for the resolver's "tried" list.
pub fn describe(provider: Provider) -> String {
    let names = EnvNames::for_provider(provider);
    format!(
        "environment ({}/{} not set)",
        names.access_key_id, names.secret
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::credentials::CredentialProvider;

    #[test]
    fn reads_each_dialects_names() {
        let env = EnvLookup::from_pairs([
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("COS_SECRET_ID", "cos-id"),
            ("COS_SECRET_KEY", "cos-secret"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]);
        for (provider, id, secret, var) in [
            (Provider::Oss, "oss-id", "oss-secret", "OSS_ACCESS_KEY_ID"),
            (Provider::Cos, "cos-id", "cos-secret", "COS_SECRET_ID"),
            (Provider::S3, "aws-id", "aws-secret", "AWS_ACCESS_KEY_ID"),
        ] {
            let p = from_env(provider, &env)
                .expect("no error")
                .expect("credentials found");
            let c = p.credentials().expect("static");
            assert_eq!(c.access_key_id, id);
            assert_eq!(c.secret_access_key, secret);
            assert_eq!(c.security_token, None);
            assert_eq!(p.source(), format!("environment ({var})"));
        }
    }

    #[test]
    fn session_token_and_security_token_alias() {
        let env = EnvLookup::from_pairs([
            ("OSS_ACCESS_KEY_ID", "id"),
            ("OSS_ACCESS_KEY_SECRET", "secret"),
            ("OSS_SECURITY_TOKEN", "tok-alias"),
        ]);
        let p = from_env(Provider::Oss, &env).expect("ok").expect("found");
        let c = p.credentials().expect("static");
        assert_eq!(c.security_token.as_deref(), Some("tok-alias"));
        assert_eq!(
            p.source(),
            "environment (OSS_ACCESS_KEY_ID, OSS_SECURITY_TOKEN)"
        );

        // OSS_SESSION_TOKEN wins over the alias.
        let env = EnvLookup::from_pairs([
            ("OSS_ACCESS_KEY_ID", "id"),
            ("OSS_ACCESS_KEY_SECRET", "secret"),
            ("OSS_SECURITY_TOKEN", "tok-alias"),
            ("OSS_SESSION_TOKEN", "tok-main"),
        ]);
        let c = from_env(Provider::Oss, &env)
            .expect("ok")
            .expect("found")
            .credentials()
            .expect("static");
        assert_eq!(c.security_token.as_deref(), Some("tok-main"));

        let env = EnvLookup::from_pairs([
            ("COS_SECRET_ID", "id"),
            ("COS_SECRET_KEY", "secret"),
            ("COS_SECURITY_TOKEN", "cos-tok"),
        ]);
        let c = from_env(Provider::Cos, &env)
            .expect("ok")
            .expect("found")
            .credentials()
            .expect("static");
        assert_eq!(c.security_token.as_deref(), Some("cos-tok"));

        let env = EnvLookup::from_pairs([
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "aws-tok"),
        ]);
        let c = from_env(Provider::S3, &env)
            .expect("ok")
            .expect("found")
            .credentials()
            .expect("static");
        assert_eq!(c.security_token.as_deref(), Some("aws-tok"));
    }

    #[test]
    fn other_dialects_variables_are_ignored() {
        let env = EnvLookup::from_pairs([
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]);
        assert!(from_env(Provider::Oss, &env).expect("ok").is_none());
        assert!(from_env(Provider::Cos, &env).expect("ok").is_none());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = EnvLookup::from_pairs([("OSS_ACCESS_KEY_ID", ""), ("OSS_ACCESS_KEY_SECRET", "")]);
        assert!(from_env(Provider::Oss, &env).expect("ok").is_none());
    }

    #[test]
    fn half_a_pair_is_an_error_without_the_secret() {
        let env = EnvLookup::from_pairs([("COS_SECRET_KEY", "lonely-secret")]);
        let e = from_env(Provider::Cos, &env).expect_err("incomplete");
        let s = e.to_string();
        assert!(
            s.contains("COS_SECRET_KEY") && s.contains("COS_SECRET_ID"),
            "{s}"
        );
        assert!(!s.contains("lonely-secret"));
        assert!(!format!("{e:?}").contains("lonely-secret"));
    }

    #[test]
    fn debug_prints_no_values() {
        let env = EnvLookup::from_pairs([("AWS_SECRET_ACCESS_KEY", "hidden-value")]);
        assert!(!format!("{env:?}").contains("hidden-value"));
    }
}
