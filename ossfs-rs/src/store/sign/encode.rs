//! Percent-encoding shared by the signers and the URL builder.
//!
//! One encoder (RFC 3986: unreserved characters stay, everything else is
//! `%XX` with upper-case hex) serves the wire form of the path and query and
//! every canonical form the signers build, so the bytes signed and the bytes
//! sent cannot drift apart. The dialects differ only in how they sort pairs
//! and write an empty value, which [`encode_pairs`] and [`join_pairs`] take
//! as arguments.
//!
//! Imports: nothing of the crate; std and external crates only.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; everything else is encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Like [`STRICT`] but keeps `/` (for paths).
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// Percent-encode `s` with upper-case hex. `encode_slash: false` keeps `/`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let set = if encode_slash { STRICT } else { PATH };
    utf8_percent_encode(s, set).to_string()
}

/// How a joined query writes a pair whose value is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyValue {
    /// `k` (the wire form, OSS V1 sub-resources, OSS V4).
    KeyOnly,
    /// `k=` (SigV4, COS).
    KeyEquals,
}

/// How [`encode_pairs`] treats keys and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairOrder {
    /// Keep the given order (the wire form).
    AsGiven,
    /// Sort by encoded key, then encoded value (SigV4, OSS V4).
    Sorted,
    /// Lower-case the encoded key, then sort by key, then value (COS).
    SortedLowerKeys,
}

/// Percent-encode every key and value (`/` included), in `order`.
pub fn encode_pairs(pairs: &[(String, String)], order: PairOrder) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            let k = uri_encode(k, true);
            let k = if order == PairOrder::SortedLowerKeys {
                k.to_lowercase()
            } else {
                k
            };
            (k, uri_encode(v, true))
        })
        .collect();
    if order != PairOrder::AsGiven {
        out.sort();
    }
    out
}

/// Join already-encoded pairs with `&`, writing empty values as `empty` says.
pub fn join_pairs(pairs: &[(String, String)], empty: EmptyValue) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() && empty == EmptyValue::KeyOnly {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("a b+c/d~e", false), "a%20b%2Bc/d~e");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("腾", true), "%E8%85%BE");
    }

    #[test]
    fn sorts_after_encoding() {
        // `+` sorts before letters only once encoded (%2B < p), as OSS V4 wants.
        let p = pairs(&[("param1", "v1"), ("+param1", "v3"), ("|p", ""), ("a", "")]);
        let sorted = encode_pairs(&p, PairOrder::Sorted);
        assert_eq!(
            join_pairs(&sorted, EmptyValue::KeyOnly),
            "%2Bparam1=v3&%7Cp&a&param1=v1"
        );
        assert_eq!(
            join_pairs(&sorted, EmptyValue::KeyEquals),
            "%2Bparam1=v3&%7Cp=&a=&param1=v1"
        );
    }

    #[test]
    fn cos_lower_cases_encoded_keys() {
        let p = pairs(&[("uploadId", "X/Y"), ("partNumber", "2"), ("a+b", "")]);
        let enc = encode_pairs(&p, PairOrder::SortedLowerKeys);
        assert_eq!(
            join_pairs(&enc, EmptyValue::KeyEquals),
            "a%2bb=&partnumber=2&uploadid=X%2FY"
        );
    }

    #[test]
    fn as_given_keeps_order() {
        let p = pairs(&[("z", "1"), ("a", "")]);
        assert_eq!(
            join_pairs(&encode_pairs(&p, PairOrder::AsGiven), EmptyValue::KeyOnly),
            "z=1&a"
        );
    }
}
