//! `LoopCapNode` (Next, Return, Break): ends an iteration of its loop's body and hands the
//! payload back to the loop. `meta.name` `loop-break` (or `shouldBreak: true`) stops the loop
//! after this iteration; `mapValuePath` overrides the loop's for this iteration. No ports.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, LoopCap, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::optional_path;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    loop_node_id: String,
    #[serde(default)]
    should_break: bool,
    map_value_path: Option<String>,
}

pub struct Cap {
    signal: LoopCap,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    if c.loop_node_id.trim().is_empty() {
        return Err(spec.error("loopNodeId is required"));
    }
    let breaks =
        c.should_break || spec.meta.get("name").and_then(Value::as_str) == Some("loop-break");
    Ok(CompiledNodeType::new(
        Cap {
            signal: LoopCap {
                should_break: breaks,
                map_value: optional_path(spec, "mapValuePath", c.map_value_path.as_deref())?,
            },
        },
        0,
    ))
}

impl Node for Cap {
    fn execute(&self, _: &mut NodeContext<'_>, _: &mut Value) -> Result<Outcome, NodeError> {
        Ok(Outcome::Cap(self.signal.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::compile_node;
    use serde_json::json;

    #[test]
    fn config_is_checked() {
        assert!(compile_node("LoopCapNode", &json!({})).is_err());
        assert!(compile_node("LoopCapNode", &json!({"loopNodeId": ""})).is_err());
        assert!(compile_node(
            "LoopCapNode",
            &json!({"loopNodeId": "l", "mapValuePath": ""})
        )
        .is_ok());
    }
}
