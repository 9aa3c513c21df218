//! `LoopNode`: runs its body (port 1, nodes with `meta.groupId` = this loop) once per item of
//! the collection at `loopSourcePath`, then continues on port 0.
//!
//! Items: an array's elements; a string's characters; for a number n, `|ceil(n)|` iterations
//! with values 0, 1, …; an object's own properties (with `key`); anything else: none. At most
//! [`MAX_ITEMS`]. Each iteration writes `{value, index, key?, first?, last?}` at
//! `currentItemPath`.
//!
//! Serial (default): one iteration at a time; what an iteration changes carries into the next
//! only when it ends at a Next, Return or Break cap (the first cap reached wins); Break stops
//! after that iteration; the first error halts the run. Parallel: up to 5 iterations at once,
//! each on the payload as it was before the loop, which they do not change; Break is ignored;
//! every iteration finishes before the first error is raised. `mapResultPath` receives each
//! iteration's map value (`mapValuePath`, default `currentItemPath`; a cap may override it;
//! `null` for an iteration that reached no cap).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, LoopPlan, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, path};
use crate::path::PayloadPath;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Most items one loop iterates over.
pub const MAX_ITEMS: usize = 262_144;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    loop_source_path: String,
    current_item_path: String,
    #[serde(default)]
    parallel: bool,
    map_result_path: Option<String>,
    map_value_path: Option<String>,
}

pub struct Loop {
    source: PayloadPath,
    current_item: PayloadPath,
    parallel: bool,
    map_result: Option<PayloadPath>,
    map_value: PayloadPath,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    let current_item = path(spec, "currentItemPath", &c.current_item_path)?;
    let map_value = optional_path(spec, "mapValuePath", c.map_value_path.as_deref())?
        .unwrap_or_else(|| current_item.clone());
    Ok(CompiledNodeType::new(
        Loop {
            source: path(spec, "loopSourcePath", &c.loop_source_path)?,
            current_item,
            parallel: c.parallel,
            map_result: optional_path(spec, "mapResultPath", c.map_result_path.as_deref())?,
            map_value,
        },
        2,
    ))
}

/// The values (and keys) a source iterates over.
fn values(source: Option<&Value>) -> Vec<(Value, Option<String>)> {
    match source {
        Some(Value::Array(items)) => items.iter().map(|v| (v.clone(), None)).collect(),
        Some(Value::String(s)) => s.chars().map(|c| (json!(c.to_string()), None)).collect(),
        Some(Value::Number(n)) => {
            let count = n.as_f64().map_or(0.0, |n| n.ceil().abs());
            let count = if count.is_finite() {
                count.min((MAX_ITEMS + 1) as f64) as usize
            } else {
                MAX_ITEMS + 1
            };
            (0..count).map(|i| (json!(i), None)).collect()
        }
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (v.clone(), Some(k.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

impl Node for Loop {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let source = self.source.get(payload);
        let values = values(source.as_deref());
        if values.len() > MAX_ITEMS {
            return Err(NodeError::new(
                ErrorName::ValidationError,
                format!(
                    "{} has {} items; a loop takes at most {MAX_ITEMS}",
                    self.source,
                    values.len()
                ),
            ));
        }
        let last = values.len().saturating_sub(1);
        let items = values
            .into_iter()
            .enumerate()
            .map(|(index, (value, key))| {
                let mut item = Map::new();
                item.insert("value".into(), value);
                item.insert("index".into(), json!(index));
                if let Some(key) = key {
                    item.insert("key".into(), json!(key));
                }
                if index == 0 {
                    item.insert("first".into(), json!(true));
                }
                if index == last {
                    item.insert("last".into(), json!(true));
                }
                Value::Object(item)
            })
            .collect();
        Ok(Outcome::Loop(LoopPlan {
            items,
            current_item: self.current_item.clone(),
            parallel: self.parallel,
            map_value: self.map_value.clone(),
            map_result: self.map_result.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::values;
    use crate::testing::compile_node;
    use serde_json::json;

    #[test]
    fn sources() {
        assert_eq!(values(Some(&json!([1, 2]))).len(), 2);
        assert_eq!(values(Some(&json!("héy"))).len(), 3);
        assert_eq!(
            values(Some(&json!(2.2)))
                .iter()
                .map(|(v, _)| v.clone())
                .collect::<Vec<_>>(),
            [json!(0), json!(1), json!(2)]
        );
        assert_eq!(values(Some(&json!(-2))).len(), 2);
        assert_eq!(values(Some(&json!({"a": 1})))[0].1.as_deref(), Some("a"));
        assert!(values(Some(&json!(true))).is_empty());
        assert!(values(None).is_empty());
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_node("LoopNode", &json!({"loopSourcePath": "data.l"})).is_err());
        assert!(compile_node(
            "LoopNode",
            &json!({"loopSourcePath": "data..l", "currentItemPath": "w"})
        )
        .is_err());
        assert!(compile_node(
            "LoopNode",
            &json!({"loopSourcePath": "data.l", "currentItemPath": "w", "parallel": "yes"})
        )
        .is_err());
        assert!(compile_node(
            "LoopNode",
            &json!({"loopSourcePath": "data.l", "currentItemPath": "w", "mapValuePath": ""})
        )
        .is_ok());
    }
}
