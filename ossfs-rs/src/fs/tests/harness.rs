//! Test harness: an [`Fs`] over a real S3 server under a fresh random
//! prefix, plus helpers that walk paths the way the kernel would.

use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::fs::{Caller, DirPlusSink, DirSink, Entry, Fs, FsConfig, FsError, Kind};
use crate::store::layer::{Call, HookedStore, StoreHooks, StoreOp};
use crate::store::{ListRequest, ObjectMeta, ObjectStore, PutOptions, StoreError, StoreResult};
use crate::test_support::{TestServer, test_server};

/// The caller every test acts as.
pub fn caller() -> Caller {
    Caller {
        uid: 1234,
        gid: 5678,
    }
}

/// A filesystem under a fresh prefix, and direct access to the bucket.
pub struct Env {
    pub fs: Fs,
    /// The store without the filesystem (and without any fault wrapper).
    pub store: Arc<dyn ObjectStore>,
    /// This test's prefix in the bucket (ends with `/`).
    pub prefix: String,
    staging: tempfile::TempDir,
    _server: Option<TestServer>,
}

impl Env {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(f: impl FnOnce(&mut FsConfig)) -> Self {
        Self::with_store_wrapper(f, |s| s).await
    }

    /// An Env whose filesystem sees the store through `wrap`.
    pub async fn with_store_wrapper(
        f: impl FnOnce(&mut FsConfig),
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        let prefix = crate::test_support::random_prefix("fs-test");
        let server = test_server().await;
        let mut env = Self::build(server.store.clone(), prefix, f, wrap);
        env._server = Some(server);
        env
    }

    /// A second filesystem on the same bucket area as `other` (for a
    /// different mount prefix, say).
    pub async fn sharing(other: &Env, f: impl FnOnce(&mut FsConfig)) -> Self {
        Self::build(other.store.clone(), other.prefix.clone(), f, |s| s)
    }

    fn build(
        store: Arc<dyn ObjectStore>,
        prefix: String,
        f: impl FnOnce(&mut FsConfig),
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        let staging = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut config = FsConfig {
            prefix: prefix.clone(),
            staging_dir: staging.path().to_path_buf(),
            ..FsConfig::default()
        };
        f(&mut config);
        let fs = Fs::new(wrap(store.clone()), config).unwrap_or_else(|e| panic!("fs: {e}"));
        Self {
            fs,
            store,
            prefix,
            staging,
            _server: None,
        }
    }

    fn key(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    /// PUT an object directly, with user metadata.
    pub async fn put(&self, path: &str, body: &[u8], meta: &[(&str, &str)]) {
        let opts = PutOptions {
            content_type: None,
            user_metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.store
            .put(&self.key(path), Bytes::copy_from_slice(body), &opts)
            .await
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// GET an object directly; `None` when missing.
    pub async fn get(&self, path: &str) -> Option<Bytes> {
        match self.store.get(&self.key(path), None).await {
            Ok(o) => Some(
                o.collect()
                    .await
                    .unwrap_or_else(|e| panic!("get {path}: {e}")),
            ),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    /// HEAD an object directly; `None` when missing.
    pub async fn head(&self, path: &str) -> Option<ObjectMeta> {
        match self.store.head(&self.key(path)).await {
            Ok(m) => Some(m),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => panic!("head {path}: {e}"),
        }
    }

    /// Every key under this test's prefix, relative to it, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let req = ListRequest {
            prefix: self.prefix.clone(),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .store
                .list_page(&req, token.as_deref())
                .await
                .unwrap_or_else(|e| panic!("list: {e}"));
            out.extend(
                page.objects
                    .into_iter()
                    .map(|o| o.key[self.prefix.len()..].to_string()),
            );
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort();
        out
    }

    /// Look a path up component by component, as the kernel does.
    pub async fn lookup_path(&self, path: &str) -> Result<Entry, FsError> {
        let mut entry = self.fs.getattr(Fs::root()).await?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            entry = self.fs.lookup(entry.attr.ino.0, OsStr::new(part)).await?;
        }
        Ok(entry)
    }

    /// The node id of `path`, which must exist.
    pub async fn ino_of(&self, path: &str) -> u64 {
        self.lookup_path(path)
            .await
            .unwrap_or_else(|e| panic!("lookup {path}: {e}"))
            .attr
            .ino
            .0
    }

    /// Look `path` up and open it with `flags`: (ino, fh).
    pub async fn open_path(&self, path: &str, flags: i32) -> (u64, u64) {
        let ino = self.ino_of(path).await;
        let fh = self
            .fs
            .open(ino, flags)
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        (ino, fh)
    }

    fn split(path: &str) -> (&str, &str) {
        match path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", path),
        }
    }

    /// create + write + flush + release; returns the node id.
    pub async fn write_file(&self, path: &str, data: &[u8], mode: u32) -> u64 {
        let (dir, name) = Self::split(path);
        let parent = self.ino_of(dir).await;
        let c = self
            .fs
            .create(parent, OsStr::new(name), mode, libc::O_WRONLY, caller())
            .await
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
        let ino = c.entry.attr.ino.0;
        if !data.is_empty() {
            self.fs
                .write(ino, c.fh, 0, Bytes::copy_from_slice(data))
                .await
                .unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        self.fs
            .flush(ino, c.fh)
            .await
            .unwrap_or_else(|e| panic!("flush {path}: {e}"));
        self.fs
            .release(ino, c.fh)
            .await
            .unwrap_or_else(|e| panic!("release {path}: {e}"));
        ino
    }

    /// open + read to the end + release.
    pub async fn read_file(&self, path: &str) -> Vec<u8> {
        let (ino, fh) = self.open_path(path, libc::O_RDONLY).await;
        let mut out = Vec::new();
        loop {
            let chunk = self
                .fs
                .read(ino, fh, out.len() as u64, 65536)
                .await
                .unwrap_or_else(|e| panic!("read {path}: {e}"));
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        self.fs
            .release(ino, fh)
            .await
            .unwrap_or_else(|e| panic!("release {path}: {e}"));
        out
    }

    /// opendir + readdir everything + releasedir.
    pub async fn list(&self, path: &str) -> Vec<(String, Kind)> {
        let ino = self
            .lookup_path(path)
            .await
            .unwrap_or_else(|e| panic!("lookup {path}: {e}"))
            .attr
            .ino
            .0;
        let fh = self
            .fs
            .opendir(ino, 0)
            .await
            .unwrap_or_else(|e| panic!("opendir {path}: {e}"));
        let mut names = Names::with_capacity(usize::MAX);
        self.fs
            .readdir(ino, fh, 0, &mut names)
            .await
            .unwrap_or_else(|e| panic!("readdir {path}: {e}"));
        self.fs
            .releasedir(fh)
            .unwrap_or_else(|e| panic!("releasedir {path}: {e}"));
        names.0.into_iter().map(|e| (e.name, e.kind)).collect()
    }

    /// Inodes with a staging file.
    pub fn staging_count(&self) -> usize {
        crate::fs::lock(&self.fs.stagings).len()
    }

    /// Files in the staging directory.
    pub fn staging_files(&self) -> usize {
        std::fs::read_dir(self.staging.path())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// One readdir entry as received.
#[derive(Clone, Debug)]
pub struct Listed {
    pub ino: u64,
    pub offset: u64,
    pub kind: Kind,
    pub name: String,
}

/// A readdir sink with room for `cap` entries.
pub struct Names(pub Vec<Listed>, usize);

impl Names {
    pub fn with_capacity(cap: usize) -> Self {
        Self(Vec::new(), cap)
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.name.as_str()).collect()
    }
}

impl DirSink for Names {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        if self.0.len() >= self.1 {
            return true;
        }
        self.0.push(Listed {
            ino,
            offset,
            kind,
            name: name.to_string(),
        });
        false
    }
}

/// A readdirplus sink with room for `cap` entries.
pub struct PlusNames(pub Vec<(String, u64, Entry)>, usize);

impl PlusNames {
    pub fn with_capacity(cap: usize) -> Self {
        Self(Vec::new(), cap)
    }
}

impl DirPlusSink for PlusNames {
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool {
        if self.0.len() >= self.1 {
            return true;
        }
        self.0.push((name.to_string(), offset, *entry));
        false
    }
}

/// Which part uploads fail, and how many failures were injected and how
/// many aborts and HEADs were seen.
#[derive(Clone, Default)]
pub struct FailingParts {
    fail: Arc<AtomicU32>,
    failed: Arc<AtomicUsize>,
    aborts: Arc<AtomicUsize>,
    heads: Arc<AtomicUsize>,
}

impl FailingParts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make uploads of part `n` fail (0: none).
    pub fn fail_part(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.fail_part(0);
    }

    pub fn aborted(&self) -> usize {
        self.aborts.load(Ordering::SeqCst)
    }

    /// How many part uploads failed by injection so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
}

/// The real store with injected part-upload failures (a fault wrapper, not
/// a mock: every other call goes to the server).
pub type Faulty = HookedStore<FailingParts>;

impl StoreHooks for FailingParts {
    fn before(&self, call: &Call<'_>) -> StoreResult<()> {
        match call.op {
            StoreOp::Head => {
                self.heads.fetch_add(1, Ordering::SeqCst);
            }
            StoreOp::AbortMultipart => {
                self.aborts.fetch_add(1, Ordering::SeqCst);
            }
            StoreOp::UploadPart if call.part_number == Some(self.fail.load(Ordering::SeqCst)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                return Err(StoreError::Connection("injected failure".into()));
            }
            _ => {}
        }
        Ok(())
    }
}
