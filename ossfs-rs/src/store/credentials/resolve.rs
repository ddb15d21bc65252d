//! Choosing a credential source: a fixed order, and a record of the choice.
//!
//! The order, first match wins:
//! 1. static keys given by the caller (command line, CSI secret);
//! 2. an STS directory (`sts_dir`);
//! 3. the passwd file given explicitly (`-o passwd_file=PATH`);
//! 4. the dialect's environment variables;
//! 5. the dialect's default passwd files: `$HOME/.passwd-<tool>` then
//!    `/etc/passwd-<tool>`, where the tool is ossfs, cosfs or s3fs.
//!
//! A source that is configured but broken is an error, never skipped: an
//! unreadable STS directory, a missing or insecure explicit passwd file, a
//! half-set pair of environment variables, or a default passwd file that
//! exists but is insecure or malformed. Skipping would silently mount with
//! other keys than the operator meant. A default passwd file that is absent,
//! or has no line for the bucket, is skipped and noted; when nothing is
//! found, [`CredentialError::NotFound`] lists every place tried.
//!
//! Imports: `store::credentials`, `store::credentials::env`,
//! `store::credentials::passwd`, `store::credentials::sts`, `store::dialect`
//! of the crate, besides std and external crates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::env::{self, EnvLookup};
use super::passwd::{self, PasswdFile};
use super::sts::StsDirProvider;
use super::{CredentialError, CredentialProvider, Credentials, StaticProvider};
use crate::store::dialect::Provider;

/// Where to look for credentials. Build with [`CredentialOptions::new`] and
/// set the fields that apply.
#[derive(Debug, Clone)]
pub struct CredentialOptions {
    /// The dialect: picks the environment variables and default file names.
    pub provider: Provider,
    /// The bucket as given (COS buckets with their `-appid`), matched
    /// against bucket-specific passwd lines.
    pub bucket: String,
    /// `-o passwd_file=PATH`.
    pub passwd_file: Option<PathBuf>,
    /// A directory with `AccessKeyId`, `AccessKeySecret`, `SecurityToken`
    /// and `Expiration` files.
    pub sts_dir: Option<PathBuf>,
    /// Keys given directly; they win over every other source.
    pub static_keys: Option<Credentials>,
    /// How static keys are described by `source()` (`CSI secret`).
    pub static_label: String,
    /// The environment (the process's, or a map in tests). `HOME` is read
    /// from it too.
    pub env: EnvLookup,
    /// Where the system-wide passwd files live (`/etc`).
    pub system_dir: PathBuf,
}

impl CredentialOptions {
    /// Options for `bucket` in `provider`'s dialect, reading the process
    /// environment and `/etc`, with no explicit source.
    pub fn new(provider: Provider, bucket: impl Into<String>) -> Self {
        Self {
            provider,
            bucket: bucket.into(),
            passwd_file: None,
            sts_dir: None,
            static_keys: None,
            static_label: "static keys".to_string(),
            env: EnvLookup::process(),
            system_dir: PathBuf::from("/etc"),
        }
    }
}

/// Pick the credential source for `opts` (see the module doc for the order).
///
/// Sources that read files read them once here, so a broken file fails
/// now, at mount or `check` time, rather than on the first request.
pub fn resolve(opts: &CredentialOptions) -> Result<Arc<dyn CredentialProvider>, CredentialError> {
    let chosen = pick(opts)?;
    tracing::info!(source = %chosen.source(), bucket = %opts.bucket, "credentials resolved");
    Ok(chosen)
}

fn pick(opts: &CredentialOptions) -> Result<Arc<dyn CredentialProvider>, CredentialError> {
    if let Some(creds) = &opts.static_keys {
        return Ok(Arc::new(StaticProvider::new(
            creds.clone(),
            opts.static_label.clone(),
        )));
    }

    if let Some(dir) = &opts.sts_dir {
        let provider = StsDirProvider::new(dir.clone());
        provider.credentials()?;
        return Ok(Arc::new(provider));
    }

    if let Some(path) = &opts.passwd_file {
        let file = PasswdFile::load(path)?;
        return match file.provider_for(&opts.bucket) {
            Some(p) => Ok(Arc::new(p)),
            None => Err(CredentialError::NoEntry {
                path: path.clone(),
                bucket: opts.bucket.clone(),
            }),
        };
    }

    if let Some(p) = env::from_env(opts.provider, &opts.env)? {
        return Ok(Arc::new(p));
    }

    let mut tried = vec![env::describe(opts.provider)];
    let home = opts.env.get("HOME").map(PathBuf::from);
    if home.is_none()
        && let Some(home_file) =
            passwd::default_paths(opts.provider, Some(Path::new("$HOME")), &opts.system_dir)
                .into_iter()
                .next()
    {
        tried.push(format!("{} (HOME not set)", home_file.display()));
    }
    for path in passwd::default_paths(opts.provider, home.as_deref(), &opts.system_dir) {
        match PasswdFile::load(&path) {
            Ok(file) => match file.provider_for(&opts.bucket) {
                Some(p) => return Ok(Arc::new(p)),
                None => tried.push(format!(
                    "{} (no line for bucket {:?} and no default line)",
                    path.display(),
                    opts.bucket
                )),
            },
            Err(CredentialError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tried.push(format!("{} (absent)", path.display()));
            }
            Err(e) => return Err(e),
        }
    }
    Err(CredentialError::NotFound {
        tried: tried.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::credentials::sts;
    use std::os::unix::fs::PermissionsExt;

    /// A sandbox: a fake HOME and a fake /etc, and an environment holding
    /// only what a test puts there.
    struct Sandbox {
        _root: tempfile::TempDir,
        home: PathBuf,
        etc: PathBuf,
        vars: Vec<(String, String)>,
    }

    impl Sandbox {
        fn new() -> Self {
            let root = tempfile::tempdir().expect("tempdir");
            let home = root.path().join("home");
            let etc = root.path().join("etc");
            std::fs::create_dir_all(&home).expect("mkdir");
            std::fs::create_dir_all(&etc).expect("mkdir");
            let vars = vec![("HOME".to_string(), home.display().to_string())];
            Self {
                _root: root,
                home,
                etc,
                vars,
            }
        }

        fn set(&mut self, k: &str, v: &str) {
            self.vars.push((k.to_string(), v.to_string()));
        }

        fn write(&self, path: &Path, text: &str, mode: u32) {
            std::fs::write(path, text).expect("write");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }

        fn opts(&self, provider: Provider, bucket: &str) -> CredentialOptions {
            let mut o = CredentialOptions::new(provider, bucket);
            o.env = EnvLookup::from_map(self.vars.iter().cloned().collect());
            o.system_dir = self.etc.clone();
            o
        }
    }

    fn key_of(p: &Arc<dyn CredentialProvider>) -> String {
        p.credentials().expect("credentials").access_key_id
    }

    fn write_sts(dir: &Path, id: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join(sts::ACCESS_KEY_ID_FILE), id).expect("write");
        std::fs::write(dir.join(sts::ACCESS_KEY_SECRET_FILE), "sts-secret").expect("write");
        std::fs::write(dir.join(sts::SECURITY_TOKEN_FILE), "sts-token").expect("write");
        std::fs::write(dir.join(sts::EXPIRATION_FILE), "2999-01-01T00:00:00Z").expect("write");
    }

    /// Every source configured at once; each step removes the winner and
    /// checks the next one takes over.
    #[test]
    fn precedence_static_sts_explicit_env_default() {
        let mut sb = Sandbox::new();
        sb.set("OSS_ACCESS_KEY_ID", "ENV_AK");
        sb.set("OSS_ACCESS_KEY_SECRET", "env-sk");
        let explicit = sb.home.join("explicit");
        sb.write(&explicit, "EXPLICIT_AK:sk\n", 0o600);
        sb.write(&sb.home.join(".passwd-ossfs"), "HOME_AK:sk\n", 0o600);
        sb.write(&sb.etc.join("passwd-ossfs"), "ETC_AK:sk\n", 0o600);
        let sts_dir = sb.home.join("sts");
        write_sts(&sts_dir, "STS_AK");

        let mut o = sb.opts(Provider::Oss, "b");
        o.static_keys = Some(Credentials::new("STATIC_AK", "static-sk"));
        o.static_label = "CSI secret".to_string();
        o.sts_dir = Some(sts_dir.clone());
        o.passwd_file = Some(explicit.clone());

        let p = resolve(&o).expect("static");
        assert_eq!(key_of(&p), "STATIC_AK");
        assert_eq!(p.source(), "CSI secret");

        o.static_keys = None;
        let p = resolve(&o).expect("sts");
        assert_eq!(key_of(&p), "STS_AK");
        assert_eq!(p.source(), format!("STS directory {}", sts_dir.display()));

        o.sts_dir = None;
        let p = resolve(&o).expect("explicit");
        assert_eq!(key_of(&p), "EXPLICIT_AK");
        assert_eq!(
            p.source(),
            format!("passwd file {} (default line)", explicit.display())
        );

        o.passwd_file = None;
        let p = resolve(&o).expect("env");
        assert_eq!(key_of(&p), "ENV_AK");
        assert_eq!(p.source(), "environment (OSS_ACCESS_KEY_ID)");

        o.env = EnvLookup::from_pairs([("HOME", sb.home.to_str().expect("utf8"))]);
        let p = resolve(&o).expect("home file");
        assert_eq!(key_of(&p), "HOME_AK");

        std::fs::remove_file(sb.home.join(".passwd-ossfs")).expect("rm");
        let p = resolve(&o).expect("etc file");
        assert_eq!(key_of(&p), "ETC_AK");
        assert_eq!(
            p.source(),
            format!(
                "passwd file {} (default line)",
                sb.etc.join("passwd-ossfs").display()
            )
        );
    }

    #[test]
    fn default_files_follow_the_dialect() {
        let sb = Sandbox::new();
        sb.write(&sb.home.join(".passwd-ossfs"), "OSS_AK:sk\n", 0o600);
        sb.write(
            &sb.etc.join("passwd-cosfs"),
            "examplebucket-1250000000:COS_AK:sk\n",
            0o640,
        );
        sb.write(&sb.home.join(".passwd-s3fs"), "S3_AK:sk\n", 0o600);

        assert_eq!(
            key_of(&resolve(&sb.opts(Provider::Oss, "b")).expect("oss")),
            "OSS_AK"
        );
        let p = resolve(&sb.opts(Provider::Cos, "examplebucket-1250000000")).expect("cos");
        assert_eq!(key_of(&p), "COS_AK");
        assert!(
            p.source().ends_with("passwd-cosfs (bucket-specific line)"),
            "{}",
            p.source()
        );
        assert_eq!(
            key_of(&resolve(&sb.opts(Provider::S3, "b")).expect("s3")),
            "S3_AK"
        );
    }

    #[test]
    fn bucket_specific_line_wins_in_a_file() {
        let sb = Sandbox::new();
        let f = sb.etc.join("passwd-ossfs");
        sb.write(&f, "# keys\nDEF_AK:def-sk\nmine:MINE_AK:mine-sk\n", 0o600);
        let p = resolve(&sb.opts(Provider::Oss, "mine")).expect("found");
        let c = p.credentials().expect("creds");
        assert_eq!(c.access_key_id, "MINE_AK");
        assert_eq!(c.secret_access_key, "mine-sk");
        assert_eq!(
            p.source(),
            format!("passwd file {} (bucket-specific line)", f.display())
        );
        let p = resolve(&sb.opts(Provider::Oss, "theirs")).expect("default");
        assert_eq!(key_of(&p), "DEF_AK");
    }

    #[test]
    fn home_file_without_a_matching_line_falls_through_to_etc() {
        let sb = Sandbox::new();
        sb.write(&sb.home.join(".passwd-ossfs"), "other:O_AK:sk\n", 0o600);
        sb.write(&sb.etc.join("passwd-ossfs"), "ETC_AK:sk\n", 0o600);
        assert_eq!(
            key_of(&resolve(&sb.opts(Provider::Oss, "b")).expect("etc")),
            "ETC_AK"
        );
    }

    #[test]
    fn not_found_lists_everything_tried() {
        let sb = Sandbox::new();
        sb.write(&sb.home.join(".passwd-s3fs"), "other:O_AK:sk\n", 0o600);
        let e = resolve(&sb.opts(Provider::S3, "b")).expect_err("nothing");
        let s = e.to_string();
        assert!(matches!(e, CredentialError::NotFound { .. }), "{e:?}");
        assert!(
            s.contains("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set"),
            "{s}"
        );
        assert!(s.contains(".passwd-s3fs (no line for bucket \"b\""), "{s}");
        assert!(s.contains("passwd-s3fs (absent)"), "{s}");

        // Without HOME the home file is reported as such.
        let mut o = sb.opts(Provider::Oss, "b");
        o.env = EnvLookup::empty();
        let s = resolve(&o).expect_err("nothing").to_string();
        assert!(s.contains("$HOME/.passwd-ossfs (HOME not set)"), "{s}");
        assert!(
            s.contains("OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET not set"),
            "{s}"
        );
    }

    #[test]
    fn insecure_files_are_refused_not_skipped() {
        let sb = Sandbox::new();
        let home_file = sb.home.join(".passwd-ossfs");
        sb.write(&home_file, "HOME_AK:home-secret\n", 0o644);
        sb.write(&sb.etc.join("passwd-ossfs"), "ETC_AK:sk\n", 0o600);
        let e = resolve(&sb.opts(Provider::Oss, "b")).expect_err("refused");
        assert!(
            matches!(e, CredentialError::InsecurePermissions { .. }),
            "{e:?}"
        );
        let s = e.to_string();
        assert!(
            s.contains(&format!("chmod 600 {}", home_file.display())),
            "{s}"
        );
        assert!(!s.contains("home-secret"));

        let mut o = sb.opts(Provider::Oss, "b");
        let explicit = sb.home.join("explicit");
        sb.write(&explicit, "AK:sk\n", 0o604);
        o.passwd_file = Some(explicit);
        assert!(matches!(
            resolve(&o),
            Err(CredentialError::InsecurePermissions { mode: 0o604, .. })
        ));
    }

    #[test]
    fn explicit_file_problems_are_errors() {
        let sb = Sandbox::new();
        sb.write(&sb.etc.join("passwd-ossfs"), "ETC_AK:sk\n", 0o600);
        let mut o = sb.opts(Provider::Oss, "b");

        o.passwd_file = Some(sb.home.join("missing"));
        assert!(matches!(resolve(&o), Err(CredentialError::Io { .. })));

        let f = sb.home.join("other-bucket-only");
        sb.write(&f, "other:AK:sk\n", 0o600);
        o.passwd_file = Some(f);
        let e = resolve(&o).expect_err("no entry");
        assert!(matches!(e, CredentialError::NoEntry { .. }), "{e:?}");
        assert!(e.to_string().contains("b:ACCESS_KEY_ID:SECRET"));

        let f = sb.home.join("malformed");
        sb.write(&f, "AK:sk\nbad line-secret\n", 0o600);
        o.passwd_file = Some(f.clone());
        let e = resolve(&o).expect_err("malformed");
        match &e {
            CredentialError::Malformed { path, line, .. } => {
                assert_eq!(path, &f);
                assert_eq!(*line, 2);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        assert!(!format!("{e} {e:?}").contains("line-secret"));
    }

    #[test]
    fn broken_sts_dir_is_an_error() {
        let sb = Sandbox::new();
        sb.write(&sb.etc.join("passwd-ossfs"), "ETC_AK:sk\n", 0o600);
        let mut o = sb.opts(Provider::Oss, "b");
        o.sts_dir = Some(sb.home.join("no-such-sts"));
        assert!(matches!(resolve(&o), Err(CredentialError::Io { .. })));
    }

    #[test]
    fn half_set_environment_is_an_error() {
        let mut sb = Sandbox::new();
        sb.write(&sb.etc.join("passwd-cosfs"), "ETC_AK:sk\n", 0o600);
        sb.set("COS_SECRET_ID", "ID");
        let e = resolve(&sb.opts(Provider::Cos, "b")).expect_err("incomplete");
        assert!(matches!(e, CredentialError::IncompleteEnv { .. }), "{e:?}");
    }

    #[test]
    fn no_output_contains_a_secret() {
        let mut sb = Sandbox::new();
        sb.set("AWS_ACCESS_KEY_ID", "VISIBLE_ID");
        sb.set("AWS_SECRET_ACCESS_KEY", "env-secret-value");
        sb.set("AWS_SESSION_TOKEN", "env-token-value");
        let o = sb.opts(Provider::S3, "b");
        let p = resolve(&o).expect("env");
        let shown = format!("{o:?} {p:?} {}", p.source());
        assert!(!shown.contains("env-secret-value"), "{shown}");
        assert!(!shown.contains("env-token-value"), "{shown}");

        let mut o = sb.opts(Provider::Oss, "b");
        o.static_keys =
            Some(Credentials::new("ID", "static-secret-value").with_token("static-tok"));
        let p = resolve(&o).expect("static");
        let shown = format!("{o:?} {p:?} {}", p.source());
        assert!(!shown.contains("static-secret-value"), "{shown}");
        assert!(!shown.contains("static-tok"), "{shown}");

        let f = sb.home.join("pw");
        sb.write(&f, "b:ID:file-secret-value\n", 0o600);
        let mut o = sb.opts(Provider::Oss, "b");
        o.passwd_file = Some(f);
        let p = resolve(&o).expect("file");
        let shown = format!("{p:?} {}", p.source());
        assert!(!shown.contains("file-secret-value"), "{shown}");
    }
}
