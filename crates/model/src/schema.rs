//! Losant's official JSON schemas (MIT, copied verbatim from the official JS client into
//! `crates/model/schemas/`), compiled once and used for two things: validating request bodies
//! (strictly: types, lengths, patterns, `additionalProperties: false`) and, in tests, checking
//! that every response has the documented shape.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

macro_rules! schemas {
    ($($variant:ident => $file:literal,)*) => {
        /// The schemas flowd uses, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SchemaName { $($variant,)* }

        impl SchemaName {
            /// Every schema name.
            pub const ALL: &'static [SchemaName] = &[$(SchemaName::$variant,)*];

            /// The schema's file name, e.g. `flowPost.json`.
            pub fn file(self) -> &'static str {
                match self { $(SchemaName::$variant => $file,)* }
            }

            fn text(self) -> &'static str {
                match self { $(SchemaName::$variant => include_str!(concat!("../schemas/", $file)),)* }
            }
        }
    };
}

schemas! {
    ApiToken => "apiToken.json",
    ApiTokens => "apiTokens.json",
    ApiTokenPatch => "apiTokenPatch.json",
    ApiTokenPost => "apiTokenPost.json",
    Application => "application.json",
    ApplicationApiTokenPost => "applicationApiTokenPost.json",
    ApplicationPatch => "applicationPatch.json",
    ApplicationPost => "applicationPost.json",
    Applications => "applications.json",
    BulkDeleteResponse => "bulkDeleteResponse.json",
    Error => "error.json",
    Flow => "flow.json",
    FlowErrors => "flowErrors.json",
    FlowLog => "flowLog.json",
    FlowStats => "flowStats.json",
    FlowPatch => "flowPatch.json",
    FlowPost => "flowPost.json",
    FlowStorageEntries => "flowStorageEntries.json",
    FlowStorageEntry => "flowStorageEntry.json",
    FlowStorageMetadata => "flowStorageMetadata.json",
    FlowTriggerFilter => "flowTriggerFilter.json",
    FlowVersion => "flowVersion.json",
    FlowVersionPatch => "flowVersionPatch.json",
    FlowVersionPost => "flowVersionPost.json",
    FlowVersions => "flowVersions.json",
    FlowVersionsDeletePost => "flowVersionsDeletePost.json",
    Flows => "flows.json",
    Integration => "integration.json",
    IntegrationPatch => "integrationPatch.json",
    IntegrationPost => "integrationPost.json",
    Integrations => "integrations.json",
    Webhook => "webhook.json",
    WebhookPatch => "webhookPatch.json",
    WebhookPost => "webhookPost.json",
    Webhooks => "webhooks.json",
    FlowsImportPost => "flowsImportPost.json",
    FlowsImportResult => "flowsImportResult.json",
    AdvancedFlowQuery => "advancedFlowQuery.json",
    AdvancedFlowVersionQuery => "advancedFlowVersionQuery.json",
    Success => "success.json",
    VirtualButtonPress => "virtualButtonPress.json",
}

/// The parsed schema document (each parsed on first use, then kept).
pub fn raw(name: SchemaName) -> &'static Value {
    static RAW: OnceLock<HashMap<SchemaName, OnceLock<Value>>> = OnceLock::new();
    RAW.get_or_init(|| {
        SchemaName::ALL
            .iter()
            .map(|n| (*n, OnceLock::new()))
            .collect()
    })[&name]
        .get_or_init(|| standalone(name))
}

/// A schema document with the definitions it borrows copied in, parsed afresh. Validation keeps
/// only the compiled validators and parses a document again just to explain a refusal: kept
/// parsed, the request schemas were 8 MB of an idle server's 13 MB of heap.
fn standalone(name: SchemaName) -> Value {
    with_missing_definitions(parse(name))
}

fn parse(name: SchemaName) -> Value {
    serde_json::from_str(name.text())
        .unwrap_or_else(|e| panic!("embedded schema {} is not JSON: {e}", name.file()))
}

/// Some official schemas point at `#/definitions/<name>` that lives in `<name>.json` (the JS
/// client resolves them from its bundle). Copy those definitions in so each schema stands alone.
fn with_missing_definitions(mut schema: Value) -> Value {
    let mut wanted = Vec::new();
    collect_definition_refs(&schema, &mut wanted);
    for name in wanted {
        if schema.pointer(&format!("/definitions/{name}")).is_some() {
            continue;
        }
        let Some(source) = SchemaName::ALL
            .iter()
            .find(|n| n.file() == format!("{name}.json"))
        else {
            continue;
        };
        let mut definition = parse(*source);
        let inner = definition
            .get_mut("definitions")
            .and_then(Value::as_object_mut)
            .map(std::mem::take);
        if let Some(root) = schema.as_object_mut() {
            let definitions = root
                .entry("definitions")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(definitions) = definitions.as_object_mut() {
                for (k, v) in inner.into_iter().flatten() {
                    definitions.entry(k).or_insert(v);
                }
                definitions.entry(name).or_insert(definition);
            }
        }
    }
    schema
}

fn collect_definition_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
            {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_owned());
                }
            }
            map.values().for_each(|v| collect_definition_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_definition_refs(v, out)),
        _ => {}
    }
}

fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("embedded schema does not compile: {e}"))
}

fn validator(name: SchemaName) -> &'static jsonschema::Validator {
    // Each schema is compiled on first use, on its own: the server needs only the request
    // schemas, and the big response schemas (flows, versions, import results) are for tests.
    static COMPILED: OnceLock<HashMap<SchemaName, OnceLock<jsonschema::Validator>>> =
        OnceLock::new();
    COMPILED.get_or_init(|| {
        SchemaName::ALL
            .iter()
            .map(|n| (*n, OnceLock::new()))
            .collect()
    })[&name]
        .get_or_init(|| compile(&standalone(name)))
}

/// Why a document does not match its schema, in words that name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaViolation(pub String);

/// Checks `instance` against the schema; the error names the first offending field.
pub fn validate(name: SchemaName, instance: &Value) -> Result<(), SchemaViolation> {
    match validator(name).iter_errors(instance).next() {
        None => Ok(()),
        Some(error) => {
            let pointer = error.instance_path().to_string();
            let message = error.to_string();
            Err(explain(&standalone(name), instance, &pointer, &message))
        }
    }
}

/// Turns a JSON pointer (`/triggers/0/config`) into the dotted form users write
/// (`triggers[0].config`).
pub fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

/// A `oneOf` over trigger shapes fails with "not valid under any of the schemas", which helps
/// nobody. When the failing value is an object with a `type`, re-check it against the branch made
/// for that type and report that branch's first error instead.
fn explain(schema: &Value, instance: &Value, pointer: &str, message: &str) -> SchemaViolation {
    let field = field_name(pointer);
    let at = |msg: &str| {
        if field.is_empty() {
            SchemaViolation(msg.to_owned())
        } else {
            SchemaViolation(format!("{field}: {msg}"))
        }
    };
    let Some(value) = instance.pointer(pointer) else {
        return at(message);
    };
    let Some(type_name) = value.get("type").and_then(Value::as_str) else {
        return at(message);
    };
    let Some(branches) = find_one_of_branches(schema, pointer) else {
        return at(message);
    };
    let branch = branches.iter().find(|b| {
        b.pointer("/properties/type/enum")
            .and_then(Value::as_array)
            .is_some_and(|e| e.iter().any(|t| t == type_name))
    });
    match branch {
        None => at(&format!("unknown type \"{type_name}\"")),
        Some(branch) => {
            // The branch is a fragment without `$schema`; the trigger shapes are draft-07.
            let compiled = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .should_validate_formats(true)
                .build(branch)
                .unwrap_or_else(|_| compile(branch));
            let first = compiled
                .iter_errors(value)
                .next()
                .map(|e| (e.instance_path().to_string(), e.to_string()));
            match first {
                Some((inner_pointer, mut inner)) => {
                    if inner.starts_with("False schema") {
                        inner = unexpected_keys(branch, value, &inner_pointer).unwrap_or(inner);
                    }
                    let inner_field = field_name(&inner_pointer);
                    let full = match (field.is_empty(), inner_field.is_empty()) {
                        (_, true) => field.clone(),
                        (true, false) => inner_field,
                        (false, false) => format!("{field}.{inner_field}"),
                    };
                    SchemaViolation(format!("{full}: {inner}"))
                }
                None => at(message),
            }
        }
    }
}

/// jsonschema reports `additionalProperties: false` on a schema without `properties` as
/// "False schema does not allow …"; say which keys were not expected instead.
fn unexpected_keys(schema: &Value, instance: &Value, pointer: &str) -> Option<String> {
    let node = schema_at(schema, pointer)?;
    let object = instance.pointer(pointer)?.as_object()?;
    let known = node.get("properties").and_then(Value::as_object);
    let unexpected: Vec<String> = object
        .keys()
        .filter(|k| !known.is_some_and(|p| p.contains_key(k.as_str())))
        .map(|k| format!("'{k}'"))
        .collect();
    (!unexpected.is_empty()).then(|| {
        format!(
            "Additional properties are not allowed ({} unexpected)",
            unexpected.join(", ")
        )
    })
}

fn schema_at<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = schema;
    for part in pointer.split('/').skip(1) {
        node = if part.bytes().all(|b| b.is_ascii_digit()) {
            node.get("items")?
        } else {
            node.get("properties")?.get(part)?
        };
    }
    Some(node)
}

/// Follows `properties`/`items` from the schema root along `pointer` and returns the `oneOf`
/// branches found at its end, if any.
fn find_one_of_branches<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Vec<Value>> {
    schema_at(schema, pointer)?.get("oneOf")?.as_array()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_compiles() {
        for name in SchemaName::ALL {
            let _ = validator(*name);
        }
    }

    #[test]
    fn names_the_field() {
        let err = validate(SchemaName::FlowPost, &json!({"name": 5})).unwrap_err();
        assert!(err.0.starts_with("name:"), "{err}");
        let err = validate(SchemaName::FlowPost, &json!({"name": "a", "bogus": 1})).unwrap_err();
        assert!(err.0.contains("bogus"), "{err}");
        let err = validate(SchemaName::FlowPost, &json!({})).unwrap_err();
        assert!(err.0.contains("name"), "{err}");
    }

    #[test]
    fn trigger_errors_point_inside_the_trigger() {
        let body =
            json!({"name": "f", "triggers": [{"type": "virtualButton", "config": {"nope": 1}}]});
        let err = validate(SchemaName::FlowPost, &body).unwrap_err();
        assert!(err.0.starts_with("triggers[0]"), "{err}");
        assert!(err.0.contains("nope"), "{err}");
        let body = json!({"name": "f", "triggers": [{"type": "teleport"}]});
        let err = validate(SchemaName::FlowPost, &body).unwrap_err();
        assert_eq!(err.0, "triggers[0]: unknown type \"teleport\"");
    }

    #[test]
    fn valid_bodies_pass() {
        let body = json!({"name": "f", "triggers": [{"type": "virtualButton", "key": "k", "outputIds": [["a"]]}],
            "nodes": [{"id": "a", "type": "DebugNode", "config": {}, "outputIds": [[]]}]});
        validate(SchemaName::FlowPost, &body).unwrap();
    }

    #[test]
    fn id_patterns_print_as_written() {
        let err = validate(SchemaName::FlowVersionPatch, &json!({"notes": 5})).unwrap_err();
        assert!(err.0.starts_with("notes:"), "{err}");
        let body = json!({"flows": [{"id": "xyz", "name": "f"}]});
        let err = validate(SchemaName::FlowsImportPost, &body).unwrap_err();
        assert!(err.0.contains(r"^[A-Fa-f\d]{24}$"), "{err}");
    }

    #[test]
    fn field_names_read_naturally() {
        assert_eq!(field_name("/triggers/0/config"), "triggers[0].config");
        assert_eq!(field_name(""), "");
        assert_eq!(field_name("/a~1b"), "a/b");
    }
}
