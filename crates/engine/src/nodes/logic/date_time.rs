//! `DateTimeNode`: Moment.js-style date operations on a date read from the payload (or now),
//! in a time zone, the result written to `resultPath`.
//!
//! | `operation` | result |
//! |---|---|
//! | `add`, `subtract` | the date moved by `numberValue` `unit`s |
//! | `setDatePart` | the date with its `unit` set to `numberValue` |
//! | `startOfTime` | the start of the date's `unit` (year, quarter, month, week, day, hour…) |
//! | `format` | text in `resultFormatString` |
//! | `getDatePart` | the number of the date's `unit` |
//! | `daysInMonth` | the number of days in the date's month |
//! | `unixTimestampSeconds`, `unixTimestampMilliseconds` | the epoch time |
//! | `diff` | milliseconds from the date at `diffDataPath` (or now) to the source date |
//! | `toArray` | `[year, month, date, hours, minutes, seconds, milliseconds]` |
//! | `toObject` | `{years, months, date, hours, minutes, seconds, milliseconds}` |
//!
//! Reading dates: a number is epoch milliseconds; a string is read with `sourceFormatString`
//! (`diffDataFormatString` for the diff date) when one is given — Moment's non-strict format
//! parsing: each token takes the first match in what is left of the text, missing leading
//! date parts default to today, and out-of-range parts make the date invalid — and otherwise
//! as ISO 8601, RFC 2822 or a string of epoch-millisecond digits. A string without an offset is
//! a wall time in `timezone`, as `moment.tz(text, zone)` reads it.
//!
//! Units are `year quarter month week dayOfYear day dayOfWeek hour minute second millisecond`
//! (plurals and Moment's `date` are accepted). Calendar arithmetic happens on the wall clock
//! of `timezone` (UTC when blank), as moment-timezone does: adding a day across a daylight
//! saving change keeps the time of day, while hours and smaller units move the instant.
//!
//! Decisions:
//! * Month numbers are Moment's, 0–11 (`getDatePart`, `setDatePart`, `toArray`, `toObject`);
//!   `day` is the day of the month and `dayOfWeek` the weekday (0 = Sunday); `week` is the
//!   US locale week (weeks start on Sunday, week 1 holds January 1st).
//! * `add`/`subtract` follow Moment's rounding: days and weeks become whole days, months,
//!   quarters and years whole months (half away from zero); hours and smaller units keep
//!   fractions (to the millisecond). `setDatePart` truncates the number and lets it overflow
//!   as JavaScript's setters do (`day` 32 of January is February 1st), except that setting a
//!   month or year keeps the day within the new month (January 31st → February 29th).
//! * Date results (`add`, `subtract`, `setDatePart`, `startOfTime`) are ISO 8601 strings in
//!   UTC with milliseconds — what a JavaScript `Date` becomes in JSON — unless
//!   `resultFormatString` is given, when they are that text in `timezone`. `format` without a
//!   format string gives Moment's default, `YYYY-MM-DDTHH:mm:ssZ` (`…ss[Z]` in UTC). Number
//!   results ignore `resultFormatString`.
//! * `diff` is in milliseconds (the newer revision); `unit` is not used by it.
//! * `resultPath` is optional (the revisions disagree): without it the result is discarded.
//! * A blank `sourcePath` (or `diffDataPath`) is now. A path that holds nothing, or a value
//!   that is not a valid date, halts with `ValidationError` — never silently now. A
//!   `numberValue` that renders empty halts with `TemplateError`, one that is not a number with
//!   `ValidationError`.
//! * `timezone` may be a template; format strings are literal and tokenised when the flow is
//!   compiled. An unknown zone is a compile error (or `ValidationError` when rendered).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, render, render_required, template};
use crate::path::PayloadPath;
use crate::template::js_number::js_round;
use crate::template::moment::{parse_date, Format, Zone};
use crate::template::Template;
use crate::value::{date_to_iso, number_to_json, string_to_number};
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    operation: Option<String>,
    source_path: Option<String>,
    source_format_string: Option<String>,
    result_path: Option<String>,
    result_format_string: Option<String>,
    timezone: Option<String>,
    number_value: Option<NumberValue>,
    unit: Option<String>,
    diff_data_path: Option<String>,
    diff_data_format_string: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberValue {
    Number(f64),
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Add,
    Subtract,
    SetDatePart,
    StartOfTime,
    Format,
    GetDatePart,
    DaysInMonth,
    UnixSeconds,
    UnixMillis,
    Diff,
    ToArray,
    ToObject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    DayOfYear,
    Day,
    DayOfWeek,
    Hour,
    Minute,
    Second,
    Millisecond,
}

fn parse_unit(text: &str) -> Option<Unit> {
    Some(match text {
        "year" | "years" | "y" => Unit::Year,
        "quarter" | "quarters" | "Q" => Unit::Quarter,
        "month" | "months" | "M" => Unit::Month,
        "week" | "weeks" | "w" => Unit::Week,
        "dayOfYear" | "dayOfYears" | "DDD" => Unit::DayOfYear,
        "day" | "days" | "date" | "dates" | "D" => Unit::Day,
        "dayOfWeek" | "d" => Unit::DayOfWeek,
        "hour" | "hours" | "h" => Unit::Hour,
        "minute" | "minutes" | "m" => Unit::Minute,
        "second" | "seconds" | "s" => Unit::Second,
        "millisecond" | "milliseconds" | "ms" => Unit::Millisecond,
        _ => return None,
    })
}

enum ZoneSetting {
    Fixed(Zone),
    Rendered(Template),
}

enum Amount {
    Fixed(f64),
    Rendered(Template),
}

/// Where a date comes from.
struct DateSource {
    path: Option<PayloadPath>,
    format: Option<ParseFormat>,
    field: &'static str,
}

pub struct DateTimeNode {
    operation: Operation,
    unit: Unit,
    source: DateSource,
    diff: DateSource,
    zone: ZoneSetting,
    amount: Option<Amount>,
    result_format: Option<Format>,
    result: Option<PayloadPath>,
}

fn parse_zone(text: &str) -> Result<Zone, String> {
    if text.trim().is_empty() {
        Ok(Zone::Utc)
    } else {
        Zone::parse(text)
    }
}

fn non_blank(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let operation = match config.operation.as_deref().unwrap_or("add") {
        "add" | "" => Operation::Add,
        "subtract" => Operation::Subtract,
        "setDatePart" => Operation::SetDatePart,
        "startOfTime" => Operation::StartOfTime,
        "format" => Operation::Format,
        "getDatePart" => Operation::GetDatePart,
        "daysInMonth" => Operation::DaysInMonth,
        "unixTimestampSeconds" => Operation::UnixSeconds,
        "unixTimestampMilliseconds" => Operation::UnixMillis,
        "diff" => Operation::Diff,
        "toArray" => Operation::ToArray,
        "toObject" => Operation::ToObject,
        other => {
            return Err(spec.error(format!(
                "operation must be one of add, subtract, setDatePart, startOfTime, format, \
                 getDatePart, daysInMonth, unixTimestampSeconds, unixTimestampMilliseconds, \
                 diff, toArray, toObject, not \"{other}\""
            )))
        }
    };
    let unit_text = non_blank(config.unit.as_deref()).unwrap_or("year");
    let unit = parse_unit(unit_text.trim()).ok_or_else(|| {
        spec.error(format!(
            "unit must be one of year, quarter, month, week, dayOfYear, day, dayOfWeek, hour, \
             minute, second, millisecond, not \"{unit_text}\""
        ))
    })?;
    let needs_amount = matches!(
        operation,
        Operation::Add | Operation::Subtract | Operation::SetDatePart
    );
    let amount = match (&config.number_value, needs_amount) {
        (_, false) => None,
        (Some(NumberValue::Number(n)), true) => Some(Amount::Fixed(*n)),
        (Some(NumberValue::Text(text)), true) if !text.trim().is_empty() => {
            let compiled = template(spec, "numberValue", text)?;
            Some(match compiled.static_text() {
                Some(text) => {
                    let n = string_to_number(text);
                    if !n.is_finite() {
                        return Err(spec.error(format!("numberValue \"{text}\" is not a number")));
                    }
                    Amount::Fixed(n)
                }
                None => Amount::Rendered(compiled),
            })
        }
        (_, true) => return Err(spec.error("numberValue is required for this operation")),
    };
    let zone_text = config.timezone.as_deref().unwrap_or("");
    let zone_template = template(spec, "timezone", zone_text)?;
    let zone = match zone_template.static_text() {
        Some(text) => {
            ZoneSetting::Fixed(parse_zone(text).map_err(|e| spec.error(format!("timezone: {e}")))?)
        }
        None => ZoneSetting::Rendered(zone_template),
    };
    let parse_format = |text: Option<&str>| non_blank(text).map(ParseFormat::parse);
    Ok(CompiledNodeType::new(
        DateTimeNode {
            operation,
            unit,
            source: DateSource {
                path: optional_path(spec, "sourcePath", config.source_path.as_deref())?,
                format: parse_format(config.source_format_string.as_deref()),
                field: "sourcePath",
            },
            diff: DateSource {
                path: optional_path(spec, "diffDataPath", config.diff_data_path.as_deref())?,
                format: parse_format(config.diff_data_format_string.as_deref()),
                field: "diffDataPath",
            },
            zone,
            amount,
            result_format: non_blank(config.result_format_string.as_deref()).map(Format::parse),
            result: optional_path(spec, "resultPath", config.result_path.as_deref())?,
        },
        1,
    ))
}

fn invalid(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

// ---------------------------------------------------------------------------------------------
// Wall clock ⇄ instant.

fn to_local(ms: i64, zone: Zone) -> Option<NaiveDateTime> {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms)?;
    Some(match zone {
        Zone::Utc => utc.naive_utc(),
        Zone::Named(tz) => utc.with_timezone(&tz).naive_local(),
    })
}

/// The instant of a wall time: the earlier one when the clock repeats, and a time skipped by a
/// daylight saving change moves forward by the change (as moment-timezone does).
fn from_local(local: NaiveDateTime, zone: Zone) -> Option<i64> {
    match zone {
        Zone::Utc => Some(local.and_utc().timestamp_millis()),
        Zone::Named(tz) => match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.timestamp_millis()),
            LocalResult::Ambiguous(a, b) => Some(a.timestamp_millis().min(b.timestamp_millis())),
            LocalResult::None => {
                // The gap is at most a few hours; step forward by the zone's jump.
                let before = tz
                    .from_local_datetime(&(local - Duration::hours(3)))
                    .earliest()?;
                let after = tz
                    .from_local_datetime(&(local + Duration::hours(3)))
                    .latest()?;
                let jump = before.offset().fix_seconds() - after.offset().fix_seconds();
                let shifted = local - Duration::seconds(i64::from(jump));
                tz.from_local_datetime(&shifted)
                    .earliest()
                    .map(|t| t.timestamp_millis())
            }
        },
    }
}

trait FixSeconds {
    fn fix_seconds(&self) -> i32;
}

impl<O: chrono::Offset> FixSeconds for O {
    fn fix_seconds(&self) -> i32 {
        self.fix().local_minus_utc()
    }
}

fn days_in_month(year: i32, month0: u32) -> u32 {
    let (next_year, next_month) = if month0 == 11 {
        (year + 1, 1)
    } else {
        (year, month0 + 2)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// A date `months` months later, the day kept within the month (Moment's `add(n, 'M')` and
/// `month(n)`).
fn shift_months(local: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let total = i64::from(local.year()) * 12 + i64::from(local.month0()) + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month0 = total.rem_euclid(12) as u32;
    let day = local.day().min(days_in_month(year, month0));
    Some(NaiveDate::from_ymd_opt(year, month0 + 1, day)?.and_time(local.time()))
}

fn shift_days(local: NaiveDateTime, days: i64) -> Option<NaiveDateTime> {
    local.checked_add_signed(Duration::try_days(days)?)
}

/// Moment's locale week (en: weeks start on Sunday, the week holding January 1st is week 1).
fn locale_week(date: NaiveDate) -> u32 {
    // With dow = 0 and doy = 6 the week is that of the Saturday ending it.
    let saturday = date + Duration::days(6 - i64::from(date.weekday().num_days_from_sunday()));
    (saturday.ordinal() - 1) / 7 + 1
}

fn abs_round(n: f64) -> i64 {
    if n < 0.0 {
        -(js_round(-n) as i64)
    } else {
        js_round(n) as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Reading dates with a Moment format.

#[derive(Debug, Clone, Copy, PartialEq)]
enum ParseToken {
    Year4,
    Year2,
    YearSigned,
    Quarter,
    Month,
    MonthName,
    Day,
    DayOrdinal,
    DayOfYear,
    WeekdayName,
    WeekdayNumber,
    Hour24,
    Hour12,
    Minute,
    Second,
    Fraction,
    FractionLong,
    Meridiem,
    UnixSeconds,
    UnixMillis,
    Offset,
}

#[derive(Debug, Clone, PartialEq)]
enum ParsePiece {
    Literal(String),
    Token(ParseToken),
}

/// A Moment format tokenised for parsing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseFormat {
    pieces: Vec<ParsePiece>,
}

impl ParseFormat {
    pub(crate) fn parse(text: &str) -> ParseFormat {
        let chars: Vec<char> = text.chars().collect();
        let mut pieces = Vec::new();
        let mut i = 0;
        let run = |i: usize, c: char| chars[i..].iter().take_while(|&&x| x == c).count();
        while i < chars.len() {
            let c = chars[i];
            if c == '[' {
                if let Some(end) = chars[i + 1..].iter().position(|&c| c == ']') {
                    let literal: String = chars[i + 1..i + 1 + end].iter().collect();
                    pieces.push(ParsePiece::Literal(literal));
                    i += end + 2;
                    continue;
                }
            }
            if c == '\\' && i + 1 < chars.len() {
                pieces.push(ParsePiece::Literal(chars[i + 1].to_string()));
                i += 2;
                continue;
            }
            let n = run(i, c);
            let next = chars.get(i + n).copied();
            let (len, token) = match c {
                'Y' => match n {
                    4 => (4, Some(ParseToken::Year4)),
                    2 => (2, Some(ParseToken::Year2)),
                    n if n >= 5 => (n, Some(ParseToken::YearSigned)),
                    n => (n, Some(ParseToken::YearSigned)),
                },
                'Q' => (1, Some(ParseToken::Quarter)),
                'M' if n >= 3 => (n.min(4), Some(ParseToken::MonthName)),
                'M' => (n, Some(ParseToken::Month)),
                'D' if n <= 2 && next == Some('o') => (n + 1, Some(ParseToken::DayOrdinal)),
                'D' if n >= 3 => (n.min(4), Some(ParseToken::DayOfYear)),
                'D' => (n, Some(ParseToken::Day)),
                'd' if n >= 2 => (n.min(4), Some(ParseToken::WeekdayName)),
                'd' | 'e' | 'E' => (1, Some(ParseToken::WeekdayNumber)),
                'H' | 'k' => (n.min(2), Some(ParseToken::Hour24)),
                'h' => (n.min(2), Some(ParseToken::Hour12)),
                'm' => (n.min(2), Some(ParseToken::Minute)),
                's' => (n.min(2), Some(ParseToken::Second)),
                'S' if n <= 3 => (n, Some(ParseToken::Fraction)),
                'S' => (n, Some(ParseToken::FractionLong)),
                'A' | 'a' => (1, Some(ParseToken::Meridiem)),
                'X' => (1, Some(ParseToken::UnixSeconds)),
                'x' => (1, Some(ParseToken::UnixMillis)),
                'Z' => (n.min(2), Some(ParseToken::Offset)),
                _ => (1, None),
            };
            match token {
                Some(token) => pieces.push(ParsePiece::Token(token)),
                None => match pieces.last_mut() {
                    Some(ParsePiece::Literal(s)) => s.push(c),
                    _ => pieces.push(ParsePiece::Literal(c.to_string())),
                },
            }
            i += len;
        }
        ParseFormat { pieces }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAY_NAMES: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Finds the first match of a token in `text` from `from`: (start, end) in chars.
fn find_token(text: &[char], from: usize, token: ParseToken) -> Option<(usize, usize)> {
    let digits_at = |i: usize, min: usize, max: usize| -> Option<usize> {
        let n = text[i..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (n >= min).then_some(n)
    };
    let signed_digits_at = |i: usize, max: usize| -> Option<usize> {
        let sign = usize::from(matches!(text.get(i), Some('+') | Some('-')));
        digits_at(i + sign, 1, max).map(|n| n + sign)
    };
    let words = |names: &[&str], i: usize| -> Option<usize> {
        let rest: String = text[i..].iter().take(12).collect::<String>().to_lowercase();
        names
            .iter()
            .find(|name| rest.starts_with(*name))
            .map(|name| name.chars().count())
            .or_else(|| {
                names
                    .iter()
                    .find(|name| rest.starts_with(&name[..3]))
                    .map(|_| 3)
            })
    };
    for i in from..text.len() {
        let len = match token {
            ParseToken::Year4 => digits_at(i, 1, 4),
            ParseToken::Year2
            | ParseToken::Month
            | ParseToken::Day
            | ParseToken::Hour24
            | ParseToken::Hour12
            | ParseToken::Minute
            | ParseToken::Second
            | ParseToken::WeekdayNumber => digits_at(i, 1, 2),
            ParseToken::YearSigned => signed_digits_at(i, 6),
            ParseToken::Quarter => digits_at(i, 1, 1),
            ParseToken::DayOfYear | ParseToken::Fraction => digits_at(i, 1, 3),
            ParseToken::FractionLong => digits_at(i, 1, usize::MAX),
            ParseToken::DayOrdinal => digits_at(i, 1, 2).map(|n| {
                let suffix: String = text[i + n..].iter().take(2).collect::<String>();
                if ["st", "nd", "rd", "th"].contains(&suffix.to_lowercase().as_str()) {
                    n + 2
                } else {
                    n
                }
            }),
            ParseToken::MonthName => words(&MONTH_NAMES, i),
            ParseToken::WeekdayName => words(&WEEKDAY_NAMES, i),
            ParseToken::Meridiem => {
                let rest: String = text[i..].iter().take(4).collect::<String>().to_lowercase();
                ["a.m.", "p.m.", "am", "pm", "a", "p"]
                    .iter()
                    .find(|m| rest.starts_with(*m))
                    .map(|m| m.len())
            }
            ParseToken::UnixSeconds => signed_digits_at(i, usize::MAX).map(|n| {
                let frac = if text.get(i + n) == Some(&'.') {
                    digits_at(i + n + 1, 1, 3).map_or(0, |f| f + 1)
                } else {
                    0
                };
                n + frac
            }),
            ParseToken::UnixMillis => signed_digits_at(i, usize::MAX),
            ParseToken::Offset => {
                if matches!(text.get(i), Some('Z') | Some('z')) {
                    Some(1)
                } else if matches!(text.get(i), Some('+') | Some('-')) {
                    let hh = digits_at(i + 1, 2, 2)?;
                    let colon = usize::from(text.get(i + 1 + hh) == Some(&':'));
                    digits_at(i + 1 + hh + colon, 2, 2).map(|mm| 1 + hh + colon + mm)
                } else {
                    None
                }
            }
        };
        if let Some(len) = len {
            return Some((i, i + len));
        }
    }
    None
}

/// Parts read from a date string.
#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month0: Option<i64>,
    day: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    millis: Option<i64>,
    pm: Option<bool>,
    offset_secs: Option<i64>,
    absolute_ms: Option<f64>,
    day_of_year: Option<i64>,
}

/// Moment's non-strict `moment.tz(text, format, zone)`: epoch ms, or `None` for an invalid
/// date. `now` supplies the missing leading date parts.
fn parse_with_format(text: &str, format: &ParseFormat, zone: Zone, now_ms: i64) -> Option<i64> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Parts::default();
    let mut position = 0;
    let mut parsed_any = false;
    for piece in &format.pieces {
        match piece {
            ParsePiece::Literal(literal) => {
                let lit: Vec<char> = literal.chars().collect();
                if lit.iter().all(|c| c.is_whitespace()) {
                    continue;
                }
                if let Some(at) = (position..chars.len().saturating_sub(lit.len() - 1))
                    .find(|&i| chars[i..i + lit.len()] == lit[..])
                {
                    position = at + lit.len();
                }
            }
            ParsePiece::Token(token) => {
                let Some((start, end)) = find_token(&chars, position, *token) else {
                    continue;
                };
                let found: String = chars[start..end].iter().collect();
                position = end;
                parsed_any = true;
                let int = || found.trim_start_matches('+').parse::<i64>().ok();
                match token {
                    ParseToken::Year4 | ParseToken::YearSigned => parts.year = int(),
                    ParseToken::Year2 => {
                        parts.year = int().map(|y| y + if y > 68 { 1900 } else { 2000 })
                    }
                    ParseToken::Quarter => parts.month0 = int().map(|q| (q - 1) * 3),
                    ParseToken::Month => parts.month0 = int().map(|m| m - 1),
                    ParseToken::MonthName => {
                        let lower = found.to_lowercase();
                        parts.month0 = MONTH_NAMES
                            .iter()
                            .position(|m| m.starts_with(&lower[..3.min(lower.len())]))
                            .map(|m| m as i64);
                    }
                    ParseToken::Day => parts.day = int(),
                    ParseToken::DayOrdinal => {
                        parts.day = found
                            .trim_end_matches(|c: char| c.is_alphabetic())
                            .parse()
                            .ok()
                    }
                    ParseToken::DayOfYear => parts.day_of_year = int(),
                    ParseToken::WeekdayName | ParseToken::WeekdayNumber => {}
                    ParseToken::Hour24 | ParseToken::Hour12 => parts.hour = int(),
                    ParseToken::Minute => parts.minute = int(),
                    ParseToken::Second => parts.second = int(),
                    ParseToken::Fraction | ParseToken::FractionLong => {
                        let digits: String = format!("{found:0<3}").chars().take(3).collect();
                        parts.millis = digits.parse().ok();
                    }
                    ParseToken::Meridiem => parts.pm = Some(found.to_lowercase().starts_with('p')),
                    ParseToken::UnixSeconds => {
                        parts.absolute_ms = found.parse::<f64>().ok().map(|s| s * 1000.0)
                    }
                    ParseToken::UnixMillis => parts.absolute_ms = found.parse::<f64>().ok(),
                    ParseToken::Offset => {
                        parts.offset_secs = if found.eq_ignore_ascii_case("z") {
                            Some(0)
                        } else {
                            let sign = if found.starts_with('-') { -1 } else { 1 };
                            let digits: String =
                                found.chars().filter(char::is_ascii_digit).collect();
                            let hh: i64 = digits[..2].parse().ok()?;
                            let mm: i64 = digits[2..].parse().ok()?;
                            Some(sign * (hh * 3600 + mm * 60))
                        }
                    }
                }
            }
        }
    }
    if !parsed_any {
        return None;
    }
    if let Some(ms) = parts.absolute_ms {
        return ms.is_finite().then_some(ms.trunc() as i64);
    }
    if let (Some(pm), Some(hour)) = (parts.pm, parts.hour) {
        parts.hour = Some(match (pm, hour) {
            (true, h) if h < 12 => h + 12,
            (false, 12) => 0,
            (_, h) => h,
        });
    }
    // Leading missing date parts are today's; later ones start their range.
    let today = to_local(now_ms, zone)?;
    let mut date = [parts.year, parts.month0, parts.day];
    let defaults = [
        i64::from(today.year()),
        i64::from(today.month0()),
        i64::from(today.day()),
    ];
    let mut i = 0;
    while i < 3 && date[i].is_none() && parts.day_of_year.is_none() {
        date[i] = Some(defaults[i]);
        i += 1;
    }
    let year = i32::try_from(date[0].unwrap_or(defaults[0])).ok()?;
    let (month0, day) = (date[1].unwrap_or(0), date[2].unwrap_or(1));
    let day_start = match parts.day_of_year {
        Some(doy) => {
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            if doy < 1 || doy > i64::from(start.leap_year() as u32 + 365) {
                return None;
            }
            start + Duration::days(doy - 1)
        }
        None => {
            if !(0..12).contains(&month0) {
                return None;
            }
            NaiveDate::from_ymd_opt(year, month0 as u32 + 1, u32::try_from(day).ok()?)?
        }
    };
    let (hour, minute, second, millis) = (
        parts.hour.unwrap_or(0),
        parts.minute.unwrap_or(0),
        parts.second.unwrap_or(0),
        parts.millis.unwrap_or(0),
    );
    let midnight_24 = hour == 24 && minute == 0 && second == 0 && millis == 0;
    if !(0..24).contains(&hour) && !midnight_24
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let local = day_start.and_time(NaiveTime::MIN)
        + Duration::hours(hour)
        + Duration::minutes(minute)
        + Duration::seconds(second)
        + Duration::milliseconds(millis);
    match parts.offset_secs {
        Some(offset) => Some(local.and_utc().timestamp_millis() - offset * 1000),
        None => from_local(local, zone),
    }
}

/// Whether an ISO-looking string carries its own offset (`Z`, `+01:00`).
fn has_offset(text: &str) -> bool {
    let t = text.trim();
    if DateTime::parse_from_rfc2822(t).is_ok() {
        return true;
    }
    match t.get(11..) {
        Some(rest) => rest.contains(['Z', 'z', '+', '-']),
        None => false,
    }
}

fn read_date(
    source: &DateSource,
    payload: &Value,
    zone: Zone,
    now_ms: i64,
) -> Result<i64, NodeError> {
    let Some(path) = &source.path else {
        return Ok(now_ms);
    };
    let value = path.get(payload);
    let shown = || value.as_deref().map(Value::to_string).unwrap_or_default();
    let ms = match value.as_deref() {
        None | Some(Value::Null) => {
            return Err(invalid(format!("{} {path} holds no date", source.field)))
        }
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|n| n.is_finite())
            .map(|n| n.trunc() as i64),
        Some(Value::String(text)) => match &source.format {
            Some(format) => parse_with_format(text, format, zone, now_ms),
            None => parse_date(text).and_then(|ms| {
                let ms = ms.floor() as i64;
                let digits = text.trim().bytes().all(|b| b.is_ascii_digit());
                if digits || has_offset(text) || zone == Zone::Utc {
                    Some(ms)
                } else {
                    // A wall time: read it in the zone.
                    from_local(
                        DateTime::<Utc>::from_timestamp_millis(ms)?.naive_utc(),
                        zone,
                    )
                }
            }),
        },
        Some(_) => None,
    };
    ms.filter(|ms| to_local(*ms, zone).is_some())
        .ok_or_else(|| {
            invalid(format!(
                "{} {path} is not a valid date: {}",
                source.field,
                shown()
            ))
        })
}

// ---------------------------------------------------------------------------------------------
// Operations.

fn out_of_range() -> NodeError {
    invalid("the result is out of the range of dates")
}

fn add(ms: i64, unit: Unit, amount: f64, zone: Zone) -> Result<i64, NodeError> {
    let calendar = |local: Option<NaiveDateTime>| {
        local
            .and_then(|l| from_local(l, zone))
            .ok_or_else(out_of_range)
    };
    let local = to_local(ms, zone).ok_or_else(out_of_range)?;
    match unit {
        Unit::Year => calendar(shift_months(local, abs_round(amount * 12.0))),
        Unit::Quarter => calendar(shift_months(local, abs_round(amount * 3.0))),
        Unit::Month => calendar(shift_months(local, abs_round(amount))),
        Unit::Week => calendar(shift_days(local, abs_round(amount * 7.0))),
        Unit::Day | Unit::DayOfYear | Unit::DayOfWeek => {
            calendar(shift_days(local, abs_round(amount)))
        }
        Unit::Hour | Unit::Minute | Unit::Second | Unit::Millisecond => {
            let scale = match unit {
                Unit::Hour => 3_600_000.0,
                Unit::Minute => 60_000.0,
                Unit::Second => 1000.0,
                _ => 1.0,
            };
            let moved = ms as f64 + amount * scale;
            if moved.abs() > 8.64e15 {
                return Err(out_of_range());
            }
            Ok(moved.trunc() as i64)
        }
    }
}

fn set_part(ms: i64, unit: Unit, value: f64, zone: Zone) -> Result<i64, NodeError> {
    let local = to_local(ms, zone).ok_or_else(out_of_range)?;
    let n = value.trunc() as i64;
    let date = local.date();
    let midnight = date.and_time(NaiveTime::MIN);
    let (h, m, s, milli) = (
        i64::from(local.hour()),
        i64::from(local.minute()),
        i64::from(local.second()),
        i64::from(local.nanosecond() / 1_000_000),
    );
    let clock = |h: i64, m: i64, s: i64, milli: i64| {
        Duration::try_hours(h)
            .zip(Duration::try_minutes(m))
            .zip(Duration::try_seconds(s))
            .map(|((h, m), s)| h + m + s + Duration::milliseconds(milli))
            .and_then(|d| midnight.checked_add_signed(d))
    };
    let result = match unit {
        Unit::Year => {
            let months = (n - i64::from(local.year())).checked_mul(12);
            months.and_then(|months| shift_months(local, months))
        }
        Unit::Month => shift_months(local, n - i64::from(local.month0())),
        Unit::Quarter => {
            let month0 = (n - 1) * 3 + i64::from(local.month0()) % 3;
            shift_months(local, month0 - i64::from(local.month0()))
        }
        Unit::Week => shift_days(local, (n - i64::from(locale_week(date))) * 7),
        Unit::Day => shift_days(local, n - i64::from(local.day())),
        Unit::DayOfWeek => shift_days(local, n - i64::from(local.weekday().num_days_from_sunday())),
        Unit::DayOfYear => shift_days(local, n - i64::from(local.ordinal())),
        Unit::Hour => clock(n, m, s, milli),
        Unit::Minute => clock(h, n, s, milli),
        Unit::Second => clock(h, m, n, milli),
        Unit::Millisecond => clock(h, m, s, n),
    };
    result
        .and_then(|l| from_local(l, zone))
        .ok_or_else(out_of_range)
}

fn start_of(ms: i64, unit: Unit, zone: Zone) -> Result<i64, NodeError> {
    let local = to_local(ms, zone).ok_or_else(out_of_range)?;
    let date = local.date();
    let day = |d: Option<NaiveDate>| d.map(|d| d.and_time(NaiveTime::MIN));
    let result = match unit {
        Unit::Year => day(NaiveDate::from_ymd_opt(local.year(), 1, 1)),
        Unit::Quarter => day(NaiveDate::from_ymd_opt(
            local.year(),
            local.month0() / 3 * 3 + 1,
            1,
        )),
        Unit::Month => day(NaiveDate::from_ymd_opt(local.year(), local.month(), 1)),
        Unit::Week => day(Some(
            date - Duration::days(i64::from(date.weekday().num_days_from_sunday())),
        )),
        Unit::Day | Unit::DayOfYear | Unit::DayOfWeek => day(Some(date)),
        Unit::Hour => local
            .with_minute(0)
            .and_then(|l| l.with_second(0))
            .and_then(|l| l.with_nanosecond(0)),
        Unit::Minute => local.with_second(0).and_then(|l| l.with_nanosecond(0)),
        Unit::Second => local.with_nanosecond(0),
        Unit::Millisecond => Some(local),
    };
    result
        .and_then(|l| from_local(l, zone))
        .ok_or_else(out_of_range)
}

fn get_part(local: NaiveDateTime, unit: Unit) -> i64 {
    i64::from(match unit {
        Unit::Year => return i64::from(local.year()),
        Unit::Quarter => local.month0() / 3 + 1,
        Unit::Month => local.month0(),
        Unit::Week => locale_week(local.date()),
        Unit::DayOfYear => local.ordinal(),
        Unit::Day => local.day(),
        Unit::DayOfWeek => local.weekday().num_days_from_sunday(),
        Unit::Hour => local.hour(),
        Unit::Minute => local.minute(),
        Unit::Second => local.second(),
        Unit::Millisecond => local.nanosecond() / 1_000_000,
    })
}

impl DateTimeNode {
    fn date_result(&self, ms: i64, zone: Zone) -> Value {
        match &self.result_format {
            Some(format) => Value::String(format.format(ms as f64, zone)),
            None => date_to_iso(ms as f64).map_or(Value::Null, Value::String),
        }
    }

    fn amount(&self, payload: &Value) -> Result<f64, NodeError> {
        match &self.amount {
            Some(Amount::Fixed(n)) => Ok(*n),
            Some(Amount::Rendered(template)) => {
                let text = render_required(template, "numberValue", payload)?;
                let n = string_to_number(&text);
                if n.is_finite() {
                    Ok(n)
                } else {
                    Err(invalid(format!("numberValue \"{text}\" is not a number")))
                }
            }
            None => Err(invalid("numberValue is required for this operation")),
        }
    }
}

impl Node for DateTimeNode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let zone = match &self.zone {
            ZoneSetting::Fixed(zone) => *zone,
            ZoneSetting::Rendered(template) => {
                let text = render(template, payload)?;
                parse_zone(&text).map_err(|e| invalid(format!("timezone: {e}")))?
            }
        };
        let now_ms = Utc::now().timestamp_millis();
        let ms = read_date(&self.source, payload, zone, now_ms)?;
        let local = to_local(ms, zone).ok_or_else(out_of_range)?;
        let number = |n: i64| number_to_json(n as f64).unwrap_or(Value::Null);
        let result = match self.operation {
            Operation::Add => {
                self.date_result(add(ms, self.unit, self.amount(payload)?, zone)?, zone)
            }
            Operation::Subtract => {
                self.date_result(add(ms, self.unit, -self.amount(payload)?, zone)?, zone)
            }
            Operation::SetDatePart => {
                self.date_result(set_part(ms, self.unit, self.amount(payload)?, zone)?, zone)
            }
            Operation::StartOfTime => self.date_result(start_of(ms, self.unit, zone)?, zone),
            Operation::Format => {
                let default;
                let format = match &self.result_format {
                    Some(format) => format,
                    None => {
                        default = Format::parse(if zone == Zone::Utc {
                            "YYYY-MM-DDTHH:mm:ss[Z]"
                        } else {
                            "YYYY-MM-DDTHH:mm:ssZ"
                        });
                        &default
                    }
                };
                Value::String(format.format(ms as f64, zone))
            }
            Operation::GetDatePart => number(get_part(local, self.unit)),
            Operation::DaysInMonth => {
                number(i64::from(days_in_month(local.year(), local.month0())))
            }
            Operation::UnixSeconds => number(ms.div_euclid(1000)),
            Operation::UnixMillis => number(ms),
            Operation::Diff => {
                let other = read_date(&self.diff, payload, zone, now_ms)?;
                number(ms - other)
            }
            Operation::ToArray => json!([
                local.year(),
                local.month0(),
                local.day(),
                local.hour(),
                local.minute(),
                local.second(),
                local.nanosecond() / 1_000_000
            ]),
            Operation::ToObject => json!({
                "years": local.year(),
                "months": local.month0(),
                "date": local.day(),
                "hours": local.hour(),
                "minutes": local.minute(),
                "seconds": local.second(),
                "milliseconds": local.nanosecond() / 1_000_000
            }),
        };
        if let Some(path) = &self.result {
            path.set(payload, result);
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    const T: &str = "2024-01-31T14:30:05.123Z"; // a Wednesday

    fn op(config: Value, payload: Value) -> Value {
        let mut config = config;
        config["resultPath"] = json!("working.r");
        if config.get("sourcePath").is_none() {
            config["sourcePath"] = json!("data.t");
        }
        let (port, after) = run_node("DateTimeNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        after["working"]["r"].clone()
    }

    fn at(config: Value) -> Value {
        op(config, json!({"data": {"t": T}}))
    }

    #[test]
    fn add_and_subtract() {
        let cases = [
            ("day", "1", "2024-02-01T14:30:05.123Z"),
            ("month", "1", "2024-02-29T14:30:05.123Z"),
            ("year", "1", "2025-01-31T14:30:05.123Z"),
            ("quarter", "1", "2024-04-30T14:30:05.123Z"),
            ("week", "2", "2024-02-14T14:30:05.123Z"),
            ("hour", "1.5", "2024-01-31T16:00:05.123Z"),
            ("minute", "-30", "2024-01-31T14:00:05.123Z"),
            ("second", "10", "2024-01-31T14:30:15.123Z"),
            ("millisecond", "877", "2024-01-31T14:30:06.000Z"),
            ("day", "1.5", "2024-02-02T14:30:05.123Z"),
            ("dayOfWeek", "1", "2024-02-01T14:30:05.123Z"),
        ];
        for (unit, n, want) in cases {
            let got = at(json!({"operation": "add", "unit": unit, "numberValue": n}));
            assert_eq!(got, json!(want), "add {n} {unit}");
        }
        let got = at(json!({"operation": "subtract", "unit": "month", "numberValue": "2"}));
        assert_eq!(got, json!("2023-11-30T14:30:05.123Z"));
        let got = at(json!({"operation": "subtract", "unit": "day", "numberValue": 31}));
        assert_eq!(got, json!("2023-12-31T14:30:05.123Z"));
    }

    #[test]
    fn calendar_units_keep_the_wall_clock_across_dst() {
        // 2024-03-09 12:00 in New York is 17:00 UTC; the clocks move on the 10th.
        let p = json!({"data": {"t": "2024-03-09T17:00:00.000Z"}});
        let day = op(
            json!({"operation": "add", "unit": "day", "numberValue": "1",
                "timezone": "America/New_York"}),
            p.clone(),
        );
        assert_eq!(day, json!("2024-03-10T16:00:00.000Z"));
        let hours = op(
            json!({"operation": "add", "unit": "hour", "numberValue": "24",
                "timezone": "America/New_York"}),
            p,
        );
        assert_eq!(hours, json!("2024-03-10T17:00:00.000Z"));
    }

    #[test]
    fn skipped_and_repeated_wall_times() {
        let set_hour = |t: &str, hour: &str| {
            op(
                json!({"operation": "setDatePart", "unit": "hour", "numberValue": hour,
                    "timezone": "America/New_York"}),
                json!({"data": {"t": t}}),
            )
        };
        // 02:30 on 2024-03-10 does not exist in New York: it moves forward to 03:30 EDT.
        assert_eq!(
            set_hour("2024-03-10T12:30:00.000Z", "2"),
            json!("2024-03-10T07:30:00.000Z")
        );
        // 01:30 on 2024-11-03 happens twice: the earlier (EDT) one is taken.
        assert_eq!(
            set_hour("2024-11-03T12:30:00.000Z", "1"),
            json!("2024-11-03T05:30:00.000Z")
        );
    }

    #[test]
    fn set_and_get_parts() {
        let set = |unit: &str, n: &str| {
            at(json!({"operation": "setDatePart", "unit": unit, "numberValue": n}))
        };
        assert_eq!(set("month", "1"), json!("2024-02-29T14:30:05.123Z"));
        assert_eq!(set("year", "2023"), json!("2023-01-31T14:30:05.123Z"));
        assert_eq!(set("day", "32"), json!("2024-02-01T14:30:05.123Z"));
        assert_eq!(set("hour", "0"), json!("2024-01-31T00:30:05.123Z"));
        assert_eq!(set("hour", "25"), json!("2024-02-01T01:30:05.123Z"));
        assert_eq!(set("dayOfWeek", "0"), json!("2024-01-28T14:30:05.123Z"));
        assert_eq!(set("dayOfYear", "1"), json!("2024-01-01T14:30:05.123Z"));
        assert_eq!(set("quarter", "2"), json!("2024-04-30T14:30:05.123Z"));
        assert_eq!(set("week", "1"), json!("2024-01-03T14:30:05.123Z"));
        assert_eq!(set("millisecond", "0"), json!("2024-01-31T14:30:05.000Z"));
        let get = |unit: &str| at(json!({"operation": "getDatePart", "unit": unit}));
        assert_eq!(get("year"), json!(2024));
        assert_eq!(get("quarter"), json!(1));
        assert_eq!(get("month"), json!(0));
        assert_eq!(get("week"), json!(5));
        assert_eq!(get("dayOfYear"), json!(31));
        assert_eq!(get("day"), json!(31));
        assert_eq!(get("dayOfWeek"), json!(3));
        assert_eq!(get("hour"), json!(14));
        assert_eq!(get("minute"), json!(30));
        assert_eq!(get("second"), json!(5));
        assert_eq!(get("millisecond"), json!(123));
        let tokyo = at(
            json!({"operation": "getDatePart", "unit": "day", "timezone": "Asia/Tokyo",
            "resultFormatString": "ignored"}),
        );
        assert_eq!(tokyo, json!(31));
        let tokyo_hour =
            at(json!({"operation": "getDatePart", "unit": "hour", "timezone": "Asia/Tokyo"}));
        assert_eq!(tokyo_hour, json!(23));
    }

    #[test]
    fn start_of_time() {
        let start = |unit: &str| at(json!({"operation": "startOfTime", "unit": unit}));
        assert_eq!(start("year"), json!("2024-01-01T00:00:00.000Z"));
        assert_eq!(start("quarter"), json!("2024-01-01T00:00:00.000Z"));
        assert_eq!(start("month"), json!("2024-01-01T00:00:00.000Z"));
        assert_eq!(start("week"), json!("2024-01-28T00:00:00.000Z"));
        assert_eq!(start("day"), json!("2024-01-31T00:00:00.000Z"));
        assert_eq!(start("hour"), json!("2024-01-31T14:00:00.000Z"));
        assert_eq!(start("minute"), json!("2024-01-31T14:30:00.000Z"));
        assert_eq!(start("second"), json!("2024-01-31T14:30:05.000Z"));
        let chicago = at(json!({"operation": "startOfTime", "unit": "day",
            "timezone": "America/Chicago", "resultFormatString": "YYYY-MM-DD HH:mm Z"}));
        assert_eq!(chicago, json!("2024-01-31 00:00 -06:00"));
        let chicago_iso = at(json!({"operation": "startOfTime", "unit": "day",
            "timezone": "America/Chicago"}));
        assert_eq!(chicago_iso, json!("2024-01-31T06:00:00.000Z"));
    }

    #[test]
    fn format_and_numbers() {
        assert_eq!(
            at(json!({"operation": "format", "resultFormatString": "YYYY-MM-DD dddd"})),
            json!("2024-01-31 Wednesday")
        );
        assert_eq!(
            at(json!({"operation": "format"})),
            json!("2024-01-31T14:30:05Z")
        );
        assert_eq!(
            at(json!({"operation": "format", "timezone": "Europe/Berlin"})),
            json!("2024-01-31T15:30:05+01:00")
        );
        assert_eq!(
            at(
                json!({"operation": "add", "unit": "day", "numberValue": "1",
                "resultFormatString": "MMM D"})
            ),
            json!("Feb 1")
        );
        assert_eq!(at(json!({"operation": "daysInMonth"})), json!(31));
        assert_eq!(
            op(
                json!({"operation": "daysInMonth"}),
                json!({"data": {"t": "2023-02-10"}})
            ),
            json!(28)
        );
        assert_eq!(
            at(json!({"operation": "unixTimestampSeconds"})),
            json!(1706711405)
        );
        assert_eq!(
            at(json!({"operation": "unixTimestampMilliseconds"})),
            json!(1706711405123_i64)
        );
        assert_eq!(
            at(json!({"operation": "toArray"})),
            json!([2024, 0, 31, 14, 30, 5, 123])
        );
        assert_eq!(
            at(json!({"operation": "toObject", "timezone": "Asia/Tokyo"})),
            json!({"years": 2024, "months": 0, "date": 31, "hours": 23, "minutes": 30,
                "seconds": 5, "milliseconds": 123})
        );
    }

    #[test]
    fn diff_is_in_milliseconds() {
        let p = json!({"data": {"t": T, "u": "2024-01-31T14:00:05.123Z"}});
        assert_eq!(
            op(
                json!({"operation": "diff", "diffDataPath": "data.u", "unit": "hour"}),
                p
            ),
            json!(1_800_000)
        );
        let p = json!({"data": {"t": "31/01/2024 15:00", "u": 1706709600000_i64}});
        let got = op(
            json!({"operation": "diff", "diffDataPath": "data.u",
                "sourceFormatString": "DD/MM/YYYY HH:mm"}),
            p,
        );
        assert_eq!(got, json!(3_600_000));
        // Without a diff path the other date is now: the source is long before it.
        let got = at(json!({"operation": "diff"}));
        assert!(got.as_i64().unwrap() < 0);
    }

    #[test]
    fn reading_dates() {
        let read = |t: Value, format: &str, zone: &str| {
            op(
                json!({"operation": "unixTimestampMilliseconds", "sourceFormatString": format,
                    "timezone": zone}),
                json!({"data": {"t": t}}),
            )
        };
        assert_eq!(
            read(json!(1706711405123_i64), "", ""),
            json!(1706711405123_i64)
        );
        assert_eq!(
            read(json!("1706711405123"), "", ""),
            json!(1706711405123_i64)
        );
        assert_eq!(read(json!("2024-01-31"), "", ""), json!(1706659200000_i64));
        // A wall time without an offset is read in the zone.
        assert_eq!(
            read(json!("2024-01-31T01:00:00"), "", "Asia/Tokyo"),
            json!(1706630400000_i64)
        );
        assert_eq!(
            read(json!("2024-01-31T01:00:00Z"), "", "Asia/Tokyo"),
            json!(1706662800000_i64)
        );
        assert_eq!(
            read(json!("01/31/2024 2:05 pm"), "MM/DD/YYYY h:mm a", ""),
            json!(1706709900000_i64)
        );
        assert_eq!(
            read(json!("31 January 24, 12:00 AM"), "D MMMM YY, hh:mm A", ""),
            json!(1706659200000_i64)
        );
        assert_eq!(
            read(
                json!("2024-01-31 10:00 +0200"),
                "YYYY-MM-DD HH:mm ZZ",
                "Asia/Tokyo"
            ),
            json!(1706688000000_i64)
        );
        assert_eq!(read(json!("1706711405"), "X", ""), json!(1706711405000_i64));
        assert_eq!(
            read(json!("Jan 5th 2024"), "MMM Do YYYY", ""),
            json!(1704412800000_i64)
        );
        assert_eq!(
            read(json!("2024.031"), "YYYY.DDDD", ""),
            json!(1706659200000_i64)
        );
        // Leading missing parts are today's: only the time is checked here.
        let time_only = op(
            json!({"operation": "format", "sourceFormatString": "HH:mm",
                "resultFormatString": "HH:mm:ss"}),
            json!({"data": {"t": "07:45"}}),
        );
        assert_eq!(time_only, json!("07:45:00"));
        for (t, format) in [
            (json!("13/01/2024"), "MM/DD/YYYY"),
            (json!("2024-02-30"), "YYYY-MM-DD"),
            (json!("hello"), "YYYY"),
            (json!("hello"), ""),
            (json!(true), ""),
            (json!({"a": 1}), ""),
        ] {
            let e = run_node(
                "DateTimeNode",
                &json!({"operation": "format", "sourcePath": "data.t",
                    "sourceFormatString": format}),
                json!({"data": {"t": t}}),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::ValidationError, "{t} {format}");
            assert!(e.message.contains("data.t"), "{e}");
        }
    }

    #[test]
    fn failures() {
        let e = run_node(
            "DateTimeNode",
            &json!({"operation": "format", "sourcePath": "data.none"}),
            json!({"data": {}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        let config = json!({"operation": "add", "unit": "day", "numberValue": "{{data.n}}",
            "sourcePath": "data.t", "timezone": "{{data.tz}}", "resultPath": "r"});
        let e = run_node("DateTimeNode", &config, json!({"data": {"t": T}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = run_node("DateTimeNode", &config, json!({"data": {"t": T, "n": "x"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        let e = run_node(
            "DateTimeNode",
            &config,
            json!({"data": {"t": T, "n": 1, "tz": "Mars/Base"}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        let (_, after) = run_node(
            "DateTimeNode",
            &config,
            json!({"data": {"t": T, "n": 2, "tz": "UTC"}}),
        )
        .unwrap();
        assert_eq!(after["r"], json!("2024-02-02T14:30:05.123Z"));
        let e = run_node(
            "DateTimeNode",
            &json!({"operation": "add", "unit": "year", "numberValue": "1000000",
                "sourcePath": "data.t"}),
            json!({"data": {"t": T}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
    }

    #[test]
    fn now_and_no_result_path() {
        let (_, after) = run_node(
            "DateTimeNode",
            &json!({"operation": "getDatePart", "unit": "year", "resultPath": "y"}),
            json!({}),
        )
        .unwrap();
        assert!(after["y"].as_i64().unwrap() >= 2024);
        let (port, after) = run_node(
            "DateTimeNode",
            &json!({"operation": "toArray"}),
            json!({"a": 1}),
        )
        .unwrap();
        assert_eq!((port, after), (0, json!({"a": 1})));
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(
            compile_node("DateTimeNode", &json!({"operation": "format"}))
                .unwrap()
                .ports,
            1
        );
        assert!(compile_node(
            "DateTimeNode",
            &json!({"operation": "add", "numberValue": 1, "unit": "days", "x": 1})
        )
        .is_ok());
        for bad in [
            json!({}),
            json!({"operation": "add", "numberValue": ""}),
            json!({"operation": "setDatePart"}),
            json!({"operation": "add", "numberValue": "abc"}),
            json!({"operation": "shift"}),
            json!({"operation": "format", "unit": "fortnight"}),
            json!({"operation": "format", "timezone": "Nowhere/Town"}),
            json!({"operation": "format", "sourcePath": "a..b"}),
            json!({"operation": "format", "resultPath": 3}),
            json!({"operation": "add", "numberValue": [1]}),
            json!({"operation": "add", "numberValue": "{{#if}}"}),
        ] {
            let e = compile_node("DateTimeNode", &bad).err().unwrap();
            assert!(e.0.contains("(DateTimeNode)"), "{bad}: {e}");
        }
    }
}
