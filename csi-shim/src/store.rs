//! The controller's use of the object store: a volume is a key prefix.
//!
//! CreateVolume writes the prefix's directory marker (`prefix/`, an empty
//! object) carrying the requested capacity in its user metadata, so that a
//! second CreateVolume of the same name can tell "same request again"
//! (success, same id) from "same name, other capacity" (AlreadyExists)
//! without any controller-side state. DeleteVolume lists every key under
//! the prefix and removes them with delete-multiple, 1000 keys a request.

use std::sync::Arc;

use ossfs_rs::store::credentials::StaticProvider;
use ossfs_rs::store::{
    ClientConfig, ListRequest, ObjectStore, Provider, PutOptions, RestClient, StoreError,
};

use crate::error::{CsiError, CsiResult};
use crate::secrets::StoreAccess;
use crate::volume::VolumeId;

/// User-metadata key of the marker that records a volume's capacity.
pub const CAPACITY_META: &str = "csi-os-capacity";

/// The host part of an endpoint URL (`http://h:1/p` -> `h`).
fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The dialect: explicit, else inferred from the endpoint host.
pub fn effective_provider(access: &StoreAccess) -> Provider {
    access
        .provider
        .unwrap_or_else(|| Provider::infer_from_host(endpoint_host(&access.endpoint)))
}

/// Whether requests must put the bucket in the path: an S3 endpoint given
/// as an IP address or `localhost` cannot be addressed virtual-host style.
pub fn needs_path_style(access: &StoreAccess) -> bool {
    let host = endpoint_host(&access.endpoint);
    effective_provider(access) == Provider::S3
        && (host.parse::<std::net::IpAddr>().is_ok() || host == "localhost")
}

/// A client for the volume's bucket.
pub fn client(
    access: &StoreAccess,
    bucket: &str,
    path_style: bool,
) -> CsiResult<Arc<dyn ObjectStore>> {
    let mut config = ClientConfig::new(effective_provider(access), access.endpoint.clone(), bucket);
    config.region = access.region.clone();
    config.path_style = path_style || needs_path_style(access);
    let creds = Arc::new(StaticProvider::new(
        access.credentials.clone(),
        "the CSI request's Secret",
    ));
    let client = RestClient::new(config, creds)
        .map_err(|e| CsiError::store(format!("bucket {bucket}"), e))?;
    Ok(Arc::new(client))
}

/// Create the volume's marker, or check the existing one's capacity.
/// Returns `Err(AlreadyExists)` when it records another capacity.
pub async fn create_volume(
    store: &dyn ObjectStore,
    vol: &VolumeId,
    capacity: i64,
) -> CsiResult<()> {
    let marker = vol.prefix.clone();
    match store.head(&marker).await {
        Ok(meta) => {
            let recorded = meta
                .user_metadata
                .get(CAPACITY_META)
                .and_then(|v| v.parse::<i64>().ok());
            match recorded {
                Some(c) if c != capacity => Err(CsiError::AlreadyExists(format!(
                    "volume {} exists with capacity {c} bytes, not {capacity}",
                    vol.id()
                ))),
                _ => Ok(()),
            }
        }
        Err(StoreError::NotFound { .. }) => {
            let mut opts = PutOptions::default();
            opts.user_metadata
                .insert(CAPACITY_META.to_string(), capacity.to_string());
            store
                .put(&marker, bytes::Bytes::new(), &opts)
                .await
                .map(|_| ())
                .map_err(|e| CsiError::store(format!("creating {marker:?}"), e))
        }
        Err(e) => Err(CsiError::store(format!("checking {marker:?}"), e)),
    }
}

/// Delete every object under the volume's prefix; returns how many. A
/// server that lists the keys it just reported deleted again ends this with
/// an error, not a loop.
pub async fn delete_volume(store: &dyn ObjectStore, vol: &VolumeId) -> CsiResult<usize> {
    let mut deleted = 0;
    let mut last_round: Vec<String> = Vec::new();
    loop {
        // List from the start each round: every page found is deleted, so
        // the next listing begins with what is left.
        let req = ListRequest {
            prefix: vol.prefix.clone(),
            delimiter: None,
            max_keys: Some(1000),
            start_after: None,
        };
        let page = match store.list_page(&req, None).await {
            Ok(p) => p,
            Err(StoreError::NoSuchBucket { .. }) => return Ok(deleted),
            Err(e) => return Err(CsiError::store(format!("listing {:?}", vol.prefix), e)),
        };
        let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
        if keys.is_empty() {
            return Ok(deleted);
        }
        if keys == last_round {
            return Err(CsiError::store(
                format!("deleting under {:?}", vol.prefix),
                StoreError::Malformed(format!(
                    "the listing of {:?} does not advance: the {} keys just deleted (from {:?}) are listed again",
                    vol.prefix,
                    keys.len(),
                    keys[0]
                )),
            ));
        }
        let failed = store
            .delete_multiple(&keys)
            .await
            .map_err(|e| CsiError::store(format!("deleting under {:?}", vol.prefix), e))?;
        if let Some(f) = failed.first() {
            return Err(CsiError::store(
                format!("deleting {:?} ({} keys failed)", f.key, failed.len()),
                StoreError::InvalidArgument(format!("{}: {}", f.code, f.message)),
            ));
        }
        deleted += keys.len();
        last_round = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossfs_rs::store::Credentials;

    fn access(endpoint: &str, provider: Option<Provider>) -> StoreAccess {
        StoreAccess {
            endpoint: endpoint.into(),
            region: None,
            provider,
            credentials: Credentials::new("a", "b"),
        }
    }

    #[test]
    fn hosts_and_path_style() {
        assert_eq!(endpoint_host("http://127.0.0.1:3900"), "127.0.0.1");
        assert_eq!(
            endpoint_host("https://oss-cn-hangzhou.aliyuncs.com/"),
            "oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(endpoint_host("http://[::1]:9000"), "::1");
        assert!(needs_path_style(&access("http://127.0.0.1:3900", None)));
        assert!(needs_path_style(&access(
            "http://localhost:3900",
            Some(Provider::S3)
        )));
        assert!(!needs_path_style(&access("https://s3.amazonaws.com", None)));
        assert_eq!(
            effective_provider(&access("https://oss-cn-hangzhou.aliyuncs.com", None)),
            Provider::Oss
        );
        assert!(!needs_path_style(&access(
            "http://127.0.0.1:1",
            Some(Provider::Oss)
        )));
    }

    /// A server that lists the same key after every delete it says
    /// succeeded: answers GET with a one-key listing and POST (DeleteObjects)
    /// with an empty result.
    async fn undeleting_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + len);
                        let body = if head.starts_with("post") {
                            "<DeleteResult></DeleteResult>".to_string()
                        } else {
                            "<ListBucketResult><Name>b</Name><Prefix>v/</Prefix><KeyCount>1</KeyCount>\
                             <IsTruncated>false</IsTruncated><Contents><Key>v/k</Key>\
                             <ETag>\"e\"</ETag><Size>1</Size></Contents></ListBucketResult>"
                                .to_string()
                        };
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn deleting_a_volume_whose_keys_come_back_is_an_error_not_a_loop() {
        let url = undeleting_server().await;
        let store = client(&access(&url, Some(Provider::S3)), "b", true).expect("client");
        let vol = VolumeId::new("b", "/v").expect("volume");
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            delete_volume(store.as_ref(), &vol),
        )
        .await
        .expect("delete_volume ends instead of looping");
        let err = got.expect_err("the keys never go away");
        assert!(err.to_string().contains("does not advance"), "{err}");
    }
}
