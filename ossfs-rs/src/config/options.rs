//! `-o` mount options with their ossfs meaning.
//!
//! ossfs, cosfs and s3fs users carry option strings in fstab lines and
//! scripts; they must keep working unchanged. Every option is parsed here
//! into [`MountOptions`]; an unknown option is an error that names it
//! (ossfs silently ignores typos, which hides mistakes such as
//! `allow_others`). Generic mount options that `mount.fuse3` passes
//! through (`rw`, `_netdev`, `noauto`, ...) are accepted and ignored.
//!
//! Imports: `memory` of the crate, besides std and external crates.

use std::path::PathBuf;
use std::time::Duration;

/// Options of one mount, with ossfs's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Endpoint URL (`url=`, `endpoint=`).
    pub url: Option<String>,
    /// Dialect (`provider=oss|cos|s3`); inferred from the URL when absent.
    pub provider: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing forced (`use_path_request_style`,
    /// `path_style`), S3 only.
    pub path_style: bool,
    /// Virtual-host addressing forced (`virtual_host`), even for an IP
    /// address or `localhost` endpoint, where path style is chosen by itself.
    pub virtual_host: bool,
    /// Signature version override: `sigv1`/`sigv4` (OSS).
    pub signature: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub passwd_file: Option<PathBuf>,
    /// Directory with STS credential files (AccessKeyId, ...).
    pub sts_dir: Option<PathBuf>,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub read_only: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits removed from every file and directory (octal).
    pub umask: Option<u32>,
    /// Permission bits removed from the mount point itself (octal).
    pub mp_umask: Option<u32>,
    /// Mount over a non-empty directory.
    pub nonempty: bool,
    pub max_stat_cache_size: usize,
    pub stat_cache_expire: Duration,
    /// How long a directory listing is reused (`list_cache_expire=SECONDS`, 1).
    pub list_cache_expire: Duration,
    /// Cache "does not exist" answers (`enable_noobj_cache`).
    pub negative_cache: bool,
    /// Where writers' staging files live (`tmpdir=`).
    pub tmpdir: Option<PathBuf>,
    /// The persistent disk block cache's directory (`use_cache=DIR`).
    pub use_cache: Option<PathBuf>,
    /// Bytes the disk cache may hold (`disk_cache_size=MiB`, 4096).
    pub disk_cache_size: u64,
    /// Multipart part size in bytes (`multipart_size=` is given in MB, as in ossfs).
    pub multipart_size: u64,
    /// Parallel part uploads (`parallel_count=`).
    pub parallel_count: usize,
    /// Bytes of data buffers (prefetch, block cache, upload parts) at most
    /// (`memory_limit=MiB`, 512).
    pub memory_limit: u64,
    /// Bytes of the in-memory block cache (`cache_size=MiB`, 256; 0 = off).
    pub cache_size: u64,
    /// Largest read-ahead of one open file (`prefetch_window=MiB`, 64).
    pub prefetch_window: u64,
    /// Serve Prometheus metrics on this address (`metrics=127.0.0.1:PORT`).
    pub metrics: Option<std::net::SocketAddr>,
    /// Log level (`dbglevel=`: crit, err, warn, info, debug).
    pub dbglevel: Option<String>,
    pub logfile: Option<PathBuf>,
    /// Testing only (`test_no_resend`): a restarted worker ignores the
    /// kernel's FUSE_NOTIFY_RESEND support and ends the dead worker's
    /// requests with EIO, as on kernels older than 6.9.
    pub test_no_resend: bool,
    /// Benchmarks only (`test_no_journal`): record nothing in the restart
    /// journal, to measure what it costs. A restarted worker then cannot
    /// answer for the node ids the kernel holds.
    pub test_no_journal: bool,
    /// Retry idempotent requests until the store answers (`retry_forever`):
    /// during an outage, calls block instead of failing with EIO.
    pub retry_forever: bool,
    /// Upload large files only at close (`nostream_upload`), instead of
    /// streaming their parts while they are written.
    pub no_stream_upload: bool,
    /// Take `ls -l`'s attributes from the listing (`readdir_optimize`, as
    /// in ossfs): no HEAD per entry, default mode and owner.
    pub readdir_optimize: bool,
    /// Turn extended attributes off (`noxattr`, as in s3fs): the kernel
    /// then stops asking, which saves `ls -l` a round trip per entry.
    pub noxattr: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            url: None,
            provider: None,
            region: None,
            path_style: false,
            virtual_host: false,
            signature: None,
            ca_bundle: None,
            passwd_file: None,
            sts_dir: None,
            allow_other: false,
            default_permissions: false,
            read_only: false,
            uid: None,
            gid: None,
            umask: None,
            mp_umask: None,
            nonempty: false,
            max_stat_cache_size: 100_000,
            stat_cache_expire: Duration::from_secs(900),
            list_cache_expire: Duration::from_secs(1),
            negative_cache: false,
            tmpdir: None,
            use_cache: None,
            disk_cache_size: 4096 * 1024 * 1024,
            multipart_size: 10 * 1024 * 1024,
            parallel_count: 5,
            memory_limit: crate::memory::DEFAULT_MEMORY_LIMIT,
            cache_size: 256 * 1024 * 1024,
            prefetch_window: 64 * 1024 * 1024,
            metrics: None,
            dbglevel: None,
            logfile: None,
            test_no_resend: false,
            test_no_journal: false,
            retry_forever: false,
            no_stream_upload: false,
            readdir_optimize: false,
            noxattr: false,
        }
    }
}

/// A bad `-o` option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("unknown mount option {0:?} (see docs/configuration.md for the list)")]
    Unknown(String),
    #[error("mount option {0} needs a value: {0}=...")]
    MissingValue(String),
    #[error("mount option {name}={value:?}: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// Options that `mount(8)`/`mount.fuse3` pass along and that mean nothing to us.
const IGNORED: &[&str] = &[
    "rw",
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "_netdev",
    "nofail",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "nodiratime",
    "async",
    "sync",
    "big_writes",
];

impl MountOptions {
    /// Apply one or more comma-separated `-o` strings, in order.
    pub fn apply_all<'a>(
        &mut self,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), OptionError> {
        for group in groups {
            for opt in group.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                self.apply(opt)?;
            }
        }
        Ok(())
    }

    /// Apply one `name` or `name=value` option.
    pub fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| OptionError::MissingValue(name.to_string()))
        };
        match name {
            "url" | "endpoint" => self.url = Some(need(value)?),
            "provider" => self.provider = Some(need(value)?),
            "region" | "endpoint_region" => self.region = Some(need(value)?),
            "use_path_request_style" | "path_style" => self.path_style = true,
            "virtual_host" => self.virtual_host = true,
            "sigv1" | "sigv2" => self.signature = Some("v1".into()),
            "sigv4" => self.signature = Some("v4".into()),
            "signature" => self.signature = Some(need(value)?),
            "ca_bundle" | "ssl_ca_bundle" => self.ca_bundle = Some(need(value)?.into()),
            "passwd_file" => self.passwd_file = Some(need(value)?.into()),
            "sts_dir" => self.sts_dir = Some(need(value)?.into()),
            "allow_other" => self.allow_other = true,
            "default_permissions" => self.default_permissions = true,
            "ro" => self.read_only = true,
            "uid" => self.uid = Some(parse_num(name, need(value)?)?),
            "gid" => self.gid = Some(parse_num(name, need(value)?)?),
            "umask" => self.umask = Some(parse_mask(name, need(value)?)?),
            "mp_umask" => self.mp_umask = Some(parse_mask(name, need(value)?)?),
            "nonempty" => self.nonempty = true,
            "test_no_resend" => self.test_no_resend = true,
            "test_no_journal" => self.test_no_journal = true,
            "retry_forever" => self.retry_forever = true,
            "nostream_upload" => self.no_stream_upload = true,
            "readdir_optimize" => self.readdir_optimize = true,
            "noxattr" => self.noxattr = true,
            "max_stat_cache_size" => {
                self.max_stat_cache_size = parse_num::<usize>(name, need(value)?)?
            }
            "list_cache_expire" => {
                self.list_cache_expire = Duration::from_secs(parse_num(name, need(value)?)?)
            }
            "stat_cache_expire" => {
                self.stat_cache_expire = Duration::from_secs(parse_num(name, need(value)?)?)
            }
            "enable_noobj_cache" => self.negative_cache = true,
            "disable_noobj_cache" => self.negative_cache = false,
            "tmpdir" => self.tmpdir = Some(need(value)?.into()),
            "use_cache" => {
                let dir = PathBuf::from(need(value)?);
                if !dir.is_absolute() {
                    return Err(bad(
                        name,
                        &dir.display().to_string(),
                        "must be an absolute path (the daemon does not run in this directory)",
                    ));
                }
                self.use_cache = Some(dir);
            }
            "disk_cache_size" => {
                let mb: u64 = parse_num(name, need(value)?)?;
                if mb == 0 {
                    return Err(bad(
                        name,
                        "0",
                        "must be at least 1 (MiB); leave out use_cache to turn the disk cache off",
                    ));
                }
                self.disk_cache_size = mb.saturating_mul(1024 * 1024);
            }
            "multipart_size" => {
                let mb: u64 = parse_num(name, need(value)?)?;
                if mb == 0 || mb > 5 * 1024 {
                    return Err(bad(
                        name,
                        &mb.to_string(),
                        "must be between 1 and 5120 (MB)",
                    ));
                }
                self.multipart_size = mb * 1024 * 1024;
            }
            "parallel_count" => {
                let n: usize = parse_num(name, need(value)?)?;
                if n == 0 || n > 1024 {
                    return Err(bad(name, &n.to_string(), "must be between 1 and 1024"));
                }
                self.parallel_count = n;
            }
            "memory_limit" => {
                let mb: u64 = parse_num(name, need(value)?)?;
                if !(16..=1024 * 1024).contains(&mb) {
                    return Err(bad(
                        name,
                        &mb.to_string(),
                        "must be between 16 and 1048576 (MiB)",
                    ));
                }
                self.memory_limit = mb * 1024 * 1024;
            }
            "cache_size" => {
                let mb: u64 = parse_num(name, need(value)?)?;
                self.cache_size = mb.saturating_mul(1024 * 1024);
            }
            "prefetch_window" => {
                let mb: u64 = parse_num(name, need(value)?)?;
                if !(1..=4096).contains(&mb) {
                    return Err(bad(
                        name,
                        &mb.to_string(),
                        "must be between 1 and 4096 (MiB)",
                    ));
                }
                self.prefetch_window = mb * 1024 * 1024;
            }
            "metrics" => {
                let addr = need(value)?;
                self.metrics = Some(
                    addr.parse()
                        .map_err(|_| bad(name, &addr, "an address such as 127.0.0.1:9100"))?,
                );
            }
            "dbglevel" => {
                let level = need(value)?;
                if !matches!(
                    level.as_str(),
                    "crit"
                        | "critical"
                        | "err"
                        | "error"
                        | "warn"
                        | "warning"
                        | "info"
                        | "dbg"
                        | "debug"
                ) {
                    return Err(bad(name, &level, "use crit, err, warn, info or debug"));
                }
                self.dbglevel = Some(level);
            }
            "logfile" => self.logfile = Some(need(value)?.into()),
            other if IGNORED.contains(&other) && value.is_none() => {}
            other => {
                return Err(OptionError::Unknown(
                    opt.split('=').next().unwrap_or(other).to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The `tracing` filter for `dbglevel`.
    pub fn log_filter(&self) -> &'static str {
        match self.dbglevel.as_deref() {
            Some("crit" | "critical" | "err" | "error") => "error",
            Some("info") => "info",
            Some("dbg" | "debug") => "debug",
            _ => "warn",
        }
    }
}

fn bad(name: &str, value: &str, reason: &str) -> OptionError {
    OptionError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, value: String) -> Result<T, OptionError> {
    value.parse().map_err(|_| bad(name, &value, "not a number"))
}

fn parse_mask(name: &str, value: String) -> Result<u32, OptionError> {
    match u32::from_str_radix(&value, 8) {
        Ok(mask) if mask <= 0o7777 => Ok(mask),
        Ok(_) => Err(bad(name, &value, "an octal mask such as 022 or 0027")),
        Err(_) => Err(bad(name, &value, "not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ossfs_fstab_option_string() {
        let mut o = MountOptions::default();
        o.apply_all(["_netdev,allow_other,url=http://oss-cn-hangzhou.aliyuncs.com,passwd_file=/etc/p,umask=022,uid=1000,multipart_size=20,ro"])
            .unwrap();
        assert!(o.allow_other && o.read_only);
        assert_eq!(
            o.url.as_deref(),
            Some("http://oss-cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(o.passwd_file, Some(PathBuf::from("/etc/p")));
        assert_eq!(o.umask, Some(0o22));
        assert_eq!(o.uid, Some(1000));
        assert_eq!(o.multipart_size, 20 * 1024 * 1024);
    }

    #[test]
    fn parses_the_data_path_options() {
        let mut o = MountOptions::default();
        assert_eq!(o.memory_limit, 512 * 1024 * 1024);
        assert!(!o.readdir_optimize);
        o.apply_all(["memory_limit=1024,cache_size=0,prefetch_window=16,metrics=127.0.0.1:9100,list_cache_expire=0,readdir_optimize,noxattr,use_cache=/var/cache/ossfs,disk_cache_size=100"])
            .unwrap();
        assert!(o.readdir_optimize && o.noxattr);
        assert_eq!(o.use_cache, Some(PathBuf::from("/var/cache/ossfs")));
        assert_eq!(o.disk_cache_size, 100 * 1024 * 1024);
        assert_eq!(o.memory_limit, 1024 * 1024 * 1024);
        assert_eq!(o.cache_size, 0);
        assert_eq!(o.prefetch_window, 16 * 1024 * 1024);
        assert_eq!(o.metrics, "127.0.0.1:9100".parse().ok());
        assert_eq!(o.list_cache_expire, Duration::ZERO);
        let mut relative = MountOptions::default();
        let err = relative
            .apply_all(["use_cache=cache"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let mut o = MountOptions::default();
        assert_eq!(
            o.apply("allow_others"),
            Err(OptionError::Unknown("allow_others".into()))
        );
        assert_eq!(
            o.apply("frobnicate=3"),
            Err(OptionError::Unknown("frobnicate".into()))
        );
        assert_eq!(o.apply("uid"), Err(OptionError::MissingValue("uid".into())));
        assert!(matches!(
            o.apply("umask=99"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            o.apply("parallel_count=0"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            o.apply("dbglevel=loud"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            o.apply("memory_limit=1"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            o.apply("metrics=localhost"),
            Err(OptionError::BadValue { .. })
        ));
        // A value on an ignored flag is not silently accepted.
        assert_eq!(o.apply("rw=1"), Err(OptionError::Unknown("rw".into())));
    }
}
