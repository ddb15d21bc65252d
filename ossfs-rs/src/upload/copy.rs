//! Server-side copy of an object of any size: one CopyObject when the
//! dialect allows it for this size, else a multipart upload of part-copies
//! (UploadPartCopy), built on the [`ObjectStore`] primitives, so every
//! store (the REST client, the metrics wrapper, test doubles) copies the
//! same way. Rename and metadata changes (chmod, chown, utimens, xattrs)
//! use it, since objects cannot be changed in place.
//!
//! The multipart copy keeps the source's content type and user metadata
//! unless the caller replaces them, like a single CopyObject does; parts
//! are [`COPY_PART_SIZE`] bytes, copied one after the other. A failed copy
//! aborts its upload, so nothing partial becomes visible.
//!
//! Imports: `store` and the sibling `part` (the abort after a failure).

use super::part::abort_failed;
use crate::store::{
    ByteRange, CompletedPart, CopyOptions, MetadataDirective, ObjectStore, PutOptions, PutResult,
    StoreResult,
};

/// Part size for copies above the single-copy limit.
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

/// Copy `src` to `dst` inside the bucket, by one CopyObject when the
/// dialect allows it for this size, else by a multipart upload of
/// part-copies (keeping the source's metadata unless replaced).
pub async fn copy_object(
    store: &dyn ObjectStore,
    src: &str,
    dst: &str,
    opts: &CopyOptions,
) -> StoreResult<PutResult> {
    let meta = store.head(src).await?;
    if meta.size <= store.provider().max_single_copy() {
        return store.copy(src, dst, opts).await;
    }
    let put = match &opts.metadata {
        MetadataDirective::Copy => PutOptions {
            content_type: meta.content_type.clone(),
            user_metadata: meta.user_metadata.clone(),
        },
        MetadataDirective::Replace(p) => p.clone(),
    };
    let upload_id = store.create_multipart(dst, &put).await?;
    let result = async {
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut number = 1u32;
        while start < meta.size {
            let end = (start + COPY_PART_SIZE).min(meta.size);
            let etag = store
                .upload_part_copy(src, ByteRange::new(start, end), dst, &upload_id, number)
                .await?;
            parts.push(CompletedPart {
                part_number: number,
                etag,
            });
            start = end;
            number += 1;
        }
        store.complete_multipart(dst, &upload_id, &parts).await
    }
    .await;
    if result.is_err() {
        abort_failed(store, dst, &upload_id).await;
    }
    result
}
