//! The three dialects and what differs between them.
//!
//! Dialects differ through behaviour methods and limit fields on
//! [`Provider`] (a "personality", as Mountpoint's `S3Personality`), never
//! through equality checks scattered over the client. Every limit names the
//! vendor document it comes from.
//!
//! Imports: nothing of the crate; std and external crates only.

use std::fmt;
use std::str::FromStr;

/// Which object-store dialect to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Alibaba Cloud OSS.
    Oss,
    /// Tencent Cloud COS.
    Cos,
    /// Amazon S3 and S3-compatible stores (Garage, MinIO, the embedded endpoint).
    S3,
}

/// How a listing is paged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStyle {
    /// ListObjectsV2: `list-type=2`, `continuation-token`.
    V2,
    /// ListObjects V1: `marker`, `NextMarker`.
    V1,
}

/// How the copy source header names the source object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopySourceStyle {
    /// `/bucket/key` (OSS, S3).
    BucketKey,
    /// `host/key` (COS).
    HostKey,
}

impl Provider {
    /// All dialects, for tests that run per dialect.
    pub const ALL: [Provider; 3] = [Provider::Oss, Provider::Cos, Provider::S3];

    /// The prefix of this dialect's own headers (`x-oss-`, `x-cos-`, `x-amz-`).
    pub fn header_prefix(self) -> &'static str {
        match self {
            Provider::Oss => "x-oss-",
            Provider::Cos => "x-cos-",
            Provider::S3 => "x-amz-",
        }
    }

    /// The prefix of user-metadata headers (`x-oss-meta-`, ...).
    pub fn meta_prefix(self) -> &'static str {
        match self {
            Provider::Oss => "x-oss-meta-",
            Provider::Cos => "x-cos-meta-",
            Provider::S3 => "x-amz-meta-",
        }
    }

    /// A dialect header name: `header("copy-source")` is `x-oss-copy-source` on OSS.
    pub fn header(self, suffix: &str) -> String {
        format!("{}{}", self.header_prefix(), suffix)
    }

    /// How listings are paged. COS serves V1 only
    /// (<https://cloud.tencent.com/document/product/436/7734>).
    pub fn list_style(self) -> ListStyle {
        match self {
            Provider::Cos => ListStyle::V1,
            Provider::Oss | Provider::S3 => ListStyle::V2,
        }
    }

    /// Whether the bucket must be addressed virtual-host style. OSS refuses
    /// path style; COS hosts always carry the bucket.
    pub fn requires_virtual_host(self) -> bool {
        matches!(self, Provider::Oss | Provider::Cos)
    }

    /// Smallest part except the last. OSS: 100 KB
    /// (<https://help.aliyun.com/zh/oss/developer-reference/uploadpart>);
    /// COS: 1 MB (<https://cloud.tencent.com/document/product/436/7750>);
    /// S3: 5 MiB (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
    pub fn min_part_size(self) -> u64 {
        match self {
            Provider::Oss => 100 * 1024,
            Provider::Cos => 1024 * 1024,
            Provider::S3 => 5 * 1024 * 1024,
        }
    }

    /// Largest part: 5 GiB on all three.
    pub fn max_part_size(self) -> u64 {
        5 * 1024 * 1024 * 1024
    }

    /// Most parts in one upload: 10000 on all three.
    pub fn max_parts(self) -> u32 {
        10_000
    }

    /// Largest object a single CopyObject may copy. OSS documents 1 GB as the
    /// safe rule (<https://help.aliyun.com/zh/oss/developer-reference/copyobject>);
    /// COS and S3 allow 5 GB.
    pub fn max_single_copy(self) -> u64 {
        match self {
            Provider::Oss => 1024 * 1024 * 1024,
            Provider::Cos | Provider::S3 => 5 * 1024 * 1024 * 1024,
        }
    }

    /// How the copy-source header names the source.
    pub fn copy_source_style(self) -> CopySourceStyle {
        match self {
            Provider::Cos => CopySourceStyle::HostKey,
            Provider::Oss | Provider::S3 => CopySourceStyle::BucketKey,
        }
    }

    /// Whether `POST key?append&position=N` exists.
    pub fn supports_append(self) -> bool {
        matches!(self, Provider::Oss | Provider::Cos)
    }

    /// Whether `PUT key?symlink` exists.
    pub fn supports_native_symlink(self) -> bool {
        matches!(self, Provider::Oss | Provider::Cos)
    }

    /// The largest total size of user metadata: OSS 8 KB, COS 2 KB, S3 2 KB.
    pub fn max_user_metadata(self) -> usize {
        match self {
            Provider::Oss => 8 * 1024,
            Provider::Cos | Provider::S3 => 2 * 1024,
        }
    }

    /// Whether this dialect needs `x-oss-range-behavior: standard` so that an
    /// invalid range is an error instead of a 200 with the whole object.
    pub fn needs_standard_range_header(self) -> bool {
        matches!(self, Provider::Oss)
    }

    /// Guess the dialect from an endpoint host: `*.aliyuncs.com` is OSS,
    /// `*.myqcloud.com` is COS, anything else S3.
    pub fn infer_from_host(host: &str) -> Provider {
        let host = host.to_ascii_lowercase();
        if host.ends_with(".aliyuncs.com") || host.starts_with("oss-") {
            Provider::Oss
        } else if host.ends_with(".myqcloud.com") || host.ends_with(".tencentcos.cn") {
            Provider::Cos
        } else {
            Provider::S3
        }
    }

    /// Guess the region from an endpoint host (`oss-cn-hangzhou.aliyuncs.com`
    /// gives `cn-hangzhou`, `cos.ap-beijing.myqcloud.com` gives `ap-beijing`,
    /// `s3.us-west-2.amazonaws.com` gives `us-west-2`).
    pub fn infer_region(self, host: &str) -> Option<String> {
        let host = host.to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        match self {
            Provider::Oss => labels.iter().find_map(|l| {
                l.strip_prefix("oss-")
                    .map(|r| r.trim_end_matches("-internal").to_string())
            }),
            Provider::Cos => labels
                .iter()
                .position(|l| *l == "cos")
                .and_then(|i| labels.get(i + 1))
                .map(|r| r.to_string()),
            Provider::S3 => labels
                .iter()
                .position(|l| *l == "s3")
                .and_then(|i| labels.get(i + 1))
                .filter(|r| **r != "amazonaws")
                .map(|r| r.to_string()),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Oss => "oss",
            Provider::Cos => "cos",
            Provider::S3 => "s3",
        })
    }
}

/// The error of parsing a provider name.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider {0:?}: use oss, cos or s3")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "oss" | "aliyun" | "ossfs" => Ok(Provider::Oss),
            "cos" | "tencent" | "cosfs" => Ok(Provider::Cos),
            "s3" | "aws" | "s3fs" | "geesefs" => Ok(Provider::S3),
            other => Err(UnknownProvider(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_dialect_and_region_from_host() {
        assert_eq!(
            Provider::infer_from_host("oss-cn-hangzhou.aliyuncs.com"),
            Provider::Oss
        );
        assert_eq!(
            Provider::Oss
                .infer_region("bucket.oss-cn-hangzhou-internal.aliyuncs.com")
                .as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            Provider::infer_from_host("cos.ap-beijing.myqcloud.com"),
            Provider::Cos
        );
        assert_eq!(
            Provider::Cos
                .infer_region("cos.ap-beijing.myqcloud.com")
                .as_deref(),
            Some("ap-beijing")
        );
        assert_eq!(Provider::infer_from_host("127.0.0.1"), Provider::S3);
        assert_eq!(
            Provider::S3
                .infer_region("s3.us-west-2.amazonaws.com")
                .as_deref(),
            Some("us-west-2")
        );
        assert_eq!(Provider::S3.infer_region("127.0.0.1"), None);
    }

    #[test]
    fn parses_names_including_os_csi_mounters() {
        assert_eq!("cosfs".parse::<Provider>().ok(), Some(Provider::Cos));
        assert_eq!("ossfs".parse::<Provider>().ok(), Some(Provider::Oss));
        assert_eq!("geesefs".parse::<Provider>().ok(), Some(Provider::S3));
        assert!("ftp".parse::<Provider>().is_err());
    }
}
