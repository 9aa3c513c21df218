//! `GetValueNode` ("Storage: Get Value"): reads one key of the flow's storage, or all of them
//! (`getAll`), into `valuePath`. A missing key uses `defaultValue` (rendered as a template, a
//! JSON template, or read from a payload path, per `defaultValueType`); without a default the
//! destination is left undefined (removed).

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{
    continue_after_storage, json_template, path, render, render_json, render_required, template,
    AfterStorage,
};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    key_name: Option<String>,
    value_path: String,
    default_value: Option<Value>,
    default_value_type: Option<String>,
    #[serde(default)]
    get_all: bool,
}

#[derive(Clone)]
enum Default {
    None,
    Template(Template),
    Json(JsonTemplate),
    Path(PayloadPath),
}

pub struct GetValue {
    /// `None` with `getAll`.
    key: Option<Template>,
    placement: Placement,
}

/// Where what was read goes, and what goes there when the key is missing.
#[derive(Clone)]
struct Placement {
    destination: PayloadPath,
    default: Default,
}

impl AfterStorage<Option<Value>> for Placement {
    fn apply(&self, found: Option<Value>, payload: &mut Value) -> Result<(), NodeError> {
        let value = match found {
            Some(value) => Some(value),
            None => match &self.default {
                Default::None => None,
                Default::Template(t) => Some(Value::String(render(t, payload)?)),
                Default::Json(t) => Some(render_json(t, payload)?),
                Default::Path(p) => p.get(payload).map(|v| v.into_owned()),
            },
        };
        match value {
            Some(value) => self.destination.set(payload, value),
            None => {
                self.destination.remove(payload);
            }
        }
        Ok(())
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let key = match (config.get_all, config.key_name.as_deref().map(str::trim)) {
        (true, _) => None,
        (false, Some(key)) if !key.is_empty() => Some(template(spec, "keyName", key)?),
        (false, _) => return Err(spec.error("keyName is required unless getAll is set")),
    };
    let default_text = match &config.default_value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let default = match (
        default_text,
        config.default_value_type.as_deref().unwrap_or("template"),
    ) {
        (None, _) => Default::None,
        (Some(text), "template" | "string") => {
            Default::Template(template(spec, "defaultValue", &text)?)
        }
        (Some(text), "json") => Default::Json(json_template(spec, "defaultValue", &text)?),
        (Some(text), "path") => Default::Path(path(spec, "defaultValue", &text)?),
        (Some(_), other) => {
            return Err(spec.error(format!(
                "defaultValueType must be template, json or path, not \"{other}\""
            )))
        }
    };
    Ok(CompiledNodeType::new(
        GetValue {
            key,
            placement: Placement {
                destination: path(spec, "valuePath", &config.value_path)?,
                default,
            },
        },
        1,
    )
    .with_storage())
}

impl Node for GetValue {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let storage = cx.storage()?;
        let found = match &self.key {
            None => storage
                .entries()
                .map(|entries| Some(Value::Object(entries))),
            Some(key) => storage.get(&render_required(key, "keyName", payload)?),
        };
        continue_after_storage(found, &self.placement, payload)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    fn get(h: &Harness, config: Value, payload: Value) -> Value {
        let node = compile_node("GetValueNode", &config).expect("compiles");
        h.run(&node, payload).expect("runs").1
    }

    fn seed(h: &Harness) {
        h.store("count-b", json!(7));
        h.store("name", json!("pump"));
    }

    #[test]
    fn reads_a_key_or_all() {
        for h in Harness::in_each_storage_mode() {
            seed(&h);
            let out = get(
                &h,
                json!({"keyName": "count-{{triggerId}}", "valuePath": "working.n"}),
                json!({"triggerId": "b"}),
            );
            assert_eq!(out["working"]["n"], json!(7));
            let out = get(
                &h,
                json!({"getAll": true, "valuePath": "working.all"}),
                json!({}),
            );
            assert_eq!(out["working"]["all"], json!({"count-b": 7, "name": "pump"}));
        }
    }

    #[test]
    fn defaults_apply_only_to_missing_keys() {
        for h in Harness::in_each_storage_mode() {
            seed(&h);
            let p = json!({"data": {"fallback": [1, 2]}, "working": {"n": "old"}});
            let out = get(
                &h,
                json!({"keyName": "nope", "valuePath": "working.n"}),
                p.clone(),
            );
            assert!(
                out["working"].get("n").is_none(),
                "no default leaves it undefined"
            );
            let out = get(
                &h,
                json!({"keyName": "nope", "valuePath": "working.n", "defaultValue": "0", "defaultValueType": "json"}),
                p.clone(),
            );
            assert_eq!(out["working"]["n"], json!(0));
            let out = get(
                &h,
                json!({"keyName": "nope", "valuePath": "working.n", "defaultValue": "x{{data.fallback}}"}),
                p.clone(),
            );
            assert_eq!(out["working"]["n"], json!("x1,2"));
            let out = get(
                &h,
                json!({"keyName": "nope", "valuePath": "working.n", "defaultValue": "data.fallback", "defaultValueType": "path"}),
                p.clone(),
            );
            assert_eq!(out["working"]["n"], json!([1, 2]));
            let out = get(
                &h,
                json!({"keyName": "name", "valuePath": "working.n", "defaultValue": "0", "defaultValueType": "json"}),
                p,
            );
            assert_eq!(out["working"]["n"], json!("pump"));
        }
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_node("GetValueNode", &json!({"valuePath": "w"})).is_err());
        assert!(compile_node("GetValueNode", &json!({"keyName": "k"})).is_err());
        assert!(compile_node("GetValueNode", &json!({"keyName": "k", "valuePath": "w", "defaultValue": "1", "defaultValueType": "xml"})).is_err());
        assert!(compile_node("GetValueNode", &json!({"keyName": "k", "valuePath": "w", "defaultValue": "{nope", "defaultValueType": "json"})).is_ok(),
            "a JSON template is only parsed as JSON when rendered");
        assert!(compile_node("GetValueNode", &json!({"getAll": true, "valuePath": "w"})).is_ok());
    }
}
