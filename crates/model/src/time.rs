//! Timestamps as Losant prints them: ISO 8601 in UTC with milliseconds (`2016-06-13T04:00:00.000Z`).
//! That form sorts as text in time order, which the store relies on for `sortField=creationDate`.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, formatted.
pub fn now_iso() -> String {
    format_iso(Utc::now())
}

/// A time, formatted.
pub fn format_iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 date-time (any offset) into UTC.
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        let t = parse_iso("2016-06-13T06:00:00.5+02:00").unwrap();
        assert_eq!(format_iso(t), "2016-06-13T04:00:00.500Z");
        assert!(parse_iso("yesterday").is_none());
    }
}
