//! `TimeRangeNode`: whether a time falls inside a daily range, in a time zone, on chosen days
//! of the week. Port 1 when it does, port 0 when it does not (or the day is excluded).
//!
//! * The time is the value at `sourcePath`, or the payload's `time` when `sourcePath` is
//!   blank. A time is an ISO 8601 string, epoch milliseconds (a number or a string of digits),
//!   or an RFC 2822 string, as the template helpers read dates.
//! * The time is converted to `timeZoneTemplate` (an IANA name, `UTC` when it renders blank),
//!   then its time of day is compared with `startTimeTemplate` and `endTimeTemplate`
//!   (`HH:MM`, 24 h; `HH:MM:SS` and `24:00` are accepted too). The start is inclusive and the
//!   end exclusive; a blank start or end is `00:00`.
//! * `daysType: "array"` (the default) reads `days`, seven booleans Sunday…Saturday (all true
//!   when absent); `daysType: "path"` reads the array at `daysPath`. The day tested is the
//!   day of the time in the zone.
//! * `branchPath`, when given, receives `true` or `false`.
//!
//! Decisions:
//! * Start equal to end (including both blank) is the whole day; a start later than the end
//!   is a range over midnight (`22:00`–`06:00` holds 23:30 and 05:59), and the day tested is
//!   still the day of the time itself.
//! * The array at `daysPath` may hold seven booleans (Sunday first) or day numbers `0`–`6`
//!   (numbers or numeric strings): the sources disagree (WORKFLOW-SPEC §9 question 11), so
//!   both are read. Nothing (`undefined`/`null`) at `daysPath` filters no day; anything else
//!   that is not an array halts with `ValidationError`.
//! * Templates without mustaches are checked when the flow is compiled (a bad time or an
//!   unknown zone is a compile error); rendered values that are not times or zones halt the
//!   run with `ValidationError`. A source that holds nothing or is not a date halts with
//!   `ValidationError` too.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, render, template};
use crate::path::PayloadPath;
use crate::template::moment::{parse_date, Zone};
use crate::template::Template;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;

const DAY_MS: u32 = 86_400_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    start_time_template: Option<String>,
    end_time_template: Option<String>,
    time_zone_template: Option<String>,
    days_type: Option<String>,
    days: Option<Vec<bool>>,
    days_path: Option<String>,
    source_path: Option<String>,
    branch_path: Option<String>,
}

/// A value known when the flow is compiled, or a template rendered at each run.
enum Setting<T> {
    Fixed(T),
    Rendered(Template),
}

enum Days {
    Fixed([bool; 7]),
    Path(PayloadPath),
}

pub struct TimeRange {
    start: Setting<u32>,
    end: Setting<u32>,
    zone: Setting<Zone>,
    days: Days,
    source: Option<PayloadPath>,
    branch: Option<PayloadPath>,
}

/// Milliseconds into the day of `HH:MM` (or `H:MM`, `HH:MM:SS`, `24:00`); blank is midnight.
fn parse_time_of_day(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let bad = || format!("\"{t}\" is not a time of day (HH:MM, 24 h)");
    let parts: Vec<&str> = t.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let number = |s: &str, max: u32| -> Result<u32, String> {
        if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = s.parse().map_err(|_| bad())?;
        if n > max {
            return Err(bad());
        }
        Ok(n)
    };
    let hours = number(parts[0], 24)?;
    let minutes = number(parts[1], 59)?;
    let seconds = match parts.get(2) {
        Some(s) => number(s, 59)?,
        None => 0,
    };
    if hours == 24 && (minutes, seconds) != (0, 0) {
        return Err(bad());
    }
    Ok(((hours * 60 + minutes) * 60 + seconds) * 1000)
}

fn parse_zone(text: &str) -> Result<Zone, String> {
    if text.trim().is_empty() {
        Ok(Zone::Utc)
    } else {
        Zone::parse(text)
    }
}

fn setting<T>(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Setting<T>, CompileError> {
    let compiled = template(spec, field, text.unwrap_or(""))?;
    match compiled.static_text() {
        Some(text) => parse(text)
            .map(Setting::Fixed)
            .map_err(|e| spec.error(format!("{field}: {e}"))),
        None => Ok(Setting::Rendered(compiled)),
    }
}

fn resolve<T: Copy>(
    setting: &Setting<T>,
    field: &str,
    payload: &Value,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, NodeError> {
    match setting {
        Setting::Fixed(value) => Ok(*value),
        Setting::Rendered(template) => {
            let text = render(template, payload)?;
            parse(&text)
                .map_err(|e| NodeError::new(ErrorName::ValidationError, format!("{field}: {e}")))
        }
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let days = match config.days_type.as_deref().unwrap_or("array") {
        "array" | "" => match config.days {
            None => Days::Fixed([true; 7]),
            Some(days) => Days::Fixed(days.try_into().map_err(|days: Vec<bool>| {
                spec.error(format!(
                    "days must hold 7 booleans (Sunday…Saturday), not {}",
                    days.len()
                ))
            })?),
        },
        "path" => match optional_path(spec, "daysPath", config.days_path.as_deref())? {
            Some(path) => Days::Path(path),
            None => return Err(spec.error("daysPath is required when daysType is path")),
        },
        other => return Err(spec.error(format!("daysType must be array or path, not \"{other}\""))),
    };
    let node = TimeRange {
        start: setting(
            spec,
            "startTimeTemplate",
            config.start_time_template.as_deref(),
            parse_time_of_day,
        )?,
        end: setting(
            spec,
            "endTimeTemplate",
            config.end_time_template.as_deref(),
            parse_time_of_day,
        )?,
        zone: setting(
            spec,
            "timeZoneTemplate",
            config.time_zone_template.as_deref(),
            parse_zone,
        )?,
        days,
        source: optional_path(spec, "sourcePath", config.source_path.as_deref())?,
        branch: optional_path(spec, "branchPath", config.branch_path.as_deref())?,
    };
    Ok(CompiledNodeType::new(node, 2))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// Reads a time: epoch milliseconds, or a date string.
fn read_time(value: Option<&Value>, what: &str) -> Result<i64, NodeError> {
    let ms = match value {
        None | Some(Value::Null) => return Err(invalid(format!("{what} holds no time"))),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => parse_date(s),
        Some(_) => None,
    };
    match ms {
        Some(ms) if ms.is_finite() && ms.abs() <= 8.64e15 => Ok(ms.floor() as i64),
        _ => Err(invalid(format!(
            "{what} is not a date: {}",
            value.map(Value::to_string).unwrap_or_default()
        ))),
    }
}

/// The days allowed, from the array at `daysPath`.
fn days_from(value: Option<&Value>, path: &PayloadPath) -> Result<[bool; 7], NodeError> {
    let items = match value {
        None | Some(Value::Null) => return Ok([true; 7]),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid(format!(
                "daysPath {path} must hold an array of days, not {other}"
            )))
        }
    };
    if items.len() == 7 && items.iter().all(Value::is_boolean) {
        let mut days = [false; 7];
        for (day, item) in days.iter_mut().zip(items) {
            *day = item.as_bool() == Some(true);
        }
        return Ok(days);
    }
    let mut days = [false; 7];
    for item in items {
        let n = match item {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.fract() == 0.0 && (0.0..7.0).contains(&n) => days[n as usize] = true,
            _ => {
                return Err(invalid(format!(
                    "daysPath {path}: {item} is not a day number 0–6 or one of 7 booleans"
                )))
            }
        }
    }
    Ok(days)
}

/// Whether a time of day is in `[start, end)`, over midnight when `start > end`, and all day
/// when they are equal.
fn in_range(t: u32, start: u32, end: u32) -> bool {
    match start.cmp(&end) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Less => start <= t && t < end,
        std::cmp::Ordering::Greater => t >= start || t < end,
    }
}

impl Node for TimeRange {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let start = resolve(&self.start, "startTimeTemplate", payload, parse_time_of_day)?;
        let end = resolve(&self.end, "endTimeTemplate", payload, parse_time_of_day)?;
        let zone = resolve(&self.zone, "timeZoneTemplate", payload, parse_zone)?;
        let ms = match &self.source {
            Some(path) => read_time(path.get(payload).as_deref(), &format!("sourcePath {path}"))?,
            None => read_time(payload.get("time"), "the payload's time")?,
        };
        let days = match &self.days {
            Days::Fixed(days) => *days,
            Days::Path(path) => days_from(path.get(payload).as_deref(), path)?,
        };
        let utc = DateTime::<Utc>::from_timestamp_millis(ms)
            .ok_or_else(|| invalid(format!("{ms} is out of the range of dates")))?;
        let (weekday, time_of_day) = match zone {
            Zone::Utc => (utc.weekday(), utc.time()),
            Zone::Named(tz) => {
                let local = utc.with_timezone(&tz);
                (local.weekday(), local.time())
            }
        };
        let t = time_of_day.num_seconds_from_midnight() * 1000
            + (time_of_day.nanosecond() / 1_000_000).min(999);
        debug_assert!(t < DAY_MS);
        let inside = days[weekday.num_days_from_sunday() as usize] && in_range(t, start, end);
        if let Some(path) = &self.branch {
            path.set(payload, Value::Bool(inside));
        }
        Ok(Outcome::Port(usize::from(inside)))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn port(config: Value, payload: Value) -> usize {
        run_node("TimeRangeNode", &config, payload).unwrap().0
    }

    // 2024-01-15 is a Monday.
    const MONDAY_NOON_UTC: &str = "2024-01-15T12:00:00.000Z";

    #[test]
    fn compares_the_payload_time_in_the_zone() {
        let config = json!({"startTimeTemplate": "08:00", "endTimeTemplate": "18:00",
            "timeZoneTemplate": "Europe/Berlin", "branchPath": "working.open"});
        // 12:00 UTC is 13:00 in Berlin.
        let (p, after) =
            run_node("TimeRangeNode", &config, json!({"time": MONDAY_NOON_UTC})).unwrap();
        assert_eq!(p, 1);
        assert_eq!(after["working"]["open"], true);
        // 17:30 UTC is 18:30 in Berlin: outside.
        let (p, after) = run_node(
            "TimeRangeNode",
            &config,
            json!({"time": "2024-01-15T17:30:00Z"}),
        )
        .unwrap();
        assert_eq!(p, 0);
        assert_eq!(after["working"]["open"], false);
        // In New York the same instant is 07:00: outside.
        let ny = json!({"startTimeTemplate": "08:00", "endTimeTemplate": "18:00",
            "timeZoneTemplate": "America/New_York"});
        assert_eq!(port(ny, json!({"time": MONDAY_NOON_UTC})), 0);
    }

    #[test]
    fn start_is_inclusive_and_end_exclusive() {
        let config = json!({"startTimeTemplate": "01:00", "endTimeTemplate": "23:00",
            "timeZoneTemplate": "UTC"});
        let at = |t: &str| port(config.clone(), json!({ "time": t }));
        assert_eq!(at("2024-01-15T01:00:00Z"), 1);
        assert_eq!(at("2024-01-15T00:59:59.999Z"), 0);
        assert_eq!(at("2024-01-15T22:59:59.999Z"), 1);
        assert_eq!(at("2024-01-15T23:00:00Z"), 0);
    }

    #[test]
    fn blank_times_cover_the_whole_day_and_ranges_wrap_midnight() {
        let whole = json!({"startTimeTemplate": "", "endTimeTemplate": "",
            "timeZoneTemplate": ""});
        assert_eq!(
            port(whole.clone(), json!({"time": "2024-01-15T00:00:00Z"})),
            1
        );
        assert_eq!(port(whole, json!({"time": "2024-01-15T23:59:59Z"})), 1);
        let night = json!({"startTimeTemplate": "22:00", "endTimeTemplate": "06:00"});
        let at = |t: &str| port(night.clone(), json!({ "time": t }));
        assert_eq!(at("2024-01-15T23:30:00Z"), 1);
        assert_eq!(at("2024-01-15T05:59:00Z"), 1);
        assert_eq!(at("2024-01-15T06:00:00Z"), 0);
        assert_eq!(at("2024-01-15T12:00:00Z"), 0);
        let to_midnight = json!({"startTimeTemplate": "20:00", "endTimeTemplate": "24:00"});
        assert_eq!(
            port(to_midnight, json!({"time": "2024-01-15T23:59:00Z"})),
            1
        );
    }

    #[test]
    fn days_filter() {
        let weekdays = json!([false, true, true, true, true, true, false]);
        let config = json!({"days": weekdays, "daysType": "array"});
        assert_eq!(port(config.clone(), json!({"time": MONDAY_NOON_UTC})), 1);
        // Sunday.
        assert_eq!(port(config, json!({"time": "2024-01-14T12:00:00Z"})), 0);
        // The day is the day in the zone: Monday 02:00 UTC is Sunday evening in Chicago.
        let chicago = json!({"days": weekdays, "timeZoneTemplate": "America/Chicago"});
        assert_eq!(port(chicago, json!({"time": "2024-01-15T02:00:00Z"})), 0);
        let by_path = json!({"daysType": "path", "daysPath": "data.days"});
        let run = |days: Value| {
            run_node(
                "TimeRangeNode",
                &by_path,
                json!({"time": MONDAY_NOON_UTC, "data": {"days": days}}),
            )
        };
        assert_eq!(run(json!([1, 2])).unwrap().0, 1);
        assert_eq!(run(json!(["0", "6"])).unwrap().0, 0);
        assert_eq!(run(json!(weekdays)).unwrap().0, 1);
        assert_eq!(run(json!([])).unwrap().0, 0);
        assert_eq!(run(Value::Null).unwrap().0, 1);
        assert_eq!(
            run(json!("monday")).unwrap_err().name,
            ErrorName::ValidationError
        );
        assert_eq!(
            run(json!([7])).unwrap_err().name,
            ErrorName::ValidationError
        );
    }

    #[test]
    fn source_path_and_templates() {
        let config = json!({"sourcePath": "data.at", "startTimeTemplate": "{{data.from}}",
            "endTimeTemplate": "{{data.to}}", "timeZoneTemplate": "{{data.tz}}"});
        let payload = |at: Value| {
            json!({"time": MONDAY_NOON_UTC, "data": {"at": at, "from": "09:30", "to": "10:00",
                "tz": "Asia/Tokyo"}})
        };
        // 00:45 UTC is 09:45 in Tokyo.
        assert_eq!(
            port(config.clone(), payload(json!("2024-01-15T00:45:00Z"))),
            1
        );
        assert_eq!(port(config.clone(), payload(json!(1705279500000_i64))), 1);
        assert_eq!(port(config.clone(), payload(json!("1705279500000"))), 1);
        assert_eq!(
            port(config.clone(), payload(json!("2024-01-15T01:00:00Z"))),
            0
        );
        for bad in [Value::Null, json!("soon"), json!({"a": 1})] {
            let mut p = payload(bad.clone());
            if bad.is_null() {
                p["data"].as_object_mut().unwrap().remove("at");
            }
            let e = run_node("TimeRangeNode", &config, p).unwrap_err();
            assert_eq!(e.name, ErrorName::ValidationError, "{bad}");
            assert!(e.message.contains("data.at"), "{e}");
        }
        let mut p = payload(json!("2024-01-15T00:45:00Z"));
        p["data"]["tz"] = json!("Mars/Olympus");
        let e = run_node("TimeRangeNode", &config, p).unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        let mut p = payload(json!("2024-01-15T00:45:00Z"));
        p["data"]["from"] = json!("9.30");
        let e = run_node("TimeRangeNode", &config, p).unwrap_err();
        assert!(e.message.contains("startTimeTemplate"), "{e}");
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(compile_node("TimeRangeNode", &json!({})).unwrap().ports, 2);
        assert!(compile_node(
            "TimeRangeNode",
            &json!({"startTimeTemplate": "0:00", "endTimeTemplate": "23:59:59", "extra": 1})
        )
        .is_ok());
        for bad in [
            json!({"startTimeTemplate": "25:00"}),
            json!({"endTimeTemplate": "8am"}),
            json!({"endTimeTemplate": "24:30"}),
            json!({"timeZoneTemplate": "Nowhere/Town"}),
            json!({"timeZoneTemplate": 5}),
            json!({"days": [true, true]}),
            json!({"days": "all"}),
            json!({"daysType": "path"}),
            json!({"daysType": "list"}),
            json!({"sourcePath": "{{time}}"}),
            json!({"startTimeTemplate": "{{#if}}"}),
        ] {
            let e = compile_node("TimeRangeNode", &bad).err().unwrap();
            assert!(e.0.contains("(TimeRangeNode)"), "{bad}: {e}");
        }
    }
}
