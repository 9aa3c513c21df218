//! `ThrottleNode`: lets at most `ratePerMinute` runs through per bucket (`throttleIdTemplate`;
//! blank = one bucket for the flow), remembering the last run let through as node state, so the
//! limit holds across runs and restarts. Port 0: throttled; port 1: allowed.
//!
//! A run is allowed when at least `60000 / ratePerMinute` ms have passed since the last allowed
//! run of its bucket (no bursts). `timeSincePath` (legacy) receives the ms since the last
//! allowed run, absent on the first.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{continue_after_storage, optional_path, render, template, AfterStorage};
use crate::path::PayloadPath;
use crate::template::Template;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    rate_per_minute: Value,
    throttle_id_template: Option<String>,
    time_since_path: Option<String>,
}

pub struct Throttle {
    node_id: String,
    interval_ms: f64,
    id: Option<Template>,
    time_since: TimeSincePath,
}

/// Where the ms since the bucket's last allowed run go, if anywhere.
#[derive(Clone)]
struct TimeSincePath(Option<PayloadPath>);

/// Whether a run was allowed, and the ms since the last allowed one (none on the first).
type Passage = (bool, Option<i64>);

impl AfterStorage<Passage> for TimeSincePath {
    fn port(&self, (allowed, _): &Passage) -> usize {
        usize::from(*allowed)
    }

    fn apply(&self, (_, since): Passage, payload: &mut Value) -> Result<(), NodeError> {
        if let (Some(path), Some(ms)) = (&self.0, since) {
            path.set(payload, json!(ms));
        }
        Ok(())
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    let rate = match &c.rate_per_minute {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|r| r.is_finite() && *r > 0.0)
    .ok_or_else(|| {
        spec.error(format!(
            "ratePerMinute must be a number above 0, not {}",
            c.rate_per_minute
        ))
    })?;
    let id = match c.throttle_id_template.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => Some(template(spec, "throttleIdTemplate", text)?),
    };
    Ok(CompiledNodeType::new(
        Throttle {
            node_id: spec.id.to_owned(),
            interval_ms: 60_000.0 / rate,
            id,
            time_since: TimeSincePath(optional_path(
                spec,
                "timeSincePath",
                c.time_since_path.as_deref(),
            )?),
        },
        2,
    )
    .with_storage())
}

impl Node for Throttle {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let id = match &self.id {
            None => String::new(),
            Some(t) => render(t, payload)?,
        };
        let interval_ms = self.interval_ms;
        let passage = cx
            .storage()?
            .update_node_state(&self.node_id, &id, move |state| {
                // Read while the state is held, so that runs (on any engine) see time in the
                // order they update it.
                let now = chrono::Utc::now().timestamp_millis();
                let last = state.and_then(Value::as_i64);
                let since = last.map(|t| now - t);
                let allowed = since.is_none_or(|ms| ms as f64 >= interval_ms);
                let keep = if allowed { now } else { last.unwrap_or(now) };
                (json!(keep), (allowed, since))
            });
        continue_after_storage(passage, &self.time_since, payload)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{compile_node, Harness};
    use serde_json::json;

    #[test]
    fn allows_one_per_interval_per_bucket() {
        for h in Harness::in_each_storage_mode() {
            let node = compile_node("ThrottleNode", &json!({"ratePerMinute": 600, "throttleIdTemplate": "{{data.id}}", "timeSincePath": "working.since"})).unwrap();
            let run = |id: &str| h.run(&node, json!({"data": {"id": id}})).unwrap();
            assert_eq!(run("a").0, 1);
            let (port, out) = run("a");
            assert_eq!(port, 0, "within 100 ms: throttled");
            assert!(out["working"]["since"].as_i64().unwrap() < 100);
            assert_eq!(run("b").0, 1, "another bucket");
            std::thread::sleep(std::time::Duration::from_millis(120));
            assert_eq!(run("a").0, 1, "after the interval");
        }
    }

    #[test]
    fn rate_is_checked() {
        for bad in [json!(0), json!(-1), json!("x"), json!(null)] {
            assert!(
                compile_node("ThrottleNode", &json!({"ratePerMinute": bad})).is_err(),
                "{bad}"
            );
        }
        assert!(compile_node("ThrottleNode", &json!({"ratePerMinute": "0.01667"})).is_ok());
        assert!(compile_node("ThrottleNode", &json!({})).is_err());
    }
}
