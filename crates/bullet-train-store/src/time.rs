//! Timestamps: microseconds since the Unix epoch, and their ISO 8601 and calendar-day forms.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::model::Micros;

/// The current time.
pub fn now_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn datetime(micros: Micros) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// ISO 8601 as Python's `isoformat()` writes an aware UTC datetime:
/// `2024-05-01T12:00:00.123456+00:00`.
pub fn iso(micros: Micros) -> String {
    let t = datetime(micros);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// ISO 8601 as Django REST framework writes it: `2024-05-01T12:00:00.123456Z`.
pub fn iso_z(micros: Micros) -> String {
    let mut s = iso(micros);
    s.truncate(s.len() - "+00:00".len());
    s.push('Z');
    s
}

/// Parses an RFC 3339 timestamp; a missing offset is read as UTC.
pub fn parse_iso(s: &str) -> Option<Micros> {
    let parsed = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?
        .to_offset(UtcOffset::UTC);
    i64::try_from(parsed.unix_timestamp_nanos() / 1000).ok()
}

/// The UTC calendar day, `YYYY-MM-DD`.
pub fn day(micros: Micros) -> String {
    let t = datetime(micros);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let micros = 1_700_000_000_123_456;
        assert_eq!(iso(micros), "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(iso_z(micros), "2023-11-14T22:13:20.123456Z");
        assert_eq!(day(micros), "2023-11-14");
        assert_eq!(parse_iso(&iso(micros)), Some(micros));
        assert_eq!(parse_iso("2023-11-14T22:13:20.123456"), Some(micros));
        assert_eq!(parse_iso("2023-11-14T23:13:20.123456+01:00"), Some(micros));
        assert_eq!(parse_iso("yesterday"), None);
    }
}
