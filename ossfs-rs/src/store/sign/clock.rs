//! The date formats signers write, computed from the `now` they are given.
//!
//! Everything goes through `time` with checked conversions, so a clock
//! before 1970 or past year 9999 is a [`SignError::Clock`], never a panic.
//!
//! Imports: `store::sign` of the crate, besides std and external crates.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::SignError;

/// RFC 7231 IMF-fixdate: `Thu, 16 May 2019 06:45:51 GMT`.
const HTTP_DATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
/// ISO 8601 basic: `20231216T162057Z`.
const ISO8601_BASIC: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// `20231216`.
const YYYYMMDD: &[FormatItem<'static>] = format_description!("[year][month][day]");

/// Whole seconds since the Unix epoch.
pub fn unix_secs(t: SystemTime) -> Result<u64, SignError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| SignError::Clock("the time is before 1970".to_string()))
}

fn utc(t: SystemTime) -> Result<OffsetDateTime, SignError> {
    let secs = i64::try_from(unix_secs(t)?)
        .map_err(|_| SignError::Clock("the time is out of range".to_string()))?;
    let dt = OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| SignError::Clock(format!("the time is out of range: {e}")))?;
    if dt.year() > 9999 {
        return Err(SignError::Clock("the time is past year 9999".to_string()));
    }
    Ok(dt)
}

fn format(t: SystemTime, items: &[FormatItem<'static>]) -> Result<String, SignError> {
    utc(t)?
        .format(items)
        .map_err(|e| SignError::Clock(format!("cannot format the time: {e}")))
}

/// `Thu, 16 May 2019 06:45:51 GMT`.
pub fn http_date(t: SystemTime) -> Result<String, SignError> {
    format(t, HTTP_DATE)
}

/// `20231216T162057Z`.
pub fn iso8601_basic(t: SystemTime) -> Result<String, SignError> {
    format(t, ISO8601_BASIC)
}

/// `20231216`.
pub fn yyyymmdd(t: SystemTime) -> Result<String, SignError> {
    format(t, YYYYMMDD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_the_vector_times() {
        let t = UNIX_EPOCH + Duration::from_secs(1702743657);
        assert_eq!(iso8601_basic(t).unwrap(), "20231216T162057Z");
        assert_eq!(yyyymmdd(t).unwrap(), "20231216");
        assert_eq!(http_date(t).unwrap(), "Sat, 16 Dec 2023 16:20:57 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1557989151)).unwrap(),
            "Thu, 16 May 2019 06:45:51 GMT"
        );
        // Agrees with httpdate, the parser the client uses.
        assert_eq!(
            httpdate::parse_http_date(&http_date(t).unwrap()).unwrap(),
            t
        );
    }

    #[test]
    fn rejects_unusable_clocks() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(http_date(before), Err(SignError::Clock(_))));
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(matches!(iso8601_basic(far), Err(SignError::Clock(_))));
    }
}
