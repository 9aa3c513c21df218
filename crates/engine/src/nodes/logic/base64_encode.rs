//! `Base64EncodeNode`: writes the Base64 text of the value at `source` to `destination`. One
//! port.
//!
//! The value may be a string (encoded as UTF-8) or an array of bytes (integers 0–255). Numbers
//! and booleans are encoded as they print (`String(v)`).
//!
//! Decisions:
//! * The older revision's spelling — `sourceTemplate` (a string template) and `resultPath` — is
//!   accepted. A template that is exactly one `{{ref}}` passes the referenced value through
//!   with its type, so `{{working.bytes}}` encodes the byte array, not its printed text.
//! * Nothing at `source` (`undefined`), `null`, an object, or an array holding anything but
//!   integers 0–255 halts with `ValidationError` (the node has no error output).
//! * Output is standard Base64 with `=` padding, as Node's `Buffer#toString('base64')`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, template};
use crate::path::PayloadPath;
use crate::template::encode::base64_encode;
use crate::template::Template;
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source: Option<String>,
    destination: Option<String>,
    /// Older spelling: a template instead of `source`.
    source_template: Option<String>,
    /// Older spelling of `destination`.
    result_path: Option<String>,
    /// Decode only.
    pub(crate) string_output: Option<bool>,
}

/// Where a Base64 node reads its input.
pub(crate) enum Source {
    Path(PayloadPath),
    Template(Template),
}

impl Source {
    /// Reads the input; `None` is `undefined`.
    pub(crate) fn read(&self, payload: &Value) -> Result<Option<Value>, NodeError> {
        match self {
            Source::Path(path) => Ok(path.get(payload).map(|v| v.into_owned())),
            Source::Template(t) => match t.render_value(payload) {
                Ok(value) => Ok(value.to_json()),
                Err(e) => Err(NodeError::new(ErrorName::TemplateError, e.to_string())),
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Path(path) => path.to_string(),
            Source::Template(t) => format!("sourceTemplate \"{}\"", t.source()),
        }
    }
}

fn required(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

/// Parses the config shared by the two Base64 nodes: (config, source, destination, whether
/// the older spelling was used).
pub(crate) fn compile_io(
    spec: &NodeSpec<'_>,
) -> Result<(Config, Source, PayloadPath, bool), CompileError> {
    let config: Config = spec.config()?;
    let (source, older) = match (
        required(config.source.as_deref()),
        required(config.source_template.as_deref()),
    ) {
        (Some(text), _) => (Source::Path(path(spec, "source", text)?), false),
        (None, Some(text)) => (
            Source::Template(template(spec, "sourceTemplate", text)?),
            true,
        ),
        (None, None) => return Err(spec.error("source is required")),
    };
    let destination = match required(config.destination.as_deref())
        .map(|t| ("destination", t))
        .or_else(|| required(config.result_path.as_deref()).map(|t| ("resultPath", t)))
    {
        Some((field, text)) => path(spec, field, text)?,
        None => return Err(spec.error("destination is required")),
    };
    Ok((config, source, destination, older))
}

pub struct Base64Encode {
    source: Source,
    destination: PayloadPath,
}

/// The fields this node knows (`stringOutput` belongs to the decode node).
pub(crate) fn config_fields() -> Vec<&'static str> {
    let mut fields = crate::node::config_fields::<Config>();
    fields.retain(|f| *f != "stringOutput");
    fields
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let (_, source, destination, _) = compile_io(spec)?;
    Ok(CompiledNodeType::new(
        Base64Encode {
            source,
            destination,
        },
        1,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// The bytes a value stands for.
fn bytes_of(value: Option<Value>, what: &str) -> Result<Vec<u8>, NodeError> {
    match value {
        Some(Value::String(text)) => Ok(text.into_bytes()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => {
            Ok(JsValue::from(&v).to_js_string().into_bytes())
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "{what}[{i}] is {item}, not a byte (an integer from 0 to 255)"
                        ))
                    })
            })
            .collect(),
        Some(other) => Err(invalid(format!(
            "{what} is {}, not a string or an array of bytes",
            JsValue::from(&other).type_name()
        ))),
        None => Err(invalid(format!(
            "{what} is undefined; there is nothing to encode"
        ))),
    }
}

impl Node for Base64Encode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let bytes = bytes_of(self.source.read(payload)?, &self.source.describe())?;
        self.destination
            .set(payload, Value::String(base64_encode(&bytes)));
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn encode(value: Value) -> Result<Value, crate::error::NodeError> {
        let config = json!({"source": "data.in", "destination": "working.b64"});
        let mut payload = json!({"data": {}});
        if !value.is_null() {
            payload["data"]["in"] = value;
        }
        run_node("Base64EncodeNode", &config, payload).map(|(_, p)| p["working"]["b64"].clone())
    }

    #[test]
    fn strings_and_bytes() {
        assert_eq!(encode(json!("hi")).unwrap(), json!("aGk="));
        assert_eq!(encode(json!("héllo ✓")).unwrap(), json!("aMOpbGxvIOKckw=="));
        assert_eq!(encode(json!("")).unwrap(), json!(""));
        assert_eq!(
            encode(json!([104, 105, 0, 255])).unwrap(),
            json!("aGkA/w==")
        );
        assert_eq!(encode(json!([])).unwrap(), json!(""));
        assert_eq!(encode(json!(12.5)).unwrap(), json!("MTIuNQ=="));
        assert_eq!(encode(json!(true)).unwrap(), json!("dHJ1ZQ=="));
    }

    #[test]
    fn other_values_halt() {
        for bad in [
            json!(null),
            json!({"a": 1}),
            json!([1, 256]),
            json!([1.5]),
            json!(["a"]),
        ] {
            let payload = json!({"data": {"in": bad.clone()}});
            let config = json!({"source": "data.in", "destination": "working.b64"});
            let error = run_node("Base64EncodeNode", &config, payload).unwrap_err();
            assert_eq!(error.name, ErrorName::ValidationError, "{bad}");
        }
        let error = encode(Value::Null).unwrap_err();
        assert!(error.message.contains("undefined"), "{error}");
    }

    #[test]
    fn older_spelling() {
        let config = json!({"sourceTemplate": "{{data.text}}!", "resultPath": "working.b64"});
        let (_, after) =
            run_node("Base64EncodeNode", &config, json!({"data": {"text": "hi"}})).unwrap();
        assert_eq!(after["working"]["b64"], json!("aGkh"));
        let config = json!({"sourceTemplate": "{{data.bytes}}", "resultPath": "working.b64"});
        let (_, after) = run_node(
            "Base64EncodeNode",
            &config,
            json!({"data": {"bytes": [1, 2, 3]}}),
        )
        .unwrap();
        assert_eq!(after["working"]["b64"], json!("AQID"));
    }

    #[test]
    fn config_is_checked() {
        for bad in [
            json!({}),
            json!({"source": "a"}),
            json!({"destination": "b"}),
            json!({"source": "", "destination": "b"}),
            json!({"source": "{{a}}", "destination": "b"}),
            json!({"source": "a", "destination": 1}),
            json!({"sourceTemplate": "{{#if}}", "destination": "b"}),
        ] {
            let error = compile_node("Base64EncodeNode", &bad)
                .err()
                .expect("refused");
            assert!(error.0.contains("(Base64EncodeNode)"), "{bad}: {error}");
        }
    }
}
