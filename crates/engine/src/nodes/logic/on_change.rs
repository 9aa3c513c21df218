//! `BranchOnChangeNode` ("On Change"): compares the value at `valuePath` with the one seen by
//! the previous run (per `onChangeIdTemplate`, kept as node state across runs and restarts).
//! Port 0: unchanged — also the first run ever, and a non-numeric value in a numeric mode;
//! port 1: changed. The stored value is updated on every run.
//!
//! Change types: `any` (the value differs, compared as JSON), `value` (|new − old| ≥ threshold),
//! `valueInc` (new − old ≥ threshold), `valueDec` (old − new ≥ threshold), `percent`,
//! `percentInc`, `percentDec` (the same, relative to |old|, in percent; an old value of 0
//! counts any change as infinitely large). `prevValuePath` receives `{value, time}` of the
//! previous run.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{continue_after_storage, optional_path, path, render, template, AfterStorage};
use crate::path::PayloadPath;
use crate::template::Template;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    value_path: String,
    change_type: Option<String>,
    change_threshold: Option<Value>,
    prev_value_path: Option<String>,
    on_change_id_template: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Change {
    Any,
    Value,
    ValueInc,
    ValueDec,
    Percent,
    PercentInc,
    PercentDec,
}

pub struct OnChange {
    node_id: String,
    value: PayloadPath,
    comparison: Comparison,
    previous: PreviousPath,
    id: Option<Template>,
}

/// What counts as a change.
#[derive(Clone, Copy)]
struct Comparison {
    change: Change,
    threshold: f64,
}

/// Where the previous run's `{value, time}` goes, if anywhere.
#[derive(Clone)]
struct PreviousPath(Option<PayloadPath>);

/// The previous run's `{value, time}` (none on the first run), and whether the value changed.
type Observation = (Option<Value>, bool);

impl AfterStorage<Observation> for PreviousPath {
    fn port(&self, (_, changed): &Observation) -> usize {
        usize::from(*changed)
    }

    fn apply(&self, (previous, _): Observation, payload: &mut Value) -> Result<(), NodeError> {
        if let (Some(path), Some(previous)) = (&self.0, previous) {
            path.set(payload, previous);
        }
        Ok(())
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    let change = match c.change_type.as_deref().unwrap_or("any") {
        "any" | "" => Change::Any,
        "value" => Change::Value,
        "valueInc" => Change::ValueInc,
        "valueDec" => Change::ValueDec,
        "percent" => Change::Percent,
        "percentInc" => Change::PercentInc,
        "percentDec" => Change::PercentDec,
        other => return Err(spec.error(format!("changeType \"{other}\" is not one of any, value, valueInc, valueDec, percent, percentInc, percentDec"))),
    };
    let threshold = match (&c.change_threshold, change) {
        (_, Change::Any) => 0.0,
        (Some(Value::Number(n)), _) => n.as_f64().unwrap_or(f64::NAN),
        (Some(Value::String(s)), _) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    if threshold.is_nan() {
        return Err(spec.error("changeThreshold must be a number for this changeType"));
    }
    let id = match c.on_change_id_template.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => Some(template(spec, "onChangeIdTemplate", text)?),
    };
    Ok(CompiledNodeType::new(
        OnChange {
            node_id: spec.id.to_owned(),
            value: path(spec, "valuePath", &c.value_path)?,
            comparison: Comparison { change, threshold },
            previous: PreviousPath(optional_path(
                spec,
                "prevValuePath",
                c.prev_value_path.as_deref(),
            )?),
            id,
        },
        2,
    )
    .with_storage())
}

impl Comparison {
    fn changed(&self, old: &Value, new: &Value) -> bool {
        if self.change == Change::Any {
            return old != new;
        }
        let (Some(old), Some(new)) = (old.as_f64(), new.as_f64()) else {
            return false;
        };
        let relative = |delta: f64| {
            if old == 0.0 {
                if delta == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                delta / old.abs() * 100.0
            }
        };
        match self.change {
            Change::Any => unreachable!("handled above"),
            Change::Value => (new - old).abs() >= self.threshold,
            Change::ValueInc => new - old >= self.threshold,
            Change::ValueDec => old - new >= self.threshold,
            Change::Percent => relative((new - old).abs()) >= self.threshold,
            Change::PercentInc => relative(new - old) >= self.threshold,
            Change::PercentDec => relative(old - new) >= self.threshold,
        }
    }
}

impl Node for OnChange {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let id = match &self.id {
            None => String::new(),
            Some(t) => render(t, payload)?,
        };
        // undefined is remembered as null.
        let current = self
            .value
            .get(payload)
            .map(|v| v.into_owned())
            .unwrap_or(Value::Null);
        let comparison = self.comparison;
        let observation = cx
            .storage()?
            .update_node_state(&self.node_id, &id, move |state| {
                let now = chrono::Utc::now().timestamp_millis();
                let previous = state.cloned();
                let changed = previous
                    .as_ref()
                    .is_some_and(|p| comparison.changed(&p["value"], &current));
                (json!({"value": current, "time": now}), (previous, changed))
            });
        continue_after_storage(observation, &self.previous, payload)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    /// The ports a run per value takes, the same in both storage modes.
    fn ports(config: Value, values: &[Value]) -> Vec<usize> {
        let node = compile_node("BranchOnChangeNode", &config).unwrap();
        let mut in_each_mode = Harness::in_each_storage_mode().map(|h| {
            values
                .iter()
                .map(|v| h.run(&node, json!({"data": {"v": v}})).unwrap().0)
                .collect::<Vec<_>>()
        });
        let cached = in_each_mode.next().expect("Cached mode");
        for other in in_each_mode {
            assert_eq!(other, cached, "the storage modes disagree");
        }
        cached
    }

    #[test]
    fn change_types() {
        let any = json!({"valuePath": "data.v", "changeType": "any"});
        assert_eq!(
            ports(
                any,
                &[
                    json!("on"),
                    json!("on"),
                    json!("off"),
                    json!({"a": 1}),
                    json!({"a": 1})
                ]
            ),
            [0, 0, 1, 1, 0]
        );
        let value = json!({"valuePath": "data.v", "changeType": "value", "changeThreshold": 5});
        assert_eq!(
            ports(value, &[json!(10), json!(12), json!(6), json!(6)]),
            [0, 0, 1, 0]
        );
        let inc = json!({"valuePath": "data.v", "changeType": "valueInc", "changeThreshold": "2"});
        assert_eq!(ports(inc, &[json!(10), json!(7), json!(9)]), [0, 0, 1]);
        let dec = json!({"valuePath": "data.v", "changeType": "valueDec", "changeThreshold": 2});
        assert_eq!(ports(dec, &[json!(10), json!(12), json!(9)]), [0, 0, 1]);
        let pct = json!({"valuePath": "data.v", "changeType": "percent", "changeThreshold": 10});
        assert_eq!(
            ports(pct, &[json!(100), json!(105), json!(94), json!("x")]),
            [0, 0, 1, 0]
        );
        let pct_inc =
            json!({"valuePath": "data.v", "changeType": "percentInc", "changeThreshold": 50});
        assert_eq!(ports(pct_inc, &[json!(0), json!(1), json!(1)]), [0, 1, 0]);
        let pct_dec =
            json!({"valuePath": "data.v", "changeType": "percentDec", "changeThreshold": 50});
        assert_eq!(ports(pct_dec, &[json!(10), json!(4)]), [0, 1]);
    }

    #[test]
    fn previous_value_and_ids() {
        for h in Harness::in_each_storage_mode() {
            let node = compile_node("BranchOnChangeNode", &json!({"valuePath": "data.v", "onChangeIdTemplate": "{{data.id}}", "prevValuePath": "working.prev"})).unwrap();
            let run = |v: i64, id: &str| h.run(&node, json!({"data": {"v": v, "id": id}})).unwrap();
            let (port, out) = run(1, "a");
            assert_eq!(port, 0);
            assert!(
                out.get("working").is_none(),
                "no previous value on the first run"
            );
            assert_eq!(run(1, "b").0, 0, "ids are separate");
            let (port, out) = run(2, "a");
            assert_eq!(port, 1);
            assert_eq!(out["working"]["prev"]["value"], 1);
            assert!(out["working"]["prev"]["time"].is_i64());
        }
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_node(
            "BranchOnChangeNode",
            &json!({"valuePath": "v", "changeType": "value"})
        )
        .is_err());
        assert!(compile_node(
            "BranchOnChangeNode",
            &json!({"valuePath": "v", "changeType": "sideways"})
        )
        .is_err());
        assert!(compile_node("BranchOnChangeNode", &json!({"changeType": "any"})).is_err());
        assert!(compile_node("BranchOnChangeNode", &json!({"valuePath": "v"})).is_ok());
    }
}
