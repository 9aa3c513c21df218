//! `ObjectNode`: runs `operations` (at most [`MAX_OPERATIONS`]) over the object or array at
//! `sourcePath`, each operation receiving the previous one's result, and writes the final
//! result to `destPath`. Operations follow lodash, which Losant's names come from:
//!
//! | op | `inputTemplate` (JSON template) | effect |
//! |---|---|---|
//! | `assign` | object | shallow merge onto the source, input wins |
//! | `mergeDeep` | object | deep merge (`_.merge`): objects merge key by key, arrays index by index, anything else the input wins |
//! | `omit` | keys | drop the keys |
//! | `pick` | keys | keep only the keys |
//! | `zipObject` | keys | the source is an array of values: `{keys[i]: values[i]}` |
//! | `entries` | — | `[[key, value], …]` to `outputPath`; the source passes on unchanged |
//! | `fromPairs` | — | the source is `[[key, value], …]`: the object to `outputPath`; unchanged |
//! | `keys` | — | the keys to `outputPath`; unchanged |
//! | `values` | — | the values to `outputPath`; unchanged |
//!
//! Decisions:
//! * Nothing (`undefined`) or `null` at `sourcePath`, or no `sourcePath` at all, starts from
//!   `{}` ("if there is nothing at the given path, an empty object is created").
//! * `destPath` is required when any operation changes the source (`assign`, `mergeDeep`,
//!   `omit`, `pick`, `zipObject`) — a compile error otherwise; with only the other operations
//!   it is optional, and when given receives the (unchanged) source.
//! * Keys for `omit`/`pick` are an array (or one string) of keys; each prints as JavaScript's
//!   `String(k)`. As in lodash, a key that is not an own key but contains dots is a path
//!   (`"a.b"` picks or omits `b` inside `a`). `zipObject` keys are literal.
//! * `keys`, `values` and `entries` of an array use its indices as keys (`"0"`, `"1"`, …), as
//!   `Object.keys` does; of anything else but an object they are empty.
//! * A value that is `undefined` in JavaScript (a `zipObject` key without a value, a pair
//!   without a second item) leaves its key out, as `JSON.stringify` would.
//! * Wrong shapes halt with `ValidationError`: an input that is not an object (`assign`,
//!   `mergeDeep`) or not keys; a source that is not an object for `assign`, `mergeDeep`,
//!   `omit`, `pick`; not an array for `zipObject`, `fromPairs`; a pair that is not an array.
//!   An input template that does not render JSON halts with `TemplateError`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{json_template, optional_path, render_json};
use crate::path::PayloadPath;
use crate::template::JsonTemplate;
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Most operations an Object node may have.
pub const MAX_OPERATIONS: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source_path: Option<String>,
    dest_path: Option<String>,
    operations: Vec<OperationConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    input_template: Option<String>,
    output_path: Option<String>,
}

/// An operation that changes the source, with its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    Assign,
    MergeDeep,
    Omit,
    Pick,
    ZipObject,
}

/// An operation that reads the source and writes a secondary result.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Read {
    Entries,
    FromPairs,
    Keys,
    Values,
}

enum Operation {
    Change(Change, JsonTemplate),
    Read(Read, Option<PayloadPath>),
}

pub struct ObjectNode {
    source: Option<PayloadPath>,
    destination: Option<PayloadPath>,
    operations: Vec<Operation>,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    if config.operations.len() > MAX_OPERATIONS {
        return Err(spec.error(format!(
            "has {} operations; an Object node may have at most {MAX_OPERATIONS}",
            config.operations.len()
        )));
    }
    let mut operations = Vec::with_capacity(config.operations.len());
    for (i, op) in config.operations.iter().enumerate() {
        let field = |name: &str| format!("operations[{i}].{name}");
        let change = match op.kind.as_deref() {
            Some("assign") => Some(Change::Assign),
            Some("mergeDeep") => Some(Change::MergeDeep),
            Some("omit") => Some(Change::Omit),
            Some("pick") => Some(Change::Pick),
            Some("zipObject") => Some(Change::ZipObject),
            _ => None,
        };
        let read = match op.kind.as_deref() {
            Some("entries") => Some(Read::Entries),
            Some("fromPairs") => Some(Read::FromPairs),
            Some("keys") => Some(Read::Keys),
            Some("values") => Some(Read::Values),
            _ => None,
        };
        operations.push(match (change, read, op.kind.as_deref()) {
            (Some(change), _, _) => {
                let text = op
                    .input_template
                    .as_deref()
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| spec.error(format!("{} is required", field("inputTemplate"))))?;
                Operation::Change(change, json_template(spec, &field("inputTemplate"), text)?)
            }
            (None, Some(read), _) => Operation::Read(
                read,
                optional_path(spec, &field("outputPath"), op.output_path.as_deref())?,
            ),
            (None, None, Some(other)) => {
                return Err(spec.error(format!(
                    "{} must be one of assign, mergeDeep, omit, pick, zipObject, entries, \
                     fromPairs, keys, values, not \"{other}\"",
                    field("type")
                )))
            }
            (None, None, None) => return Err(spec.error(format!("{} is required", field("type")))),
        });
    }
    let destination = optional_path(spec, "destPath", config.dest_path.as_deref())?;
    if destination.is_none() {
        if let Some(Operation::Change(change, _)) = operations
            .iter()
            .find(|op| matches!(op, Operation::Change(..)))
        {
            return Err(spec.error(format!(
                "destPath is required with a {} operation",
                change_name(*change)
            )));
        }
    }
    Ok(CompiledNodeType::new(
        ObjectNode {
            source: optional_path(spec, "sourcePath", config.source_path.as_deref())?,
            destination,
            operations,
        },
        1,
    ))
}

fn change_name(change: Change) -> &'static str {
    match change {
        Change::Assign => "assign",
        Change::MergeDeep => "mergeDeep",
        Change::Omit => "omit",
        Change::Pick => "pick",
        Change::ZipObject => "zipObject",
    }
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

fn type_of(value: &Value) -> &'static str {
    JsValue::from(value).type_name()
}

/// The source as an object, for the operations that need one.
fn as_object(value: &mut Value, change: Change) -> Result<&mut Map<String, Value>, NodeError> {
    let found = type_of(value);
    value.as_object_mut().ok_or_else(|| {
        invalid(format!(
            "{}: the source must be an object, not {found}",
            change_name(change)
        ))
    })
}

/// The keys of an `omit`/`pick`/`zipObject` input: an array, or one key.
fn keys_of(input: Value, change: Change) -> Result<Vec<String>, NodeError> {
    match input {
        Value::Array(items) => Ok(items
            .iter()
            .map(|k| JsValue::from(k).to_js_string())
            .collect()),
        Value::String(key) => Ok(vec![key]),
        Value::Number(_) => Ok(vec![JsValue::from(&input).to_js_string()]),
        other => Err(invalid(format!(
            "{}: inputTemplate must give an array of keys, not {}",
            change_name(change),
            type_of(&other)
        ))),
    }
}

/// `_.merge(target, input)` over JSON.
fn merge_deep(target: &mut Value, input: Value) {
    match (target, input) {
        (Value::Object(target), Value::Object(input)) => {
            for (key, value) in input {
                match target.get_mut(&key) {
                    Some(existing) => merge_deep(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(input)) => {
            for (n, value) in input.into_iter().enumerate() {
                match target.get_mut(n) {
                    Some(existing) => merge_deep(existing, value),
                    None => target.push(value),
                }
            }
        }
        (target, input) => *target = input,
    }
}

/// Reads a key of an object, or — when it is not an own key and has dots — a path inside it.
fn lookup<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(value) = object.get(key) {
        return Some(value);
    }
    let mut parts = key.split('.');
    let mut current = object.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// `_.pick`: a new object with only the keys (paths keep their nesting).
fn pick(source: &Map<String, Value>, keys: &[String]) -> Map<String, Value> {
    let mut result = Map::new();
    for key in keys {
        if let Some(value) = source.get(key) {
            result.insert(key.clone(), value.clone());
            continue;
        }
        let Some(value) = lookup(source, key) else {
            continue;
        };
        let parts: Vec<&str> = key.split('.').collect();
        let (last, parents) = parts.split_last().expect("split gives at least one part");
        let mut current = &mut result;
        for part in parents {
            let entry = current
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(map) = entry else {
                unreachable!("made an object just above")
            };
            current = map;
        }
        current.insert((*last).to_owned(), value.clone());
    }
    result
}

/// `_.omit`: drops the keys (paths reach inside).
fn omit(source: &mut Map<String, Value>, keys: &[String]) {
    fn remove_path(map: &mut Map<String, Value>, parts: &[&str]) {
        match parts {
            [] => {}
            [last] => {
                map.shift_remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(Value::Object(inner)) = map.get_mut(*first) {
                    remove_path(inner, rest);
                }
            }
        }
    }
    for key in keys {
        if source.shift_remove(key).is_none() && key.contains('.') {
            remove_path(source, &key.split('.').collect::<Vec<_>>());
        }
    }
}

/// `Object.entries`, over JSON: objects by key, arrays by index, anything else has none.
fn entries(source: &Value) -> Vec<(String, Value)> {
    match source {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn from_pairs(source: &Value) -> Result<Map<String, Value>, NodeError> {
    let Value::Array(pairs) = source else {
        return Err(invalid(format!(
            "fromPairs: the source must be an array of [key, value] pairs, not {}",
            type_of(source)
        )));
    };
    let mut result = Map::new();
    for (n, pair) in pairs.iter().enumerate() {
        let Value::Array(pair) = pair else {
            return Err(invalid(format!(
                "fromPairs: item {n} of the source is {}, not a [key, value] pair",
                type_of(pair)
            )));
        };
        let key = JsValue::from(pair.first()).to_js_string();
        match pair.get(1) {
            Some(value) => {
                result.insert(key, value.clone());
            }
            None => {
                result.shift_remove(&key);
            }
        }
    }
    Ok(result)
}

/// Applies an operation that changes the source.
fn apply(change: Change, current: &mut Value, input: Value) -> Result<(), NodeError> {
    match change {
        Change::Assign | Change::MergeDeep => {
            let Value::Object(input) = input else {
                return Err(invalid(format!(
                    "{}: inputTemplate must give an object, not {}",
                    change_name(change),
                    type_of(&input)
                )));
            };
            let target = as_object(current, change)?;
            if change == Change::Assign {
                target.extend(input);
            } else {
                merge_deep(current, Value::Object(input));
            }
        }
        Change::Omit => {
            let keys = keys_of(input, change)?;
            omit(as_object(current, change)?, &keys);
        }
        Change::Pick => {
            let keys = keys_of(input, change)?;
            *current = Value::Object(pick(as_object(current, change)?, &keys));
        }
        Change::ZipObject => {
            let keys = keys_of(input, change)?;
            let Value::Array(values) = current else {
                return Err(invalid(format!(
                    "zipObject: the source must be an array of values, not {}",
                    type_of(current)
                )));
            };
            let mut result = Map::new();
            for (n, key) in keys.into_iter().enumerate() {
                match values.get(n) {
                    Some(value) => {
                        result.insert(key, value.clone());
                    }
                    None => {
                        result.shift_remove(&key);
                    }
                }
            }
            *current = Value::Object(result);
        }
    }
    Ok(())
}

impl Node for ObjectNode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let mut current = match self.source.as_ref().and_then(|p| p.get(payload)) {
            None => Value::Object(Map::new()),
            Some(value) if value.is_null() => Value::Object(Map::new()),
            Some(value) => value.into_owned(),
        };
        for operation in &self.operations {
            match operation {
                Operation::Change(change, template) => {
                    let input = render_json(template, payload)?;
                    apply(*change, &mut current, input)?;
                }
                Operation::Read(read, output) => {
                    let result = match read {
                        Read::Entries => Value::Array(
                            entries(&current)
                                .into_iter()
                                .map(|(k, v)| Value::Array(vec![Value::String(k), v]))
                                .collect(),
                        ),
                        Read::Keys => Value::Array(
                            entries(&current)
                                .into_iter()
                                .map(|(k, _)| Value::String(k))
                                .collect(),
                        ),
                        Read::Values => {
                            Value::Array(entries(&current).into_iter().map(|(_, v)| v).collect())
                        }
                        Read::FromPairs => Value::Object(from_pairs(&current)?),
                    };
                    if let Some(output) = output {
                        output.set(payload, result);
                    }
                }
            }
        }
        if let Some(destination) = &self.destination {
            destination.set(payload, current);
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn object(config: Value, payload: Value) -> Value {
        let (port, payload) = run_node("ObjectNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        payload
    }

    fn op(kind: &str, input: Value) -> Value {
        json!({"type": kind, "inputTemplate": input.to_string()})
    }

    fn one(kind: &str, source: Value, input: Value) -> Value {
        object(
            json!({"sourcePath": "data.s", "destPath": "out",
                "operations": [op(kind, input)]}),
            json!({"data": {"s": source}}),
        )["out"]
            .clone()
    }

    #[test]
    fn assign_is_shallow() {
        assert_eq!(
            one(
                "assign",
                json!({"a": 1, "b": 2, "c": {"x": 1}}),
                json!({"b": 4, "c": {"y": 2}, "d": 5})
            ),
            json!({"a": 1, "b": 4, "c": {"y": 2}, "d": 5})
        );
    }

    #[test]
    fn merge_deep_merges_objects_and_arrays() {
        assert_eq!(
            one(
                "mergeDeep",
                json!({"name": "fred", "age": 10, "contact": {"email": "moo@example.com"},
                    "list": [1, {"a": 1}, 3], "gone": {"x": 1}}),
                json!({"age": 40, "contact": {"phone": "111-222-3333"},
                    "list": [9, {"b": 2}], "gone": null})
            ),
            json!({"name": "fred", "age": 40,
                "contact": {"email": "moo@example.com", "phone": "111-222-3333"},
                "list": [9, {"a": 1, "b": 2}, 3], "gone": null})
        );
    }

    #[test]
    fn omit_and_pick_take_keys_and_paths() {
        let source = json!({"id": 1, "name": "n", "secret": "s", "meta": {"a": 1, "b": 2},
            "x.y": "literal"});
        assert_eq!(
            one(
                "omit",
                source.clone(),
                json!(["secret", "meta.a", "x.y", "nope"])
            ),
            json!({"id": 1, "name": "n", "meta": {"b": 2}})
        );
        assert_eq!(
            one(
                "pick",
                source.clone(),
                json!(["id", "meta.b", "x.y", "nope"])
            ),
            json!({"id": 1, "meta": {"b": 2}, "x.y": "literal"})
        );
        assert_eq!(
            one("omit", source.clone(), json!("secret"))["secret"],
            Value::Null
        );
        assert_eq!(
            one("pick", json!({"1": "one", "2": "two"}), json!([1])),
            json!({"1": "one"})
        );
    }

    #[test]
    fn zip_object_pairs_keys_with_values() {
        assert_eq!(
            one("zipObject", json!([1, "two"]), json!(["a", "b", "c"])),
            json!({"a": 1, "b": "two"})
        );
        let error = run_node(
            "ObjectNode",
            &json!({"sourcePath": "data.s", "destPath": "out",
                "operations": [op("zipObject", json!(["a"]))]}),
            json!({"data": {"s": {"a": 1}}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
    }

    #[test]
    fn reading_operations_write_to_the_output_path_and_keep_the_source() {
        let after = object(
            json!({"sourcePath": "data.s", "destPath": "out", "operations": [
                {"type": "entries", "outputPath": "r.entries"},
                {"type": "keys", "outputPath": "r.keys"},
                {"type": "values", "outputPath": "r.values"},
                {"type": "keys"}
            ]}),
            json!({"data": {"s": {"a": 1, "b": [2]}}}),
        );
        assert_eq!(
            after["r"],
            json!({"entries": [["a", 1], ["b", [2]]], "keys": ["a", "b"], "values": [1, [2]]})
        );
        assert_eq!(after["out"], json!({"a": 1, "b": [2]}));
        // Arrays have index keys; other values have none.
        let after = object(
            json!({"sourcePath": "data.s", "operations": [
                {"type": "keys", "outputPath": "r.keys"}, {"type": "entries", "outputPath": "r.e"}]}),
            json!({"data": {"s": ["x", "y"]}}),
        );
        assert_eq!(
            after["r"],
            json!({"keys": ["0", "1"], "e": [["0", "x"], ["1", "y"]]})
        );
        let after = object(
            json!({"sourcePath": "data.s", "operations": [{"type": "values", "outputPath": "r"}]}),
            json!({"data": {"s": 5}}),
        );
        assert_eq!(after["r"], json!([]));
    }

    #[test]
    fn from_pairs_builds_an_object() {
        let after = object(
            json!({"sourcePath": "data.s", "operations": [
                {"type": "fromPairs", "outputPath": "r"}]}),
            json!({"data": {"s": [["a", 1], ["b", {"x": 2}], [3, true], ["nothing"]]}}),
        );
        assert_eq!(after["r"], json!({"a": 1, "b": {"x": 2}, "3": true}));
        for source in [json!({"a": 1}), json!([["a", 1], "b"])] {
            let error = run_node(
                "ObjectNode",
                &json!({"sourcePath": "data.s", "operations": [
                    {"type": "fromPairs", "outputPath": "r"}]}),
                json!({"data": {"s": source}}),
            )
            .unwrap_err();
            assert_eq!(error.name, ErrorName::ValidationError, "{source}");
        }
    }

    #[test]
    fn operations_chain_and_templates_render_over_the_payload() {
        let after = object(
            json!({"sourcePath": "working.device", "destPath": "working.summary",
            "operations": [
                {"type": "pick", "inputTemplate": "[\"id\",\"name\"]"},
                {"type": "assign", "inputTemplate": "{\"at\": \"{{time}}\", \"n\": {{data.n}}}"},
                {"type": "keys", "outputPath": "working.summaryKeys"}
            ]}),
            json!({"time": "T", "data": {"n": 3},
                "working": {"device": {"id": "d1", "name": "pump", "tags": []}}}),
        );
        assert_eq!(
            after["working"]["summary"],
            json!({"id": "d1", "name": "pump", "at": "T", "n": 3})
        );
        assert_eq!(
            after["working"]["summaryKeys"],
            json!(["id", "name", "at", "n"])
        );
        assert_eq!(
            after["working"]["device"],
            json!({"id": "d1", "name": "pump", "tags": []}),
            "the source is left alone"
        );
    }

    #[test]
    fn a_missing_or_null_source_is_an_empty_object() {
        for payload in [json!({"data": {}}), json!({"data": {"s": null}})] {
            let after = object(
                json!({"sourcePath": "data.s", "destPath": "out",
                    "operations": [op("assign", json!({"a": 1}))]}),
                payload,
            );
            assert_eq!(after["out"], json!({"a": 1}));
        }
        let after = object(
            json!({"destPath": "out", "operations": [op("assign", json!({"a": 1}))]}),
            json!({}),
        );
        assert_eq!(after["out"], json!({"a": 1}));
    }

    #[test]
    fn wrong_shapes_halt() {
        let run = |source: Value, operation: Value| {
            run_node(
                "ObjectNode",
                &json!({"sourcePath": "data.s", "destPath": "out", "operations": [operation]}),
                json!({"data": {"s": source, "text": "x"}}),
            )
            .unwrap_err()
        };
        for (source, operation, name) in [
            (
                json!([1]),
                op("assign", json!({"a": 1})),
                ErrorName::ValidationError,
            ),
            (
                json!("text"),
                op("mergeDeep", json!({"a": 1})),
                ErrorName::ValidationError,
            ),
            (
                json!({}),
                op("assign", json!([1])),
                ErrorName::ValidationError,
            ),
            (
                json!({}),
                op("omit", json!({"a": 1})),
                ErrorName::ValidationError,
            ),
            (
                json!(5),
                op("pick", json!(["a"])),
                ErrorName::ValidationError,
            ),
            (
                json!({}),
                json!({"type": "assign", "inputTemplate": "{{data.text}}"}),
                ErrorName::TemplateError,
            ),
        ] {
            assert_eq!(run(source, operation).name, name);
        }
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"sourcePath": "a", "operations": [{"type": "keys", "outputPath": "k"}]});
        assert_eq!(compile_node("ObjectNode", &ok).unwrap().ports, 1);
        assert!(compile_node("ObjectNode", &json!({"operations": []})).is_ok());
        let eleven: Vec<Value> = (0..11).map(|_| json!({"type": "keys"})).collect();
        for bad in [
            json!({}),
            json!({"operations": {}}),
            json!({ "operations": eleven }),
            json!({"operations": [{"outputPath": "k"}]}),
            json!({"operations": [{"type": "flatten"}]}),
            json!({"destPath": "d", "operations": [{"type": "assign"}]}),
            json!({"destPath": "d", "operations": [{"type": "pick", "inputTemplate": " "}]}),
            json!({"destPath": "d", "operations": [{"type": "pick", "inputTemplate": "{{#if}}"}]}),
            json!({"operations": [{"type": "keys", "outputPath": "a..b"}]}),
            json!({"sourcePath": "{{x}}", "operations": []}),
            json!({"destPath": 5, "operations": []}),
        ] {
            let error = compile_node("ObjectNode", &bad).err().unwrap();
            assert!(error.0.contains("(ObjectNode)"), "{bad}: {error}");
        }
        for kind in ["assign", "mergeDeep", "omit", "pick", "zipObject"] {
            let error = compile_node(
                "ObjectNode",
                &json!({"operations": [{"type": "keys"}, {"type": kind, "inputTemplate": "[]"}]}),
            )
            .err()
            .unwrap();
            assert!(error.0.contains("destPath is required"), "{kind}: {error}");
        }
    }
}
