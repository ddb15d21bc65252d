//! Extended attributes in object metadata, in the form s3fs and ossfs use.
//!
//! Those tools keep all of a file's xattrs in one user-metadata entry named
//! `xattr`: a JSON object mapping each attribute name to its value in
//! base64, the whole document percent-encoded (everything but
//! `A-Z a-z 0-9 . - _ ~ /`, upper-case hex), e.g.
//! `%7B%22user.foo%22%3A%22YmFy%22%7D` for `user.foo = bar`. Keeping one
//! entry (rather than one header per attribute) survives header-name case
//! folding and the restricted header alphabet, and it is what existing
//! buckets hold, so we read and write exactly that.
//!
//! Only the `user.` namespace is stored; `security.*`, `system.*` and
//! `trusted.*` are refused by the caller (the kernel probes
//! `security.capability` on every write and must get "no such attribute",
//! not a stored value).
//!
//! Decoding is lenient: a value that is not valid JSON is parsed the way
//! s3fs does (split on `,` and the last `:` of each pair), and an entry that
//! cannot be decoded is dropped rather than failing the whole read.
//!
//! Imports: nothing of the crate; std and external crates only.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The user-metadata entry holding all xattrs.
pub const XATTR_META: &str = "xattr";

/// The only namespace stored.
pub const USER_NAMESPACE: &str = "user.";

/// Attribute name to value.
pub type Xattrs = BTreeMap<String, Vec<u8>>;

/// s3fs' `urlEncodePath`: all but unreserved characters and `/`.
const ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Decode the `xattr` metadata value.
pub fn decode(value: &str) -> Xattrs {
    let json = percent_decode_str(value).decode_utf8_lossy();
    let pairs: BTreeMap<String, String> = match serde_json::from_str(&json) {
        Ok(map) => map,
        Err(_) => decode_like_s3fs(&json),
    };
    pairs
        .into_iter()
        .filter_map(|(name, b64)| STANDARD.decode(b64.trim()).ok().map(|v| (name, v)))
        .collect()
}

/// The s3fs parser, for documents that are not strict JSON.
fn decode_like_s3fs(doc: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let (Some(start), Some(end)) = (doc.find('{'), doc.rfind('}')) else {
        return out;
    };
    if end <= start {
        return out;
    }
    for pair in doc[start + 1..end].split(',') {
        let Some((name, value)) = pair.rsplit_once(':') else {
            continue;
        };
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        out.insert(unquote(name), unquote(value));
    }
    out
}

/// Encode xattrs as the `xattr` metadata value; `None` when there are none
/// (the entry is then removed, as s3fs does).
pub fn encode(xattrs: &Xattrs) -> Option<String> {
    if xattrs.is_empty() {
        return None;
    }
    let doc: BTreeMap<&str, String> = xattrs
        .iter()
        .map(|(k, v)| (k.as_str(), STANDARD.encode(v)))
        .collect();
    // Serializing a map of strings cannot fail.
    let json = serde_json::to_string(&doc).unwrap_or_default();
    Some(utf8_percent_encode(&json, ENCODE_SET).to_string())
}

/// `listxattr`'s reply: the names, each followed by NUL.
pub fn list_names(xattrs: &Xattrs) -> Vec<u8> {
    let mut out = Vec::new();
    for name in xattrs.keys() {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &[u8]) -> Xattrs {
        [(name.to_string(), value.to_vec())].into_iter().collect()
    }

    #[test]
    fn encodes_like_s3fs() {
        // s3fs' own test: {"foo":"YmFy"} before URL encoding.
        assert_eq!(
            encode(&one("foo", b"bar")).as_deref(),
            Some("%7B%22foo%22%3A%22YmFy%22%7D")
        );
        assert_eq!(
            encode(&one("user.x", b"v")).as_deref(),
            Some("%7B%22user.x%22%3A%22dg%3D%3D%22%7D")
        );
        assert_eq!(encode(&Xattrs::new()), None);
    }

    #[test]
    fn decodes_s3fs_documents() {
        let two = decode("%7B%221234%22%3A%22NTY3OA%3D%3D%22%2C%22foo%22%3A%22YmFy%22%7D");
        assert_eq!(two.get("1234").map(Vec::as_slice), Some(&b"5678"[..]));
        assert_eq!(two.get("foo").map(Vec::as_slice), Some(&b"bar"[..]));
        // Not strict JSON (s3fs does not escape names): split like s3fs does.
        let loose = decode(r#"{"foo:bar":"YmF6", bad}"#);
        assert_eq!(loose.get("foo:bar").map(Vec::as_slice), Some(&b"baz"[..]));
        assert_eq!(loose.len(), 1);
        assert!(decode("garbage").is_empty());
        assert!(decode("").is_empty());
    }

    #[test]
    fn round_trip_binary_values() {
        let mut x = Xattrs::new();
        x.insert("user.bin".into(), vec![0, 255, 10, 34]);
        x.insert("user.empty".into(), vec![]);
        x.insert("user.quote\"d".into(), b"q".to_vec());
        let encoded = encode(&x).unwrap_or_default();
        assert_eq!(decode(&encoded), x);
        assert_eq!(list_names(&one("user.a", b"1")), b"user.a\0".to_vec());
    }
}
