//! Instants as stored and compared everywhere in Herald.

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, UTC. Integer microseconds keep keyset
/// paging exact and sort the same on every database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(since.as_micros() as i64)
    }

    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Seconds as a float, the form Mailgun's APIs use.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-22T18:42:00.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let nanos = (self.0.rem_euclid(1_000_000) * 1_000) as u32;
        chrono::DateTime::from_timestamp(secs, nanos)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default()
    }

    /// RFC 2822 in UTC, as Mailgun writes dates: `Mon, 23 Nov 2026 10:00:00 UTC`.
    pub fn to_rfc2822(self) -> String {
        chrono::DateTime::from_timestamp(self.0.div_euclid(1_000_000), 0)
            .map(|t| t.format("%a, %d %b %Y %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    }

    /// The first instant (UTC) of a `YYYY-MM-DD` day, as date inputs send it.
    pub fn parse_day(field: &'static str, value: &str) -> Result<Self, crate::InvalidInput> {
        chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Self(t.and_utc().timestamp_micros()))
            .ok_or_else(|| {
                crate::InvalidInput::new(field, format!("{value:?} is not a date (YYYY-MM-DD)"))
            })
    }

    /// A time as Mailgun's APIs take it: epoch seconds (a fraction allowed),
    /// an RFC 2822 date, or an RFC 3339 one.
    pub fn parse_api(field: &'static str, value: &str) -> Result<Self, crate::InvalidInput> {
        let v = value.trim();
        if let Ok(secs) = v.parse::<f64>() {
            // Up to the year 9999.
            if secs.is_finite() && (0.0..253_402_300_800.0).contains(&secs) {
                return Ok(Self((secs * 1_000_000.0).round() as i64));
            }
        } else if let Ok(t) = chrono::DateTime::parse_from_rfc2822(
            // Mailgun writes its own dates with "UTC", which RFC 2822 lacks.
            &v.strip_suffix(" UTC")
                .map_or_else(|| v.to_owned(), |d| format!("{d} +0000")),
        )
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(v))
        {
            return Ok(Self(t.timestamp_micros()));
        }
        Err(crate::InvalidInput::new(
            field,
            format!("{value:?} is not epoch seconds or an RFC 2822 date"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times() {
        let t = Timestamp::parse_api("begin", "Mon, 23 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(t, Timestamp::parse_api("begin", "1795428000").unwrap());
        assert_eq!(t.to_rfc2822(), "Mon, 23 Nov 2026 10:00:00 UTC");
        assert_eq!(Timestamp::parse_api("begin", &t.to_rfc2822()).unwrap(), t);
        assert_eq!(
            Timestamp::parse_api("begin", "1795428000.25")
                .unwrap()
                .as_micros(),
            1_795_428_000_250_000
        );
        assert_eq!(
            Timestamp::parse_day("from", "2026-11-23")
                .unwrap()
                .as_micros(),
            1_795_392_000_000_000
        );
        assert!(Timestamp::parse_day("from", "2026-13-01").is_err());
        for bad in ["", "yesterday", "-1", "NaN", "1e300", "Mon, 32 Nov 2026"] {
            assert!(Timestamp::parse_api("begin", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(
            Timestamp::from_micros(1_795_000_000_123_456).to_rfc3339(),
            "2026-11-18T11:06:40.123456Z"
        );
        assert_eq!(
            Timestamp::from_micros(0).to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
    }
}
