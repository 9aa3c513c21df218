//! `ValidatePayloadNode`: validates a value against a JSON Schema (draft-04). Port 1 when it
//! is valid, port 0 when it is not.
//!
//! * `schemaType: "json"` (the default): `schema` is the schema as JSON text. Text without
//!   mustaches is parsed and compiled once, when the flow is compiled (bad JSON or an invalid
//!   schema is a compile error); text with mustaches is a JSON template, rendered and compiled
//!   at each run.
//! * `schemaType: "path"`: `schema` is a payload path to the schema (an object, or JSON
//!   text). The last schema compiled this way is kept, so a schema held in globals is compiled
//!   once, not at every run.
//! * `toValidatePath` is the value to validate; blank is the whole payload.
//! * `errorsPath`, when given, receives the violations — `[]` when the value is valid — in
//!   the shape of `is-my-json-valid`, the validator Losant's messages come from:
//!   `{"field": "data.voltage", "message": "is the wrong type"}`. `field` is `data` (the
//!   validated value itself) followed by the path inside it (`data.list.0`,
//!   `data["odd key"]`); for a missing required property it names the property.
//!
//! Decisions:
//! * Schemas are compiled as draft-04 (the `jsonschema` crate's `Draft4`). Formats are
//!   checked (`date-time`, `email`, `ipv4`, …), as `is-my-json-valid` does. References to
//!   other documents are not fetched (no network, no files): such a `$ref` fails to compile.
//! * A value that is not there (`undefined`) is validated as `null`.
//! * A schema that cannot be used at run time — nothing or not JSON at the schema path, a
//!   rendered schema that is not a valid schema — halts with `ValidationError` (a template
//!   that does not render JSON with `TemplateError`): it is a broken flow, not an invalid
//!   payload.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{json_template, optional_path, path, render_json, template};
use crate::path::PayloadPath;
use crate::template::JsonTemplate;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    schema_type: Option<String>,
    schema: Option<Value>,
    to_validate_path: Option<String>,
    errors_path: Option<String>,
}

enum Schema {
    Compiled(Validator),
    Template(JsonTemplate),
    Path {
        path: PayloadPath,
        /// The last schema read at the path and its validator.
        last: Mutex<Option<(Value, Arc<Validator>)>>,
    },
}

pub struct ValidatePayload {
    schema: Schema,
    target: Option<PayloadPath>,
    errors: Option<PayloadPath>,
}

/// Compiles a schema (draft-04 unless it says otherwise).
fn build(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("the schema is not a valid JSON Schema: {e}"))
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let schema = match (
        config.schema_type.as_deref().unwrap_or("json"),
        config.schema,
    ) {
        (_, None | Some(Value::Null)) => return Err(spec.error("schema is required")),
        ("json" | "", Some(Value::String(text))) if text.trim().is_empty() => {
            return Err(spec.error("schema is required"))
        }
        ("json" | "", Some(Value::String(text))) => {
            match template(spec, "schema", &text)?.static_text() {
                Some(text) => {
                    let value: Value = serde_json::from_str(text)
                        .map_err(|e| spec.error(format!("schema is not valid JSON: {e}")))?;
                    Schema::Compiled(build(&value).map_err(|e| spec.error(e))?)
                }
                None => Schema::Template(json_template(spec, "schema", &text)?),
            }
        }
        // A schema given as an object rather than text.
        ("json" | "", Some(value @ (Value::Object(_) | Value::Bool(_)))) => {
            Schema::Compiled(build(&value).map_err(|e| spec.error(e))?)
        }
        ("path", Some(Value::String(text))) => {
            if text.trim().is_empty() {
                return Err(spec.error("schema (a payload path) is required"));
            }
            Schema::Path {
                path: path(spec, "schema", &text)?,
                last: Mutex::new(None),
            }
        }
        ("json" | "" | "path", Some(other)) => {
            return Err(spec.error(format!(
                "config: schema must be a string, not {}",
                crate::value::JsValue::from(&other).type_name()
            )))
        }
        (other, _) => {
            return Err(spec.error(format!("schemaType must be json or path, not \"{other}\"")))
        }
    };
    Ok(CompiledNodeType::new(
        ValidatePayload {
            schema,
            target: optional_path(spec, "toValidatePath", config.to_validate_path.as_deref())?,
            errors: optional_path(spec, "errorsPath", config.errors_path.as_deref())?,
        },
        2,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// Whether a key prints as `.key` (a JavaScript identifier).
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn push_key(field: &mut String, key: &str) {
    if is_identifier(key) {
        field.push('.');
        field.push_str(key);
    } else {
        field.push('[');
        field.push_str(&Value::String(key.to_owned()).to_string());
        field.push(']');
    }
}

/// One violation in `is-my-json-valid`'s shape.
fn violation(error: &ValidationError<'_>) -> Value {
    let mut field = String::from("data");
    for segment in error.instance_path().segments() {
        match segment {
            LocationSegment::Property(key) => push_key(&mut field, &key),
            LocationSegment::Index(n) => {
                field.push('.');
                field.push_str(&n.to_string());
            }
        }
    }
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            match property {
                Value::String(key) => push_key(&mut field, key),
                other => push_key(&mut field, &other.to_string()),
            }
            "is required".to_owned()
        }
        ValidationErrorKind::Type { .. } => "is the wrong type".to_owned(),
        ValidationErrorKind::AdditionalItems { .. } => "has additional items".to_owned(),
        ValidationErrorKind::AdditionalProperties { .. } => "has additional properties".to_owned(),
        ValidationErrorKind::AnyOf { .. } => "no schemas match".to_owned(),
        ValidationErrorKind::OneOfMultipleValid { .. }
        | ValidationErrorKind::OneOfNotValid { .. } => {
            "no (or more than one) schemas match".to_owned()
        }
        ValidationErrorKind::Not { .. } => "negative schema matches".to_owned(),
        ValidationErrorKind::Enum { .. } => "must be an enum value".to_owned(),
        ValidationErrorKind::Constant { .. } => "must be const value".to_owned(),
        ValidationErrorKind::UniqueItems => "must be unique".to_owned(),
        ValidationErrorKind::Pattern { .. } => "pattern mismatch".to_owned(),
        ValidationErrorKind::Format { format } => format!("must be {format} format"),
        ValidationErrorKind::MultipleOf { .. } => "has a remainder".to_owned(),
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::ExclusiveMinimum { .. } => {
            "is less than minimum".to_owned()
        }
        ValidationErrorKind::Maximum { .. } | ValidationErrorKind::ExclusiveMaximum { .. } => {
            "is more than maximum".to_owned()
        }
        ValidationErrorKind::MinLength { .. } => "has less length than allowed".to_owned(),
        ValidationErrorKind::MaxLength { .. } => "has longer length than allowed".to_owned(),
        ValidationErrorKind::MinItems { .. } => "has less items than allowed".to_owned(),
        ValidationErrorKind::MaxItems { .. } => "has more items than allowed".to_owned(),
        ValidationErrorKind::MinProperties { .. } => "has less properties than allowed".to_owned(),
        ValidationErrorKind::MaxProperties { .. } => "has more properties than allowed".to_owned(),
        _ => error.to_string(),
    };
    json!({"field": field, "message": message})
}

impl ValidatePayload {
    fn validator(&self, payload: &Value) -> Result<Arc<Validator>, NodeError> {
        let schema = match &self.schema {
            Schema::Compiled(_) => unreachable!("handled by the caller"),
            Schema::Template(template) => render_json(template, payload)?,
            Schema::Path { path, last } => {
                let value = match path.get(payload).as_deref() {
                    None | Some(Value::Null) => {
                        return Err(invalid(format!("schema path {path} holds no schema")))
                    }
                    Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
                        invalid(format!("the schema at {path} is not valid JSON: {e}"))
                    })?,
                    Some(value) => value.clone(),
                };
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((schema, validator)) = last.as_ref() {
                    if *schema == value {
                        return Ok(validator.clone());
                    }
                }
                let validator = Arc::new(build(&value).map_err(invalid)?);
                *last = Some((value, validator.clone()));
                return Ok(validator);
            }
        };
        build(&schema).map(Arc::new).map_err(invalid)
    }
}

impl Node for ValidatePayload {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let owned;
        let validator: &Validator = match &self.schema {
            Schema::Compiled(validator) => validator,
            _ => {
                owned = self.validator(payload)?;
                &owned
            }
        };
        let target = match &self.target {
            Some(path) => path.get(payload).map_or(Value::Null, |v| v.into_owned()),
            None => payload.clone(),
        };
        let errors: Vec<Value> = if validator.is_valid(&target) {
            Vec::new()
        } else {
            validator
                .iter_errors(&target)
                .map(|e| violation(&e))
                .collect()
        };
        let valid = errors.is_empty();
        if let Some(path) = &self.errors {
            path.set(payload, Value::Array(errors));
        }
        Ok(Outcome::Port(usize::from(valid)))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn check(schema: Value, value: Value) -> (usize, Value) {
        let config = json!({"schema": schema.to_string(), "toValidatePath": "data.body",
            "errorsPath": "working.errs"});
        let (port, after) = run_node(
            "ValidatePayloadNode",
            &config,
            json!({"data": {"body": value}}),
        )
        .unwrap();
        (port, after["working"]["errs"].clone())
    }

    #[test]
    fn valid_and_invalid() {
        let schema = json!({"type": "object", "required": ["sn"],
            "properties": {"sn": {"type": "string"}, "voltage": {"type": "number"}}});
        assert_eq!(
            check(schema.clone(), json!({"sn": "a", "voltage": 3.3})),
            (1, json!([]))
        );
        let (port, errs) = check(schema.clone(), json!({"voltage": "high"}));
        assert_eq!(port, 0);
        let mut errs = errs.as_array().unwrap().clone();
        errs.sort_by_key(|e| e["field"].as_str().unwrap().to_owned());
        assert_eq!(
            errs,
            vec![
                json!({"field": "data.sn", "message": "is required"}),
                json!({"field": "data.voltage", "message": "is the wrong type"}),
            ]
        );
        assert_eq!(
            check(schema, json!([1])),
            (
                0,
                json!([{"field": "data", "message": "is the wrong type"}])
            )
        );
    }

    #[test]
    fn messages_and_fields() {
        let cases = [
            (
                json!({"minimum": 5}),
                json!(3),
                "data",
                "is less than minimum",
            ),
            (
                json!({"maximum": 5, "exclusiveMaximum": true}),
                json!(5),
                "data",
                "is more than maximum",
            ),
            (
                json!({"enum": ["a"]}),
                json!("b"),
                "data",
                "must be an enum value",
            ),
            (
                json!({"pattern": "^a"}),
                json!("b"),
                "data",
                "pattern mismatch",
            ),
            (
                json!({"maxLength": 1}),
                json!("ab"),
                "data",
                "has longer length than allowed",
            ),
            (
                json!({"minItems": 2}),
                json!([1]),
                "data",
                "has less items than allowed",
            ),
            (
                json!({"uniqueItems": true}),
                json!([1, 1]),
                "data",
                "must be unique",
            ),
            (
                json!({"multipleOf": 2}),
                json!(3),
                "data",
                "has a remainder",
            ),
            (
                json!({"format": "email"}),
                json!("nope"),
                "data",
                "must be email format",
            ),
            (
                json!({"additionalProperties": false, "properties": {}}),
                json!({"x": 1}),
                "data",
                "has additional properties",
            ),
            (
                json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
                json!(true),
                "data",
                "no schemas match",
            ),
            (
                json!({"items": {"type": "number"}}),
                json!([1, "x"]),
                "data.1",
                "is the wrong type",
            ),
            (
                json!({"properties": {"odd key": {"type": "number"}}}),
                json!({"odd key": "x"}),
                "data[\"odd key\"]",
                "is the wrong type",
            ),
            (
                json!({"properties": {"a": {"properties": {"b": {"type": "string"}}}}}),
                json!({"a": {"b": 1}}),
                "data.a.b",
                "is the wrong type",
            ),
        ];
        for (schema, value, field, message) in cases {
            let (port, errs) = check(schema.clone(), value.clone());
            assert_eq!(port, 0, "{schema} {value}");
            assert_eq!(
                errs,
                json!([{"field": field, "message": message}]),
                "{schema} {value}"
            );
        }
    }

    #[test]
    fn whole_payload_missing_values_and_no_errors_path() {
        let config = json!({"schemaType": "json",
            "schema": "{\"required\": [\"data\", \"time\"]}"});
        let (port, after) = run_node(
            "ValidatePayloadNode",
            &config,
            json!({"data": {}, "time": 1}),
        )
        .unwrap();
        assert_eq!(port, 1);
        assert_eq!(after, json!({"data": {}, "time": 1}));
        assert_eq!(
            run_node("ValidatePayloadNode", &config, json!({"data": {}}))
                .unwrap()
                .0,
            0
        );
        // Nothing at the path is validated as null.
        let config = json!({"schema": "{\"type\": \"object\"}", "toValidatePath": "data.none",
            "errorsPath": "e"});
        let (port, after) = run_node("ValidatePayloadNode", &config, json!({})).unwrap();
        assert_eq!(port, 0);
        assert_eq!(after["e"][0]["message"], "is the wrong type");
        let config = json!({"schema": "{\"type\": [\"object\", \"null\"]}",
            "toValidatePath": "data.none"});
        assert_eq!(
            run_node("ValidatePayloadNode", &config, json!({}))
                .unwrap()
                .0,
            1
        );
    }

    #[test]
    fn schema_from_a_path_or_a_template() {
        let config = json!({"schemaType": "path", "schema": "globals.schema",
            "toValidatePath": "data", "errorsPath": "errs"});
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let run = |schema: Value, data: Value| {
            run_node(
                "ValidatePayloadNode",
                &config,
                json!({"globals": {"schema": schema}, "data": data}),
            )
        };
        assert_eq!(run(schema.clone(), json!({"n": 1})).unwrap().0, 1);
        assert_eq!(run(schema.clone(), json!({"n": 1.5})).unwrap().0, 0);
        assert_eq!(
            run(json!(schema.to_string()), json!({"n": "1"})).unwrap().0,
            0
        );
        for bad in [Value::Null, json!("{nope"), json!({"type": 5})] {
            let e = run(bad.clone(), json!({})).unwrap_err();
            assert_eq!(e.name, ErrorName::ValidationError, "{bad}");
        }
        let node = compile_node("ValidatePayloadNode", &config).unwrap();
        let h = crate::testing::Harness::new();
        for n in [1, 2] {
            let payload = json!({"globals": {"schema": schema}, "data": {"n": n}});
            assert_eq!(h.run(&node, payload).unwrap().0, 1);
        }

        let templated = json!({"schema": "{\"maximum\": {{globals.max}}}",
            "toValidatePath": "data.n"});
        let run = |max: Value, n: Value| {
            run_node(
                "ValidatePayloadNode",
                &templated,
                json!({"globals": {"max": max}, "data": {"n": n}}),
            )
        };
        assert_eq!(run(json!(10), json!(5)).unwrap().0, 1);
        assert_eq!(run(json!(10), json!(11)).unwrap().0, 0);
        assert_eq!(
            run(json!("x"), json!(1)).unwrap_err().name,
            ErrorName::TemplateError
        );
        assert_eq!(
            run(json!("[1]"), json!(1)).unwrap_err().name,
            ErrorName::ValidationError
        );
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"schema": "{\"type\": \"object\"}", "x": 1});
        assert_eq!(compile_node("ValidatePayloadNode", &ok).unwrap().ports, 2);
        assert!(compile_node(
            "ValidatePayloadNode",
            &json!({"schema": {"type": "string"}})
        )
        .is_ok());
        for bad in [
            json!({}),
            json!({"schema": ""}),
            json!({"schema": "{nope"}),
            json!({"schema": "{\"type\": 5}"}),
            json!({"schema": "{\"$ref\": \"http://example.com/s.json\"}"}),
            json!({"schema": 5}),
            json!({"schemaType": "yaml", "schema": "{}"}),
            json!({"schemaType": "path", "schema": ""}),
            json!({"schemaType": "path", "schema": "a..b"}),
            json!({"schema": "{}", "toValidatePath": "{{data}}"}),
            json!({"schema": "{{#if}}"}),
        ] {
            let e = compile_node("ValidatePayloadNode", &bad).err().unwrap();
            assert!(e.0.contains("(ValidatePayloadNode)"), "{bad}: {e}");
        }
    }
}
