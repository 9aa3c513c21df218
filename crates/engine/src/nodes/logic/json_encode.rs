//! `JsonEncodeNode`: writes the JSON text of the value at `source` to `destination`.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::path;
use crate::path::PayloadPath;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub(crate) struct Config {
    source: String,
    destination: String,
}

pub struct JsonEncode {
    source: PayloadPath,
    destination: PayloadPath,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        JsonEncode {
            source: path(spec, "source", &config.source)?,
            destination: path(spec, "destination", &config.destination)?,
        },
        1,
    ))
}

impl Node for JsonEncode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        // JSON.stringify(undefined) is undefined: a missing source writes nothing.
        let text = self.source.get(payload).map(|v| v.to_string());
        if let Some(text) = text {
            self.destination.set(payload, Value::String(text));
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::run_node;
    use serde_json::json;

    #[test]
    fn encodes_compactly() {
        let config = json!({"source": "data", "destination": "working.json"});
        let (port, payload) =
            run_node("JsonEncodeNode", &config, json!({"data": {"a": [1, "x"]}})).unwrap();
        assert_eq!(port, 0);
        assert_eq!(payload["working"]["json"], r#"{"a":[1,"x"]}"#);
    }

    #[test]
    fn missing_source_writes_nothing() {
        let config = json!({"source": "data.nope", "destination": "working.json"});
        let (_, payload) = run_node("JsonEncodeNode", &config, json!({"data": {}})).unwrap();
        assert!(payload.get("working").is_none());
    }

    #[test]
    fn config_is_checked() {
        assert!(
            crate::testing::compile_node("JsonEncodeNode", &json!({"source": "data"})).is_err()
        );
        assert!(crate::testing::compile_node(
            "JsonEncodeNode",
            &json!({"source": "a..b", "destination": "x"})
        )
        .is_err());
        // Unknown fields from other Losant revisions are ignored.
        assert!(crate::testing::compile_node(
            "JsonEncodeNode",
            &json!({"source": "a", "destination": "b", "pretty": true})
        )
        .is_ok());
    }
}
