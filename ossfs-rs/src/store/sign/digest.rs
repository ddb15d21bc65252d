//! Hashes and MACs the signers are built from: HMAC-SHA1 (OSS V1, COS),
//! HMAC-SHA256 (OSS V4, SigV4), SHA-1 and SHA-256 in hex.
//!
//! HMAC keys are padded to the block size here, as RFC 2104 does, so the
//! MAC is built with `KeyInit::new` on a fixed-size key: there is no
//! fallible key-length path and nothing to unwrap.
//!
//! Imports: nothing of the crate; std and external crates only.

use hmac::digest::{Digest, Key, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// SHA-1 and SHA-256 both work on 64-byte blocks.
const BLOCK: usize = 64;

/// The RFC 2104 block key: a key longer than a block is hashed first, then
/// zero-padded to the block size.
fn block_key<D: Digest>(key: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let hashed = D::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

/// HMAC-SHA1 of `data` under `key`.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let key = Key::<Hmac<Sha1>>::from(block_key::<Sha1>(key));
    let mut mac = <Hmac<Sha1> as KeyInit>::new(&key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = Key::<Hmac<Sha256>>::from(block_key::<Sha256>(key));
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-1.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2202 and RFC 4231 test cases, including keys longer than a block.
    #[test]
    fn hmac_sha1_matches_rfc2202() {
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn plain_hashes() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
