//! Plain data types passed across the [`ObjectStore`](super::ObjectStore) trait,
//! and [`ListProgress`], the check every listing loop runs on its pages.
//!
//! Imports: `store::error` (the result type and `Malformed`) only.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::error::{StoreError, StoreResult};

/// An inclusive-exclusive byte range `[start, end)`; `end: None` reads to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    /// `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// From `start` to the end of the object.
    pub fn from(start: u64) -> Self {
        Self { start, end: None }
    }

    /// The `Range` header value (`bytes=a-b`, inclusive).
    pub fn header_value(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{}", self.start, end.saturating_sub(1)),
            None => format!("bytes={}-", self.start),
        }
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, end)", self.start),
        }
    }
}

/// User metadata, keyed by the name *without* the dialect prefix
/// (`mode`, not `x-oss-meta-mode`). Names are lower-case.
pub type UserMetadata = BTreeMap<String, String>;

/// What HEAD (or a GET's headers) say about an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// ETag without the surrounding quotes.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub content_type: Option<String>,
    pub user_metadata: UserMetadata,
    /// `Appendable`, `Normal`, `Multipart`, `Symlink` (OSS/COS `x-*-object-type`).
    pub object_type: Option<String>,
    /// Next append position for appendable objects.
    pub next_append_position: Option<u64>,
    /// Target of a native symlink, when HEAD reports it.
    pub symlink_target: Option<String>,
}

/// The reply to a GET: the object's metadata and its body as it arrives.
pub struct GetObject {
    pub meta: ObjectMeta,
    /// The range actually served (`[start, start+len)`).
    pub range: ByteRange,
    /// Body chunks in order. A truncated transfer ends with an error item,
    /// never with a short successful stream.
    pub body: BoxStream<'static, StoreResult<Bytes>>,
}

impl fmt::Debug for GetObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetObject")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl GetObject {
    /// Read the whole body into memory.
    ///
    /// Each chunk is copied into one buffer as it arrives and then freed,
    /// so a body occupies its size once (plus a chunk), not twice: keeping
    /// every chunk until the end and then concatenating them would double
    /// the peak memory of every read-ahead part.
    pub async fn collect(self) -> StoreResult<Bytes> {
        /// Largest buffer reserved up front from the announced range.
        const MAX_HINT: u64 = 256 * 1024 * 1024;
        let announced = self
            .range
            .end
            .map(|end| end.saturating_sub(self.range.start).min(MAX_HINT))
            .unwrap_or(0) as usize;
        gather(self.body, announced).await
    }
}

/// A body stream in one buffer of at least `size_hint` bytes of capacity:
/// a body of one chunk is kept as it is, without a copy; otherwise each
/// chunk is copied in as it arrives and then freed.
pub async fn gather<E>(
    mut body: BoxStream<'static, Result<Bytes, E>>,
    size_hint: usize,
) -> Result<Bytes, E> {
    use futures::TryStreamExt;
    let Some(first) = body.try_next().await? else {
        return Ok(Bytes::new());
    };
    let Some(second) = body.try_next().await? else {
        return Ok(first);
    };
    let mut out = Vec::with_capacity(size_hint.max(first.len() + second.len()));
    out.extend_from_slice(&first);
    drop(first);
    out.extend_from_slice(&second);
    drop(second);
    while let Some(chunk) = body.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Options of a PUT, a multipart create or an append.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub user_metadata: UserMetadata,
}

/// The result of a write that created an object version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResult {
    pub etag: String,
}

/// Whether a copy keeps the source's metadata or replaces it.
#[derive(Clone, Debug, Default)]
pub enum MetadataDirective {
    #[default]
    Copy,
    Replace(PutOptions),
}

/// Options of a server-side copy.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    pub metadata: MetadataDirective,
}

/// A listing request. `delimiter: Some("/")` gives one directory level.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Page size hint (at most 1000).
    pub max_keys: Option<u32>,
    /// List keys after this one (V2 `start-after`, V1 `marker`).
    pub start_after: Option<String>,
}

impl ListRequest {
    /// Every key under `prefix` (no delimiter), `max_keys` a page.
    pub fn keys_under(prefix: impl Into<String>, max_keys: u32) -> Self {
        Self {
            prefix: prefix.into(),
            max_keys: Some(max_keys),
            ..Self::default()
        }
    }

    /// One directory level under `prefix` (delimiter `/`), `max_keys` a page.
    pub fn dir_level(prefix: impl Into<String>, max_keys: u32) -> Self {
        Self {
            delimiter: Some("/".to_string()),
            ..Self::keys_under(prefix, max_keys)
        }
    }
}

/// One object in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    /// Common prefixes (`dir/`), keys already decoded.
    pub prefixes: Vec<String>,
    /// Where the next page starts; `None` when this is the last page.
    pub next_token: Option<String>,
}

/// Empty pages that still promise more, in a row, before a listing counts
/// as stuck (servers may return a few while skipping deleted entries).
const MAX_EMPTY_PAGES: u32 = 16;

/// What a listing loop checks on each page, so that a server that does
/// not advance ends the loop with an error instead of looping forever:
///
/// - a continuation token (or V1 marker) seen before: the server would
///   send the same pages again;
/// - a page whose names (keys and common prefixes, which come in order)
///   are all at or before the last name already seen: it adds nothing;
/// - more than 16 empty pages in a row that still promise more.
///
/// Each is [`StoreError::Malformed`] with a message naming the prefix and
/// the token.
#[derive(Debug)]
pub struct ListProgress {
    prefix: String,
    tokens: HashSet<String>,
    last_name: Option<String>,
    empty_in_a_row: u32,
}

impl ListProgress {
    /// A fresh listing of `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            tokens: HashSet::new(),
            last_name: None,
            empty_in_a_row: 0,
        }
    }

    /// Check `page`; its `next_token` is the token to ask for next (`None`
    /// at the end).
    pub fn check(&mut self, page: &ListPage) -> StoreResult<()> {
        let stuck = |why: String| {
            Err(StoreError::Malformed(format!(
                "the listing of {:?} does not advance: {why}",
                self.prefix
            )))
        };
        let newest = page
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .chain(page.prefixes.iter().map(String::as_str))
            .max();
        match newest {
            Some(name) => {
                if self.last_name.as_deref().is_some_and(|last| name <= last) {
                    return stuck(format!(
                        "a page (next token {:?}) has no name after {:?}, the last one already listed",
                        page.next_token.as_deref().unwrap_or(""),
                        self.last_name.as_deref().unwrap_or("")
                    ));
                }
                self.last_name = Some(name.to_string());
                self.empty_in_a_row = 0;
            }
            None if page.next_token.is_some() => {
                self.empty_in_a_row += 1;
                if self.empty_in_a_row > MAX_EMPTY_PAGES {
                    return stuck(format!(
                        "{} empty pages in a row, the last with token {:?}",
                        self.empty_in_a_row,
                        page.next_token.as_deref().unwrap_or("")
                    ));
                }
            }
            None => {}
        }
        if let Some(token) = &page.next_token
            && !self.tokens.insert(token.clone())
        {
            return stuck(format!(
                "the server repeated the continuation token {token:?}"
            ));
        }
        Ok(())
    }
}

/// A part of a multipart upload, as given to complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// A part as the store reports it in ListParts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
}

/// A key that delete-multiple could not delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(names: &[&str], token: Option<&str>) -> ListPage {
        ListPage {
            objects: names
                .iter()
                .filter(|n| !n.ends_with('/'))
                .map(|n| ListEntry {
                    key: n.to_string(),
                    size: 0,
                    etag: String::new(),
                    last_modified: None,
                })
                .collect(),
            prefixes: names
                .iter()
                .filter(|n| n.ends_with('/'))
                .map(|n| n.to_string())
                .collect(),
            next_token: token.map(str::to_string),
        }
    }

    #[test]
    fn a_listing_that_advances_passes() {
        let mut p = ListProgress::new("d/");
        assert!(p.check(&page(&["d/a", "d/b/"], Some("t1"))).is_ok());
        assert!(
            p.check(&page(&[], Some("t2"))).is_ok(),
            "one empty page is fine"
        );
        assert!(p.check(&page(&["d/c"], None)).is_ok());
    }

    #[test]
    fn a_repeated_token_is_an_error_naming_it() {
        let mut p = ListProgress::new("d/");
        assert!(p.check(&page(&["d/a"], Some("again"))).is_ok());
        let err = p
            .check(&page(&["d/b"], Some("again")))
            .expect_err("repeated token");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Malformed(_)), "{text}");
        assert!(
            text.contains("\"again\"") && text.contains("\"d/\""),
            "{text}"
        );
    }

    #[test]
    fn a_page_that_adds_nothing_is_an_error() {
        let mut p = ListProgress::new("d/");
        assert!(p.check(&page(&["d/a", "d/b"], Some("t1"))).is_ok());
        // Fresh tokens, but the same names again.
        let err = p
            .check(&page(&["d/a", "d/b"], Some("t2")))
            .expect_err("no progress");
        assert!(err.to_string().contains("no name after \"d/b\""), "{err}");
        let mut p = ListProgress::new("d/");
        for i in 0..MAX_EMPTY_PAGES {
            assert!(p.check(&page(&[], Some(&format!("e{i}")))).is_ok());
        }
        assert!(p.check(&page(&[], Some("one-too-many"))).is_err());
    }
}
