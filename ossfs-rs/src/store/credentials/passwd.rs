//! The passwd files of ossfs, cosfs and s3fs: `ak:sk` or `bucket:ak:sk` lines.
//!
//! One parser serves all three tools' files, since their formats agree: a
//! line `ACCESS_KEY_ID:SECRET` is the default for any bucket, a line
//! `BUCKET:ACCESS_KEY_ID:SECRET` applies to that bucket only and wins over
//! the default. The bucket field is compared with the bucket name exactly
//! as given, so cosfs lines (`examplebucket-1250000000:SecretId:SecretKey`)
//! match a COS bucket named with its `-appid`. Blank lines and lines
//! starting with `#` are skipped; the first matching line of each kind wins.
//!
//! A file is refused when its mode grants more than 0640 (group write, or
//! any bit for others), as ossfs and s3fs refuse it: the permission check
//! runs on the opened file's metadata, so the file checked is the file read.
//! Errors name the path and line number, never a line's content, since the
//! content is a secret.
//!
//! Imports: `store::credentials`, `store::dialect` of the crate, besides std
//! and external crates.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{CredentialError, Credentials, StaticProvider};
use crate::store::dialect::Provider;

/// Mode bits a passwd file must not have: group write and all of "other".
const FORBIDDEN_MODE_BITS: u32 = 0o027;

/// One credential line of a passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// `None` for a default (`ak:sk`) line.
    pub bucket: Option<String>,
    pub credentials: Credentials,
    /// 1-based line number, for messages.
    pub line: usize,
}

/// Which kind of line served a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A `bucket:ak:sk` line naming the bucket.
    BucketSpecific,
    /// An `ak:sk` line.
    Default,
}

impl LineKind {
    fn describe(self) -> &'static str {
        match self {
            LineKind::BucketSpecific => "bucket-specific line",
            LineKind::Default => "default line",
        }
    }
}

/// A parsed passwd file.
#[derive(Debug, Clone)]
pub struct PasswdFile {
    pub path: PathBuf,
    pub entries: Vec<PasswdEntry>,
}

impl PasswdFile {
    /// Open `path`, refuse it if its mode is too open, and parse it.
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let io_err = |source| CredentialError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        check_mode(path, mode_of(&meta))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        Self::parse(path, &bytes)
    }

    /// Parse the content of the file at `path` (the path is for messages).
    pub fn parse(path: &Path, content: &[u8]) -> Result<Self, CredentialError> {
        let mut entries = Vec::new();
        for (index, raw) in content.split(|b| *b == b'\n').enumerate() {
            let line = index + 1;
            let malformed = |reason: &str| CredentialError::Malformed {
                path: path.to_path_buf(),
                line,
                reason: reason.to_string(),
            };
            let text = std::str::from_utf8(raw).map_err(|_| malformed("not valid UTF-8"))?;
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if text.chars().any(char::is_whitespace) {
                return Err(malformed(
                    "contains whitespace; expected `ACCESS_KEY_ID:SECRET` or `BUCKET:ACCESS_KEY_ID:SECRET`",
                ));
            }
            let fields: Vec<&str> = text.split(':').collect();
            if fields.iter().any(|f| f.is_empty()) {
                return Err(malformed(
                    "has an empty field; expected `ACCESS_KEY_ID:SECRET` or `BUCKET:ACCESS_KEY_ID:SECRET`",
                ));
            }
            let entry = match fields.as_slice() {
                [ak, sk] => PasswdEntry {
                    bucket: None,
                    credentials: Credentials::new(*ak, *sk),
                    line,
                },
                [bucket, ak, sk] => PasswdEntry {
                    bucket: Some((*bucket).to_string()),
                    credentials: Credentials::new(*ak, *sk),
                    line,
                },
                _ => {
                    return Err(malformed(&format!(
                        "has {} fields separated by `:`; expected `ACCESS_KEY_ID:SECRET` or `BUCKET:ACCESS_KEY_ID:SECRET`",
                        fields.len()
                    )));
                }
            };
            entries.push(entry);
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entry for `bucket`: the first line naming it, else the first
    /// default line.
    pub fn lookup(&self, bucket: &str) -> Option<(&PasswdEntry, LineKind)> {
        self.entries
            .iter()
            .find(|e| e.bucket.as_deref() == Some(bucket))
            .map(|e| (e, LineKind::BucketSpecific))
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.bucket.is_none())
                    .map(|e| (e, LineKind::Default))
            })
    }

    /// A provider serving `bucket`'s credentials, with a source naming this
    /// file and the kind of line; `None` when no line applies.
    pub fn provider_for(&self, bucket: &str) -> Option<StaticProvider> {
        self.lookup(bucket).map(|(entry, kind)| {
            StaticProvider::new(
                entry.credentials.clone(),
                format!("passwd file {} ({})", self.path.display(), kind.describe()),
            )
        })
    }
}

/// Refuse a mode with group write or any bit for others (more than 0640).
pub fn check_mode(path: &Path, mode: u32) -> Result<(), CredentialError> {
    if mode & FORBIDDEN_MODE_BITS != 0 {
        return Err(CredentialError::InsecurePermissions {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0o600
}

/// The passwd files a dialect's tool reads by default, in order:
/// `$HOME/.passwd-<tool>` then `<system_dir>/passwd-<tool>` (`/etc`),
/// where the tool is ossfs, cosfs or s3fs. Without a home directory only
/// the system file is listed.
pub fn default_paths(provider: Provider, home: Option<&Path>, system_dir: &Path) -> Vec<PathBuf> {
    let tool = match provider {
        Provider::Oss => "ossfs",
        Provider::Cos => "cosfs",
        Provider::S3 => "s3fs",
    };
    let mut paths = Vec::with_capacity(2);
    if let Some(home) = home {
        paths.push(home.join(format!(".passwd-{tool}")));
    }
    paths.push(system_dir.join(format!("passwd-{tool}")));
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::credentials::CredentialProvider;
    use std::os::unix::fs::PermissionsExt;

    fn parse(text: &str) -> Result<PasswdFile, CredentialError> {
        PasswdFile::parse(Path::new("/tmp/passwd-test"), text.as_bytes())
    }

    fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn default_and_bucket_lines() {
        let f = parse(
            "# a comment\n\nDEFAULT_AK:default-sk\nmybucket:BUCKET_AK:bucket-sk\r\n  other:OTHER_AK:other-sk  \n",
        )
        .expect("parses");
        assert_eq!(f.entries.len(), 3);

        let (e, kind) = f.lookup("mybucket").expect("found");
        assert_eq!(kind, LineKind::BucketSpecific);
        assert_eq!(e.credentials.access_key_id, "BUCKET_AK");
        assert_eq!(e.credentials.secret_access_key, "bucket-sk");
        assert_eq!(e.line, 4);

        let (e, kind) = f.lookup("unknown").expect("default");
        assert_eq!(kind, LineKind::Default);
        assert_eq!(e.credentials.access_key_id, "DEFAULT_AK");

        let (e, _) = f.lookup("other").expect("found");
        assert_eq!(e.credentials.secret_access_key, "other-sk");
    }

    #[test]
    fn bucket_line_wins_even_after_default() {
        let f = parse("mybucket:B_AK:b-sk\nD_AK:d-sk\n").expect("parses");
        assert_eq!(
            f.lookup("mybucket")
                .expect("found")
                .0
                .credentials
                .access_key_id,
            "B_AK"
        );
        let f = parse("D_AK:d-sk\nmybucket:B_AK:b-sk\n").expect("parses");
        assert_eq!(
            f.lookup("mybucket")
                .expect("found")
                .0
                .credentials
                .access_key_id,
            "B_AK"
        );
    }

    #[test]
    fn no_default_and_no_match_is_none() {
        let f = parse("a:AK:sk\n").expect("parses");
        assert!(f.lookup("b").is_none());
        assert!(f.provider_for("b").is_none());
    }

    #[test]
    fn cosfs_lines_match_bucket_with_appid() {
        let f = parse("examplebucket-1250000000:AKIDexample:cos-secret\n").expect("parses");
        let (e, kind) = f.lookup("examplebucket-1250000000").expect("found");
        assert_eq!(kind, LineKind::BucketSpecific);
        assert_eq!(e.credentials.access_key_id, "AKIDexample");
        // The name without the appid is a different bucket.
        assert!(f.lookup("examplebucket").is_none());
    }

    #[test]
    fn malformed_lines_name_path_and_line_but_not_content() {
        for (text, line) in [
            ("GOOD:sk\ntoo:many:fields:here-secret\n", 2),
            ("only-one-field-secret\n", 1),
            ("# c\n\nak:\n", 3),
            ("ak:sec ret-secret\n", 1),
            (":ak:sk-secret\n", 1),
        ] {
            let e = parse(text).expect_err(text);
            match &e {
                CredentialError::Malformed { path, line: l, .. } => {
                    assert_eq!(path, Path::new("/tmp/passwd-test"));
                    assert_eq!(*l, line, "{text:?}");
                }
                other => panic!("expected Malformed, got {other:?}"),
            }
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("/tmp/passwd-test"), "{shown}");
            assert!(shown.contains(&format!("line {line}")), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(!shown.contains("fields:here"), "{shown}");
        }
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let e = PasswdFile::parse(Path::new("/p"), b"ak:sk\n\xff\xfe:x\n").expect_err("bad");
        assert!(
            matches!(e, CredentialError::Malformed { line: 2, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn source_names_file_and_line_kind() {
        let f = parse("D:d\nb:B:bb\n").expect("parses");
        let p = f.provider_for("b").expect("found");
        assert_eq!(
            p.source(),
            "passwd file /tmp/passwd-test (bucket-specific line)"
        );
        let p = f.provider_for("x").expect("found");
        assert_eq!(p.source(), "passwd file /tmp/passwd-test (default line)");
    }

    #[test]
    fn mode_rule() {
        let p = Path::new("/x");
        for ok in [0o600, 0o640, 0o400, 0o440, 0o700, 0o100600] {
            assert!(check_mode(p, ok).is_ok(), "{ok:o}");
        }
        for bad in [0o644, 0o604, 0o660, 0o620, 0o601, 0o666, 0o100644] {
            assert!(
                matches!(
                    check_mode(p, bad),
                    Err(CredentialError::InsecurePermissions { .. })
                ),
                "{bad:o}"
            );
        }
    }

    #[test]
    fn load_refuses_0644_and_accepts_0600_and_0640() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = write_file(dir.path(), "bad", "ak:sk-secret\n", 0o644);
        let e = PasswdFile::load(&bad).expect_err("0644 refused");
        let s = e.to_string();
        assert!(
            matches!(e, CredentialError::InsecurePermissions { mode: 0o644, .. }),
            "{e:?}"
        );
        assert!(s.contains(&format!("chmod 600 {}", bad.display())), "{s}");
        assert!(!s.contains("sk-secret"));

        for mode in [0o600, 0o640] {
            let good = write_file(dir.path(), &format!("good{mode:o}"), "ak:sk\n", mode);
            let f = PasswdFile::load(&good).expect("accepted");
            assert_eq!(f.entries.len(), 1);
        }
    }

    #[test]
    fn load_missing_file_is_io_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        match PasswdFile::load(&dir.path().join("absent")) {
            Err(CredentialError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("expected Io NotFound, got {other:?}"),
        }
        let e = PasswdFile::load(dir.path()).expect_err("a directory");
        assert!(matches!(e, CredentialError::Io { .. }), "{e:?}");
    }

    #[test]
    fn default_paths_per_dialect() {
        let home = Path::new("/home/u");
        let etc = Path::new("/etc");
        assert_eq!(
            default_paths(Provider::Oss, Some(home), etc),
            vec![
                PathBuf::from("/home/u/.passwd-ossfs"),
                PathBuf::from("/etc/passwd-ossfs")
            ]
        );
        assert_eq!(
            default_paths(Provider::Cos, Some(home), etc),
            vec![
                PathBuf::from("/home/u/.passwd-cosfs"),
                PathBuf::from("/etc/passwd-cosfs")
            ]
        );
        assert_eq!(
            default_paths(Provider::S3, None, etc),
            vec![PathBuf::from("/etc/passwd-s3fs")]
        );
    }
}
