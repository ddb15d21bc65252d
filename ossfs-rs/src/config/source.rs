//! The mount's source: `bucket[:/prefix]` as given on the command line,
//! checked (a valid bucket name, no `.` or `..` segment, no empty segment)
//! before anything else uses it.
//!
//! Imports: std only.

/// `bucket[:/prefix]` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub bucket: String,
    /// Object-key prefix of the mount: empty, or ending in `/`.
    pub prefix: String,
}

/// A source that is not `bucket` or `bucket:/prefix`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0:?} is not bucket or bucket:/prefix")]
    BadSource(String),
}

impl Source {
    /// Parse `bucket`, `bucket:/prefix` or `bucket:prefix`.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let (bucket, prefix) = match s.split_once(':') {
            Some((b, p)) => (b, p),
            None => (s, ""),
        };
        let valid_bucket = !bucket.is_empty()
            && bucket.len() <= 255
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid_bucket {
            return Err(SourceError::BadSource(s.to_string()));
        }
        let trimmed = prefix.trim_matches('/');
        if trimmed.split('/').any(|seg| seg == "." || seg == "..") || trimmed.contains("//") {
            return Err(SourceError::BadSource(s.to_string()));
        }
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            Source::parse("b").unwrap(),
            Source {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(Source::parse("b:/a/b").unwrap().prefix, "a/b/");
        assert_eq!(Source::parse("b:a/").unwrap().prefix, "a/");
        assert_eq!(Source::parse("b:/").unwrap().prefix, "");
        assert!(Source::parse(":/x").is_err());
        assert!(Source::parse("b:/a/../c").is_err());
        assert!(Source::parse("b c").is_err());
    }
}
