//! `timer`: fires the flow's live version (its default version, else develop) on a schedule.
//!
//! Config, one of:
//! * `seconds` — an interval, fractional allowed, from 1 s to one year (Losant's cloud range).
//!   The first firing is one interval after the trigger is armed; on several nodes sharing a
//!   queue, ticks fall on whole multiples of the interval since the Unix epoch instead, so
//!   every node computes the same ones (see `hub::run_timer`).
//! * `cron` (+ `tz`, an IANA zone, UTC when absent or blank) — 5 fields, or 6 with leading
//!   seconds; lists, ranges, steps and month/weekday names; the shortcuts `@yearly`,
//!   `@monthly`, `@weekly`, `@daily`, `@hourly`. Losant refuses `L`, `W`, `#`, `?`, `@reboot`
//!   and `@annually`, and so does flowd (at save time, naming the trigger). When both the
//!   day of month and the day of week are restricted, either matching fires (classic cron).
//!
//! `meta.timerTypeSelect` (`seconds`, `cronWeekly`, `cron`) is the editor's; the config decides.
//! `data` is `{}` and the payload's `time` is the scheduled fire time.
//!
//! Firings missed while the flow was disabled, the server down, or the machine stalled are not
//! made up: after a gap the timer goes on from the next tick after now (no catch-up burst).

use crate::error::CompileError;
use crate::triggers::TriggerSpec;
use chrono::{DateTime, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Longest interval (Losant's cloud limit: one year).
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Shortest interval (Losant's cloud limit).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    seconds: Option<Value>,
    cron: Option<String>,
    tz: Option<String>,
}

/// When a timer fires.
#[derive(Clone, Debug)]
pub enum Schedule {
    Every(Duration),
    Cron {
        cron: Box<croner::Cron>,
        zone: chrono_tz::Tz,
    },
}

pub fn compile(spec: &TriggerSpec<'_>) -> Result<Schedule, CompileError> {
    let config: Config = spec.config()?;
    let cron = config
        .cron
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match (cron, &config.seconds) {
        (Some(cron), _) => {
            let zone = match config
                .tz
                .as_deref()
                .map(str::trim)
                .filter(|z| !z.is_empty())
            {
                None => chrono_tz::UTC,
                Some(name) => name
                    .parse::<chrono_tz::Tz>()
                    .map_err(|_| spec.error(format!("tz: \"{name}\" is not an IANA time zone")))?,
            };
            Ok(Schedule::Cron {
                cron: Box::new(parse_cron(cron).map_err(|e| spec.error(format!("cron: {e}")))?),
                zone,
            })
        }
        (None, Some(seconds)) => {
            let value = match seconds {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|v| v.is_finite())
            .ok_or_else(|| spec.error(format!("seconds must be a number, not {seconds}")))?;
            if value < MIN_INTERVAL.as_secs_f64() || value > MAX_INTERVAL.as_secs_f64() {
                return Err(spec.error(format!(
                    "seconds must be from 1 to {} (one year), not {value}",
                    MAX_INTERVAL.as_secs()
                )));
            }
            Ok(Schedule::Every(Duration::from_secs_f64(value)))
        }
        (None, None) => Err(spec.error("a timer needs config.seconds or config.cron")),
    }
}

/// The cron shortcuts Losant accepts.
const SHORTCUTS: &[&str] = &["@yearly", "@monthly", "@weekly", "@daily", "@hourly"];
/// Month and weekday names, which may contain letters that are operators elsewhere (`W`, `L`).
const NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
    "MON", "TUE", "WED", "THU", "FRI", "SAT",
];

/// Parses a cron expression with Losant's rules (see the module docs).
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    if text.starts_with('@') {
        if !SHORTCUTS.contains(&text.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "\"{text}\" is not a supported shortcut (use {})",
                SHORTCUTS.join(", ")
            ));
        }
    } else {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !(5..=6).contains(&fields.len()) {
            return Err(format!(
                "\"{text}\" has {} fields; a cron expression has 5, or 6 with leading seconds",
                fields.len()
            ));
        }
        for field in &fields {
            let upper = field.to_ascii_uppercase();
            let operators = NAMES
                .iter()
                .fold(upper, |rest, name| rest.replace(name, ""));
            if let Some(c) = operators
                .chars()
                .find(|c| matches!(c, 'L' | 'W' | '#' | '?'))
            {
                return Err(format!(
                    "\"{field}\": the {c} operator is not supported (Losant's cron has no L, W, # or ?)"
                ));
            }
        }
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("\"{text}\": {e}"))
}

impl Schedule {
    /// The first firing strictly after `after`; `None` when the expression never fires again.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        armed_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(interval) => {
                // Ticks sit at armed_at + n × interval, so delays do not accumulate (no drift);
                // the first tick after `after` skips any that were missed.
                let step = interval.as_nanos().max(1);
                let elapsed = (after - armed_at).num_nanoseconds().unwrap_or(0).max(0) as u128;
                let ticks = elapsed / step + 1;
                let offset =
                    chrono::Duration::nanoseconds((ticks * step).min(i64::MAX as u128) as i64);
                Some(armed_at + offset)
            }
            Schedule::Cron { cron, zone } => {
                // croner keeps the start's fraction of a second; ticks fall on whole seconds.
                let whole = after.with_nanosecond(0).unwrap_or(after);
                cron.find_next_occurrence(&whole.with_timezone(zone), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        Schedule::Cron {
            cron: Box::new(parse_cron(expr).unwrap()),
            zone: tz.parse().unwrap(),
        }
    }

    /// The next `n` firings after `start`.
    fn firings(schedule: &Schedule, start: &str, n: usize) -> Vec<String> {
        let mut t = at(start);
        let mut out = Vec::new();
        for _ in 0..n {
            t = schedule.next_after(t, at(start)).unwrap();
            out.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        out
    }

    #[test]
    fn five_and_six_field_expressions_against_a_fixed_clock() {
        assert_eq!(
            firings(&cron("*/15 * * * *", "UTC"), "2026-03-01T10:07:00Z", 3),
            [
                "2026-03-01T10:15:00Z",
                "2026-03-01T10:30:00Z",
                "2026-03-01T10:45:00Z"
            ]
        );
        assert_eq!(
            firings(&cron("30 */20 * * * *", "UTC"), "2026-03-01T10:07:00Z", 2),
            ["2026-03-01T10:20:30Z", "2026-03-01T10:40:30Z"]
        );
        // Weekdays by name, 09:00 in New York: Friday then Monday.
        assert_eq!(
            firings(
                &cron("0 9 * * MON-FRI", "America/New_York"),
                "2026-03-06T15:00:00Z",
                2
            ),
            ["2026-03-09T13:00:00Z", "2026-03-10T13:00:00Z"]
        );
        // Across the start of daylight saving time (8 March 2026 in New York) the wall-clock
        // time holds: 14:00 UTC before, 13:00 UTC after.
        assert_eq!(
            firings(
                &cron("0 9 * * *", "America/New_York"),
                "2026-03-07T12:00:00Z",
                2
            ),
            ["2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z"]
        );
        assert_eq!(
            firings(&cron("@daily", "UTC"), "2026-03-01T10:07:00Z", 1),
            ["2026-03-02T00:00:00Z"]
        );
        assert_eq!(
            firings(&cron("@hourly", "Asia/Kolkata"), "2026-03-01T10:07:00Z", 1),
            ["2026-03-01T10:30:00Z"]
        );
        // Day of month or day of week: the 13th, and every Friday.
        assert_eq!(
            firings(&cron("0 0 13 * FRI", "UTC"), "2026-02-01T00:00:00Z", 3),
            [
                "2026-02-06T00:00:00Z",
                "2026-02-13T00:00:00Z",
                "2026-02-20T00:00:00Z"
            ]
        );
    }

    #[test]
    fn unsupported_expressions_are_refused() {
        for (expr, needle) in [
            ("* * * *", "4 fields"),
            ("0 0 0 * * * 2030", "7 fields"),
            ("0 0 L * *", "L operator"),
            ("0 0 15W * *", "W operator"),
            ("0 0 * * 5#3", "# operator"),
            ("0 0 ? * MON", "? operator"),
            ("@reboot", "not a supported shortcut"),
            ("@annually", "not a supported shortcut"),
            ("61 * * * *", "61"),
        ] {
            let error = parse_cron(expr).unwrap_err();
            assert!(error.contains(needle), "{expr}: {error}");
        }
        // Names that contain the letters of operators are fine.
        assert!(parse_cron("0 0 * JUL WED").is_ok());
    }

    #[test]
    fn intervals_tick_from_when_armed_without_drift_or_catch_up() {
        let every = Schedule::Every(Duration::from_millis(1500));
        let armed = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let first = every.next_after(armed, armed).unwrap();
        assert_eq!((first - armed).num_milliseconds(), 1500);
        // Woken late, 100 ms after the 2nd tick: the next is the 3rd, on the grid.
        let late = armed + chrono::Duration::milliseconds(3100);
        assert_eq!(
            (every.next_after(late, armed).unwrap() - armed).num_milliseconds(),
            4500
        );
        // Ten minutes asleep: no burst, just the next tick after now.
        let gap = armed + chrono::Duration::minutes(10);
        let next = every.next_after(gap, armed).unwrap();
        assert!(next > gap && (next - gap).num_milliseconds() <= 1500);
    }
}
