//! One pass-through [`ObjectStore`] with a hook around every operation.
//!
//! Whatever wants to watch or disturb the store's calls (the metrics, the
//! tests' fault injection, a test that records the ranges it was asked
//! for) writes a [`StoreHooks`] and wraps the store in a
//! [`HookedStore`], instead of writing its own full `ObjectStore` that
//! forwards sixteen methods by hand (Mountpoint's failure client is the
//! model). The hooks see each call as a [`Call`]: which operation, which
//! key, and the few details hooks act on (range, part number, body size).
//!
//! - [`StoreHooks::before`] runs first and may return an error: the
//!   injected fault is returned as it is, the inner store is not asked
//!   and `after` does not run (nothing was sent).
//! - [`StoreHooks::after`] runs once the inner store answered, with the
//!   outcome and how long the call took.
//! - [`StoreHooks::got`] may wrap the body stream of a successful GET (to
//!   count its bytes as they arrive, say).
//!
//! Every hook has a no-op default. The wrapper is exhaustive: `ObjectStore`
//! gives no method a default body, so a method added to the trait fails to
//! compile here until [`HookedStore`] forwards it.
//!
//! Imports: the store's own types (`super`) only.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ByteRange, CompletedPart, CopyOptions, DeleteFailure, GetObject, ListPage, ListRequest,
    ObjectMeta, ObjectStore, PartInfo, Provider, PutOptions, PutResult, StoreError, StoreResult,
};

/// The operations of [`ObjectStore`] that reach the store, one per method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Head,
    Get,
    Put,
    ListPage,
    Delete,
    DeleteMultiple,
    Copy,
    CreateMultipart,
    UploadPart,
    UploadPartCopy,
    CompleteMultipart,
    AbortMultipart,
    ListParts,
    Append,
    PutSymlink,
    GetSymlink,
}

/// One call as the hooks see it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub op: StoreOp,
    /// The key addressed: the destination of a copy, the prefix of a
    /// listing, empty for `delete_multiple` (many keys).
    pub key: &'a str,
    /// The range of a GET or of an `upload_part_copy`.
    pub range: Option<ByteRange>,
    /// The part number of `upload_part` and `upload_part_copy`.
    pub part_number: Option<u32>,
    /// The size of the body sent (`put`, `upload_part`, `append`).
    pub body_len: Option<u64>,
}

impl<'a> Call<'a> {
    fn new(op: StoreOp, key: &'a str) -> Self {
        Self {
            op,
            key,
            range: None,
            part_number: None,
            body_len: None,
        }
    }
}

/// What a [`HookedStore`] runs around each call. Every hook is a no-op
/// unless overridden.
pub trait StoreHooks: Send + Sync + 'static {
    /// Before the call; an error here is returned instead of asking the
    /// store.
    fn before(&self, _call: &Call<'_>) -> StoreResult<()> {
        Ok(())
    }

    /// After the store answered `outcome`, `elapsed` after the call began.
    fn after(&self, _call: &Call<'_>, _outcome: Result<(), &StoreError>, _elapsed: Duration) {}

    /// The object of a successful GET, on its way to the caller.
    fn got(&self, _call: &Call<'_>, got: GetObject) -> GetObject {
        got
    }
}

/// Hooks shared with whoever else holds them (a test reading what they saw).
impl<H: StoreHooks + ?Sized> StoreHooks for Arc<H> {
    fn before(&self, call: &Call<'_>) -> StoreResult<()> {
        (**self).before(call)
    }

    fn after(&self, call: &Call<'_>, outcome: Result<(), &StoreError>, elapsed: Duration) {
        (**self).after(call, outcome, elapsed)
    }

    fn got(&self, call: &Call<'_>, got: GetObject) -> GetObject {
        (**self).got(call, got)
    }
}

/// `inner`, with `hooks` run around every call.
pub struct HookedStore<H> {
    inner: Arc<dyn ObjectStore>,
    hooks: H,
}

impl<H: StoreHooks> HookedStore<H> {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, hooks: H) -> Self {
        Self { inner, hooks }
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// Run `call` through the hooks; `op` is the inner store's future
    /// (not started until awaited here).
    async fn run<T>(
        &self,
        call: &Call<'_>,
        op: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        self.hooks.before(call)?;
        let started = Instant::now();
        let result = op.await;
        self.hooks
            .after(call, result.as_ref().map(|_| ()), started.elapsed());
        result
    }
}

#[async_trait]
impl<H: StoreHooks> ObjectStore for HookedStore<H> {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let call = Call::new(StoreOp::Head, key);
        self.run(&call, self.inner.head(key)).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<GetObject> {
        let call = Call {
            range,
            ..Call::new(StoreOp::Get, key)
        };
        let got = self.run(&call, self.inner.get(key, range)).await?;
        Ok(self.hooks.got(&call, got))
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> StoreResult<PutResult> {
        let call = Call {
            body_len: Some(body.len() as u64),
            ..Call::new(StoreOp::Put, key)
        };
        self.run(&call, self.inner.put(key, body, opts)).await
    }

    async fn list_page(&self, req: &ListRequest, token: Option<&str>) -> StoreResult<ListPage> {
        let call = Call::new(StoreOp::ListPage, &req.prefix);
        self.run(&call, self.inner.list_page(req, token)).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let call = Call::new(StoreOp::Delete, key);
        self.run(&call, self.inner.delete(key)).await
    }

    async fn delete_multiple(&self, keys: &[String]) -> StoreResult<Vec<DeleteFailure>> {
        let call = Call::new(StoreOp::DeleteMultiple, "");
        self.run(&call, self.inner.delete_multiple(keys)).await
    }

    async fn copy(&self, src: &str, dst: &str, opts: &CopyOptions) -> StoreResult<PutResult> {
        let call = Call::new(StoreOp::Copy, dst);
        self.run(&call, self.inner.copy(src, dst, opts)).await
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> StoreResult<String> {
        let call = Call::new(StoreOp::CreateMultipart, key);
        self.run(&call, self.inner.create_multipart(key, opts))
            .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> StoreResult<String> {
        let call = Call {
            part_number: Some(part_number),
            body_len: Some(body.len() as u64),
            ..Call::new(StoreOp::UploadPart, key)
        };
        let op = self.inner.upload_part(key, upload_id, part_number, body);
        self.run(&call, op).await
    }

    async fn upload_part_copy(
        &self,
        src: &str,
        range: ByteRange,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> StoreResult<String> {
        let call = Call {
            range: Some(range),
            part_number: Some(part_number),
            ..Call::new(StoreOp::UploadPartCopy, key)
        };
        let op = self
            .inner
            .upload_part_copy(src, range, key, upload_id, part_number);
        self.run(&call, op).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<PutResult> {
        let call = Call::new(StoreOp::CompleteMultipart, key);
        let op = self.inner.complete_multipart(key, upload_id, parts);
        self.run(&call, op).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let call = Call::new(StoreOp::AbortMultipart, key);
        self.run(&call, self.inner.abort_multipart(key, upload_id))
            .await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let call = Call::new(StoreOp::ListParts, key);
        self.run(&call, self.inner.list_parts(key, upload_id)).await
    }

    async fn append(
        &self,
        key: &str,
        position: u64,
        body: Bytes,
        opts: &PutOptions,
    ) -> StoreResult<u64> {
        let call = Call {
            body_len: Some(body.len() as u64),
            ..Call::new(StoreOp::Append, key)
        };
        self.run(&call, self.inner.append(key, position, body, opts))
            .await
    }

    async fn put_symlink(&self, key: &str, target: &str, opts: &PutOptions) -> StoreResult<()> {
        let call = Call::new(StoreOp::PutSymlink, key);
        self.run(&call, self.inner.put_symlink(key, target, opts))
            .await
    }

    async fn get_symlink(&self, key: &str) -> StoreResult<String> {
        let call = Call::new(StoreOp::GetSymlink, key);
        self.run(&call, self.inner.get_symlink(key)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::StreamExt;

    use super::*;
    use crate::test_support::{random_prefix, test_server};

    /// Logs every hook it sees; refuses PUTs of `forbidden`.
    #[derive(Default)]
    struct Log {
        seen: Mutex<Vec<String>>,
        forbidden: String,
    }

    impl Log {
        fn push(&self, line: String) {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(line);
            }
        }

        fn take(&self) -> Vec<String> {
            self.seen
                .lock()
                .map(|mut s| std::mem::take(&mut *s))
                .unwrap_or_default()
        }
    }

    impl StoreHooks for Log {
        fn before(&self, call: &Call<'_>) -> StoreResult<()> {
            self.push(format!("before {:?} {:?}", call.op, call.body_len));
            if call.op == StoreOp::Put && call.key == self.forbidden {
                return Err(StoreError::Connection("injected".into()));
            }
            Ok(())
        }

        fn after(&self, call: &Call<'_>, outcome: Result<(), &StoreError>, _elapsed: Duration) {
            let outcome = match outcome {
                Ok(()) => "ok",
                Err(StoreError::NotFound { .. }) => "not found",
                Err(_) => "error",
            };
            self.push(format!("after {:?} {outcome}", call.op));
        }

        fn got(&self, call: &Call<'_>, mut got: GetObject) -> GetObject {
            self.push(format!("got {:?}", call.range));
            got.body = got.body.map(|chunk| chunk.map(|c| c.slice(..1))).boxed();
            got
        }
    }

    #[tokio::test]
    async fn hooks_run_around_each_call_and_an_injected_error_skips_the_store() {
        let server = test_server().await;
        let prefix = random_prefix("layer");
        let (kept, refused) = (format!("{prefix}kept"), format!("{prefix}refused"));
        let log = Arc::new(Log {
            forbidden: refused.clone(),
            ..Log::default()
        });
        let store = HookedStore::new(server.store.clone(), log.clone());
        let opts = PutOptions::default();

        store
            .put(&kept, Bytes::from_static(b"abc"), &opts)
            .await
            .unwrap_or_else(|e| panic!("put: {e}"));
        let got = store
            .get(&kept, Some(ByteRange::new(0, 2)))
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        // `got` may replace the body on its way to the caller.
        assert_eq!(got.collect().await.ok().as_deref(), Some(&b"a"[..]));
        assert_eq!(
            log.take(),
            [
                "before Put Some(3)",
                "after Put ok",
                "before Get None",
                "after Get ok",
                "got Some(ByteRange { start: 0, end: Some(2) })",
            ]
        );

        let refused_put = store.put(&refused, Bytes::from_static(b"x"), &opts).await;
        assert!(matches!(refused_put, Err(StoreError::Connection(_))));
        let head = store.head(&refused).await;
        assert!(matches!(head, Err(StoreError::NotFound { .. })), "{head:?}");
        assert_eq!(
            log.take(),
            [
                "before Put Some(1)",
                "before Head None",
                "after Head not found"
            ],
            "the refused PUT never reached the store, nor `after`"
        );
        assert_eq!(store.bucket(), server.store.bucket());
    }
}
