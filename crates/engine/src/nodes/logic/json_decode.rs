//! `JsonDecodeNode`: parses the JSON text at `source` into `destination`; bad JSON halts, or with
//! `errorBehavior: payloadPath` is written to `errorPath` and the path continues.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, ErrorBehavior};
use crate::path::PayloadPath;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source: String,
    destination: String,
    error_behavior: Option<String>,
    error_path: Option<String>,
}

pub struct JsonDecode {
    source: PayloadPath,
    destination: PayloadPath,
    on_error: ErrorBehavior,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        JsonDecode {
            source: path(spec, "source", &config.source)?,
            destination: path(spec, "destination", &config.destination)?,
            on_error: ErrorBehavior::compile(
                spec,
                config.error_behavior.as_deref(),
                config.error_path.as_deref(),
            )?,
        },
        1,
    ))
}

impl Node for JsonDecode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let parsed = match self.source.get(payload).as_deref() {
            Some(Value::String(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
                NodeError::new(
                    ErrorName::ValidationError,
                    format!("{} is not valid JSON: {e}", self.source),
                )
            }),
            // Like JSON.parse(String(v)): numbers, booleans and null are their own JSON text.
            Some(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(v.clone()),
            Some(_) => Err(NodeError::new(
                ErrorName::ValidationError,
                format!("{} is not a string of JSON", self.source),
            )),
            None => Err(NodeError::new(
                ErrorName::ValidationError,
                format!("{} is undefined; there is no JSON to decode", self.source),
            )),
        };
        match parsed {
            Ok(value) => self.destination.set(payload, value),
            Err(error) => self.on_error.handle(payload, error)?,
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::run_node;
    use serde_json::json;

    #[test]
    fn decodes() {
        let config = json!({"source": "data.body", "destination": "working.msg"});
        let (_, payload) = run_node(
            "JsonDecodeNode",
            &config,
            json!({"data": {"body": "{\"t\": 21.5}"}}),
        )
        .unwrap();
        assert_eq!(payload["working"]["msg"], json!({"t": 21.5}));
    }

    #[test]
    fn bad_json_halts_by_default() {
        let config = json!({"source": "data.body", "destination": "working.msg"});
        let error = run_node(
            "JsonDecodeNode",
            &config,
            json!({"data": {"body": "{nope"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
        let error = run_node("JsonDecodeNode", &config, json!({"data": {}})).unwrap_err();
        assert!(error.message.contains("undefined"), "{error}");
    }

    #[test]
    fn bad_json_can_go_to_the_error_path() {
        let config = json!({"source": "data.body", "destination": "working.msg",
            "errorBehavior": "payloadPath", "errorPath": "working.err"});
        let (port, payload) = run_node(
            "JsonDecodeNode",
            &config,
            json!({"data": {"body": "{nope"}}),
        )
        .unwrap();
        assert_eq!(port, 0);
        assert_eq!(payload["working"]["err"]["type"], "ValidationError");
        assert!(payload["working"].get("msg").is_none());
        let missing_path =
            json!({"source": "a", "destination": "b", "errorBehavior": "payloadPath"});
        assert!(crate::testing::compile_node("JsonDecodeNode", &missing_path).is_err());
    }
}
