//! ListObjects (V1) and ListObjectsV2: the map's listing page as S3's
//! answer, with `encoding-type=url`, `max-keys` and V2 continuation tokens.
//!
//! The map pages "strictly after a name"; a V1 marker, a V2 `start-after`
//! and a V2 token all name the last name returned. The token is that name
//! base64url-encoded, so it is opaque to clients and nothing is kept here
//! between pages.
//!
//! Imports: `super::{MemS3, OpResult}`, `super::convert`, the listing types of
//! `crate::serve::memstore`; `s3s`, `base64`, `percent_encoding`. Nothing else
//! of the crate: `serve` is an island whose only import from the rest of the
//! crate is `crate::store::Credentials`, in `server.rs`.

use base64::Engine as _;
use s3s::dto::*;
use s3s::{S3Response, S3Result, s3_error};

use super::convert::{etag, mem_err, timestamp};
use super::{MemS3, OpResult};
use crate::serve::memstore::{ListOutcome, ListQuery, MAX_LIST_KEYS};

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_LIST_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(usize::try_from(n)
            .unwrap_or(MAX_LIST_KEYS)
            .min(MAX_LIST_KEYS)),
    }
}

/// Percent-encode for `encoding-type=url`: everything but RFC 3986
/// unreserved characters and `/` (so `+` and space both survive any decoder).
const URL_ENCODE_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(encoding_type: Option<&EncodingType>) -> S3Result<Self> {
        match encoding_type.map(EncodingType::as_str) {
            None => Ok(Self(false)),
            Some(EncodingType::URL) => Ok(Self(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other:?}"
            )),
        }
    }

    fn enc(&self, s: &str) -> String {
        if self.0 {
            percent_encoding::utf8_percent_encode(s, URL_ENCODE_SET).to_string()
        } else {
            s.to_owned()
        }
    }

    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.enc(s))
    }
}

fn listing_parts(o: &ListOutcome, e: &Encoder) -> (Option<ObjectList>, Option<CommonPrefixList>) {
    let contents: ObjectList = o
        .objects
        .iter()
        .map(|x| Object {
            key: Some(e.enc(&x.key)),
            size: i64::try_from(x.size).ok(),
            e_tag: Some(etag(&x.etag)),
            last_modified: Some(timestamp(x.last_modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes: CommonPrefixList = o
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(e.enc(p)),
        })
        .collect();
    (
        (!contents.is_empty()).then_some(contents),
        (!prefixes.is_empty()).then_some(prefixes),
    )
}

/// V2 continuation tokens are the last returned name, base64url-encoded:
/// opaque to clients, stateless here.
fn encode_token(marker: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub(super) async fn list_objects(s3: &MemS3, i: ListObjectsInput) -> OpResult<ListObjectsOutput> {
    let enc = Encoder::new(i.encoding_type.as_ref())?;
    let q = ListQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        after: i.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(i.max_keys)?,
    };
    let o = s3.store.list(&i.bucket, &q).map_err(mem_err)?;
    let (contents, common_prefixes) = listing_parts(&o, &enc);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(enc.enc(&q.prefix)),
        marker: Some(enc.opt(i.marker.as_deref()).unwrap_or_default()),
        max_keys: i32::try_from(q.max_keys).ok(),
        is_truncated: Some(o.is_truncated),
        contents,
        common_prefixes,
        delimiter: enc.opt(i.delimiter.as_deref()),
        next_marker: enc.opt(o.next_marker.as_deref()),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    s3: &MemS3,
    i: ListObjectsV2Input,
) -> OpResult<ListObjectsV2Output> {
    let enc = Encoder::new(i.encoding_type.as_ref())?;
    let after = match i.continuation_token.as_deref() {
        Some(t) => Some(decode_token(t)?),
        None => i.start_after.clone().filter(|s| !s.is_empty()),
    };
    let q = ListQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        after,
        max_keys: max_keys(i.max_keys)?,
    };
    let o = s3.store.list(&i.bucket, &q).map_err(mem_err)?;
    let (mut contents, common_prefixes) = listing_parts(&o, &enc);
    if i.fetch_owner == Some(true)
        && let Some(list) = contents.as_mut()
    {
        for obj in list {
            obj.owner = Some(Owner {
                display_name: Some("ossfs-rs".to_owned()),
                id: Some("ossfs-rs".to_owned()),
            });
        }
    }
    let key_count = o.objects.len() + o.common_prefixes.len();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(enc.enc(&q.prefix)),
        max_keys: i32::try_from(q.max_keys).ok(),
        key_count: i32::try_from(key_count).ok(),
        continuation_token: i.continuation_token,
        is_truncated: Some(o.is_truncated),
        next_continuation_token: o.next_marker.as_deref().map(encode_token),
        contents,
        common_prefixes,
        delimiter: enc.opt(i.delimiter.as_deref()),
        encoding_type: i.encoding_type,
        start_after: enc.opt(i.start_after.as_deref()),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slash_and_escapes_plus_and_space() {
        let e = Encoder::new(Some(&EncodingType::from_static(EncodingType::URL))).unwrap();
        assert_eq!(e.enc("a b+c/ü%~"), "a%20b%2Bc/%C3%BC%25~");
        assert_eq!(Encoder::new(None).unwrap().enc("a b"), "a b");
        assert!(Encoder::new(Some(&EncodingType::from("zip".to_owned()))).is_err());
    }

    #[test]
    fn tokens_round_trip() {
        for m in ["", "a/", "ünï code+%/x//y"] {
            assert_eq!(decode_token(&encode_token(m)).unwrap(), m);
        }
        assert!(decode_token("!!!").is_err());
    }
}
