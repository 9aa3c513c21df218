//! `Base64DecodeNode`: decodes the Base64 text at `source` into `destination`: an array of
//! bytes (integers 0–255), or with `stringOutput: true` the bytes read as UTF-8 text. One port.
//!
//! Decisions:
//! * Decoding is Node's `Buffer.from(text, 'base64')`, which Losant's helpers use too: the
//!   URL-safe letters (`-`, `_`) are accepted, characters outside the alphabet (line breaks,
//!   spaces) are skipped, and decoding stops at the first `=`. So no text fails to decode.
//! * Bytes that are not UTF-8, with `stringOutput`, become U+FFFD, as Node's
//!   `Buffer#toString('utf8')` does.
//! * The older revision's spelling — `sourceTemplate` (a string template) and `resultPath` — is
//!   accepted. That revision decoded to text, so when it is used and `stringOutput` is absent
//!   the result is text; otherwise `stringOutput` defaults to `false` (bytes).
//! * A value at `source` that is not a string (nothing, `null`, a number, an object) halts with
//!   `ValidationError`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::base64_encode::{compile_io, Source};
use crate::path::PayloadPath;
use crate::template::encode::base64_decode;
use crate::value::JsValue;
use serde_json::Value;

pub struct Base64Decode {
    source: Source,
    destination: PayloadPath,
    string_output: bool,
}

/// Shares the Base64 Encode node's config (same fields, `stringOutput` used only here).
pub(crate) use crate::nodes::logic::base64_encode::Config;

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let (config, source, destination, older) = compile_io(spec)?;
    Ok(CompiledNodeType::new(
        Base64Decode {
            source,
            destination,
            string_output: config.string_output.unwrap_or(older),
        },
        1,
    ))
}

impl Node for Base64Decode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let text = match self.source.read(payload)? {
            Some(Value::String(text)) => text,
            other => {
                let kind = JsValue::from(other.as_ref()).type_name();
                return Err(NodeError::new(
                    ErrorName::ValidationError,
                    format!(
                        "{} is {kind}, not a string of Base64",
                        self.source.describe()
                    ),
                ));
            }
        };
        let bytes = base64_decode(&text);
        let value = if self.string_output {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Value::Array(bytes.into_iter().map(Value::from).collect())
        };
        self.destination.set(payload, value);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn decode(config: Value, input: Value) -> Result<Value, crate::error::NodeError> {
        run_node("Base64DecodeNode", &config, json!({"data": {"in": input}}))
            .map(|(_, p)| p["working"]["out"].clone())
    }

    #[test]
    fn to_bytes_by_default() {
        let config = json!({"source": "data.in", "destination": "working.out"});
        assert_eq!(
            decode(config.clone(), json!("aGkA/w==")).unwrap(),
            json!([104, 105, 0, 255])
        );
        assert_eq!(decode(config.clone(), json!("")).unwrap(), json!([]));
        // Node's leniency: URL-safe letters, skipped characters, stop at '='.
        assert_eq!(
            decode(config.clone(), json!("aG\nk=junk")).unwrap(),
            json!([104, 105])
        );
        assert_eq!(decode(config, json!("-_8")).unwrap(), json!([251, 255]));
    }

    #[test]
    fn to_text() {
        let config =
            json!({"source": "data.in", "destination": "working.out", "stringOutput": true});
        assert_eq!(
            decode(config.clone(), json!("aMOpbGxvIOKckw==")).unwrap(),
            json!("héllo ✓")
        );
        assert_eq!(decode(config, json!("/w==")).unwrap(), json!("\u{fffd}"));
    }

    #[test]
    fn older_spelling_decodes_to_text() {
        let config = json!({"sourceTemplate": "{{data.in}}", "resultPath": "working.out"});
        assert_eq!(decode(config, json!("aGk=")).unwrap(), json!("hi"));
        let config = json!({"sourceTemplate": "{{data.in}}", "resultPath": "working.out",
            "stringOutput": false});
        assert_eq!(decode(config, json!("aGk=")).unwrap(), json!([104, 105]));
    }

    #[test]
    fn non_strings_halt() {
        let config = json!({"source": "data.in", "destination": "working.out"});
        for bad in [json!(null), json!(5), json!([1]), json!({"a": "aGk="})] {
            let error = decode(config.clone(), bad.clone()).unwrap_err();
            assert_eq!(error.name, ErrorName::ValidationError, "{bad}");
        }
        let error = run_node("Base64DecodeNode", &config, json!({})).unwrap_err();
        assert!(error.message.contains("undefined"), "{error}");
    }

    #[test]
    fn config_is_checked() {
        for bad in [
            json!({}),
            json!({"source": "a"}),
            json!({"source": "a", "destination": "b", "stringOutput": "yes"}),
            json!({"source": "a..b", "destination": "b"}),
        ] {
            let error = compile_node("Base64DecodeNode", &bad)
                .err()
                .expect("refused");
            assert!(error.0.contains("(Base64DecodeNode)"), "{bad}: {error}");
        }
    }
}
