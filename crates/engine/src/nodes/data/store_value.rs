//! `StoreValueNode` ("Storage: Set Value"): writes one key of the flow's storage.
//!
//! `valueType`: `template` stores the rendered text, `json` the parsed JSON template, `number`
//! the rendered text as a number, `path` the value at `valuePath`, `incr`/`decr` add or subtract
//! the rendered `value` (default 1) atomically, `clear` removes the key. `resultPath` receives
//! the stored value, the new value after `incr`/`decr`, or the previous value after `clear`.
//!
//! Failures halt the run: an empty key, a value over 16 KB (`PayloadTooLarge`), a number that
//! is not one, `incr` of a non-number, nothing at `valuePath` (JSON has no `undefined` to store),
//! or a storage cap.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{
    continue_after_storage, json_template, optional_path, render, render_json, render_required,
    template, AfterStorage,
};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template};
use crate::value::{number_to_json, string_to_number};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    key_name: String,
    value_type: String,
    #[serde(default)]
    value: Option<Value>,
    value_path: Option<String>,
    result_path: Option<String>,
}

enum Operation {
    Template(Template),
    Json(JsonTemplate),
    Number(Template),
    Path(PayloadPath),
    /// `+1` for incr, `-1` for decr, times the rendered amount.
    Add {
        amount: Template,
        sign: f64,
    },
    Clear,
}

pub struct StoreValue {
    key: Template,
    operation: Operation,
    result: ResultPath,
}

/// Where the stored value, the new value or the previous value goes, if anywhere.
#[derive(Clone)]
struct ResultPath(Option<PayloadPath>);

impl AfterStorage<Option<Value>> for ResultPath {
    fn apply(&self, result: Option<Value>, payload: &mut Value) -> Result<(), NodeError> {
        if let Some(path) = &self.0 {
            match result {
                Some(value) => path.set(payload, value),
                None => {
                    path.remove(payload);
                }
            }
        }
        Ok(())
    }
}

/// `value` is usually a string; older exports sometimes hold a bare number.
fn value_text(value: &Option<Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    if config.key_name.trim().is_empty() {
        return Err(spec.error("keyName is required"));
    }
    let text = value_text(&config.value);
    let operation = match config.value_type.as_str() {
        "template" | "string" => Operation::Template(template(spec, "value", &text)?),
        "json" => Operation::Json(json_template(spec, "value", &text)?),
        "number" => Operation::Number(template(spec, "value", &text)?),
        "path" => match optional_path(spec, "valuePath", config.value_path.as_deref())? {
            Some(path) => Operation::Path(path),
            None => return Err(spec.error("valuePath is required when valueType is path")),
        },
        "incr" | "decr" => Operation::Add {
            amount: template(spec, "value", &text)?,
            sign: if config.value_type == "incr" {
                1.0
            } else {
                -1.0
            },
        },
        "clear" => Operation::Clear,
        other => {
            return Err(spec.error(format!(
            "valueType must be template, json, number, path, incr, decr or clear, not \"{other}\""
        )))
        }
    };
    Ok(CompiledNodeType::new(
        StoreValue {
            key: template(spec, "keyName", &config.key_name)?,
            operation,
            result: ResultPath(optional_path(
                spec,
                "resultPath",
                config.result_path.as_deref(),
            )?),
        },
        1,
    )
    .with_storage())
}

fn number(text: &str, what: &str) -> Result<f64, NodeError> {
    let n = string_to_number(text);
    if n.is_finite() {
        Ok(n)
    } else {
        Err(NodeError::new(
            ErrorName::ValidationError,
            format!("{what} \"{text}\" is not a number"),
        ))
    }
}

impl Node for StoreValue {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let key = render_required(&self.key, "keyName", payload)?;
        let storage = cx.storage()?;
        let answer = match &self.operation {
            Operation::Clear => storage.remove(&key),
            Operation::Add { amount, sign } => {
                let text = render(amount, payload)?;
                let step = if text.trim().is_empty() {
                    1.0
                } else {
                    number(&text, "the amount")?
                };
                storage.increment(&key, sign * step).map(number_to_json)
            }
            operation => {
                let value = match operation {
                    Operation::Template(t) => Value::String(render(t, payload)?),
                    Operation::Json(t) => render_json(t, payload)?,
                    Operation::Number(t) => {
                        let n = number(&render(t, payload)?, "the value")?;
                        number_to_json(n).unwrap_or(Value::Null)
                    }
                    Operation::Path(path) => {
                        path.get(payload).map(|v| v.into_owned()).ok_or_else(|| {
                            NodeError::new(
                                ErrorName::ValidationError,
                                format!("there is no value at {path} to store"),
                            )
                        })?
                    }
                    Operation::Clear | Operation::Add { .. } => unreachable!("handled above"),
                };
                storage.set(&key, value.clone()).map(|()| Some(value))
            }
        };
        continue_after_storage(answer, &self.result, payload)
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    fn store(h: &Harness, config: Value, payload: Value) -> Result<Value, crate::error::NodeError> {
        let node = compile_node("StoreValueNode", &config).expect("compiles");
        h.run(&node, payload).map(|(_, p)| p)
    }

    #[test]
    fn every_value_type() {
        for h in Harness::in_each_storage_mode() {
            let p = json!({"data": {"n": 4, "s": "x", "o": {"a": [1]}}});
            store(
                &h,
                json!({"keyName": "t", "valueType": "template", "value": "n={{data.n}}"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(h.stored("t"), Some(json!("n=4")));
            store(
                &h,
                json!({"keyName": "j", "valueType": "json", "value": "{\"n\": {{data.n}}}"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(h.stored("j"), Some(json!({"n": 4})));
            store(
                &h,
                json!({"keyName": "num", "valueType": "number", "value": "{{data.n}}.5"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(h.stored("num"), Some(json!(4.5)));
            let out = store(&h, json!({"keyName": "p", "valueType": "path", "valuePath": "data.o", "resultPath": "working.r"}), p.clone()).unwrap();
            assert_eq!(h.stored("p"), Some(json!({"a": [1]})));
            assert_eq!(out["working"]["r"], json!({"a": [1]}));
        }
    }

    #[test]
    fn incr_decr_and_clear() {
        for h in Harness::in_each_storage_mode() {
            let p = json!({"data": {}});
            let config = json!({"keyName": "count-{{triggerId}}", "valueType": "incr", "value": "1", "resultPath": "working.count"});
            let payload = json!({"triggerId": "b", "data": {}});
            for expected in 1..=3 {
                let out = store(&h, config.clone(), payload.clone()).unwrap();
                assert_eq!(out["working"]["count"], json!(expected));
            }
            assert_eq!(h.stored("count-b"), Some(json!(3)));
            store(
                &h,
                json!({"keyName": "count-b", "valueType": "decr", "value": "0.5"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(h.stored("count-b"), Some(json!(2.5)));
            store(
                &h,
                json!({"keyName": "empty-step", "valueType": "incr"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(h.stored("empty-step"), Some(json!(1)));
            let out = store(
                &h,
                json!({"keyName": "count-b", "valueType": "clear", "resultPath": "working.was"}),
                p.clone(),
            )
            .unwrap();
            assert_eq!(out["working"]["was"], json!(2.5));
            assert_eq!(h.stored("count-b"), None);
        }
    }

    #[test]
    fn failures_halt() {
        for h in Harness::in_each_storage_mode() {
            let p = json!({"data": {"s": "abc"}});
            store(
                &h,
                json!({"keyName": "s", "valueType": "template", "value": "text"}),
                p.clone(),
            )
            .unwrap();
            let e = store(
                &h,
                json!({"keyName": "s", "valueType": "incr", "value": "1"}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::StorageError);
            assert_eq!(
                e.message,
                "the value of \"s\" is not a number, so it cannot be incremented or decremented"
            );
            assert_eq!(
                h.stored("s"),
                Some(json!("text")),
                "a refused incr changes nothing"
            );
            let huge = json!({"keyName": "huge", "valueType": "incr", "value": "1e308"});
            store(&h, huge.clone(), p.clone()).unwrap();
            let e = store(&h, huge, p.clone()).unwrap_err();
            assert_eq!(
                (e.name, e.message.as_str()),
                (ErrorName::StorageError, "the result is not a finite number")
            );
            assert_eq!(h.stored("huge"), Some(json!(1e308)));
            let e = store(
                &h,
                json!({"keyName": "k".repeat(256), "valueType": "incr"}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(
                (e.name, e.message.as_str()),
                (
                    ErrorName::StorageError,
                    "key must be 1 to 255 characters long"
                )
            );
            let e = store(
                &h,
                json!({"keyName": "n", "valueType": "number", "value": "{{data.s}}"}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::ValidationError);
            let e = store(
                &h,
                json!({"keyName": "{{data.none}}", "valueType": "template", "value": "x"}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::TemplateError);
            let e = store(
                &h,
                json!({"keyName": "big", "valueType": "template", "value": "x".repeat(17 * 1024)}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::PayloadTooLarge);
            let e = store(
                &h,
                json!({"keyName": "v", "valueType": "path", "valuePath": "data.none"}),
                p.clone(),
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::ValidationError);
            let e = store(
                &h,
                json!({"keyName": "j", "valueType": "json", "value": "{nope"}),
                p,
            )
            .unwrap_err();
            assert_eq!(e.name, ErrorName::TemplateError);
        }
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_node(
            "StoreValueNode",
            &json!({"keyName": "k", "valueType": "teleport"})
        )
        .is_err());
        assert!(compile_node(
            "StoreValueNode",
            &json!({"keyName": "", "valueType": "clear"})
        )
        .is_err());
        assert!(compile_node(
            "StoreValueNode",
            &json!({"keyName": "k", "valueType": "path"})
        )
        .is_err());
        assert!(compile_node(
            "StoreValueNode",
            &json!({"keyName": "k", "valueType": "template", "value": "{{#if}}"})
        )
        .is_err());
        assert!(compile_node("StoreValueNode", &json!({"valueType": "clear"})).is_err());
        let node = compile_node(
            "StoreValueNode",
            &json!({"keyName": "k", "valueType": "incr", "value": 2, "extra": true}),
        )
        .unwrap();
        assert!(node.uses_storage);
    }
}
