//! Retry policy: how many attempts a request gets and how long to wait
//! between them. Pure arithmetic over an injected random source; the client
//! does the sleeping, and decides *whether* an error is worth retrying
//! ([`StoreError::is_retryable`](super::error::StoreError::is_retryable)).
//!
//! Backoff is capped exponential with **full jitter**: before retry `n` we
//! wait a uniformly random time in `[0, min(max_delay, base_delay * 2^(n-1))]`.
//! Of the schemes compared in AWS's "Exponential Backoff and Jitter"
//! (<https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>),
//! full and decorrelated jitter spread competing clients best; full jitter
//! is a function of the attempt number alone, while decorrelated jitter
//! needs the previous delay carried between attempts. Stateless wins here:
//! the policy stays a pure function that tests can probe at any attempt,
//! and it is the scheme the AWS SDKs use in their standard retry mode.
//!
//! A server hint replaces the exponential part: a 503 or 429 answer that
//! carries `Retry-After` (in seconds or as an HTTP date, see
//! [`retry_after`]) makes us wait the hint plus up to `base_delay` of
//! jitter, so clients told the same instant do not all return at once.
//! Every delay is clamped to `max_delay`, hint or not: a filesystem call
//! must not hang on a server's say-so, and the attempt bound
//! ([`RetryConfig::may_retry`]) holds with a hint as without one. OSS's
//! `x-oss-qos-delay-time` reports throttling of a request that was served,
//! not when to retry, so it is not a hint here.
//!
//! Imports: nothing of the crate (a doc link to `store::error` aside).

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use rand::Rng;

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts in all, the first included. `0` is treated as `1` (no retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryConfig {
    /// A policy that never retries (for calls that must not be repeated
    /// blindly, such as an append at a position).
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether another attempt may follow `attempts_made` attempts (counting
    /// the first). The loop `attempt = 1, 2, ...` stops at `max_attempts`.
    pub fn may_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts.max(1)
    }

    /// The upper end of the wait after attempt `attempt` (1-based) failed:
    /// `base_delay * 2^(attempt-1)`, never above `max_delay`. Attempt `0`
    /// is treated as `1`.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// How long to wait after attempt `attempt` (1-based) failed, before the
    /// next one. `retry_after` is the server's hint, if it gave one (see
    /// [`retry_after`]). Never more than `max_delay`.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let delay = match retry_after {
            Some(hint) => hint.saturating_add(uniform_up_to(self.base_delay, rng)),
            None => uniform_up_to(self.backoff_ceiling(attempt), rng),
        };
        delay.min(self.max_delay)
    }

    /// [`delay`](Self::delay) drawn from the thread's RNG: the wait the
    /// client sleeps. That RNG is not `Send`, so it is drawn here, in a
    /// plain function, never held across an `.await`.
    pub fn jittered_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, retry_after, &mut rand::rng())
    }
}

/// A uniformly random duration in `[0, max]`, at nanosecond resolution.
fn uniform_up_to<R: Rng + ?Sized>(max: Duration, rng: &mut R) -> Duration {
    let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=max_nanos))
}

/// The wait a failed answer asks for: its `Retry-After` when the status is
/// 503 (Service Unavailable, SlowDown) or 429 (Too Many Requests), the two
/// answers that mean "come back later". Other statuses' hints are ignored.
pub fn retry_after(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    match status {
        429 | 503 => retry_after_hint(headers, now),
        _ => None,
    }
}

/// The server's `Retry-After` hint, if the reply carries a usable one.
fn retry_after_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// A `Retry-After` value (RFC 9110 section 10.2.3): whole seconds, or an
/// HTTP date, read against `now`. A date already past means "now"
/// (`Duration::ZERO`). Anything else is ignored (`None`).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings overflow u64: treat them as "very long".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let c = config();
        let ceilings: Vec<u128> = (1..=9).map(|a| c.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(c.backoff_ceiling(0), c.backoff_ceiling(1));
        assert_eq!(c.backoff_ceiling(u32::MAX), c.max_delay);
        let huge = RetryConfig {
            base_delay: Duration::MAX,
            ..config()
        };
        assert_eq!(huge.backoff_ceiling(40), huge.max_delay);
    }

    #[test]
    fn delays_stay_within_the_ceiling_and_never_above_max() {
        let c = config();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..200 {
            for _ in 0..50 {
                let d = c.delay(attempt, None, &mut rng);
                assert!(d <= c.backoff_ceiling(attempt), "attempt {attempt}: {d:?}");
                assert!(d <= c.max_delay);
            }
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        let c = config();
        let mut rng = StdRng::seed_from_u64(42);
        let ceiling = c.backoff_ceiling(4);
        let draws: Vec<Duration> = (0..1000).map(|_| c.delay(4, None, &mut rng)).collect();
        let min = draws.iter().min().copied().unwrap_or_default();
        let max = draws.iter().max().copied().unwrap_or_default();
        assert!(min < ceiling / 10, "min {min:?}");
        assert!(max > ceiling * 9 / 10, "max {max:?}");
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 900, "{} distinct", distinct.len());
    }

    #[test]
    fn hints_are_respected_and_clamped() {
        let c = config();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..500 {
            let hint = Duration::from_secs(2);
            let d = c.delay(1, Some(hint), &mut rng);
            assert!(d >= hint && d <= hint + c.base_delay, "{d:?}");
        }
        assert_eq!(
            c.delay(1, Some(Duration::from_secs(3600)), &mut rng),
            c.max_delay
        );
        assert_eq!(c.delay(1, Some(Duration::MAX), &mut rng), c.max_delay);
        assert!(c.delay(1, Some(Duration::ZERO), &mut rng) <= c.base_delay);
    }

    #[test]
    fn attempts_are_bounded() {
        let c = config();
        assert!((1..5).all(|n| c.may_retry(n)));
        assert!(!c.may_retry(5));
        assert!(!c.may_retry(u32::MAX));
        // The loop the client runs makes exactly max_attempts attempts.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if !c.may_retry(attempts) {
                break;
            }
        }
        assert_eq!(attempts, 5);
        assert!(!RetryConfig::no_retry().may_retry(1));
        let zero = RetryConfig {
            max_attempts: 0,
            ..config()
        };
        assert!(!zero.may_retry(1));
    }

    #[test]
    fn retry_after_values() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon", "120 seconds"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_hint(&headers, now), None);
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("7"),
        );
        assert_eq!(
            retry_after_hint(&headers, now),
            Some(Duration::from_secs(7))
        );
    }

    fn with_retry_after(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(value),
        );
        headers
    }

    #[test]
    fn retry_after_is_honoured_on_503_and_429_only() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let seconds = with_retry_after("3");
        let date = with_retry_after("Sun, 06 Nov 1994 08:49:47 GMT");
        assert_eq!(
            retry_after(503, &seconds, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(503, &date, now), Some(Duration::from_secs(10)));
        assert_eq!(
            retry_after(429, &seconds, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(429, &date, now), Some(Duration::from_secs(10)));
        for status in [200, 301, 404, 412, 500, 502, 504] {
            assert_eq!(retry_after(status, &seconds, now), None, "{status}");
        }
        assert_eq!(retry_after(503, &HeaderMap::new(), now), None);
        assert_eq!(retry_after(503, &with_retry_after("soon"), now), None);
    }

    #[test]
    fn a_retry_after_answer_waits_the_hint_up_to_max_delay() {
        let c = config();
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        // The hint, not the first attempt's 100 ms ceiling, sets the wait.
        let hint = retry_after(503, &with_retry_after("Sun, 06 Nov 1994 08:49:39 GMT"), now);
        for _ in 0..100 {
            let d = c.delay(1, hint, &mut rng);
            assert!(d >= Duration::from_secs(2), "{d:?}");
            assert!(d <= Duration::from_secs(2) + c.base_delay, "{d:?}");
        }
        // A long hint in either form is cut to max_delay.
        for long in ["3600", "Mon, 07 Nov 1994 08:49:37 GMT"] {
            let hint = retry_after(429, &with_retry_after(long), now);
            assert!(hint > Some(c.max_delay), "{long}");
            assert_eq!(c.delay(1, hint, &mut rng), c.max_delay, "{long}");
        }
        // A past date means "now": only the jitter is left.
        let past = retry_after(503, &with_retry_after("Sun, 06 Nov 1994 08:00:00 GMT"), now);
        assert_eq!(past, Some(Duration::ZERO));
        assert!(c.delay(4, past, &mut rng) <= c.base_delay);
        assert!(c.jittered_delay(1, Some(Duration::from_secs(3600))) == c.max_delay);
    }
}
