//! The client's retry loop against a scripted server on loopback: a 503 or
//! 429 answer's `Retry-After` sets the wait before the next attempt, capped
//! by `max_delay` and within `max_attempts`; other answers' hints are
//! ignored.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{ClientConfig, RestClient};
use crate::store::credentials::{Credentials, StaticProvider};
use crate::store::retry::RetryConfig;
use crate::store::{ObjectMeta, ObjectStore, Provider, StoreError, StoreResult};

/// One scripted answer: a status and maybe a `Retry-After` value.
#[derive(Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
}

const OK: Answer = Answer {
    status: 200,
    retry_after: None,
};

fn answer(status: u16, retry_after: &str) -> Answer {
    Answer {
        status,
        retry_after: Some(retry_after.to_string()),
    }
}

fn http_response(a: &Answer) -> http::Response<Full<Bytes>> {
    let mut reply = http::Response::builder()
        .status(a.status)
        .header("etag", "\"e\"");
    if let Some(v) = &a.retry_after {
        reply = reply.header("retry-after", v.as_str());
    }
    reply
        .body(Full::new(Bytes::new()))
        .expect("a valid scripted response")
}

/// A server answering request `n` with `script[n]` (the last one once the
/// script runs out); returns its URL and the count of requests so far.
async fn scripted_server(script: Vec<Answer>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (count, script) = (count.clone(), script.clone());
            let service = service_fn(move |_request| {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let reply = http_response(&script[n.min(script.len() - 1)]);
                async move { Ok::<_, Infallible>(reply) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, requests)
}

/// HEAD through a client whose own backoff is at most 1 ms (so any longer
/// wait is the server's `Retry-After`) against `script`: the result, how
/// long it took and how many requests the server saw.
async fn head_against(
    script: Vec<Answer>,
    max_attempts: u32,
    max_delay: Duration,
) -> (StoreResult<ObjectMeta>, Duration, usize) {
    let (url, requests) = scripted_server(script).await;
    let mut config = ClientConfig::new(Provider::S3, url, "b");
    config.path_style = true;
    config.retry = RetryConfig {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay,
    };
    let creds = StaticProvider::new(Credentials::new("ak", "sk"), "test keys");
    let store = RestClient::new(config, Arc::new(creds)).expect("client");
    let started = Instant::now();
    let result = store.head("k").await;
    (result, started.elapsed(), requests.load(Ordering::SeqCst))
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_503_retry_after_in_seconds_is_waited_out() {
    let (result, waited, requests) = head_against(vec![answer(503, "1"), OK], 3, LONG).await;
    assert_eq!(result.expect("the second attempt succeeds").etag, "e");
    assert_eq!(requests, 2);
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn a_429_retry_after_date_is_waited_out() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let (result, waited, requests) = head_against(vec![answer(429, &at), OK], 3, LONG).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, 2);
    // The date has whole seconds: 2 s from now is 1 to 2 s away.
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn without_retry_after_the_backoff_is_used() {
    let busy = Answer {
        status: 503,
        retry_after: None,
    };
    let (result, waited, requests) = head_against(vec![busy, OK], 3, LONG).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, 2);
    assert!(waited < Duration::from_millis(500), "waited {waited:?}");
}

#[tokio::test]
async fn a_500_retry_after_is_not_a_hint() {
    let (result, waited, requests) = head_against(vec![answer(500, "3600"), OK], 3, LONG).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, 2);
    assert!(waited < Duration::from_millis(500), "waited {waited:?}");
}

#[tokio::test]
async fn a_long_retry_after_is_cut_to_max_delay() {
    let cap = Duration::from_millis(200);
    let (result, waited, requests) = head_against(vec![answer(503, "3600"), OK], 3, cap).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, 2);
    assert!(waited >= cap, "waited {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn retry_after_keeps_the_attempt_limit() {
    let (result, _, requests) = head_against(vec![answer(503, "0")], 3, LONG).await;
    match result {
        Err(StoreError::Service { status: 503, .. }) => {}
        other => panic!("expected the last 503, got {other:?}"),
    }
    assert_eq!(requests, 3, "max_attempts requests");
}
