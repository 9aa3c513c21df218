//! `MutateNode`: applies `rules` (at most [`MAX_RULES`]) to the payload in order, each seeing
//! what the previous ones did:
//!
//! * `set` renders `valueTemplate` and writes it to `destination` (intermediate objects are
//!   created). With `valueTemplateType: "string"` (the default) the result is text — except
//!   that a template which is exactly one `{{ref}}` keeps the referenced value's type (the
//!   typed passthrough of the newer revision, [`Template::render_value`]): `{{data.list}}`
//!   copies the array, `{{data.n}}` the number, `{{data.none}}` the `null`. With
//!   `valueTemplateType: "json"` the rendered text is parsed as JSON; text that is not JSON
//!   halts with `TemplateError` and a message starting `InvalidJsonTemplate` (the newer
//!   revision; the older one stored `undefined`). A template without mustaches is parsed once
//!   when the flow is compiled, so static text that is not JSON is a compile error.
//! * `copy` writes a deep copy of the value at `source` to `destination`, types kept.
//! * `move` takes the value out of `source` and writes it to `destination`.
//! * `remove` deletes `source`; a path that is not there is a no-op.
//!
//! Decisions:
//! * `valueTemplate` is required (≤ 32,768 characters): missing or empty is a compile error,
//!   and a value that renders empty — text `""`, or `undefined` through the passthrough — halts
//!   with `TemplateError` (FLOW-JSON §7.4). `null` through the passthrough is a value, not
//!   empty.
//! * `copy`/`move` of a source that is not there (`undefined`) leave the destination
//!   `undefined`: it is removed, as `JSON.stringify` would drop a key set to `undefined`.
//! * `move` removes the source before writing the destination, so moving a value into a path
//!   under itself (`a` → `a.b`) nests it instead of losing it. A value that cannot be removed
//!   (`data.list.length`, a string's character) is copied.
//! * Older spellings are accepted: `value` for `valueTemplate` (a non-string `value` is taken
//!   as JSON), and `path` for `destination` (set) or `source` (remove).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{json_template, path, template};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template, TemplateError};
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::Value;

/// Most rules a Mutate node may have.
pub const MAX_RULES: usize = 100;
/// Longest `valueTemplate`, in characters.
pub const MAX_VALUE_TEMPLATE_CHARS: usize = 32_768;

#[derive(Deserialize)]
pub(crate) struct Config {
    rules: Option<Vec<RuleConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    value_template: Option<String>,
    value_template_type: Option<String>,
    destination: Option<String>,
    source: Option<String>,
    /// Older spelling of `valueTemplate`.
    value: Option<Value>,
    /// Older spelling of `destination` (set) or `source` (remove).
    path: Option<String>,
}

enum SetValue {
    /// A template without mustaches: its value, ready.
    Literal(Value),
    /// A string template, with the typed passthrough.
    Text(Template),
    Json(JsonTemplate),
}

enum Rule {
    Set {
        value: SetValue,
        destination: PayloadPath,
    },
    Remove {
        source: PayloadPath,
    },
    Copy {
        source: PayloadPath,
        destination: PayloadPath,
    },
    Move {
        source: PayloadPath,
        destination: PayloadPath,
    },
}

pub struct Mutate {
    rules: Vec<Rule>,
}

fn required_path(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<PayloadPath, CompileError> {
    match text {
        Some(text) if !text.trim().is_empty() => path(spec, field, text),
        _ => Err(spec.error(format!("{field} is required"))),
    }
}

fn compile_rule(spec: &NodeSpec<'_>, i: usize, rule: &RuleConfig) -> Result<Rule, CompileError> {
    let field = |name: &str| format!("rules[{i}].{name}");
    let source = || {
        let text = rule.source.as_deref().or(rule.path.as_deref());
        required_path(spec, &field("source"), text)
    };
    let destination = || required_path(spec, &field("destination"), rule.destination.as_deref());
    Ok(match rule.kind.as_deref() {
        Some("set") => {
            // `value` is the older spelling; a non-string one is JSON.
            let (text, kind) = match (&rule.value_template, &rule.value) {
                (Some(text), _) | (None, Some(Value::String(text))) => {
                    (text.clone(), rule.value_template_type.as_deref())
                }
                (None, Some(other)) if !other.is_null() => (other.to_string(), Some("json")),
                _ => (String::new(), None),
            };
            if text.is_empty() {
                return Err(spec.error(format!("{} is required", field("valueTemplate"))));
            }
            if text.chars().count() > MAX_VALUE_TEMPLATE_CHARS {
                return Err(spec.error(format!(
                    "{} is longer than {MAX_VALUE_TEMPLATE_CHARS} characters",
                    field("valueTemplate")
                )));
            }
            let compiled = template(spec, &field("valueTemplate"), &text)?;
            let value = match (kind.unwrap_or("string"), compiled.static_text()) {
                ("string" | "", Some(text)) => SetValue::Literal(Value::String(text.to_owned())),
                ("string" | "", None) => SetValue::Text(compiled),
                // Static JSON is parsed once, and refused now rather than at every run.
                ("json", Some(text)) => {
                    SetValue::Literal(serde_json::from_str(text).map_err(|e| {
                        spec.error(format!(
                            "InvalidJsonTemplate: {} is not valid JSON: {e}",
                            field("valueTemplate")
                        ))
                    })?)
                }
                ("json", None) => {
                    SetValue::Json(json_template(spec, &field("valueTemplate"), &text)?)
                }
                (other, _) => {
                    return Err(spec.error(format!(
                        "{} must be string or json, not \"{other}\"",
                        field("valueTemplateType")
                    )))
                }
            };
            let text = rule.destination.as_deref().or(rule.path.as_deref());
            Rule::Set {
                value,
                destination: required_path(spec, &field("destination"), text)?,
            }
        }
        Some("remove") => Rule::Remove { source: source()? },
        Some("copy") => Rule::Copy {
            source: source()?,
            destination: destination()?,
        },
        Some("move") => Rule::Move {
            source: source()?,
            destination: destination()?,
        },
        Some(other) => {
            return Err(spec.error(format!(
                "{} must be set, remove, copy or move, not \"{other}\"",
                field("type")
            )))
        }
        None => return Err(spec.error(format!("{} is required", field("type")))),
    })
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let configs = config.rules.unwrap_or_default();
    if configs.len() > MAX_RULES {
        return Err(spec.error(format!(
            "has {} rules; a Mutate node may have at most {MAX_RULES}",
            configs.len()
        )));
    }
    let rules = configs
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(spec, i, rule))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledNodeType::new(Mutate { rules }, 1))
}

/// Writes `value` at `destination`, or removes it for `undefined`.
fn put(payload: &mut Value, destination: &PayloadPath, value: Option<Value>) {
    match value {
        Some(value) => destination.set(payload, value),
        None => {
            destination.remove(payload);
        }
    }
}

fn rendered_empty(template: &str, i: usize) -> NodeError {
    NodeError::new(
        ErrorName::TemplateError,
        format!("rules[{i}].valueTemplate rendered empty (template \"{template}\")"),
    )
}

impl Node for Mutate {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        for (i, rule) in self.rules.iter().enumerate() {
            match rule {
                Rule::Set {
                    value: SetValue::Literal(value),
                    destination,
                } => destination.set(payload, value.clone()),
                Rule::Set {
                    value: SetValue::Text(template),
                    destination,
                } => {
                    let value = match template.render_value(payload) {
                        Ok(JsValue::Undefined) => return Err(rendered_empty(template.source(), i)),
                        Ok(JsValue::String(text)) if text.is_empty() => {
                            return Err(rendered_empty(template.source(), i))
                        }
                        Ok(value) => value.to_json().unwrap_or(Value::Null),
                        Err(e) => {
                            return Err(NodeError::new(ErrorName::TemplateError, e.to_string()))
                        }
                    };
                    destination.set(payload, value);
                }
                Rule::Set {
                    value: SetValue::Json(template),
                    destination,
                } => {
                    let value = template.render(payload).map_err(|e| match e {
                        TemplateError::InvalidJson(message) => NodeError::new(
                            ErrorName::TemplateError,
                            format!(
                                "InvalidJsonTemplate: rules[{i}].valueTemplate \"{}\": {message}",
                                template.source()
                            ),
                        ),
                        other => NodeError::new(ErrorName::TemplateError, other.to_string()),
                    })?;
                    destination.set(payload, value);
                }
                Rule::Remove { source } => {
                    source.remove(payload);
                }
                Rule::Copy {
                    source,
                    destination,
                } => {
                    let value = source.get(payload).map(|v| v.into_owned());
                    put(payload, destination, value);
                }
                Rule::Move {
                    source,
                    destination,
                } => {
                    let value = match source.remove(payload) {
                        Some(value) => Some(value),
                        None => source.get(payload).map(|v| v.into_owned()),
                    };
                    put(payload, destination, value);
                }
            }
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn mutate(rules: Value, payload: Value) -> Value {
        let (port, payload) = run_node("MutateNode", &json!({ "rules": rules }), payload).unwrap();
        assert_eq!(port, 0);
        payload
    }

    fn payload() -> Value {
        json!({"data": {"tankId": "tank-7", "n": 91.3, "list": [1, "x"], "obj": {"a": 1},
            "none": null, "empty": "", "t": true}})
    }

    #[test]
    fn set_renders_text_and_creates_intermediate_objects() {
        let after = mutate(
            json!([
                {"type": "set", "valueTemplate": "{{data.tankId}} at {{data.n}}%",
                 "destination": "working.alert.text"},
                {"type": "set", "valueTemplate": "plain", "destination": "working.plain"},
                {"type": "set", "valueTemplate": "{{data.obj}}!", "destination": "working.obj"}
            ]),
            payload(),
        );
        assert_eq!(after["working"]["alert"]["text"], "tank-7 at 91.3%");
        assert_eq!(after["working"]["plain"], "plain");
        assert_eq!(after["working"]["obj"], "[object Object]!");
    }

    #[test]
    fn set_with_one_reference_keeps_the_type() {
        let after = mutate(
            json!([
                {"type": "set", "valueTemplate": "{{data.n}}", "destination": "w.n"},
                {"type": "set", "valueTemplate": "{{data.list}}", "destination": "w.list"},
                {"type": "set", "valueTemplate": "{{{data.obj}}}", "destination": "w.obj"},
                {"type": "set", "valueTemplate": "{{data.t}}", "destination": "w.t"},
                {"type": "set", "valueTemplate": "{{data.none}}", "destination": "w.none"},
                {"type": "set", "valueTemplate": "{{jsonDecode '[1,2]'}}", "destination": "w.h"},
                {"type": "set", "valueTemplate": " {{data.n}}", "destination": "w.text"}
            ]),
            payload(),
        );
        assert_eq!(
            after["w"],
            json!({"n": 91.3, "list": [1, "x"], "obj": {"a": 1}, "t": true, "none": null,
                "h": [1, 2], "text": " 91.3"})
        );
    }

    #[test]
    fn set_json_parses() {
        let after = mutate(
            json!([
                {"type": "set", "valueTemplate": "{{data.n}}", "valueTemplateType": "json",
                 "destination": "w.n"},
                {"type": "set", "valueTemplate": "{\"id\": \"{{data.tankId}}\", \"ok\": {{data.t}}}",
                 "valueTemplateType": "json", "destination": "w.obj"},
                {"type": "set", "valueTemplate": "{{jsonEncode data.list}}",
                 "valueTemplateType": "json", "destination": "w.list"}
            ]),
            payload(),
        );
        assert_eq!(
            after["w"],
            json!({"n": 91.3, "obj": {"id": "tank-7", "ok": true}, "list": [1, "x"]})
        );
    }

    #[test]
    fn set_json_that_is_not_json_halts() {
        let config = json!({"rules": [{"type": "set", "valueTemplate": "{{data.tankId}}",
            "valueTemplateType": "json", "destination": "w.x"}]});
        let error = run_node("MutateNode", &config, payload()).unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
        assert!(error.message.starts_with("InvalidJsonTemplate"), "{error}");
        assert!(error.message.contains("tank-7"), "quotes the text: {error}");
        // Rendering empty is not JSON either.
        let config = json!({"rules": [{"type": "set", "valueTemplate": "{{data.nope}}",
            "valueTemplateType": "json", "destination": "w.x"}]});
        let error = run_node("MutateNode", &config, payload()).unwrap_err();
        assert!(error.message.starts_with("InvalidJsonTemplate"), "{error}");
    }

    #[test]
    fn set_that_renders_empty_halts() {
        for template in [
            "{{data.nope}}",
            "{{data.empty}}",
            "{{data.nope}}{{data.empty}}",
        ] {
            let config = json!({"rules": [{"type": "set", "valueTemplate": template,
                "destination": "w.x"}]});
            let error = run_node("MutateNode", &config, payload()).unwrap_err();
            assert_eq!(error.name, ErrorName::TemplateError, "{template}");
            assert!(error.message.contains("rules[0].valueTemplate"), "{error}");
        }
        let config = json!({"rules": [{"type": "set", "valueTemplate": "{{decodeURIComponent data.s}}",
            "destination": "w.x"}]});
        let error =
            run_node("MutateNode", &config, json!({"data": {"s": "%E0%A4%A"}})).unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn copy_keeps_types_and_is_deep() {
        let after = mutate(
            json!([
                {"type": "copy", "source": "data", "destination": "working.raw"},
                {"type": "set", "valueTemplate": "changed", "destination": "data.obj.a"},
                {"type": "copy", "source": "data.list.length", "destination": "working.len"},
                {"type": "copy", "source": "data.list.[1]", "destination": "working.second"}
            ]),
            payload(),
        );
        assert_eq!(after["working"]["raw"], payload()["data"]);
        assert_eq!(after["data"]["obj"]["a"], "changed");
        assert_eq!(after["working"]["len"], 2);
        assert_eq!(after["working"]["second"], "x");
    }

    #[test]
    fn copy_or_move_of_nothing_leaves_the_destination_undefined() {
        let after = mutate(
            json!([
                {"type": "copy", "source": "data.nope", "destination": "data.n"},
                {"type": "move", "source": "data.nope", "destination": "data.t"}
            ]),
            payload(),
        );
        assert!(after["data"].get("n").is_none());
        assert!(after["data"].get("t").is_none());
    }

    #[test]
    fn move_copies_then_removes() {
        let after = mutate(
            json!([
                {"type": "move", "source": "data.obj", "destination": "working.obj"},
                {"type": "move", "source": "data.list", "destination": "data.list.inner"},
                {"type": "move", "source": "data.n", "destination": "data.n"}
            ]),
            payload(),
        );
        assert!(after["data"].get("obj").is_none());
        assert_eq!(after["working"]["obj"], json!({"a": 1}));
        assert_eq!(after["data"]["list"], json!({"inner": [1, "x"]}));
        assert_eq!(after["data"]["n"], json!(91.3));
    }

    #[test]
    fn remove_deletes_and_ignores_missing_paths() {
        let after = mutate(
            json!([
                {"type": "remove", "source": "data.obj"},
                {"type": "remove", "source": "data.nope.deeper"},
                {"type": "remove", "source": "nope"}
            ]),
            payload(),
        );
        assert!(after["data"].get("obj").is_none());
        assert!(after.get("nope").is_none());
        assert_eq!(after["data"]["tankId"], "tank-7");
    }

    #[test]
    fn rules_see_earlier_rules() {
        let after = mutate(
            json!([
                {"type": "set", "valueTemplate": "{{data.n}}", "destination": "w.a"},
                {"type": "set", "valueTemplate": "{{w.a}}-{{w.a}}", "destination": "w.b"},
                {"type": "copy", "source": "w.b", "destination": "w.c"},
                {"type": "remove", "source": "w.a"}
            ]),
            payload(),
        );
        assert_eq!(after["w"], json!({"b": "91.3-91.3", "c": "91.3-91.3"}));
    }

    #[test]
    fn older_spellings_are_accepted() {
        let after = mutate(
            json!([
                {"type": "set", "path": "w.a", "value": "{{data.tankId}}"},
                {"type": "set", "path": "w.b", "value": 5},
                {"type": "set", "path": "w.c", "value": {"k": [1]}},
                {"type": "remove", "path": "data"}
            ]),
            payload(),
        );
        assert_eq!(
            after,
            json!({"w": {"a": "tank-7", "b": 5, "c": {"k": [1]}}})
        );
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(compile_node("MutateNode", &json!({})).unwrap().ports, 1);
        assert!(compile_node("MutateNode", &json!({"rules": []})).is_ok());
        let too_many: Vec<Value> = (0..101)
            .map(|_| json!({"type": "remove", "source": "x"}))
            .collect();
        let error = compile_node("MutateNode", &json!({ "rules": too_many }))
            .err()
            .unwrap();
        assert!(error.0.contains("at most 100"), "{error}");
        let hundred: Vec<Value> = (0..100)
            .map(|_| json!({"type": "remove", "source": "x"}))
            .collect();
        assert!(compile_node("MutateNode", &json!({ "rules": hundred })).is_ok());
        let long = "x".repeat(32_769);
        for bad in [
            json!({"rules": {}}),
            json!({"rules": [{"source": "x"}]}),
            json!({"rules": [{"type": "rename", "source": "x"}]}),
            json!({"rules": [{"type": "set", "destination": "x"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "", "destination": "x"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "a"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "a", "destination": "a..b"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "a", "destination": "x",
                "valueTemplateType": "xml"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "{{#if}}", "destination": "x"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": "{nope", "destination": "x",
                "valueTemplateType": "json"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": long, "destination": "x"}]}),
            json!({"rules": [{"type": "set", "valueTemplate": 5, "destination": "x"}]}),
            json!({"rules": [{"type": "remove"}]}),
            json!({"rules": [{"type": "copy", "source": "a"}]}),
            json!({"rules": [{"type": "move", "destination": "a"}]}),
            json!({"rules": [{"type": "copy", "source": "{{a}}", "destination": "b"}]}),
        ] {
            let error = compile_node("MutateNode", &bad).err().unwrap();
            assert!(error.0.contains("(MutateNode)"), "{bad}: {error}");
        }
        let error = compile_node(
            "MutateNode",
            &json!({"rules": [{"type": "remove", "source": "a"}, {"type": "copy", "source": "a"}]}),
        )
        .err()
        .unwrap();
        assert!(error.0.contains("rules[1].destination"), "{error}");
    }
}
