//! Node types, one file each, grouped as Losant's palette groups them. [`REGISTRY`] is the one
//! place a node type is made known: its type string and its compile function.
//!
//! Node types Losant knows but flowd does not run yet compile to [`Unsupported`], so that real
//! exports load and can be edited; a run that reaches one fails with `UnsupportedNode`.

pub mod data;
pub mod debug;
pub mod logic;
pub mod output;

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompileFn, CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use serde_json::Value;

/// A node type flowd runs: its type string, how to compile it, and the config fields it knows
/// (for `GET /nodes`).
pub struct NodeType {
    pub name: &'static str,
    pub compile: CompileFn,
    pub config_fields: fn() -> Vec<&'static str>,
}

/// `node!("Type", module)`: the module's `compile`, and its fields from its `Config` struct (or
/// from its own `config_fields` function, for configs serde cannot list).
macro_rules! node {
    ($name:literal, $module:path) => {{
        use $module as m;
        NodeType {
            name: $name,
            compile: m::compile,
            config_fields: crate::node::config_fields::<m::Config>,
        }
    }};
    ($name:literal, $module:path, listed) => {{
        use $module as m;
        NodeType {
            name: $name,
            compile: m::compile,
            config_fields: m::config_fields,
        }
    }};
}

/// Every node type flowd runs.
pub const REGISTRY: &[NodeType] = &[
    node!("ArrayNode", logic::array),
    node!("Base64DecodeNode", logic::base64_decode),
    node!("Base64EncodeNode", logic::base64_encode, listed),
    node!("BranchOnChangeNode", logic::on_change),
    node!("CSVDecodeNode", logic::csv_decode, listed),
    node!("CSVEncodeNode", logic::csv_encode, listed),
    node!("ConditionalNode", logic::conditional),
    node!("CryptoSignNode", logic::crypto_sign),
    node!("CryptoVerifyNode", logic::crypto_verify, listed),
    node!("DateTimeNode", logic::date_time),
    node!("DebugNode", debug::debug),
    node!("DelayNode", logic::delay),
    node!("GenerateIdNode", logic::generate_id),
    node!("GeofenceNode", logic::geofence),
    node!("GetValueNode", data::get_value),
    node!("HashNode", logic::hash),
    node!("HtmlParserNode", logic::html_parser),
    node!("HttpNode", data::http),
    node!("JWTCreateNode", logic::jwt_create),
    node!("JWTDecodeNode", logic::jwt_decode),
    node!("JWTVerifyNode", logic::jwt_verify),
    node!("JsonDecodeNode", logic::json_decode),
    node!("JsonEncodeNode", logic::json_encode),
    node!("LatchNode", logic::latch),
    node!("LoopCapNode", logic::loop_cap),
    node!("LoopNode", logic::loop_node),
    node!("MathNode", logic::math),
    node!("MqttMessageNode", output::mqtt),
    node!("MutateNode", logic::mutate),
    node!("ObjectNode", logic::object),
    node!("RandomNumberNode", logic::random_number),
    node!("RawFunctionNode", logic::function),
    node!("RedisNode", data::redis),
    node!("SqlNode", data::sql),
    node!("StoreValueNode", data::store_value),
    node!("StringNode", logic::string),
    node!("SwitchNode", logic::switch),
    node!("ThrottleNode", logic::throttle),
    node!("ThrowErrorNode", debug::throw_error),
    node!("TimeRangeNode", logic::time_range),
    node!("ValidatePayloadNode", logic::validate_payload),
    node!("WebhookReplyNode", output::webhook_reply),
    node!("WorkflowTriggerNode", output::workflow_trigger),
];

/// Compiles a node of any type.
pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    match REGISTRY.iter().find(|t| t.name == spec.type_name) {
        Some(node_type) => (node_type.compile)(spec),
        None if flowd_model::catalogue::is_known_node_type(spec.type_name) => {
            // A node's port count is unknown here; allow what the document wires.
            Ok(CompiledNodeType::new(
                Unsupported {
                    type_name: spec.type_name.to_owned(),
                },
                100,
            ))
        }
        None => Err(spec.error(format!("unknown node type \"{}\"", spec.type_name))),
    }
}

/// Whether flowd can run a node type.
pub fn is_supported(type_name: &str) -> bool {
    REGISTRY.iter().any(|t| t.name == type_name)
}

/// A node type flowd cannot run yet.
pub struct Unsupported {
    type_name: String,
}

impl Node for Unsupported {
    fn execute(&self, _: &mut NodeContext<'_>, _: &mut Value) -> Result<Outcome, NodeError> {
        Err(NodeError::new(
            ErrorName::UnsupportedNode,
            format!("flowd cannot run {} nodes yet", self.type_name),
        ))
    }
}

/// Parses a required payload path field.
pub(crate) fn path(
    spec: &NodeSpec<'_>,
    field: &str,
    text: &str,
) -> Result<crate::path::PayloadPath, CompileError> {
    crate::path::PayloadPath::parse(text).map_err(|e| spec.error(format!("{field}: {e}")))
}

/// Parses an optional payload path field (absent or blank means none).
pub(crate) fn optional_path(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<Option<crate::path::PayloadPath>, CompileError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => path(spec, field, text).map(Some),
    }
}

/// Compiles a template field, naming the node and field on error.
pub(crate) fn template(
    spec: &NodeSpec<'_>,
    field: &str,
    text: &str,
) -> Result<crate::template::Template, CompileError> {
    crate::template::Template::compile(text).map_err(|e| spec.error(format!("{field}: {e}")))
}

/// Compiles a JSON template field, naming the node and field on error.
pub(crate) fn json_template(
    spec: &NodeSpec<'_>,
    field: &str,
    text: &str,
) -> Result<crate::template::JsonTemplate, CompileError> {
    crate::template::JsonTemplate::compile(text).map_err(|e| spec.error(format!("{field}: {e}")))
}

/// Renders a template as text; a rendering failure halts the run with `TemplateError`.
pub(crate) fn render(
    template: &crate::template::Template,
    payload: &Value,
) -> Result<String, NodeError> {
    template
        .render(payload)
        .map_err(|e| NodeError::new(ErrorName::TemplateError, e.to_string()))
}

/// Renders a required template: empty output halts the run (FLOW-JSON §7.4).
pub(crate) fn render_required(
    template: &crate::template::Template,
    field: &str,
    payload: &Value,
) -> Result<String, NodeError> {
    let text = render(template, payload)?;
    if text.is_empty() {
        return Err(NodeError::new(
            ErrorName::TemplateError,
            format!(
                "{field} rendered empty (template \"{}\")",
                template.source()
            ),
        ));
    }
    Ok(text)
}

/// Renders a JSON template; a failure halts the run with `TemplateError`.
pub(crate) fn render_json(
    template: &crate::template::JsonTemplate,
    payload: &Value,
) -> Result<Value, NodeError> {
    template
        .render(payload)
        .map_err(|e| NodeError::new(ErrorName::TemplateError, e.to_string()))
}

/// Template text in a config: a string, or (in older exports) a number, boolean or JSON value
/// written as its text. For `#[serde(deserialize_with = "template_text")]`.
pub(crate) fn template_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => Some(other.to_string()),
    })
}

/// A setting given as a template: checked when compiled if it has no `{{…}}`, else when run.
pub(crate) enum Setting<T> {
    Fixed(T),
    Template(crate::template::Template, fn(&str) -> Result<T, String>),
}

impl<T: Clone> Setting<T> {
    pub(crate) fn compile(
        spec: &NodeSpec<'_>,
        field: &str,
        text: Option<&str>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Setting<T>, CompileError> {
        let compiled = template(spec, field, text.unwrap_or_default())?;
        match compiled.static_text() {
            Some(text) => parse(text)
                .map(Setting::Fixed)
                .map_err(|e| spec.error(format!("{field}: {e}"))),
            None => Ok(Setting::Template(compiled, parse)),
        }
    }

    pub(crate) fn get(&self, field: &str, payload: &Value) -> Result<T, NodeError> {
        match self {
            Setting::Fixed(value) => Ok(value.clone()),
            Setting::Template(template, parse) => parse(&render(template, payload)?)
                .map_err(|e| NodeError::new(ErrorName::ValidationError, format!("{field}: {e}"))),
        }
    }
}

/// What a storage node does once its storage operation has answered: the port it takes and
/// what it writes to the payload. Cloned into the wait when the answer comes from the store
/// (Shared mode), so it holds only what it writes with.
pub(crate) trait AfterStorage<T>: Clone + Send + 'static {
    fn port(&self, _answer: &T) -> usize {
        0
    }

    fn apply(&self, answer: T, payload: &mut Value) -> Result<(), NodeError>;
}

/// Continues a storage node with `answer`: inline when storage answered at once (Cached mode:
/// no future, no allocation), otherwise as a wait whose resume applies it.
pub(crate) fn continue_after_storage<T: Send + 'static>(
    answer: crate::storage::StorageAnswer<T>,
    after: &impl AfterStorage<T>,
    payload: &mut Value,
) -> Result<Outcome, NodeError> {
    match answer {
        crate::storage::StorageAnswer::Now(answer) => {
            let answer = answer?;
            let port = after.port(&answer);
            after.apply(answer, payload)?;
            Ok(Outcome::Port(port))
        }
        crate::storage::StorageAnswer::Later(future) => {
            let after = after.clone();
            Ok(Outcome::Wait(Box::pin(async move {
                let answer = future.await?;
                Ok(crate::node::Resume {
                    port: after.port(&answer),
                    update: Some(Box::new(move |payload: &mut Value| {
                        after.apply(answer, payload)
                    })),
                    logs: Vec::new(),
                })
            })))
        }
    }
}

/// How an action a node waited for ends: its result goes to `result_path` (if any), its failure
/// is handled per `errors` (halting unless `payloadPath`).
pub(crate) fn resume_after(
    outcome: Result<Value, NodeError>,
    result_path: Option<crate::path::PayloadPath>,
    errors: ErrorBehavior,
) -> Result<crate::node::Resume, NodeError> {
    let update: crate::node::PayloadUpdate = match outcome {
        Ok(value) => match result_path {
            Some(path) => Box::new(move |payload: &mut Value| {
                path.set(payload, value);
                Ok(())
            }),
            None => return Ok(crate::node::Resume::port(0)),
        },
        Err(error) => match errors {
            ErrorBehavior::Throw => return Err(error),
            behavior => Box::new(move |payload: &mut Value| behavior.handle(payload, error)),
        },
    };
    Ok(crate::node::Resume {
        port: 0,
        update: Some(update),
        logs: Vec::new(),
    })
}

/// How a node reports a failure of its own action (`errorBehavior`).
#[derive(Debug, Clone)]
pub(crate) enum ErrorBehavior {
    /// Halt the run (the default).
    Throw,
    /// Write `{type, message}` to the path and continue.
    PayloadPath(crate::path::PayloadPath),
}

impl ErrorBehavior {
    pub(crate) fn compile(
        spec: &NodeSpec<'_>,
        behavior: Option<&str>,
        error_path: Option<&str>,
    ) -> Result<ErrorBehavior, CompileError> {
        match behavior.unwrap_or("throw") {
            "throw" => Ok(ErrorBehavior::Throw),
            "payloadPath" => match optional_path(spec, "errorPath", error_path)? {
                Some(path) => Ok(ErrorBehavior::PayloadPath(path)),
                None => Err(spec.error("errorPath is required when errorBehavior is payloadPath")),
            },
            other => Err(spec.error(format!(
                "errorBehavior must be throw or payloadPath, not \"{other}\""
            ))),
        }
    }

    /// Applies the behaviour to a failure of the node's action.
    pub(crate) fn handle(&self, payload: &mut Value, error: NodeError) -> Result<(), NodeError> {
        match self {
            ErrorBehavior::Throw => Err(error),
            ErrorBehavior::PayloadPath(path) => {
                path.set(
                    payload,
                    serde_json::json!({"type": error.name.as_str(), "message": error.message}),
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod registry_tests {
    use super::REGISTRY;

    #[test]
    fn every_node_type_lists_its_config_fields() {
        for node_type in REGISTRY {
            let fields = (node_type.config_fields)();
            assert!(
                !fields.is_empty(),
                "{} lists no config fields",
                node_type.name
            );
            for field in &fields {
                assert!(
                    field.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && field.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{}: \"{field}\" is not a camelCase flow JSON field",
                    node_type.name
                );
            }
            let mut unique = fields.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                fields.len(),
                "{} lists a field twice",
                node_type.name
            );
        }
    }
}
