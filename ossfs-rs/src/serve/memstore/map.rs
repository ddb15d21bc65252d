//! The object map itself: [`MemStore`], its buckets and their state, and
//! the bucket and object operations (create, delete, get, put, copy).
//!
//! Keys are arbitrary strings in one sorted map per bucket, so a `dir/`
//! marker, `a` beside `a/b`, `x//y`, spaces, `+`, `%` and unicode all
//! coexist exactly as on a real object store (a file-backed map cannot hold
//! `a` beside `a/b`). Objects are immutable behind an `Arc`, so a reader
//! keeps a consistent version while a writer replaces the key.
//!
//! One `std::sync::RwLock` guards the whole map: every critical section is
//! a few map operations (hashing and body collection happen before the lock
//! is taken), and no lock is ever held across an `.await`. A bucket also
//! holds its pending multipart uploads ([`Upload`]), so deleting a bucket
//! discards them with it; the multipart operations themselves are in
//! `multipart.rs` and listing in `listing.rs`, as further `impl MemStore`
//! blocks over the state defined here.
//!
//! Imports: `super::error`, `super::body`; `hex`. Nothing else of the crate:
//! `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use super::body::{HashedBody, ObjectData};
use super::error::{MemError, MemResult};

/// One stored object version (immutable).
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub data: ObjectData,
    /// Without quotes: MD5 hex, or `md5-of-md5s-N` for multipart.
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: Option<String>,
    /// `x-amz-meta-*` without the prefix, names lower-case.
    pub metadata: BTreeMap<String, String>,
    /// Number of parts when the object was assembled by a multipart upload.
    pub parts_count: Option<u32>,
}

impl StoredObject {
    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.data.len()
    }
}

/// Content type and user metadata given with a write.
#[derive(Debug, Clone, Default)]
pub struct ObjectAttrs {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A precondition on a write (`If-Match`, `If-None-Match: *`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    None,
    /// Only when the key does not exist yet.
    IfNoneMatchAny,
    /// Only when the current ETag is this one (or any, for `*`).
    IfMatch(Option<String>),
}

/// What a copy does with the source's content type and metadata.
#[derive(Debug, Clone)]
pub enum CopyDirective {
    Copy,
    Replace(ObjectAttrs),
}

/// A part of a pending multipart upload.
#[derive(Debug, Clone)]
pub(super) struct StoredPart {
    pub(super) data: ObjectData,
    pub(super) md5: [u8; 16],
    pub(super) last_modified: SystemTime,
}

/// A pending multipart upload, bound to the key it was started for.
#[derive(Debug)]
pub(super) struct Upload {
    pub(super) key: String,
    pub(super) attrs: ObjectAttrs,
    pub(super) parts: BTreeMap<u32, StoredPart>,
}

/// One bucket: its objects by key and its pending uploads by id.
#[derive(Debug)]
pub(super) struct Bucket {
    created: SystemTime,
    pub(super) objects: BTreeMap<String, Arc<StoredObject>>,
    pub(super) uploads: HashMap<String, Upload>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            created: SystemTime::now(),
            objects: BTreeMap::new(),
            uploads: HashMap::new(),
        }
    }
}

/// The in-memory object map shared by all connections.
#[derive(Debug)]
pub struct MemStore {
    buckets: RwLock<BTreeMap<String, Bucket>>,
    pub(super) min_part_size: u64,
}

impl MemStore {
    /// An empty map. Every part of a multipart upload but the last must be
    /// at least `min_part_size` bytes (S3: 5 MiB; 0 disables the check).
    pub fn new(min_part_size: u64) -> Self {
        Self {
            buckets: RwLock::new(BTreeMap::new()),
            min_part_size,
        }
    }

    // A panic while holding the lock cannot leave the map half-updated
    // (every write is a single insert or remove), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn with_bucket<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&Bucket) -> MemResult<T>,
    ) -> MemResult<T> {
        let map = self.read();
        let b = map
            .get(bucket)
            .ok_or_else(|| MemError::NoSuchBucket(bucket.to_owned()))?;
        f(b)
    }

    pub(super) fn with_bucket_mut<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut Bucket) -> MemResult<T>,
    ) -> MemResult<T> {
        let mut map = self.write();
        let b = map
            .get_mut(bucket)
            .ok_or_else(|| MemError::NoSuchBucket(bucket.to_owned()))?;
        f(b)
    }

    // ---- buckets ----

    /// Create a bucket; `BucketAlreadyOwnedByYou` when it exists.
    pub fn create_bucket(&self, name: &str) -> MemResult<()> {
        let mut map = self.write();
        if map.contains_key(name) {
            return Err(MemError::BucketAlreadyOwnedByYou(name.to_owned()));
        }
        map.insert(name.to_owned(), Bucket::new());
        Ok(())
    }

    /// Delete an empty bucket (pending uploads are discarded with it).
    pub fn delete_bucket(&self, name: &str) -> MemResult<()> {
        let mut map = self.write();
        let b = map
            .get(name)
            .ok_or_else(|| MemError::NoSuchBucket(name.to_owned()))?;
        if !b.objects.is_empty() {
            return Err(MemError::BucketNotEmpty(name.to_owned()));
        }
        map.remove(name);
        Ok(())
    }

    /// Whether a bucket exists.
    pub fn bucket_exists(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// All buckets with their creation time, sorted by name.
    pub fn list_buckets(&self) -> Vec<(String, SystemTime)> {
        self.read()
            .iter()
            .map(|(n, b)| (n.clone(), b.created))
            .collect()
    }

    // ---- objects ----

    /// The current version of an object.
    pub fn get_object(&self, bucket: &str, key: &str) -> MemResult<Arc<StoredObject>> {
        self.with_bucket(bucket, |b| {
            b.objects
                .get(key)
                .cloned()
                .ok_or_else(|| MemError::NoSuchKey(key.to_owned()))
        })
    }

    /// Store a whole object (single PUT). The ETag is the body's MD5.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<HashedBody>,
        attrs: ObjectAttrs,
        cond: &WriteCondition,
    ) -> MemResult<Arc<StoredObject>> {
        let body = body.into();
        let etag = hex::encode(body.md5);
        let obj = Arc::new(StoredObject {
            data: ObjectData::from_bytes(body.data),
            etag,
            last_modified: SystemTime::now(),
            content_type: attrs.content_type,
            metadata: attrs.metadata,
            parts_count: None,
        });
        self.with_bucket_mut(bucket, |b| {
            check_write_condition(b.objects.get(key), key, cond)?;
            b.objects.insert(key.to_owned(), obj.clone());
            Ok(obj)
        })
    }

    /// Delete an object; deleting a missing key is success.
    pub fn delete_object(&self, bucket: &str, key: &str) -> MemResult<()> {
        self.with_bucket_mut(bucket, |b| {
            b.objects.remove(key);
            Ok(())
        })
    }

    /// Server-side copy. Copying an object onto itself needs `Replace`.
    pub fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        directive: CopyDirective,
    ) -> MemResult<Arc<StoredObject>> {
        let mut map = self.write();
        let src = map
            .get(src_bucket)
            .ok_or_else(|| MemError::NoSuchBucket(src_bucket.to_owned()))?
            .objects
            .get(src_key)
            .cloned()
            .ok_or_else(|| MemError::NoSuchKey(src_key.to_owned()))?;
        if src_bucket == dst_bucket
            && src_key == dst_key
            && matches!(directive, CopyDirective::Copy)
        {
            return Err(MemError::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata"
                    .to_owned(),
            ));
        }
        let dst = map
            .get_mut(dst_bucket)
            .ok_or_else(|| MemError::NoSuchBucket(dst_bucket.to_owned()))?;
        let (content_type, metadata) = match directive {
            CopyDirective::Copy => (src.content_type.clone(), src.metadata.clone()),
            CopyDirective::Replace(a) => (a.content_type, a.metadata),
        };
        let obj = Arc::new(StoredObject {
            data: src.data.clone(),
            etag: src.etag.clone(),
            last_modified: SystemTime::now(),
            content_type,
            metadata,
            parts_count: src.parts_count,
        });
        dst.objects.insert(dst_key.to_owned(), obj.clone());
        Ok(obj)
    }
}

/// Whether a write may replace `current` (the key's object, if any) under `cond`.
pub(super) fn check_write_condition(
    current: Option<&Arc<StoredObject>>,
    key: &str,
    cond: &WriteCondition,
) -> MemResult<()> {
    match (cond, current) {
        (WriteCondition::None, _) => Ok(()),
        (WriteCondition::IfNoneMatchAny, None) => Ok(()),
        (WriteCondition::IfNoneMatchAny, Some(_)) => Err(MemError::PreconditionFailed),
        (WriteCondition::IfMatch(_), None) => Err(MemError::NoSuchKey(key.to_owned())),
        (WriteCondition::IfMatch(None), Some(_)) => Ok(()),
        (WriteCondition::IfMatch(Some(want)), Some(cur)) => {
            if cur.etag == want.trim_matches('"') {
                Ok(())
            } else {
                Err(MemError::PreconditionFailed)
            }
        }
    }
}
