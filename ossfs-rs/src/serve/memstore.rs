//! The embedded endpoint's object map: buckets, objects and multipart
//! uploads held in memory, with S3's object semantics.
//!
//! Keys are arbitrary strings in one sorted map per bucket, so a `dir/`
//! marker, `a` beside `a/b`, `x//y`, spaces, `+`, `%` and unicode all
//! coexist exactly as on a real object store (a file-backed map cannot hold
//! `a` beside `a/b`). Listing walks that sorted map and rolls keys up into
//! common prefixes, so V1 markers and V2 continuation tokens are simply "the
//! last name returned".
//!
//! Bodies are [`Bytes`] segments and never copied after upload: completing
//! a multipart upload or copying a part concatenates or slices segments, and
//! a GET hands out slices of them. Objects are immutable behind an `Arc`, so
//! a reader keeps a consistent version while a writer replaces the key.
//!
//! Everything here is synchronous and does no I/O, so it is unit-tested
//! directly. One `std::sync::RwLock` guards the whole map: every critical
//! section is a few map operations (hashing and body collection happen
//! before the lock is taken), and no lock is ever held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, Range};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use bytes::Bytes;
use md5::{Digest, Md5};

/// Largest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// Largest page a listing returns.
pub const MAX_LIST_KEYS: usize = 1000;

/// Why an operation on the map failed; the service maps each to an S3 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    #[error("the bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("the key {0:?} does not exist")]
    NoSuchKey(String),
    #[error("the bucket {0:?} already exists")]
    BucketAlreadyOwnedByYou(String),
    #[error("the bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("the upload {0:?} does not exist (it was completed, aborted or never started)")]
    NoSuchUpload(String),
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(u32),
    #[error("the parts are not in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes; every part but the last must be at least {min} bytes")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    #[error("the range is not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("a precondition does not hold")]
    PreconditionFailed,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
}

/// A result of a map operation.
pub type MemResult<T> = Result<T, MemError>;

/// The bytes of an object: segments in order, never copied after upload.
#[derive(Clone, Default)]
pub struct ObjectData {
    segments: Vec<Bytes>,
    len: u64,
}

impl std::fmt::Debug for ObjectData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectData")
            .field("segments", &self.segments.len())
            .field("len", &self.len)
            .finish()
    }
}

impl ObjectData {
    /// One contiguous body.
    pub fn from_bytes(body: Bytes) -> Self {
        Self::from_segments(vec![body])
    }

    /// Segments in order (empty ones are dropped).
    pub fn from_segments(segments: Vec<Bytes>) -> Self {
        let segments: Vec<Bytes> = segments.into_iter().filter(|s| !s.is_empty()).collect();
        let len = segments.iter().map(|s| s.len() as u64).sum();
        Self { segments, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments covering `range` (clamped to the object), sliced without copying.
    pub fn slice(&self, range: Range<u64>) -> Vec<Bytes> {
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        let mut offset = 0u64;
        for seg in &self.segments {
            let seg_len = seg.len() as u64;
            let seg_end = offset + seg_len;
            if seg_end > range.start && offset < end {
                // Both bounds lie within this segment, so they fit in usize.
                let from = range.start.saturating_sub(offset) as usize;
                let to = (end.min(seg_end) - offset) as usize;
                out.push(seg.slice(from..to));
            }
            if seg_end >= end {
                break;
            }
            offset = seg_end;
        }
        out
    }

    /// All segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The whole body as one buffer (copies when there is more than one segment).
    pub fn to_bytes(&self) -> Bytes {
        match self.segments.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = Vec::with_capacity(self.len as usize);
                for s in many {
                    out.extend_from_slice(s);
                }
                Bytes::from(out)
            }
        }
    }

    fn md5(&self) -> [u8; 16] {
        let mut h = Md5::new();
        for s in &self.segments {
            h.update(s);
        }
        h.finalize().into()
    }
}

/// The MD5 of a buffer, as S3 uses it for ETags and `Content-MD5`.
pub fn md5_of(body: &[u8]) -> [u8; 16] {
    Md5::digest(body).into()
}

/// A request body with its MD5, computed once: the ETag and the
/// `Content-MD5` check share it, and the caller can hash off the runtime.
#[derive(Clone)]
pub struct HashedBody {
    data: Bytes,
    md5: [u8; 16],
}

impl HashedBody {
    /// Hash `data` (MD5 runs at memory speed; large bodies are best hashed
    /// on a blocking thread).
    pub fn new(data: Bytes) -> Self {
        let md5 = md5_of(&data);
        Self { data, md5 }
    }

    /// The body's MD5.
    pub fn md5(&self) -> [u8; 16] {
        self.md5
    }

    /// The body's length.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl std::fmt::Debug for HashedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedBody")
            .field("len", &self.data.len())
            .field("md5", &hex::encode(self.md5))
            .finish()
    }
}

impl From<Bytes> for HashedBody {
    fn from(data: Bytes) -> Self {
        Self::new(data)
    }
}

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

/// A listing request, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    /// `None` or empty: no roll-up.
    pub delimiter: Option<String>,
    /// List names strictly after this one (V1 marker, V2 start-after or token).
    pub after: Option<String>,
    pub max_keys: usize,
}

/// An object as a listing reports it.
#[derive(Debug, Clone)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListOutcome {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last name (key or common prefix) returned, when truncated.
    pub next_marker: Option<String>,
}

/// A part as ListParts reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// One page of ListParts.
#[derive(Debug, Clone, Default)]
pub struct PartsPage {
    pub parts: Vec<PartSummary>,
    pub is_truncated: bool,
    pub next_marker: Option<u32>,
}

#[derive(Debug, Clone)]
struct StoredPart {
    data: ObjectData,
    md5: [u8; 16],
    last_modified: SystemTime,
}

#[derive(Debug)]
struct Upload {
    key: String,
    attrs: ObjectAttrs,
    parts: BTreeMap<u32, StoredPart>,
}

#[derive(Debug)]
struct Bucket {
    created: SystemTime,
    objects: BTreeMap<String, Arc<StoredObject>>,
    uploads: HashMap<String, Upload>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            created: SystemTime::now(),
            objects: BTreeMap::new(),
            uploads: HashMap::new(),
        }
    }

    fn upload_mut(&mut self, key: &str, upload_id: &str) -> MemResult<&mut Upload> {
        match self.uploads.get_mut(upload_id) {
            Some(u) if u.key == key => Ok(u),
            _ => Err(MemError::NoSuchUpload(upload_id.to_owned())),
        }
    }
}

/// The in-memory object map shared by all connections.
#[derive(Debug)]
pub struct MemStore {
    buckets: RwLock<BTreeMap<String, Bucket>>,
    min_part_size: u64,
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

    fn with_bucket<T>(
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

    fn with_bucket_mut<T>(
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

    /// One page of a listing (see the module doc for the marker rule).
    pub fn list(&self, bucket: &str, q: &ListQuery) -> MemResult<ListOutcome> {
        self.with_bucket(bucket, |b| Ok(list_sorted(&b.objects, q)))
    }

    // ---- multipart ----

    /// Start a multipart upload; returns its id.
    pub fn create_upload(&self, bucket: &str, key: &str, attrs: ObjectAttrs) -> MemResult<String> {
        let upload_id = hex::encode(rand::random::<[u8; 16]>());
        self.with_bucket_mut(bucket, |b| {
            b.uploads.insert(
                upload_id.clone(),
                Upload {
                    key: key.to_owned(),
                    attrs,
                    parts: BTreeMap::new(),
                },
            );
            Ok(upload_id)
        })
    }

    /// Store (or replace) one part; returns its ETag (the part's MD5 hex).
    pub fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: impl Into<HashedBody>,
    ) -> MemResult<String> {
        check_part_number(part_number)?;
        let body = body.into();
        let md5 = body.md5;
        let part = StoredPart {
            data: ObjectData::from_bytes(body.data),
            md5,
            last_modified: SystemTime::now(),
        };
        self.with_bucket_mut(bucket, |b| {
            b.upload_mut(key, upload_id)?
                .parts
                .insert(part_number, part);
            Ok(hex::encode(md5))
        })
    }

    /// Store a byte range (`[start, end)`, or the whole source) of an
    /// existing object as one part; returns the part's ETag.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<Range<u64>>,
    ) -> MemResult<(String, SystemTime)> {
        check_part_number(part_number)?;
        let src = self.get_object(src_bucket, src_key)?;
        let size = src.size();
        let range = match range {
            None => 0..size,
            Some(r) if r.start < r.end && r.end <= size => r,
            Some(_) => return Err(MemError::InvalidRange { size }),
        };
        let data = ObjectData::from_segments(src.data.slice(range));
        // Hashing happens outside the lock: it is the only slow step.
        let md5 = data.md5();
        let now = SystemTime::now();
        let part = StoredPart {
            data,
            md5,
            last_modified: now,
        };
        self.with_bucket_mut(bucket, |b| {
            b.upload_mut(key, upload_id)?
                .parts
                .insert(part_number, part);
            Ok((hex::encode(md5), now))
        })
    }

    /// Assemble the listed parts (ascending, ETags matching) into the
    /// object and forget the upload.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        cond: &WriteCondition,
    ) -> MemResult<Arc<StoredObject>> {
        if parts.is_empty() {
            return Err(MemError::InvalidRequest(
                "You must specify at least one part".to_owned(),
            ));
        }
        self.with_bucket_mut(bucket, |b| {
            let min_part_size = self.min_part_size;
            let upload = b.upload_mut(key, upload_id)?;
            let mut segments = Vec::new();
            let mut md5s = Vec::with_capacity(parts.len() * 16);
            let mut prev = 0u32;
            for (i, (number, etag)) in parts.iter().enumerate() {
                if *number <= prev {
                    return Err(MemError::InvalidPartOrder);
                }
                prev = *number;
                let part = upload
                    .parts
                    .get(number)
                    .ok_or(MemError::InvalidPart(*number))?;
                if hex::encode(part.md5) != etag.trim_matches('"') {
                    return Err(MemError::InvalidPart(*number));
                }
                let is_last = i + 1 == parts.len();
                if !is_last && part.data.len() < min_part_size {
                    return Err(MemError::EntityTooSmall {
                        part: *number,
                        size: part.data.len(),
                        min: min_part_size,
                    });
                }
                segments.extend(part.data.segments().iter().cloned());
                md5s.extend_from_slice(&part.md5);
            }
            check_write_condition(b.objects.get(key), key, cond)?;
            let etag = format!("{}-{}", hex::encode(md5_of(&md5s)), parts.len());
            let Some(upload) = b.uploads.remove(upload_id) else {
                return Err(MemError::NoSuchUpload(upload_id.to_owned()));
            };
            let obj = Arc::new(StoredObject {
                data: ObjectData::from_segments(segments),
                etag,
                last_modified: SystemTime::now(),
                content_type: upload.attrs.content_type,
                metadata: upload.attrs.metadata,
                parts_count: u32::try_from(parts.len()).ok(),
            });
            b.objects.insert(key.to_owned(), obj.clone());
            Ok(obj)
        })
    }

    /// Forget an upload and its parts.
    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> MemResult<()> {
        self.with_bucket_mut(bucket, |b| {
            b.upload_mut(key, upload_id)?;
            b.uploads.remove(upload_id);
            Ok(())
        })
    }

    /// One page of the parts uploaded so far, after part number `marker`.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: usize,
    ) -> MemResult<PartsPage> {
        self.with_bucket(bucket, |b| {
            let upload = match b.uploads.get(upload_id) {
                Some(u) if u.key == key => u,
                _ => return Err(MemError::NoSuchUpload(upload_id.to_owned())),
            };
            let mut page = PartsPage::default();
            for (&n, p) in upload
                .parts
                .range((Bound::Excluded(marker), Bound::Unbounded))
            {
                if page.parts.len() == max_parts {
                    page.is_truncated = true;
                    break;
                }
                page.parts.push(PartSummary {
                    part_number: n,
                    etag: hex::encode(p.md5),
                    size: p.data.len(),
                    last_modified: p.last_modified,
                });
            }
            if page.is_truncated {
                page.next_marker = page.parts.last().map(|p| p.part_number);
            }
            Ok(page)
        })
    }
}

fn check_part_number(n: u32) -> MemResult<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(MemError::InvalidArgument(format!(
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive (got {n})"
        )))
    }
}

fn check_write_condition(
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

/// The common prefix `key` rolls up into under `prefix` and `delimiter`, if any.
pub fn roll_up<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    let idx = rest.find(delimiter)?;
    Some(&key[..prefix.len() + idx + delimiter.len()])
}

/// List a sorted key map. Names after `q.after` are returned in order; a
/// marker that itself rolls up into a common prefix skips every key under
/// that prefix, so paging never returns a common prefix twice.
fn list_sorted(objects: &BTreeMap<String, Arc<StoredObject>>, q: &ListQuery) -> ListOutcome {
    let mut out = ListOutcome::default();
    if q.max_keys == 0 {
        return out;
    }
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let start = match q.after.as_deref() {
        Some(after) if after >= q.prefix.as_str() => Bound::Excluded(after),
        _ => Bound::Included(q.prefix.as_str()),
    };
    let mut skip: Option<String> = q
        .after
        .as_deref()
        .and_then(|a| roll_up(a, &q.prefix, delimiter))
        .map(str::to_owned);
    let mut count = 0usize;
    let mut last: Option<String> = None;
    for (key, obj) in objects.range::<str, _>((start, Bound::Unbounded)) {
        if !key.starts_with(q.prefix.as_str()) {
            // Every key from here on sorts after all keys with the prefix.
            break;
        }
        if let Some(s) = &skip
            && key.starts_with(s.as_str())
        {
            continue;
        }
        if count == q.max_keys {
            out.is_truncated = true;
            break;
        }
        count += 1;
        match roll_up(key, &q.prefix, delimiter) {
            Some(cp) => {
                out.common_prefixes.push(cp.to_owned());
                skip = Some(cp.to_owned());
                last = Some(cp.to_owned());
            }
            None => {
                out.objects.push(ListedObject {
                    key: key.clone(),
                    size: obj.size(),
                    etag: obj.etag.clone(),
                    last_modified: obj.last_modified,
                });
                last = Some(key.clone());
            }
        }
    }
    if out.is_truncated {
        out.next_marker = last;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> MemStore {
        let s = MemStore::new(0);
        s.create_bucket("b").unwrap();
        s
    }

    fn put(s: &MemStore, key: &str, body: &str) {
        s.put_object(
            "b",
            key,
            Bytes::from(body.to_owned()),
            ObjectAttrs::default(),
            &WriteCondition::None,
        )
        .unwrap();
    }

    fn q(prefix: &str, delim: Option<&str>, after: Option<&str>, max: usize) -> ListQuery {
        ListQuery {
            prefix: prefix.to_owned(),
            delimiter: delim.map(str::to_owned),
            after: after.map(str::to_owned),
            max_keys: max,
        }
    }

    fn keys(o: &ListOutcome) -> Vec<&str> {
        o.objects.iter().map(|x| x.key.as_str()).collect()
    }

    /// Page through a listing the way a V1/V2 client does.
    fn list_all(
        s: &MemStore,
        prefix: &str,
        delim: Option<&str>,
        page: usize,
    ) -> (Vec<String>, Vec<String>) {
        let (mut ks, mut ps) = (Vec::new(), Vec::new());
        let mut after: Option<String> = None;
        loop {
            let o = s
                .list("b", &q(prefix, delim, after.as_deref(), page))
                .unwrap();
            assert!(o.objects.len() + o.common_prefixes.len() <= page);
            ks.extend(o.objects.iter().map(|x| x.key.clone()));
            ps.extend(o.common_prefixes.iter().cloned());
            if !o.is_truncated {
                break;
            }
            after = o.next_marker.clone();
            assert!(after.is_some(), "a truncated page names where to resume");
        }
        (ks, ps)
    }

    #[test]
    fn odd_keys_coexist() {
        let s = store();
        for k in [
            "a",
            "a/b",
            "dir/",
            "x//y",
            "sp ace",
            "plus+sign",
            "pct%41",
            "ünï/códe",
            "a/",
        ] {
            put(&s, k, k);
        }
        for k in [
            "a",
            "a/b",
            "dir/",
            "x//y",
            "sp ace",
            "plus+sign",
            "pct%41",
            "ünï/códe",
            "a/",
        ] {
            let o = s.get_object("b", k).unwrap();
            assert_eq!(o.data.to_bytes(), Bytes::from(k.to_owned()), "key {k:?}");
        }
        let (ks, _) = list_all(&s, "", None, 1000);
        let mut sorted = ks.clone();
        sorted.sort();
        assert_eq!(ks, sorted);
        assert_eq!(ks.len(), 9);
    }

    #[test]
    fn delimiter_rolls_up_and_keeps_file_beside_dir() {
        let s = store();
        for k in ["a", "a/b", "a/c/d", "b/", "c", "x//y"] {
            put(&s, k, "1");
        }
        let o = s.list("b", &q("", Some("/"), None, 1000)).unwrap();
        assert_eq!(keys(&o), vec!["a", "c"]);
        assert_eq!(o.common_prefixes, vec!["a/", "b/", "x/"]);
        assert!(!o.is_truncated);

        let o = s.list("b", &q("a/", Some("/"), None, 1000)).unwrap();
        assert_eq!(keys(&o), vec!["a/b"]);
        assert_eq!(o.common_prefixes, vec!["a/c/"]);

        // The directory marker itself is listed under its own prefix.
        let o = s.list("b", &q("b/", Some("/"), None, 1000)).unwrap();
        assert_eq!(keys(&o), vec!["b/"]);

        // Empty path components roll up as their own level.
        let o = s.list("b", &q("x/", Some("/"), None, 1000)).unwrap();
        assert_eq!(o.common_prefixes, vec!["x//"]);
        let o = s.list("b", &q("x//", Some("/"), None, 1000)).unwrap();
        assert_eq!(keys(&o), vec!["x//y"]);
    }

    #[test]
    fn pagination_never_repeats_or_loses_names() {
        let s = store();
        let mut all = Vec::new();
        for d in 0..5 {
            put(&s, &format!("d{d}"), "f");
            all.push(format!("d{d}"));
            for f in 0..7 {
                put(&s, &format!("d{d}/f{f}"), "x");
            }
        }
        for page in [1, 2, 3, 5, 1000] {
            let (ks, ps) = list_all(&s, "", Some("/"), page);
            assert_eq!(ks, all, "page size {page}");
            assert_eq!(ps, (0..5).map(|d| format!("d{d}/")).collect::<Vec<_>>());
            let (ks, ps) = list_all(&s, "d3/", Some("/"), page);
            assert_eq!(ks, (0..7).map(|f| format!("d3/f{f}")).collect::<Vec<_>>());
            assert!(ps.is_empty());
            let (ks, _) = list_all(&s, "", None, page);
            assert_eq!(ks.len(), 40);
        }
    }

    #[test]
    fn truncated_page_reports_last_name() {
        let s = store();
        for k in ["a/1", "a/2", "b", "c/1"] {
            put(&s, k, "");
        }
        let o = s.list("b", &q("", Some("/"), None, 2)).unwrap();
        assert_eq!(o.common_prefixes, vec!["a/"]);
        assert_eq!(keys(&o), vec!["b"]);
        assert!(o.is_truncated);
        assert_eq!(o.next_marker.as_deref(), Some("b"));
        // Exactly filling the page without more names is not truncated.
        let o = s.list("b", &q("", Some("/"), Some("b"), 1)).unwrap();
        assert_eq!(o.common_prefixes, vec!["c/"]);
        assert!(!o.is_truncated);
        assert_eq!(o.next_marker, None);
    }

    #[test]
    fn marker_before_prefix_and_after_prefix() {
        let s = store();
        for k in ["p/1", "p/2", "q"] {
            put(&s, k, "");
        }
        let o = s.list("b", &q("p/", None, Some("a"), 10)).unwrap();
        assert_eq!(keys(&o), vec!["p/1", "p/2"]);
        let o = s.list("b", &q("p/", None, Some("p/1"), 10)).unwrap();
        assert_eq!(keys(&o), vec!["p/2"]);
        let o = s.list("b", &q("p/", None, Some("z"), 10)).unwrap();
        assert!(keys(&o).is_empty());
        let o = s.list("b", &q("", None, None, 0)).unwrap();
        assert!(keys(&o).is_empty() && !o.is_truncated);
    }

    #[test]
    fn multichar_delimiter() {
        let s = store();
        for k in ["a--b", "a--c--d", "a-e"] {
            put(&s, k, "");
        }
        let o = s.list("b", &q("", Some("--"), None, 10)).unwrap();
        assert_eq!(o.common_prefixes, vec!["a--"]);
        assert_eq!(keys(&o), vec!["a-e"]);
    }

    #[test]
    fn etag_is_md5_and_ranges_slice() {
        let s = store();
        put(&s, "k", "hello world");
        let o = s.get_object("b", "k").unwrap();
        assert_eq!(o.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(o.data.slice(0..5), vec![Bytes::from_static(b"hello")]);
        assert_eq!(o.data.slice(6..100), vec![Bytes::from_static(b"world")]);
        assert!(o.data.slice(11..20).is_empty());
    }

    #[test]
    fn slice_across_segments() {
        let d = ObjectData::from_segments(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ]);
        assert_eq!(d.len(), 9);
        let join = |v: Vec<Bytes>| v.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>();
        assert_eq!(join(d.slice(2..8)), b"cdefgh");
        assert_eq!(join(d.slice(3..7)), b"defg");
        assert_eq!(d.slice(3..7).len(), 1);
        assert_eq!(join(d.slice(0..9)), b"abcdefghi");
        assert_eq!(join(d.slice(8..9)), b"i");
        assert_eq!(d.to_bytes(), Bytes::from_static(b"abcdefghi"));
    }

    #[test]
    fn multipart_assembles_in_order_with_md5_of_md5s() {
        let s = MemStore::new(4);
        s.create_bucket("b").unwrap();
        let id = s
            .create_upload(
                "b",
                "big",
                ObjectAttrs {
                    content_type: Some("text/plain".into()),
                    metadata: [("mode".to_owned(), "420".to_owned())].into(),
                },
            )
            .unwrap();
        // Parts arrive out of order, one is replaced.
        let e2 = s
            .upload_part("b", "big", &id, 2, Bytes::from_static(b"5678"))
            .unwrap();
        let _ = s
            .upload_part("b", "big", &id, 1, Bytes::from_static(b"xxxx"))
            .unwrap();
        let e1 = s
            .upload_part("b", "big", &id, 1, Bytes::from_static(b"1234"))
            .unwrap();
        let e3 = s
            .upload_part("b", "big", &id, 3, Bytes::from_static(b"9"))
            .unwrap();
        let page = s.list_parts("b", "big", &id, 0, 2).unwrap();
        assert_eq!(
            page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(page.is_truncated);
        assert_eq!(page.next_marker, Some(2));
        let page = s.list_parts("b", "big", &id, 2, 2).unwrap();
        assert_eq!(page.parts.len(), 1);
        assert!(!page.is_truncated);

        // Not yet visible.
        assert!(matches!(
            s.get_object("b", "big"),
            Err(MemError::NoSuchKey(_))
        ));
        // Wrong order, wrong etag.
        let bad = [(2, e2.clone()), (1, e1.clone())];
        assert_eq!(
            s.complete_upload("b", "big", &id, &bad, &WriteCondition::None)
                .unwrap_err(),
            MemError::InvalidPartOrder
        );
        let bad = [(1, e2.clone()), (2, e2.clone())];
        assert_eq!(
            s.complete_upload("b", "big", &id, &bad, &WriteCondition::None)
                .unwrap_err(),
            MemError::InvalidPart(1)
        );

        let parts = [(1, format!("\"{e1}\"")), (2, e2.clone()), (3, e3.clone())];
        let o = s
            .complete_upload("b", "big", &id, &parts, &WriteCondition::None)
            .unwrap();
        assert_eq!(o.data.to_bytes(), Bytes::from_static(b"123456789"));
        let mut md5s = Vec::new();
        for e in [&e1, &e2, &e3] {
            md5s.extend(hex::decode(e).unwrap());
        }
        assert_eq!(o.etag, format!("{}-3", hex::encode(md5_of(&md5s))));
        assert_eq!(o.parts_count, Some(3));
        assert_eq!(o.content_type.as_deref(), Some("text/plain"));
        assert_eq!(o.metadata.get("mode").map(String::as_str), Some("420"));
        // The upload is gone.
        assert!(matches!(
            s.list_parts("b", "big", &id, 0, 10),
            Err(MemError::NoSuchUpload(_))
        ));
        assert!(matches!(
            s.abort_upload("b", "big", &id),
            Err(MemError::NoSuchUpload(_))
        ));
    }

    #[test]
    fn multipart_small_part_and_part_numbers() {
        let s = MemStore::new(5);
        s.create_bucket("b").unwrap();
        let id = s.create_upload("b", "k", ObjectAttrs::default()).unwrap();
        let e1 = s
            .upload_part("b", "k", &id, 1, Bytes::from_static(b"1234"))
            .unwrap();
        let e2 = s
            .upload_part("b", "k", &id, 2, Bytes::from_static(b"5"))
            .unwrap();
        assert_eq!(
            s.complete_upload(
                "b",
                "k",
                &id,
                &[(1, e1.clone()), (2, e2)],
                &WriteCondition::None
            )
            .unwrap_err(),
            MemError::EntityTooSmall {
                part: 1,
                size: 4,
                min: 5
            }
        );
        // A single short part is fine (it is the last).
        let o = s
            .complete_upload("b", "k", &id, &[(1, e1)], &WriteCondition::None)
            .unwrap();
        assert_eq!(o.size(), 4);
        let id = s.create_upload("b", "k", ObjectAttrs::default()).unwrap();
        for n in [0, MAX_PART_NUMBER + 1] {
            assert!(matches!(
                s.upload_part("b", "k", &id, n, Bytes::new()),
                Err(MemError::InvalidArgument(_))
            ));
        }
        // The upload id is bound to its key.
        assert!(matches!(
            s.upload_part("b", "other", &id, 1, Bytes::new()),
            Err(MemError::NoSuchUpload(_))
        ));
        s.abort_upload("b", "k", &id).unwrap();
        assert!(matches!(
            s.upload_part("b", "k", &id, 1, Bytes::new()),
            Err(MemError::NoSuchUpload(_))
        ));
    }

    #[test]
    fn upload_part_copy_slices_the_source() {
        let s = store();
        put(&s, "src", "0123456789");
        let id = s.create_upload("b", "dst", ObjectAttrs::default()).unwrap();
        let (e1, _) = s
            .upload_part_copy("b", "dst", &id, 1, "b", "src", Some(5..10))
            .unwrap();
        let (e2, _) = s
            .upload_part_copy("b", "dst", &id, 2, "b", "src", None)
            .unwrap();
        assert_eq!(e1, hex::encode(md5_of(b"56789")));
        assert!(matches!(
            s.upload_part_copy("b", "dst", &id, 3, "b", "src", Some(5..11)),
            Err(MemError::InvalidRange { size: 10 })
        ));
        assert!(matches!(
            s.upload_part_copy("b", "dst", &id, 3, "b", "nope", None),
            Err(MemError::NoSuchKey(_))
        ));
        let o = s
            .complete_upload("b", "dst", &id, &[(1, e1), (2, e2)], &WriteCondition::None)
            .unwrap();
        assert_eq!(o.data.to_bytes(), Bytes::from_static(b"567890123456789"));
    }

    #[test]
    fn copy_directives_and_self_copy() {
        let s = store();
        s.create_bucket("other").unwrap();
        s.put_object(
            "b",
            "k",
            Bytes::from_static(b"v"),
            ObjectAttrs {
                content_type: Some("text/a".into()),
                metadata: [("m".to_owned(), "1".to_owned())].into(),
            },
            &WriteCondition::None,
        )
        .unwrap();
        let c = s
            .copy_object("b", "k", "other", "k2", CopyDirective::Copy)
            .unwrap();
        assert_eq!(c.metadata.get("m").map(String::as_str), Some("1"));
        assert_eq!(c.content_type.as_deref(), Some("text/a"));
        assert_eq!(
            s.get_object("other", "k2").unwrap().data.to_bytes(),
            Bytes::from_static(b"v")
        );
        assert!(matches!(
            s.copy_object("b", "k", "b", "k", CopyDirective::Copy),
            Err(MemError::InvalidRequest(_))
        ));
        let r = s
            .copy_object(
                "b",
                "k",
                "b",
                "k",
                CopyDirective::Replace(ObjectAttrs {
                    content_type: None,
                    metadata: [("m".to_owned(), "2".to_owned())].into(),
                }),
            )
            .unwrap();
        assert_eq!(r.metadata.get("m").map(String::as_str), Some("2"));
        assert_eq!(r.content_type, None);
        assert!(matches!(
            s.copy_object("b", "none", "b", "x", CopyDirective::Copy),
            Err(MemError::NoSuchKey(_))
        ));
        assert!(matches!(
            s.copy_object("b", "k", "nobucket", "x", CopyDirective::Copy),
            Err(MemError::NoSuchBucket(_))
        ));
    }

    #[test]
    fn write_conditions() {
        let s = store();
        let put_if = |cond: WriteCondition| {
            s.put_object(
                "b",
                "k",
                Bytes::from_static(b"v"),
                ObjectAttrs::default(),
                &cond,
            )
        };
        assert!(matches!(
            put_if(WriteCondition::IfMatch(None)),
            Err(MemError::NoSuchKey(_))
        ));
        let first = put_if(WriteCondition::IfNoneMatchAny).unwrap();
        assert_eq!(
            put_if(WriteCondition::IfNoneMatchAny).unwrap_err(),
            MemError::PreconditionFailed
        );
        assert_eq!(
            put_if(WriteCondition::IfMatch(Some("0".repeat(32)))).unwrap_err(),
            MemError::PreconditionFailed
        );
        put_if(WriteCondition::IfMatch(Some(format!("\"{}\"", first.etag)))).unwrap();
    }

    #[test]
    fn buckets_lifecycle() {
        let s = MemStore::new(0);
        assert!(matches!(
            s.get_object("nb", "k"),
            Err(MemError::NoSuchBucket(_))
        ));
        s.create_bucket("nb").unwrap();
        assert_eq!(
            s.create_bucket("nb").unwrap_err(),
            MemError::BucketAlreadyOwnedByYou("nb".into())
        );
        s.put_object(
            "nb",
            "k",
            Bytes::new(),
            ObjectAttrs::default(),
            &WriteCondition::None,
        )
        .unwrap();
        assert_eq!(
            s.delete_bucket("nb").unwrap_err(),
            MemError::BucketNotEmpty("nb".into())
        );
        s.delete_object("nb", "k").unwrap();
        s.delete_object("nb", "k").unwrap();
        assert_eq!(s.list_buckets().len(), 1);
        s.delete_bucket("nb").unwrap();
        assert!(!s.bucket_exists("nb"));
        assert!(matches!(
            s.delete_bucket("nb"),
            Err(MemError::NoSuchBucket(_))
        ));
    }

    #[test]
    fn roll_up_cases() {
        assert_eq!(roll_up("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(roll_up("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(roll_up("a/b", "a/", Some("/")), None);
        assert_eq!(roll_up("a/b", "a/", Some("")), None);
        assert_eq!(roll_up("a/b", "a/", None), None);
        assert_eq!(roll_up("b/x", "a/", Some("/")), None);
    }
}
