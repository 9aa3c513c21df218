//! `RandomNumberNode`: writes a random **integer** between `min` and `max`, both inclusive, to
//! `resultPath`. `min` (default 0) and `max` (default 100) are each a number or a string
//! template that renders to one. One port.
//!
//! Failures do not halt (Losant's "node failure cases"): when a bound is not a number, when
//! `min` is greater than `max`, or when no integer lies between them (`1.3`–`1.9`), the result
//! is `null`.
//!
//! Decisions:
//! * Bounds are read as JavaScript's `Number(text)`, so `" 7 "` and `"0x10"` are numbers. A
//!   template that renders blank (a missing `{{data.min}}`) is not a number — the result is
//!   `null` rather than a silent 0. An absent, `null` or blank bound in the config takes its
//!   default.
//! * A bound written as static text that is not a number (`"ten"`) can never work and is a
//!   compile error; so is a bound that is neither a number nor a string.
//! * The range is `ceil(min)`..=`floor(max)`; every integer in it is equally likely. Bounds
//!   beyond ±2^53 (where doubles stop being exact integers) still give an integral number.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::{number_to_json, string_to_number};
use serde::Deserialize;
use serde_json::Value;

/// Largest integer a double holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    min: Option<Value>,
    max: Option<Value>,
    result_path: Option<String>,
}

enum Bound {
    Fixed(f64),
    Template(Template),
}

pub struct RandomNumber {
    min: Bound,
    max: Bound,
    result: PayloadPath,
}

fn bound(
    spec: &NodeSpec<'_>,
    field: &str,
    value: Option<&Value>,
    default: f64,
) -> Result<Bound, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(Bound::Fixed(default)),
        Some(Value::Number(n)) => Ok(Bound::Fixed(n.as_f64().unwrap_or(default))),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Bound::Fixed(default)),
        Some(Value::String(text)) => {
            let compiled = template(spec, field, text)?;
            match compiled.static_text() {
                Some(text) => {
                    let n = string_to_number(text);
                    if n.is_nan() {
                        Err(spec.error(format!("{field} \"{text}\" is not a number")))
                    } else {
                        Ok(Bound::Fixed(n))
                    }
                }
                None => Ok(Bound::Template(compiled)),
            }
        }
        Some(other) => Err(spec.error(format!(
            "{field} must be a number or a template, not {other}"
        ))),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let result = match config.result_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "resultPath", text)?,
        _ => return Err(spec.error("resultPath is required")),
    };
    Ok(CompiledNodeType::new(
        RandomNumber {
            min: bound(spec, "min", config.min.as_ref(), 0.0)?,
            max: bound(spec, "max", config.max.as_ref(), 100.0)?,
            result,
        },
        1,
    ))
}

/// The bound's value; NaN when it is not a number.
fn value(bound: &Bound, payload: &Value) -> Result<f64, NodeError> {
    Ok(match bound {
        Bound::Fixed(n) => *n,
        Bound::Template(t) => {
            let text = render(t, payload)?;
            if text.trim().is_empty() {
                f64::NAN
            } else {
                string_to_number(&text)
            }
        }
    })
}

/// A random integer in `ceil(min)..=floor(max)`, or `None` when there is none.
pub(crate) fn random_integer(min: f64, max: f64) -> Option<f64> {
    let (low, high) = (min.ceil(), max.floor());
    if !low.is_finite() || !high.is_finite() || low > high {
        return None;
    }
    if low.abs() <= MAX_SAFE && high.abs() <= MAX_SAFE {
        return Some(rand::random_range(low as i64..=high as i64) as f64);
    }
    let n = (low + (rand::random::<f64>() * (high - low + 1.0)).floor()).clamp(low, high);
    Some(n.floor())
}

impl Node for RandomNumber {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let min = value(&self.min, payload)?;
        let max = value(&self.max, payload)?;
        let result = random_integer(min, max)
            .and_then(number_to_json)
            .unwrap_or(Value::Null);
        self.result.set(payload, result);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use super::random_integer;
    use crate::error::ErrorName;
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    fn draws(config: Value, payload: Value, n: usize) -> Vec<Value> {
        let node = compile_node("RandomNumberNode", &config).expect("compiles");
        let h = Harness::new();
        (0..n)
            .map(|_| {
                let (port, after) = h.run(&node, payload.clone()).unwrap();
                assert_eq!(port, 0);
                after["working"]["r"].clone()
            })
            .collect()
    }

    #[test]
    fn integers_within_inclusive_bounds() {
        let seen = draws(
            json!({"min": 1, "max": 3, "resultPath": "working.r"}),
            json!({}),
            200,
        );
        for v in &seen {
            let n = v.as_i64().expect("an integer");
            assert!((1..=3).contains(&n), "{v}");
        }
        for n in 1..=3 {
            assert!(seen.contains(&json!(n)), "{n} never drawn");
        }
    }

    #[test]
    fn defaults_and_templates() {
        for v in draws(json!({"resultPath": "working.r"}), json!({}), 50) {
            assert!((0..=100).contains(&v.as_i64().unwrap()), "{v}");
        }
        let config = json!({"min": "{{data.lo}}", "max": "{{data.hi}}", "resultPath": "working.r"});
        for v in draws(config, json!({"data": {"lo": "5", "hi": 5.9}}), 10) {
            assert_eq!(v, json!(5));
        }
        let config = json!({"min": "-2.5", "max": "", "resultPath": "working.r"});
        for v in draws(config, json!({}), 20) {
            assert!((-2..=100).contains(&v.as_i64().unwrap()), "{v}");
        }
    }

    #[test]
    fn impossible_ranges_give_null() {
        let cases = [
            (json!(5), json!(1)),
            (json!(1.3), json!(1.9)),
            (json!("{{data.word}}"), json!(10)),
            (json!("{{data.missing}}"), json!(10)),
            (json!(0), json!("{{data.inf}}")),
        ];
        for (min, max) in cases {
            let config = json!({"min": min, "max": max, "resultPath": "working.r"});
            let payload = json!({"data": {"word": "ten", "inf": "Infinity"}});
            assert_eq!(draws(config, payload, 1)[0], Value::Null, "{min} {max}");
        }
        assert_eq!(random_integer(f64::NAN, 1.0), None);
        let huge = random_integer(1e300, 1e300).unwrap();
        assert_eq!(huge, 1e300);
    }

    #[test]
    fn template_failures_halt() {
        let node = compile_node(
            "RandomNumberNode",
            &json!({"min": "{{decodeURIComponent data.bad}}", "resultPath": "working.r"}),
        )
        .unwrap();
        let error = Harness::new()
            .run(&node, json!({"data": {"bad": "%"}}))
            .unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        for bad in [
            json!({}),
            json!({"min": 1, "max": 2}),
            json!({"min": "ten", "resultPath": "w.r"}),
            json!({"min": true, "resultPath": "w.r"}),
            json!({"max": [1], "resultPath": "w.r"}),
            json!({"min": "{{#if}}", "resultPath": "w.r"}),
            json!({"resultPath": "{{w}}"}),
            json!({"resultPath": 5}),
        ] {
            let error = compile_node("RandomNumberNode", &bad)
                .err()
                .expect("refused");
            assert!(error.0.contains("(RandomNumberNode)"), "{bad}: {error}");
        }
        assert!(compile_node(
            "RandomNumberNode",
            &json!({"min": null, "max": " ", "resultPath": "w.r", "other": {}})
        )
        .is_ok());
    }
}
