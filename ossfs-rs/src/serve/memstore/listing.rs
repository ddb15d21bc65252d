//! Listing: [`ListQuery`] in, one page of [`ListOutcome`] out, with
//! delimiter roll-up ([`roll_up`]) and the marker rule of V1 and V2.
//!
//! Listing walks the bucket's sorted key map and rolls keys up into common
//! prefixes, so V1 markers and V2 continuation tokens are simply "the last
//! name returned": a page resumes strictly after that name, and a marker
//! that is itself a common prefix skips everything under it.
//!
//! Imports: `super::map`, `super::error` only. Nothing else of the crate:
//! `serve` is an island whose only import from the rest of the crate is
//! `crate::store::Credentials`, in `server.rs`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::MemResult;
use super::map::{MemStore, StoredObject};

/// Largest page a listing returns.
pub const MAX_LIST_KEYS: usize = 1000;

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

impl MemStore {
    /// One page of a listing (see the module doc for the marker rule).
    pub fn list(&self, bucket: &str, q: &ListQuery) -> MemResult<ListOutcome> {
        self.with_bucket(bucket, |b| Ok(list_sorted(&b.objects, q)))
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
