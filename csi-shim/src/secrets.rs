//! The CSI `secrets` map, in os-csi's form, and what it means for a mount.
//!
//! os-csi (and k8s-csi-s3 before it) read these Secret keys: `accessKeyID`,
//! `secretAccessKey`, `endpoint`, `region` and `mounter` (the FUSE tool to
//! run; here it only names the dialect: `cosfs` -> COS, `ossfs` -> OSS,
//! anything else -> S3). We add `provider` (`oss`/`cos`/`s3`, wins over
//! `mounter`), `securityToken` (STS), and `bucket`/`prefix`, which may come
//! from the Secret instead of the StorageClass.
//!
//! [`Secrets`] owns the map and has a hand-written `Debug` that prints the
//! key names only, so a request can never leak a value through `{:?}`.

use std::collections::HashMap;
use std::fmt;

use ossfs_rs::store::{Credentials, Provider};

use crate::error::{CsiError, CsiResult};

/// The secrets of one request. Values are never printed.
#[derive(Clone, Default)]
pub struct Secrets(HashMap<String, String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
        keys.sort_unstable();
        write!(f, "Secrets {{ keys: {keys:?}, values: <redacted> }}")
    }
}

impl From<HashMap<String, String>> for Secrets {
    fn from(map: HashMap<String, String>) -> Self {
        Secrets(map)
    }
}

/// The keys of the Secret, as os-csi names them.
pub mod keys {
    pub const ACCESS_KEY_ID: &str = "accessKeyID";
    pub const SECRET_ACCESS_KEY: &str = "secretAccessKey";
    pub const SECURITY_TOKEN: &str = "securityToken";
    pub const ENDPOINT: &str = "endpoint";
    pub const REGION: &str = "region";
    pub const MOUNTER: &str = "mounter";
    pub const PROVIDER: &str = "provider";
    pub const BUCKET: &str = "bucket";
    pub const PREFIX: &str = "prefix";
}

/// Where and how to reach the store, from the Secret.
#[derive(Clone)]
pub struct StoreAccess {
    pub endpoint: String,
    pub region: Option<String>,
    /// `None` when neither `provider` nor `mounter` is given: the daemon
    /// infers the dialect from the endpoint host.
    pub provider: Option<Provider>,
    pub credentials: Credentials,
}

impl fmt::Debug for StoreAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreAccess")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("provider", &self.provider)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

impl Secrets {
    /// A non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Whether the map is empty (no Secret was referenced).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The store access these secrets describe.
    pub fn access(&self) -> CsiResult<StoreAccess> {
        let need = |key: &'static str| {
            self.get(key).map(str::to_string).ok_or_else(|| {
                CsiError::Invalid(format!(
                    "the Secret has no {key:?} key (os-csi keys: accessKeyID, secretAccessKey, endpoint)"
                ))
            })
        };
        let endpoint = need(keys::ENDPOINT)?;
        let mut credentials =
            Credentials::new(need(keys::ACCESS_KEY_ID)?, need(keys::SECRET_ACCESS_KEY)?);
        if let Some(token) = self.get(keys::SECURITY_TOKEN) {
            credentials = credentials.with_token(token);
        }
        Ok(StoreAccess {
            endpoint,
            region: self.get(keys::REGION).map(str::to_string),
            provider: provider_of(self.get(keys::PROVIDER), self.get(keys::MOUNTER))?,
            credentials,
        })
    }
}

impl StoreAccess {
    /// k8s-csi-s3 and os-csi StorageClasses may carry `mounter` (and we
    /// accept `provider`) as a parameter rather than a Secret key: it
    /// reaches CreateVolume as a parameter and NodeStage as a volume
    /// attribute. The Secret wins when it names a dialect.
    pub fn with_dialect_from(
        mut self,
        attributes: &std::collections::HashMap<String, String>,
    ) -> CsiResult<Self> {
        if self.provider.is_none() {
            let get = |k: &str| {
                attributes
                    .get(k)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
            };
            self.provider = provider_of(get(keys::PROVIDER), get(keys::MOUNTER))?;
        }
        Ok(self)
    }
}

/// The dialect: `provider` if given, else from os-csi's `mounter`.
pub fn provider_of(provider: Option<&str>, mounter: Option<&str>) -> CsiResult<Option<Provider>> {
    if let Some(p) = provider {
        return p
            .parse::<Provider>()
            .map(Some)
            .map_err(|e| CsiError::Invalid(format!("Secret key provider: {e}")));
    }
    Ok(mounter.map(|m| match m {
        "cosfs" => Provider::Cos,
        "ossfs" => Provider::Oss,
        _ => Provider::S3,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn mounter_names_the_dialect_and_provider_wins() {
        assert_eq!(
            provider_of(None, Some("cosfs")).unwrap(),
            Some(Provider::Cos)
        );
        assert_eq!(
            provider_of(None, Some("ossfs")).unwrap(),
            Some(Provider::Oss)
        );
        assert_eq!(
            provider_of(None, Some("geesefs")).unwrap(),
            Some(Provider::S3)
        );
        assert_eq!(provider_of(None, Some("s3fs")).unwrap(), Some(Provider::S3));
        assert_eq!(provider_of(None, None).unwrap(), None);
        assert_eq!(
            provider_of(Some("s3"), Some("cosfs")).unwrap(),
            Some(Provider::S3)
        );
        assert!(provider_of(Some("gcs"), None).is_err());
    }

    #[test]
    fn os_csi_secret_parses() {
        let s = secrets(&[
            ("accessKeyID", "AKID"),
            ("secretAccessKey", "TOPSECRET"),
            ("endpoint", "https://cos.ap-guangzhou.myqcloud.com"),
            ("region", "ap-guangzhou"),
            ("mounter", "cosfs"),
        ]);
        let a = s.access().unwrap();
        assert_eq!(a.provider, Some(Provider::Cos));
        assert_eq!(a.region.as_deref(), Some("ap-guangzhou"));
        assert_eq!(a.credentials.secret_access_key, "TOPSECRET");
        assert!(!format!("{s:?}").contains("TOPSECRET"));
        assert!(!format!("{a:?}").contains("TOPSECRET"));
        assert!(!format!("{s:?}").contains("AKID"));
    }

    #[test]
    fn a_storage_class_mounter_applies_when_the_secret_names_none() {
        let base = [
            ("accessKeyID", "a"),
            ("secretAccessKey", "s"),
            ("endpoint", "http://127.0.0.1:9000"),
        ];
        let attrs = HashMap::from([("mounter".to_string(), "ossfs".to_string())]);
        let a = secrets(&base)
            .access()
            .unwrap()
            .with_dialect_from(&attrs)
            .unwrap();
        assert_eq!(a.provider, Some(Provider::Oss));
        let mut with_provider = base.to_vec();
        with_provider.push(("provider", "s3"));
        let a = secrets(&with_provider)
            .access()
            .unwrap()
            .with_dialect_from(&attrs)
            .unwrap();
        assert_eq!(a.provider, Some(Provider::S3));
    }

    #[test]
    fn missing_keys_are_named() {
        let e = secrets(&[("accessKeyID", "a"), ("endpoint", "http://x")])
            .access()
            .unwrap_err();
        assert!(e.to_string().contains("secretAccessKey"), "{e}");
    }
}
