//! Timestamps as Losant prints them: ISO 8601 in UTC with milliseconds (`2016-06-13T04:00:00.000Z`).
//! That form sorts as text in time order, which the store relies on for `sortField=creationDate`.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, formatted.
pub fn now_iso() -> String {
    format_iso(Utc::now())
}

/// A time, formatted.
pub fn format_iso(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // By hand: chrono's RFC 3339 writer goes through its general formatting machinery, and a
    // month of per-minute stats formats 43,200 of these.
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    // Digits written straight into place: `write!` spent more on its machinery than on them.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second().min(59));
    put(20, 3, t.timestamp_subsec_millis().min(999));
    out.iter().map(|&b| b as char).collect()
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

    #[test]
    fn hand_formatting_matches_chrono() {
        for ms in [
            0i64,
            1,
            999,
            1_000,
            86_399_999,
            1_795_830_879_123,
            -1,
            -62_135_596_800_000,
        ] {
            let t = DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(
                format_iso(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{ms}"
            );
        }
        // Outside four-digit years, chrono's own form.
        let far = DateTime::from_timestamp_millis(400_000_000_000_000).unwrap();
        assert_eq!(
            format_iso(far),
            far.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }
}
