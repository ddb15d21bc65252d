//! Volume ids and the parameters that shape a volume.
//!
//! A volume id is `bucket` or `bucket/key/prefix`: the part before the
//! first `/` is the bucket, the rest (if any) is the object-key prefix the
//! volume mounts. That one rule reads every id in use today:
//! - ours, from CreateVolume: `bucket/<base prefix>/<pv name>`;
//! - os-csi's: `bucket/pvc-name`;
//! - k8s-csi-s3's: `bucket/prefix`;
//! - a static PV naming a whole bucket: `bucket`.
//!
//! StorageClass parameters (`bucket`, `prefix`, `options`) and the Secret's
//! `bucket`/`prefix` decide where CreateVolume puts a volume; `options` are
//! daemon `-o` options, validated with ossfs-rs's own parser so a typo is
//! refused by name before any mount is attempted.

use std::collections::HashMap;

use ossfs_rs::facade::MountOptions;
use ossfs_rs::facade::Source;

use crate::error::{CsiError, CsiResult};
use crate::secrets::{Secrets, keys};

/// StorageClass parameter / volume context key: the bucket.
pub const PARAM_BUCKET: &str = "bucket";
/// StorageClass parameter: the base prefix volumes are created under.
pub const PARAM_PREFIX: &str = "prefix";
/// StorageClass parameter / volume context key: daemon `-o` options.
pub const PARAM_OPTIONS: &str = "options";

/// Options the plugin sets itself: a StorageClass may not override them
/// (credentials and the endpoint come from the Secret, the log file from
/// the plugin's state directory).
const RESERVED_OPTIONS: &[&str] = &["passwd_file", "sts_dir", "url", "endpoint", "logfile"];

/// A parsed volume id: the bucket and the key prefix (`""` or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeId {
    pub bucket: String,
    pub prefix: String,
}

impl VolumeId {
    /// Parse `bucket` or `bucket/prefix...`.
    pub fn parse(id: &str) -> CsiResult<Self> {
        if id.is_empty() {
            return Err(CsiError::Missing("volume_id"));
        }
        let (bucket, prefix) = id.split_once('/').unwrap_or((id, ""));
        Self::new(bucket, prefix)
            .map_err(|_| CsiError::NotFound(format!("volume id {id:?} is not bucket[/prefix]")))
    }

    /// A volume from a bucket and a prefix, both validated.
    pub fn new(bucket: &str, prefix: &str) -> CsiResult<Self> {
        let source = Source::parse(&format!("{bucket}:{prefix}"))
            .map_err(|e| CsiError::Invalid(e.to_string()))?;
        Ok(VolumeId {
            bucket: source.bucket,
            prefix: source.prefix,
        })
    }

    /// The id string: `bucket` or `bucket/prefix` (without the trailing `/`).
    pub fn id(&self) -> String {
        if self.prefix.is_empty() {
            self.bucket.clone()
        } else {
            format!("{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
        }
    }

    /// The `ossfs-rs mount` source, `bucket:/prefix`.
    pub fn source(&self) -> String {
        format!("{}:/{}", self.bucket, self.prefix)
    }
}

/// Where CreateVolume puts a volume named `name`: the bucket from the
/// parameters or else the Secret, under the parameters' (else the
/// Secret's) base prefix.
pub fn volume_for_create(
    name: &str,
    params: &HashMap<String, String>,
    secrets: &Secrets,
) -> CsiResult<VolumeId> {
    if name.contains('/') || name == "." || name == ".." {
        return Err(CsiError::Invalid(format!(
            "volume name {name:?} must not contain '/' or be '.' or '..'"
        )));
    }
    let param = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bucket = param(PARAM_BUCKET)
        .or_else(|| secrets.get(keys::BUCKET))
        .ok_or_else(|| {
            CsiError::Invalid(
                "no bucket: set the StorageClass parameter bucket or the Secret key bucket".into(),
            )
        })?;
    let base = param(PARAM_PREFIX)
        .or_else(|| secrets.get(keys::PREFIX))
        .unwrap_or("")
        .trim_matches('/');
    let prefix = if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    };
    VolumeId::new(bucket, &prefix)
}

/// Normalise an `options` string to ossfs `-o` form and validate it.
///
/// Accepts `allow_other,umask=022` and os-csi style `-o allow_other -o
/// umask=022`. An unknown option, a bad value, or an option the plugin
/// sets itself is `InvalidArgument` naming it.
pub fn validate_options(options: &str) -> CsiResult<String> {
    let parts: Vec<String> = options
        .split_whitespace()
        .filter(|t| *t != "-o")
        .map(|t| t.strip_prefix("-o").unwrap_or(t))
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let mut parsed = MountOptions::default();
    for opt in &parts {
        let name = opt.split('=').next().unwrap_or(opt);
        if RESERVED_OPTIONS.contains(&name) {
            return Err(CsiError::Invalid(format!(
                "option {name} is set by the plugin (credentials and endpoint come from the Secret); remove it from options"
            )));
        }
        parsed
            .apply(opt)
            .map_err(|e| CsiError::Invalid(format!("options: {e}")))?;
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_form_parses() {
        let ours = VolumeId::parse("data/volumes/pvc-123").unwrap();
        assert_eq!(ours.bucket, "data");
        assert_eq!(ours.prefix, "volumes/pvc-123/");
        assert_eq!(ours.id(), "data/volumes/pvc-123");
        assert_eq!(ours.source(), "data:/volumes/pvc-123/");
        let os_csi = VolumeId::parse("bkt-1250000000/pvc-abc").unwrap();
        assert_eq!(os_csi.prefix, "pvc-abc/");
        let whole = VolumeId::parse("bucket").unwrap();
        assert_eq!(whole.prefix, "");
        assert_eq!(whole.source(), "bucket:/");
        assert!(matches!(
            VolumeId::parse("bad bucket/x"),
            Err(CsiError::NotFound(_))
        ));
        assert!(matches!(
            VolumeId::parse("b/../x"),
            Err(CsiError::NotFound(_))
        ));
        assert!(matches!(VolumeId::parse(""), Err(CsiError::Missing(_))));
    }

    #[test]
    fn create_places_volumes() {
        let mut params = HashMap::new();
        params.insert("bucket".to_string(), "b".to_string());
        let none = Secrets::default();
        assert_eq!(
            volume_for_create("pv1", &params, &none).unwrap().id(),
            "b/pv1"
        );
        params.insert("prefix".to_string(), "/k8s/".to_string());
        assert_eq!(
            volume_for_create("pv1", &params, &none).unwrap().id(),
            "b/k8s/pv1"
        );
        let from_secret: Secrets = HashMap::from([
            ("bucket".to_string(), "sb".to_string()),
            ("prefix".to_string(), "p".to_string()),
        ])
        .into();
        assert_eq!(
            volume_for_create("pv1", &HashMap::new(), &from_secret)
                .unwrap()
                .id(),
            "sb/p/pv1"
        );
        assert!(volume_for_create("pv1", &HashMap::new(), &none).is_err());
        assert!(volume_for_create("a/b", &params, &none).is_err());
    }

    #[test]
    fn options_are_validated_by_name() {
        assert_eq!(
            validate_options("-o allow_other -o umask=022").unwrap(),
            "allow_other,umask=022"
        );
        assert_eq!(
            validate_options(" allow_other,path_style ").unwrap(),
            "allow_other,path_style"
        );
        assert_eq!(validate_options("").unwrap(), "");
        let e = validate_options("allow_others").unwrap_err();
        assert!(e.to_string().contains("allow_others"), "{e}");
        let e = validate_options("passwd_file=/etc/x").unwrap_err();
        assert!(e.to_string().contains("passwd_file"), "{e}");
    }
}
