//! The scoped HMAC-SHA256 scheme that SigV4 and OSS V4 share.
//!
//! Both derive a signing key by chaining HMAC-SHA256 from a prefixed secret
//! over the date, the region, the service and a terminator, and sign
//! `<algorithm>\n<iso time>\n<scope>\n<hex sha256(canonical request)>`. They
//! differ only in the names, which a [`Scheme`] carries; each signer keeps
//! its own canonical request.
//!
//! Imports: `store::sign`, `store::sign::clock`, `store::sign::digest` of the
//! crate, besides std and external crates.

use std::time::SystemTime;

use super::{SignError, clock, digest};

/// The names that make a scoped scheme.
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    /// `AWS4-HMAC-SHA256`, `OSS4-HMAC-SHA256`.
    pub algorithm: &'static str,
    /// Put before the secret to make the first key: `AWS4`, `aliyun_v4`.
    pub secret_prefix: &'static str,
    /// `aws4_request`, `aliyun_v4_request`.
    pub terminator: &'static str,
}

impl Scheme {
    /// `<yyyymmdd>/<region>/<service>/<terminator>`.
    pub fn scope(&self, now: SystemTime, region: &str, service: &str) -> Result<String, SignError> {
        Ok(format!(
            "{}/{region}/{service}/{}",
            clock::yyyymmdd(now)?,
            self.terminator
        ))
    }

    /// `<algorithm>\n<iso time>\n<scope>\n<hex sha256(canonical_request)>`.
    pub fn string_to_sign(
        &self,
        now: SystemTime,
        scope: &str,
        canonical_request: &str,
    ) -> Result<String, SignError> {
        Ok(format!(
            "{}\n{}\n{scope}\n{}",
            self.algorithm,
            clock::iso8601_basic(now)?,
            digest::sha256_hex(canonical_request.as_bytes())
        ))
    }

    /// The derived signing key.
    pub fn signing_key(
        &self,
        secret: &str,
        now: SystemTime,
        region: &str,
        service: &str,
    ) -> Result<[u8; 32], SignError> {
        let k = digest::hmac_sha256(
            format!("{}{secret}", self.secret_prefix).as_bytes(),
            clock::yyyymmdd(now)?.as_bytes(),
        );
        let k = digest::hmac_sha256(&k, region.as_bytes());
        let k = digest::hmac_sha256(&k, service.as_bytes());
        Ok(digest::hmac_sha256(&k, self.terminator.as_bytes()))
    }

    /// Hex HMAC-SHA256 of `string_to_sign` under the signing key.
    pub fn signature(
        &self,
        secret: &str,
        now: SystemTime,
        region: &str,
        service: &str,
        string_to_sign: &str,
    ) -> Result<String, SignError> {
        let key = self.signing_key(secret, now, region, service)?;
        Ok(hex::encode(digest::hmac_sha256(
            &key,
            string_to_sign.as_bytes(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // The signing key of the AWS documentation's example (secret
    // wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam).
    #[test]
    fn derives_the_aws_documentation_key() {
        let scheme = Scheme {
            algorithm: "AWS4-HMAC-SHA256",
            secret_prefix: "AWS4",
            terminator: "aws4_request",
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_329_264_000);
        let key = scheme
            .signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                now,
                "us-east-1",
                "iam",
            )
            .unwrap();
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_eq!(
            scheme.scope(now, "us-east-1", "iam").unwrap(),
            "20120215/us-east-1/iam/aws4_request"
        );
    }
}
