//! Dates the way Moment.js formats them (en-US locale), the `format`, `formatDate` and
//! `currentDateTime` helpers' language for dates, with IANA time zones from `chrono-tz`.
//!
//! A format string is tokenised once ([`Format::parse`]) following Moment's own token regular
//! expression: `[escaped text]`, `\x`, the long-date tokens (`LT LTS L LL LLL LLLL l ll lll
//! llll`, expanded first), and `YYYY YY Y Q M MM MMM MMMM Mo D DD Do DDD DDDD d dd ddd dddd do e
//! E w ww W WW gg gggg GG GGGG A a H HH h hh k kk m mm s ss S… Z ZZ z zz X x N`. Any other
//! character is printed as is.
//!
//! Values become dates as `moment(value)` does: numbers are epoch milliseconds, date values are
//! themselves, strings are ISO 8601 (a time without an offset is UTC, the server's zone) or
//! RFC 2822; flowd also takes a string of digits as epoch milliseconds.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The default format of `format`/`formatDate`/`currentDateTime`.
pub const DEFAULT_FORMAT: &str = "L LTS";

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Token(Token),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Month,
    MonthOrdinal,
    Month2,
    MonthShort,
    MonthLong,
    Quarter,
    QuarterOrdinal,
    Day,
    DayOrdinal,
    Day2,
    DayOfYear,
    DayOfYearOrdinal,
    DayOfYear3,
    Weekday,
    WeekdayOrdinal,
    WeekdayMin,
    WeekdayShort,
    WeekdayLong,
    LocaleWeekday,
    IsoWeekday,
    Week,
    WeekOrdinal,
    Week2,
    IsoWeek,
    IsoWeekOrdinal,
    IsoWeek2,
    Year,
    Year2,
    Year4,
    Year5,
    Year6,
    WeekYear2,
    WeekYear4,
    WeekYear5,
    IsoWeekYear2,
    IsoWeekYear4,
    IsoWeekYear5,
    AmPmUpper,
    AmPmLower,
    Hour24,
    Hour24Pad,
    Hour12,
    Hour12Pad,
    Hour1To24,
    Hour1To24Pad,
    Minute,
    Minute2,
    Second,
    Second2,
    Fraction(u8),
    Offset,
    OffsetCompact,
    ZoneAbbr,
    UnixSeconds,
    UnixMillis,
    Era,
    EraLong,
    EraNarrow,
    Hmm,
    Hmmss,
    HourMinute12,
    HourMinuteSecond12,
}

/// A compiled Moment format string.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pieces: Vec<Piece>,
}

fn long_date_format(token: &str) -> Option<&'static str> {
    Some(match token {
        "LTS" => "h:mm:ss A",
        "LT" => "h:mm A",
        "L" => "MM/DD/YYYY",
        "LL" => "MMMM D, YYYY",
        "LLL" => "MMMM D, YYYY h:mm A",
        "LLLL" => "dddd, MMMM D, YYYY h:mm A",
        "l" => "M/D/YYYY",
        "ll" => "MMM D, YYYY",
        "lll" => "MMM D, YYYY h:mm A",
        "llll" => "ddd, MMM D, YYYY h:mm A",
        _ => return None,
    })
}

/// Expands `LT`, `L`, `ll`… (Moment repeats this up to five times; one pass suffices for the
/// en-US formats, which contain none).
fn expand_long_dates(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            if let Some(end) = chars[i + 1..].iter().position(|&c| c == ']') {
                if !chars[i + 1..i + 1 + end].contains(&'[') {
                    out.extend(&chars[i..=i + 1 + end]);
                    i += end + 2;
                    continue;
                }
            }
        }
        if c == '\\' && i + 1 < chars.len() {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
        let mut matched = false;
        for candidate in [
            "LTS", "LT", "LLLL", "LLL", "LL", "L", "llll", "lll", "ll", "l",
        ] {
            if rest.starts_with(candidate) {
                // Moment's regex is LTS|LT|LL?L?L?|l{1,4}: greedy within each family.
                out.push_str(long_date_format(candidate).expect("listed"));
                i += candidate.chars().count();
                matched = true;
                break;
            }
        }
        if !matched {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Format {
    /// Tokenises a Moment format string.
    pub fn parse(text: &str) -> Format {
        let expanded = expand_long_dates(text);
        let chars: Vec<char> = expanded.chars().collect();
        let mut pieces = Vec::new();
        let mut i = 0;
        let push_literal = |pieces: &mut Vec<Piece>, s: &str| {
            if let Some(Piece::Literal(last)) = pieces.last_mut() {
                last.push_str(s);
            } else {
                pieces.push(Piece::Literal(s.to_owned()));
            }
        };
        while i < chars.len() {
            if chars[i] == '[' {
                if let Some(end) = chars[i + 1..].iter().position(|&c| c == ']') {
                    if !chars[i + 1..i + 1 + end].contains(&'[') {
                        let text: String = chars[i + 1..i + 1 + end].iter().collect();
                        push_literal(&mut pieces, &text);
                        i += end + 2;
                        continue;
                    }
                }
            }
            let escaped = chars[i] == '\\';
            let start = if escaped { i + 1 } else { i };
            if start >= chars.len() {
                // A trailing backslash is removed.
                break;
            }
            let (len, token) = match_token(&chars[start..]);
            let text: String = chars[start..start + len].iter().collect();
            match token {
                Some(token) if !escaped => pieces.push(Piece::Token(token)),
                _ => push_literal(&mut pieces, &text.replace('\\', "")),
            }
            i = start + len;
        }
        Format { pieces }
    }

    /// Formats epoch milliseconds in a zone.
    pub fn format(&self, ms: f64, zone: Zone) -> String {
        let Some(t) = to_datetime(ms, zone) else {
            return "Invalid date".into();
        };
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Token(token) => write_token(&mut out, *token, &t, ms, zone),
            }
        }
        out
    }
}

/// Moment's token alternation, in its order; returns the length matched and the token (if the
/// text is a token with a formatter).
fn match_token(c: &[char]) -> (usize, Option<Token>) {
    let at = |i: usize| c.get(i).copied();
    let run = |ch: char, max: usize| c.iter().take(max).take_while(|&&x| x == ch).count();
    use Token::*;
    // [Hh]mm(ss)?
    if matches!(at(0), Some('H') | Some('h')) && at(1) == Some('m') && at(2) == Some('m') {
        let long = at(3) == Some('s') && at(4) == Some('s');
        let h24 = at(0) == Some('H');
        return match (h24, long) {
            (true, true) => (5, Some(Hmmss)),
            (true, false) => (3, Some(Hmm)),
            (false, true) => (5, Some(HourMinuteSecond12)),
            (false, false) => (3, Some(HourMinute12)),
        };
    }
    match at(0) {
        Some('M') => {
            if at(1) == Some('o') {
                return (2, Some(MonthOrdinal));
            }
            let n = run('M', 4);
            return (
                n,
                Some(match n {
                    1 => Month,
                    2 => Month2,
                    3 => MonthShort,
                    _ => MonthLong,
                }),
            );
        }
        Some('D') => {
            if at(1) == Some('o') {
                return (2, Some(DayOrdinal));
            }
            if run('D', 3) == 3 && at(3) == Some('o') {
                return (4, Some(DayOfYearOrdinal));
            }
            let n = run('D', 4);
            return (
                n,
                Some(match n {
                    1 => Day,
                    2 => Day2,
                    3 => DayOfYear,
                    _ => DayOfYear3,
                }),
            );
        }
        Some('d') => {
            let n = run('d', 4);
            if n >= 2 {
                return (
                    n,
                    Some(match n {
                        2 => WeekdayMin,
                        3 => WeekdayShort,
                        _ => WeekdayLong,
                    }),
                );
            }
            if at(1) == Some('o') {
                return (2, Some(WeekdayOrdinal));
            }
            return (1, Some(Weekday));
        }
        Some('w') => {
            return match at(1) {
                Some('o') => (2, Some(WeekOrdinal)),
                Some('w') => (2, Some(Week2)),
                Some('|') => (2, None),
                _ => (1, Some(Week)),
            }
        }
        Some('W') => {
            return match at(1) {
                Some('o') => (2, Some(IsoWeekOrdinal)),
                Some('W') => (2, Some(IsoWeek2)),
                Some('|') => (2, None),
                _ => (1, Some(IsoWeek)),
            }
        }
        Some('Q') => {
            return if at(1) == Some('o') {
                (2, Some(QuarterOrdinal))
            } else {
                (1, Some(Quarter))
            }
        }
        Some('N') => {
            let n = run('N', 5);
            return (
                n,
                Some(match n {
                    4 => EraLong,
                    5 => EraNarrow,
                    _ => Era,
                }),
            );
        }
        Some('Y') => {
            let n = run('Y', 6);
            return match n {
                6 => (6, Some(Year6)),
                5 => (5, Some(Year5)),
                4 => (4, Some(Year4)),
                2 | 3 => (2, Some(Year2)),
                _ => (1, Some(Year)),
            };
        }
        Some('g') => {
            let n = run('g', 5);
            return match n {
                5 => (5, Some(WeekYear5)),
                4 => (4, Some(WeekYear4)),
                2 | 3 => (2, Some(WeekYear2)),
                _ => (1, None),
            };
        }
        Some('G') => {
            let n = run('G', 5);
            return match n {
                5 => (5, Some(IsoWeekYear5)),
                4 => (4, Some(IsoWeekYear4)),
                2 | 3 => (2, Some(IsoWeekYear2)),
                _ => (1, None),
            };
        }
        Some('e') => return (1, Some(LocaleWeekday)),
        Some('E') => return (1, Some(IsoWeekday)),
        Some('a') => return (1, Some(AmPmLower)),
        Some('A') => return (1, Some(AmPmUpper)),
        Some('h') => {
            return if at(1) == Some('h') {
                (2, Some(Hour12Pad))
            } else {
                (1, Some(Hour12))
            }
        }
        Some('H') => {
            return if at(1) == Some('H') {
                (2, Some(Hour24Pad))
            } else {
                (1, Some(Hour24))
            }
        }
        Some('k') => {
            return if at(1) == Some('k') {
                (2, Some(Hour1To24Pad))
            } else {
                (1, Some(Hour1To24))
            }
        }
        Some('m') => {
            return if at(1) == Some('m') {
                (2, Some(Minute2))
            } else {
                (1, Some(Minute))
            }
        }
        Some('s') => {
            return if at(1) == Some('s') {
                (2, Some(Second2))
            } else {
                (1, Some(Second))
            }
        }
        Some('S') => {
            let n = run('S', 9);
            return (n, Some(Fraction(n as u8)));
        }
        Some('x') => return (1, Some(UnixMillis)),
        Some('X') => return (1, Some(UnixSeconds)),
        Some('z') => {
            return if at(1) == Some('z') {
                (2, Some(ZoneAbbr))
            } else {
                (1, Some(ZoneAbbr))
            }
        }
        Some('Z') => {
            return if at(1) == Some('Z') {
                (2, Some(OffsetCompact))
            } else {
                (1, Some(Offset))
            }
        }
        _ => {}
    }
    (1, None)
}

/// The zone a date is shown in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Utc,
    Named(Tz),
}

impl Zone {
    /// An IANA zone name (`America/Chicago`, `UTC`).
    pub fn parse(name: &str) -> Result<Zone, String> {
        name.trim()
            .parse::<Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("unknown time zone \"{name}\""))
    }
}

fn to_datetime(ms: f64, zone: Zone) -> Option<DateTime<FixedOffset>> {
    if !ms.is_finite() || ms.abs() > 8.64e15 {
        return None;
    }
    let utc = DateTime::<Utc>::from_timestamp_millis(ms.floor() as i64)?;
    Some(match zone {
        Zone::Utc => utc.fixed_offset(),
        Zone::Named(tz) => {
            let local = utc.with_timezone(&tz);
            local.with_timezone(&local.offset().fix())
        }
    })
}

fn ordinal(n: i64) -> String {
    let b = n % 10;
    let suffix = if (n % 100) / 10 == 1 {
        "th"
    } else {
        match b {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

fn zero_fill(n: i64, width: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{:0width$}", n.abs())
}

fn days_in_year(year: i32) -> i32 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// Moment's firstWeekOffset(year, dow, doy).
fn first_week_offset(year: i32, dow: i32, doy: i32) -> i32 {
    let fwd = 7 + dow - doy;
    let jan = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid date")
        + chrono::Duration::days((fwd - 1) as i64);
    let weekday = jan.weekday().num_days_from_sunday() as i32;
    let fwdlw = (7 + weekday - dow) % 7;
    -fwdlw + fwd - 1
}

fn weeks_in_year(year: i32, dow: i32, doy: i32) -> i32 {
    let offset = first_week_offset(year, dow, doy);
    let next = first_week_offset(year + 1, dow, doy);
    (days_in_year(year) - offset + next) / 7
}

/// Moment's weekOfYear: (week, week-year).
fn week_of_year(t: &DateTime<FixedOffset>, dow: i32, doy: i32) -> (i32, i32) {
    let year = t.year();
    let offset = first_week_offset(year, dow, doy);
    let week = ((t.ordinal() as i32 - offset - 1) as f64 / 7.0).floor() as i32 + 1;
    if week < 1 {
        (week + weeks_in_year(year - 1, dow, doy), year - 1)
    } else if week > weeks_in_year(year, dow, doy) {
        (week - weeks_in_year(year, dow, doy), year + 1)
    } else {
        (week, year)
    }
}

fn write_token(out: &mut String, token: Token, t: &DateTime<FixedOffset>, ms: f64, zone: Zone) {
    use Token::*;
    let hour12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    let year = t.year() as i64;
    let text = match token {
        Month => t.month().to_string(),
        MonthOrdinal => ordinal(t.month() as i64),
        Month2 => zero_fill(t.month() as i64, 2),
        MonthShort => MONTHS[t.month0() as usize][..3].to_owned(),
        MonthLong => MONTHS[t.month0() as usize].to_owned(),
        Quarter => ((t.month0() / 3) + 1).to_string(),
        QuarterOrdinal => ordinal(((t.month0() / 3) + 1) as i64),
        Day => t.day().to_string(),
        DayOrdinal => ordinal(t.day() as i64),
        Day2 => zero_fill(t.day() as i64, 2),
        DayOfYear => t.ordinal().to_string(),
        DayOfYearOrdinal => ordinal(t.ordinal() as i64),
        DayOfYear3 => zero_fill(t.ordinal() as i64, 3),
        Weekday | LocaleWeekday => t.weekday().num_days_from_sunday().to_string(),
        WeekdayOrdinal => ordinal(t.weekday().num_days_from_sunday() as i64),
        WeekdayMin => WEEKDAYS[t.weekday().num_days_from_sunday() as usize][..2].to_owned(),
        WeekdayShort => WEEKDAYS[t.weekday().num_days_from_sunday() as usize][..3].to_owned(),
        WeekdayLong => WEEKDAYS[t.weekday().num_days_from_sunday() as usize].to_owned(),
        IsoWeekday => t.weekday().number_from_monday().to_string(),
        Week => week_of_year(t, 0, 6).0.to_string(),
        WeekOrdinal => ordinal(week_of_year(t, 0, 6).0 as i64),
        Week2 => zero_fill(week_of_year(t, 0, 6).0 as i64, 2),
        IsoWeek => week_of_year(t, 1, 4).0.to_string(),
        IsoWeekOrdinal => ordinal(week_of_year(t, 1, 4).0 as i64),
        IsoWeek2 => zero_fill(week_of_year(t, 1, 4).0 as i64, 2),
        Year => {
            if year <= 9999 {
                year.to_string()
            } else {
                format!("+{year}")
            }
        }
        Year2 => zero_fill(year.rem_euclid(100), 2),
        Year4 => {
            if year <= 9999 {
                zero_fill(year, 4)
            } else {
                format!("+{year}")
            }
        }
        Year5 => zero_fill(year, 5),
        Year6 => format!(
            "{}{}",
            if year >= 0 { "+" } else { "-" },
            zero_fill(year.abs(), 6)
        ),
        WeekYear2 => zero_fill((week_of_year(t, 0, 6).1 as i64).rem_euclid(100), 2),
        WeekYear4 => zero_fill(week_of_year(t, 0, 6).1 as i64, 4),
        WeekYear5 => zero_fill(week_of_year(t, 0, 6).1 as i64, 5),
        IsoWeekYear2 => zero_fill((week_of_year(t, 1, 4).1 as i64).rem_euclid(100), 2),
        IsoWeekYear4 => zero_fill(week_of_year(t, 1, 4).1 as i64, 4),
        IsoWeekYear5 => zero_fill(week_of_year(t, 1, 4).1 as i64, 5),
        AmPmUpper => (if t.hour() < 12 { "AM" } else { "PM" }).to_owned(),
        AmPmLower => (if t.hour() < 12 { "am" } else { "pm" }).to_owned(),
        Hour24 => t.hour().to_string(),
        Hour24Pad => zero_fill(t.hour() as i64, 2),
        Hour12 => hour12(t.hour()).to_string(),
        Hour12Pad => zero_fill(hour12(t.hour()) as i64, 2),
        Hour1To24 => (if t.hour() == 0 { 24 } else { t.hour() }).to_string(),
        Hour1To24Pad => zero_fill((if t.hour() == 0 { 24 } else { t.hour() }) as i64, 2),
        Minute => t.minute().to_string(),
        Minute2 => zero_fill(t.minute() as i64, 2),
        Second => t.second().to_string(),
        Second2 => zero_fill(t.second() as i64, 2),
        Fraction(n) => {
            let millis = (ms.floor() as i64).rem_euclid(1000);
            match n {
                1 => (millis / 100).to_string(),
                2 => zero_fill(millis / 10, 2),
                n => format!("{}{}", zero_fill(millis, 3), "0".repeat(n as usize - 3)),
            }
        }
        Offset | OffsetCompact => {
            let secs = t.offset().local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let minutes = secs.abs() / 60;
            let sep = if token == Offset { ":" } else { "" };
            format!("{sign}{:02}{sep}{:02}", minutes / 60, minutes % 60)
        }
        ZoneAbbr => match zone {
            Zone::Utc => "UTC".to_owned(),
            Zone::Named(tz) => {
                let utc = DateTime::<Utc>::from_timestamp_millis(ms.floor() as i64);
                utc.map(|u| u.with_timezone(&tz).format("%Z").to_string())
                    .unwrap_or_default()
            }
        },
        UnixSeconds => ((ms / 1000.0).floor() as i64).to_string(),
        UnixMillis => (ms.floor() as i64).to_string(),
        Era | EraNarrow => (if year > 0 { "AD" } else { "BC" }).to_owned(),
        EraLong => (if year > 0 {
            "Anno Domini"
        } else {
            "Before Christ"
        })
        .to_owned(),
        Hmm => format!("{}{:02}", t.hour(), t.minute()),
        Hmmss => format!("{}{:02}{:02}", t.hour(), t.minute(), t.second()),
        HourMinute12 => format!("{}{:02}", hour12(t.hour()), t.minute()),
        HourMinuteSecond12 => format!("{}{:02}{:02}", hour12(t.hour()), t.minute(), t.second()),
    };
    out.push_str(&text);
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Parses a date string as `moment(string)` would: ISO 8601 first, then RFC 2822; a string of
/// digits is taken as epoch milliseconds. `None` is an invalid date.
pub fn parse_date(text: &str) -> Option<f64> {
    let t = text.trim();
    if !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<f64>().ok();
    }
    if let Some(ms) = parse_iso(t) {
        return Some(ms);
    }
    DateTime::parse_from_rfc2822(t)
        .ok()
        .map(|d| d.timestamp_millis() as f64)
}

/// Whether a string is an ISO 8601 date-time (at least `YYYY-MM-DD`): how `format` tells a
/// date (payload dates travel as ISO strings) from other text.
pub fn looks_like_iso_date(text: &str) -> bool {
    let b = text.trim().as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && parse_iso(text.trim()).is_some()
}

fn parse_iso(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    let digits = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 7 || b[4] != b'-' {
        return None;
    }
    let year = digits(&b[..4])? as i32;
    let month = digits(&b[5..7])?;
    let mut i = 7;
    let mut day = 1;
    if b.len() > 7 {
        if b[7] != b'-' || b.len() < 10 {
            return None;
        }
        day = digits(&b[8..10])?;
        i = 10;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0u32);
    let mut offset: Option<i32> = None;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b' ' && b[i] != b't' {
            return None;
        }
        i += 1;
        hour = digits(b.get(i..i + 2)?)?;
        i += 2;
        if b.get(i) == Some(&b':') {
            minute = digits(b.get(i + 1..i + 3)?)?;
            i += 3;
            if b.get(i) == Some(&b':') {
                second = digits(b.get(i + 1..i + 3)?)?;
                i += 3;
                if matches!(b.get(i), Some(b'.') | Some(b',')) {
                    let start = i + 1;
                    let mut end = start;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                    if end == start {
                        return None;
                    }
                    let frac = &t[start..end.min(start + 9)];
                    nanos = format!("{frac:0<9}").parse().ok()?;
                    i = end;
                }
            }
        }
        let rest = t[i..].trim_start();
        if rest == "Z" || rest == "z" {
            offset = Some(0);
        } else if !rest.is_empty() {
            let rb = rest.as_bytes();
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if body.len() != 2 && body.len() != 4 {
                return None;
            }
            let hh = digits(&body.as_bytes()[..2])? as i32;
            let mm = if body.len() == 4 {
                digits(&body.as_bytes()[2..])? as i32
            } else {
                0
            };
            offset = Some(sign * (hh * 3600 + mm * 60));
        }
    } else if i != b.len() {
        return None;
    }
    let (hour, extra_day) = if hour == 24 && minute == 0 && second == 0 && nanos == 0 {
        (0, 1)
    } else {
        (hour, 0)
    };
    let naive: NaiveDateTime =
        date.and_hms_nano_opt(hour, minute, second, nanos)? + chrono::Duration::days(extra_day);
    let utc_ms = naive.and_utc().timestamp_millis() - i64::from(offset.unwrap_or(0)) * 1000;
    Some(utc_ms as f64)
}

// ---------------------------------------------------------------------------------------------
// Relative time: `moment(date).from(reference)`.

/// `moment(ms).from(reference)` in English ("5 minutes ago", "in 2 hours").
pub fn relative(ms: f64, reference: f64) -> String {
    if !ms.is_finite() || !reference.is_finite() {
        return "Invalid date".into();
    }
    let (Some(to), Some(from)) = (
        DateTime::<Utc>::from_timestamp_millis(ms.floor() as i64),
        DateTime::<Utc>::from_timestamp_millis(reference.floor() as i64),
    ) else {
        return "Invalid date".into();
    };
    // momentsDifference(from, to): whole months, then the remaining milliseconds.
    let (months, millis) = if to >= from {
        months_difference(from, to)
    } else {
        let (m, ms) = months_difference(to, from);
        (-m, -ms)
    };
    let abs_months = months.unsigned_abs() as f64;
    let abs_millis = millis.unsigned_abs() as f64;
    let round = super::js_number::js_round;
    // Duration#as: days and smaller units take the months as whole days (rounded); months and
    // years take the milliseconds as fractional months.
    let month_days = round(abs_months * 146097.0 / 4800.0);
    let as_seconds = month_days * 86400.0 + abs_millis / 1000.0;
    let as_minutes = month_days * 1440.0 + abs_millis / 6e4;
    let as_hours = month_days * 24.0 + abs_millis / 36e5;
    let as_days = month_days + abs_millis / 864e5;
    let as_months = abs_months + (abs_millis / 864e5) * 4800.0 / 146097.0;
    let as_years = as_months / 12.0;
    let (seconds, minutes, hours, days, months_r, years) = (
        round(as_seconds),
        round(as_minutes),
        round(as_hours),
        round(as_days),
        round(as_months),
        round(as_years),
    );
    let phrase = if seconds <= 44.0 {
        "a few seconds".to_owned()
    } else if seconds < 45.0 {
        format!("{seconds} seconds")
    } else if minutes <= 1.0 {
        "a minute".to_owned()
    } else if minutes < 45.0 {
        format!("{minutes} minutes")
    } else if hours <= 1.0 {
        "an hour".to_owned()
    } else if hours < 22.0 {
        format!("{hours} hours")
    } else if days <= 1.0 {
        "a day".to_owned()
    } else if days < 26.0 {
        format!("{days} days")
    } else if months_r <= 1.0 {
        "a month".to_owned()
    } else if months_r < 11.0 {
        format!("{months_r} months")
    } else if years <= 1.0 {
        "a year".to_owned()
    } else {
        format!("{years} years")
    };
    // The sign is that of the duration's value: months count 30 days (and 365 per 12).
    let value = millis as f64 + (months % 12) as f64 * 2592e6 + (months / 12) as f64 * 31536e6;
    if value > 0.0 {
        format!("in {phrase}")
    } else {
        format!("{phrase} ago")
    }
}

/// Whole months from `base` to `other` (other ≥ base), and the milliseconds left.
fn months_difference(base: DateTime<Utc>, other: DateTime<Utc>) -> (i64, i64) {
    let mut months = (other.month() as i64 - base.month() as i64)
        + (other.year() as i64 - base.year() as i64) * 12;
    if add_months(base, months) > other {
        months -= 1;
    }
    let anchor = add_months(base, months);
    (months, (other - anchor).num_milliseconds())
}

/// Moment's `add(n, 'M')`: the day of month is clamped to the target month's length.
fn add_months(t: DateTime<Utc>, months: i64) -> DateTime<Utc> {
    let total = t.year() as i64 * 12 + t.month0() as i64 + months;
    let year = total.div_euclid(12) as i32;
    let month = total.rem_euclid(12) as u32 + 1;
    let mut day = t.day();
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            let naive = date.and_time(t.time());
            return Utc.from_utc_datetime(&naive);
        }
        day -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(iso: &str) -> f64 {
        parse_date(iso).unwrap()
    }

    #[test]
    fn tokens() {
        let t = ms("2024-01-15T14:30:05.123Z");
        let f = |fmt: &str| Format::parse(fmt).format(t, Zone::Utc);
        assert_eq!(f("YYYY-MM-DD"), "2024-01-15");
        assert_eq!(f("YY M D"), "24 1 15");
        assert_eq!(f("MMM MMMM Do"), "Jan January 15th");
        assert_eq!(f("dd ddd dddd d"), "Mo Mon Monday 1");
        assert_eq!(f("HH:mm:ss.SSS"), "14:30:05.123");
        assert_eq!(f("h:mm a"), "2:30 pm");
        assert_eq!(f("hh A"), "02 PM");
        assert_eq!(f("H m s S SS"), "14 30 5 1 12");
        assert_eq!(f("Z ZZ"), "+00:00 +0000");
        assert_eq!(f("x"), "1705329005123");
        assert_eq!(f("X"), "1705329005");
        assert_eq!(f("L LTS"), "01/15/2024 2:30:05 PM");
        assert_eq!(f("LT"), "2:30 PM");
        assert_eq!(f("LL"), "January 15, 2024");
        assert_eq!(f("LLL"), "January 15, 2024 2:30 PM");
        assert_eq!(f("LLLL"), "Monday, January 15, 2024 2:30 PM");
        assert_eq!(f("l"), "1/15/2024");
        assert_eq!(f("[Today is] dddd"), "Today is Monday");
        assert_eq!(f("YYYY-MM-DDTHH:mm"), "2024-01-15T14:30");
        assert_eq!(f("Q DDD DDDD"), "1 15 015");
        assert_eq!(f("W WW w E"), "3 03 3 1");
        assert_eq!(f("k kk"), "14 14");
        assert_eq!(f("\\Y YYYY"), "Y 2024");
        assert_eq!(f("z"), "UTC");
    }

    #[test]
    fn zones() {
        let t = ms("2024-01-15T14:30:00Z");
        let chicago = Zone::parse("America/Chicago").unwrap();
        assert_eq!(
            Format::parse("HH:mm Z z").format(t, chicago),
            "08:30 -06:00 CST"
        );
        let summer = ms("2024-07-01T12:00:00Z");
        assert_eq!(
            Format::parse("HH:mm z").format(summer, chicago),
            "07:00 CDT"
        );
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn parsing() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(ms("1970-01-01"), 0.0);
        assert_eq!(ms("1970-01-01T01:00:00+01:00"), 0.0);
        assert_eq!(ms("1970-01-01 00:00:01.5"), 1500.0);
        assert_eq!(ms("1705329005123"), 1705329005123.0);
        assert_eq!(ms("Mon, 15 Jan 2024 14:30:00 +0000"), 1705329000000.0);
        assert!(parse_date("hello").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(looks_like_iso_date("2024-01-15T14:30:00.000Z"));
        assert!(!looks_like_iso_date("2024"));
        assert_eq!(
            Format::parse("YYYY").format(f64::NAN, Zone::Utc),
            "Invalid date"
        );
    }

    #[test]
    fn relative_times() {
        let now = ms("2024-01-15T14:30:00Z");
        let cases = [
            (-5.0 * 60e3, "5 minutes ago"),
            (-30e3, "a few seconds ago"),
            (-60e3, "a minute ago"),
            (2.0 * 3600e3, "in 2 hours"),
            (-3600e3, "an hour ago"),
            (-86400e3, "a day ago"),
            (-3.0 * 86400e3, "3 days ago"),
            (-40.0 * 86400e3, "a month ago"),
            (-100.0 * 86400e3, "3 months ago"),
            (-400.0 * 86400e3, "a year ago"),
            (-800.0 * 86400e3, "2 years ago"),
            (10.0 * 86400e3, "in 10 days"),
        ];
        for (delta, want) in cases {
            assert_eq!(relative(now + delta, now), want, "{delta}");
        }
    }
}
