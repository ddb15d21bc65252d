//! Reading header values the way signers need them.
//!
//! Signers hash header values as UTF-8 text. `http` only hands out visible
//! ASCII as `&str`, but user metadata may carry UTF-8, so values are decoded
//! here from their bytes; anything that is not UTF-8 cannot be signed and is
//! an [`SignError::InvalidHeader`] naming the header (never its value).
//!
//! Imports: `store::sign` of the crate, besides std and external crates.

use super::{HttpRequest, SignError};

/// The value of header `name` as UTF-8; several values of one name are
/// joined with `,` (RFC 9110 section 5.3).
pub fn value(req: &HttpRequest, name: &str) -> Result<Option<String>, SignError> {
    let mut out: Option<String> = None;
    for v in req.headers.get_all(name) {
        let s = std::str::from_utf8(v.as_bytes())
            .map_err(|_| SignError::InvalidHeader(name.to_string()))?;
        match out.as_mut() {
            Some(acc) => {
                acc.push(',');
                acc.push_str(s);
            }
            None => out = Some(s.to_string()),
        }
    }
    Ok(out)
}

/// The value of `name`, or `""` when absent.
pub fn value_or_empty(req: &HttpRequest, name: &str) -> Result<String, SignError> {
    Ok(value(req, name)?.unwrap_or_default())
}

/// The Host the request goes to: an explicit `host` header if the builder
/// set one, else [`HttpRequest::host`] (what the HTTP client will send).
pub fn host(req: &HttpRequest) -> Result<String, SignError> {
    Ok(value(req, "host")?.unwrap_or_else(|| req.host.clone()))
}

/// Every header whose (lower-case) name passes `keep`, as `(name, value)`
/// sorted by name. `host` is taken from [`host`] when `keep("host")`, so it
/// is signed even though the HTTP client adds it only when sending.
pub fn select(
    req: &HttpRequest,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, SignError> {
    let mut out = Vec::new();
    for name in req.headers.keys() {
        let name = name.as_str();
        if name != "host" && keep(name) {
            out.push((name.to_string(), value_or_empty(req, name)?));
        }
    }
    if keep("host") {
        out.push(("host".to_string(), host(req)?));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    #[test]
    fn joins_repeated_values_and_reads_utf8() {
        let mut req = HttpRequest::new(Method::GET, "https", "h", "b", "k");
        req.headers.append("x-a", HeaderValue::from_static("1"));
        req.headers.append("x-a", HeaderValue::from_static("2"));
        req.headers.insert(
            "x-oss-meta-name",
            HeaderValue::from_bytes("名".as_bytes()).unwrap(),
        );
        assert_eq!(value(&req, "x-a").unwrap().as_deref(), Some("1,2"));
        assert_eq!(
            value(&req, "x-oss-meta-name").unwrap().as_deref(),
            Some("名")
        );
        assert_eq!(value(&req, "missing").unwrap(), None);
    }

    #[test]
    fn rejects_non_utf8_by_name() {
        let mut req = HttpRequest::new(Method::GET, "https", "h", "b", "k");
        req.headers
            .insert("x-bad", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        match value(&req, "x-bad") {
            Err(SignError::InvalidHeader(name)) => assert_eq!(name, "x-bad"),
            other => panic!("expected InvalidHeader, got {other:?}"),
        }
    }

    #[test]
    fn select_adds_host_and_sorts() {
        let mut req = HttpRequest::new(Method::GET, "https", "b.example.com", "b", "k");
        req.headers
            .insert("range", HeaderValue::from_static("bytes=0-1"));
        req.headers
            .insert("accept", HeaderValue::from_static("*/*"));
        let got = select(&req, |n| n == "host" || n == "range").unwrap();
        assert_eq!(
            got,
            vec![
                ("host".to_string(), "b.example.com".to_string()),
                ("range".to_string(), "bytes=0-1".to_string())
            ]
        );
    }
}
