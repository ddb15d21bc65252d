//! Percent-encoding shared by the signers and the URL builder.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("a b+c/d~e", false), "a%20b%2Bc/d~e");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("腾", true), "%E8%85%BE");
    }
}
