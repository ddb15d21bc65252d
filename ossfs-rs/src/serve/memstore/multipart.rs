//! Multipart uploads: create, upload a part (or copy one from an existing
//! object), complete, abort, and ListParts.
//!
//! A pending upload lives in its bucket ([`super::map`] owns that state) and
//! is bound to the key it was started for. Parts are kept as uploaded, each
//! with its MD5; completing concatenates their segments without copying and
//! gives the object S3's `md5-of-md5s-N` ETag. Every part but the last must
//! be at least the store's `min_part_size`. Copying a part slices the
//! source's segments and hashes the slice before the lock is taken.
//!
//! Imports: `super::map`, `super::body`, `super::error`; `rand`, `hex`. Nothing
//! else of the crate: `serve` is an island whose only import from the rest of
//! the crate is `crate::store::Credentials`, in `server.rs`.

use std::collections::BTreeMap;
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::time::SystemTime;

use super::body::{HashedBody, ObjectData, md5_of};
use super::error::{MemError, MemResult};
use super::map::{
    Bucket, MemStore, ObjectAttrs, StoredObject, StoredPart, Upload, WriteCondition,
    check_write_condition,
};

/// Largest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;

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

impl Bucket {
    fn upload_mut(&mut self, key: &str, upload_id: &str) -> MemResult<&mut Upload> {
        match self.uploads.get_mut(upload_id) {
            Some(u) if u.key == key => Ok(u),
            _ => Err(MemError::NoSuchUpload(upload_id.to_owned())),
        }
    }
}

impl MemStore {
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
