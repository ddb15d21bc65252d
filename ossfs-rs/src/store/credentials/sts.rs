//! STS credentials from a directory of files that something else keeps
//! fresh (a sidecar, a cron job, a CSI node plugin).
//!
//! The directory holds one value per file, the layout Alibaba's tooling
//! uses: `AccessKeyId`, `AccessKeySecret`, `SecurityToken` and `Expiration`
//! (RFC 3339, `2026-11-23T12:00:00Z`). Surrounding whitespace is ignored.
//!
//! The provider caches what it read and reads the files again only when the
//! cached credentials are within a margin (5 minutes by default) of their
//! expiration, so a request costs no file I/O most of the time. If a re-read
//! fails while the cached credentials have not yet expired (the writer may
//! be halfway through replacing the files), the cached ones are served and
//! a warning is logged; once they have expired, the error is returned. The
//! clock is injected so tests can move time without sleeping.
//!
//! A `std::sync::Mutex` guards the cache: the critical section is a few
//! small file reads, never held across an `.await`.
//!
//! Imports: `store::credentials` of the crate, besides std and external
//! crates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CredentialError, CredentialProvider, Credentials};

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The file names inside an STS directory.
pub const ACCESS_KEY_ID_FILE: &str = "AccessKeyId";
pub const ACCESS_KEY_SECRET_FILE: &str = "AccessKeySecret";
pub const SECURITY_TOKEN_FILE: &str = "SecurityToken";
pub const EXPIRATION_FILE: &str = "Expiration";

/// Credentials read from an STS directory and re-read before they expire.
pub struct StsDirProvider {
    dir: PathBuf,
    margin: Duration,
    clock: Clock,
    cached: Mutex<Option<Credentials>>,
}

impl StsDirProvider {
    /// How long before the expiration the files are read again.
    pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5 * 60);

    /// A provider for `dir` with the default margin and the system clock.
    /// Nothing is read until the first [`CredentialProvider::credentials`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            margin: Self::DEFAULT_MARGIN,
            clock: Arc::new(SystemTime::now),
            cached: Mutex::new(None),
        }
    }

    /// Re-read the files when the credentials expire within `margin`.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Use `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read the four files now, bypassing the cache.
    pub fn read_files(&self) -> Result<Credentials, CredentialError> {
        let id = self.read_value(ACCESS_KEY_ID_FILE)?;
        let secret = self.read_value(ACCESS_KEY_SECRET_FILE)?;
        let token = self.read_value(SECURITY_TOKEN_FILE)?;
        let expiration = self.read_value(EXPIRATION_FILE)?;
        let expires_at = OffsetDateTime::parse(&expiration, &Rfc3339).map_err(|_| {
            CredentialError::InvalidSts {
                path: self.dir.join(EXPIRATION_FILE),
                reason: "not an RFC 3339 time such as 2026-11-23T12:00:00Z".to_string(),
            }
        })?;
        let mut creds = Credentials::new(id, secret).with_token(token);
        creds.expires_at = Some(SystemTime::from(expires_at));
        Ok(creds)
    }

    fn read_value(&self, name: &str) -> Result<String, CredentialError> {
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| CredentialError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| CredentialError::InvalidSts {
            path: path.clone(),
            reason: "not valid UTF-8".to_string(),
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(CredentialError::InvalidSts {
                path,
                reason: "empty".to_string(),
            });
        }
        Ok(value.to_string())
    }

    fn is_expired(&self, creds: &Credentials, now: SystemTime) -> bool {
        creds.expires_at.is_some_and(|t| t <= now)
    }

    fn needs_refresh(&self, creds: &Credentials, now: SystemTime) -> bool {
        creds.expires_at.is_none_or(|t| t <= now + self.margin)
    }
}

impl CredentialProvider for StsDirProvider {
    fn credentials(&self) -> Result<Credentials, CredentialError> {
        let now = (self.clock)();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref()
            && !self.needs_refresh(c, now)
        {
            return Ok(c.clone());
        }
        match self.read_files() {
            Ok(fresh) if self.is_expired(&fresh, now) => Err(CredentialError::Expired {
                path: self.dir.clone(),
            }),
            Ok(fresh) => {
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached.as_ref() {
                Some(c) if !self.is_expired(c, now) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot re-read the STS directory; using the cached credentials until they expire"
                    );
                    Ok(c.clone())
                }
                _ => Err(e),
            },
        }
    }

    fn source(&self) -> String {
        format!("STS directory {}", self.dir.display())
    }
}

impl fmt::Debug for StsDirProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .cached
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        f.debug_struct("StsDirProvider")
            .field("dir", &self.dir)
            .field("margin", &self.margin)
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// 2026-11-23T12:00:00Z as Unix seconds.
    const T0: u64 = 1_795_435_200;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rfc3339(t: SystemTime) -> String {
        OffsetDateTime::from(t).format(&Rfc3339).expect("format")
    }

    fn write_sts(dir: &Path, id: &str, secret: &str, token: &str, expiration: &str) {
        std::fs::write(dir.join(ACCESS_KEY_ID_FILE), format!("{id}\n")).expect("write");
        std::fs::write(dir.join(ACCESS_KEY_SECRET_FILE), secret).expect("write");
        std::fs::write(dir.join(SECURITY_TOKEN_FILE), token).expect("write");
        std::fs::write(dir.join(EXPIRATION_FILE), format!("{expiration}\n")).expect("write");
    }

    /// A clock the test moves by hand.
    fn manual_clock(start: u64) -> (Clock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(start));
        let n = Arc::clone(&now);
        (Arc::new(move || at(n.load(Ordering::SeqCst))), now)
    }

    #[test]
    fn parses_the_documented_time_format() {
        assert_eq!(rfc3339(at(T0)), "2026-11-23T12:00:00Z");
        let dir = tempfile::tempdir().expect("tempdir");
        write_sts(
            dir.path(),
            "STS.id",
            "sts-secret",
            "tok",
            "2026-11-23T12:00:00Z",
        );
        let c = StsDirProvider::new(dir.path()).read_files().expect("read");
        assert_eq!(c.access_key_id, "STS.id");
        assert_eq!(c.secret_access_key, "sts-secret");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
        assert_eq!(c.expires_at, Some(at(T0)));
    }

    #[test]
    fn caches_until_the_margin_then_rereads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, now) = manual_clock(T0);
        // Valid for an hour.
        write_sts(
            dir.path(),
            "id-1",
            "secret-1",
            "tok-1",
            &rfc3339(at(T0 + 3600)),
        );
        let p = StsDirProvider::new(dir.path()).with_clock(clock);
        assert_eq!(p.credentials().expect("read").access_key_id, "id-1");

        // New files, but the cached credentials are far from expiry: cached.
        write_sts(
            dir.path(),
            "id-2",
            "secret-2",
            "tok-2",
            &rfc3339(at(T0 + 7200)),
        );
        assert_eq!(p.credentials().expect("cached").access_key_id, "id-1");

        // Move within the 5-minute margin of the first expiry: re-read.
        now.store(T0 + 3600 - 120, Ordering::SeqCst);
        let c = p.credentials().expect("re-read");
        assert_eq!(c.access_key_id, "id-2");
        assert_eq!(c.secret_access_key, "secret-2");
        assert_eq!(c.security_token.as_deref(), Some("tok-2"));
    }

    #[test]
    fn near_expiry_files_are_reread_on_next_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, _now) = manual_clock(T0);
        // Expires in 2 minutes: inside the margin already.
        write_sts(
            dir.path(),
            "id-1",
            "secret-1",
            "tok-1",
            &rfc3339(at(T0 + 120)),
        );
        let p = StsDirProvider::new(dir.path()).with_clock(clock);
        assert_eq!(p.credentials().expect("read").access_key_id, "id-1");
        // The writer rotates the files (new keys, also near expiry).
        write_sts(
            dir.path(),
            "id-2",
            "secret-2",
            "tok-2",
            &rfc3339(at(T0 + 200)),
        );
        assert_eq!(p.credentials().expect("re-read").access_key_id, "id-2");
    }

    #[test]
    fn expired_after_reread_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, now) = manual_clock(T0);
        write_sts(
            dir.path(),
            "id-1",
            "secret-1",
            "tok-1",
            &rfc3339(at(T0 + 3600)),
        );
        let p = StsDirProvider::new(dir.path()).with_clock(clock);
        p.credentials().expect("valid");
        // Nobody refreshed the files; the hour passes.
        now.store(T0 + 3600, Ordering::SeqCst);
        match p.credentials() {
            Err(CredentialError::Expired { path }) => assert_eq!(path, dir.path()),
            other => panic!("expected Expired, got {other:?}"),
        }
        // Already expired at the first read.
        let (clock, _) = manual_clock(T0 + 10);
        write_sts(dir.path(), "id", "s", "t", &rfc3339(at(T0)));
        let p = StsDirProvider::new(dir.path()).with_clock(clock);
        assert!(matches!(
            p.credentials(),
            Err(CredentialError::Expired { .. })
        ));
    }

    #[test]
    fn failed_reread_serves_cache_until_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, now) = manual_clock(T0);
        write_sts(
            dir.path(),
            "id-1",
            "secret-1",
            "tok-1",
            &rfc3339(at(T0 + 600)),
        );
        let p = StsDirProvider::new(dir.path()).with_clock(clock);
        p.credentials().expect("valid");
        std::fs::remove_file(dir.path().join(SECURITY_TOKEN_FILE)).expect("rm");
        now.store(T0 + 400, Ordering::SeqCst);
        assert_eq!(p.credentials().expect("cached").access_key_id, "id-1");
        now.store(T0 + 600, Ordering::SeqCst);
        assert!(matches!(p.credentials(), Err(CredentialError::Io { .. })));
    }

    #[test]
    fn bad_files_are_reported_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sts(dir.path(), "id", "sts-secret", "sts-token", "tomorrow");
        let p = StsDirProvider::new(dir.path());
        let e = p.credentials().expect_err("bad time");
        let s = format!("{e} {e:?}");
        assert!(s.contains("Expiration"), "{s}");
        assert!(!s.contains("sts-secret") && !s.contains("sts-token"), "{s}");

        write_sts(dir.path(), "id", "  \n", "tok", "2026-11-23T12:00:00Z");
        let e = p.credentials().expect_err("empty secret");
        assert!(
            matches!(&e, CredentialError::InvalidSts { path, .. } if path.ends_with(ACCESS_KEY_SECRET_FILE)),
            "{e:?}"
        );

        let empty = tempfile::tempdir().expect("tempdir");
        let e = StsDirProvider::new(empty.path())
            .credentials()
            .expect_err("missing");
        assert!(e.to_string().contains(ACCESS_KEY_ID_FILE), "{e}");
    }

    #[test]
    fn debug_and_source_hold_no_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sts(
            dir.path(),
            "STS.visible",
            "hidden-secret",
            "hidden-token",
            "2999-01-01T00:00:00Z",
        );
        let p = StsDirProvider::new(dir.path());
        p.credentials().expect("valid");
        let s = format!("{p:?} {}", p.source());
        assert!(s.contains("STS.visible"), "{s}");
        assert!(
            !s.contains("hidden-secret") && !s.contains("hidden-token"),
            "{s}"
        );
        assert_eq!(
            p.source(),
            format!("STS directory {}", dir.path().display())
        );
    }
}
