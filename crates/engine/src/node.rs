//! What a node is to the engine.
//!
//! A node type is one file under `nodes/`: a typed config (serde; known fields checked, unknown
//! ones ignored so exports from every Losant revision load), a `compile` function that turns the
//! config into a ready-to-run node (templates, expressions and paths parsed once), its output
//! ports, and `execute`. Registering it is one line in `nodes/mod.rs`.
//!
//! `execute` is synchronous: pure nodes (conditional, math, mutate, storage in Cached mode, …)
//! run inline, with no future allocated. A node that must wait on the world (delay, JavaScript,
//! HTTP, storage in Shared mode) returns [`Outcome::Wait`] with a future; the run keeps other
//! paths moving meanwhile.

use crate::compile::FlowIdentity;
use crate::error::{CompileError, ErrorName, NodeError};
use crate::observer::DebugMessage;
use crate::storage::StorageHandle;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

/// What a node did.
pub enum Outcome {
    /// Continue on this output port.
    Port(usize),
    /// Wait for this future, then apply its result.
    Wait(BoxFuture<'static, Result<Resume, NodeError>>),
    /// Run the loop body (port 1) once per item, then continue on port 0 (Loop node).
    Loop(LoopPlan),
    /// End this iteration of the enclosing loop (Loop cap node: Next, Return, Break).
    Cap(LoopCap),
}

/// What a Loop node asks the executor to do.
pub struct LoopPlan {
    /// The per-iteration context objects (`{value, index, key?, first?, last?}`).
    pub items: Vec<Value>,
    /// Where each iteration's context object is written.
    pub current_item: crate::path::PayloadPath,
    pub parallel: bool,
    /// Where an iteration's map value is read, unless its cap says otherwise.
    pub map_value: crate::path::PayloadPath,
    /// Where the array of map values goes after the loop.
    pub map_result: Option<crate::path::PayloadPath>,
}

/// A Loop cap's signal.
#[derive(Debug, Clone)]
pub struct LoopCap {
    /// Stop after this iteration (Break; ignored in parallel loops).
    pub should_break: bool,
    /// Overrides the loop's map value path for this iteration.
    pub map_value: Option<crate::path::PayloadPath>,
}

/// A change to the payload made after a wait.
pub type PayloadUpdate = Box<dyn FnOnce(&mut Value) -> Result<(), NodeError> + Send>;

/// The result of a wait: the port to continue on, a change to apply to the payload, and
/// lines for the flow's debug output (a Function node's `console.log`).
pub struct Resume {
    pub port: usize,
    pub update: Option<PayloadUpdate>,
    pub logs: Vec<String>,
}

impl Resume {
    pub fn port(port: usize) -> Resume {
        Resume {
            port,
            update: None,
            logs: Vec::new(),
        }
    }
}

/// What a node may reach while it runs: the run's identity, the flow's storage, the debug
/// output, and the engine's shared services.
pub struct NodeContext<'a> {
    pub run: &'a RunInfo,
    pub storage: Option<&'a StorageHandle>,
    pub services: &'a Arc<crate::services::Services>,
    pub(crate) debug: &'a mut Vec<DebugMessage>,
    pub(crate) node_id: &'a str,
    /// Nothing reads the payload once this node is done: every port of it is unwired and no
    /// observer traces steps. A node may then keep the payload itself instead of a copy.
    pub(crate) payload_ends_here: bool,
}

impl NodeContext<'_> {
    /// Sends a message to the flow's debug output.
    pub fn debug(&mut self, message: String, value: Value, level: &str) {
        let message = self.run.debug_message(self.node_id, level, message, value);
        self.debug.push(message);
    }

    /// The flow's storage; every flow has one, loaded before any node that declared it runs.
    pub fn storage(&self) -> Result<&StorageHandle, NodeError> {
        self.storage.ok_or_else(|| {
            NodeError::new(
                ErrorName::InternalError,
                "workflow storage was not loaded for this run",
            )
        })
    }
}

/// Who and what a run is.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    /// The application, flow and version it runs (the compiled flow's, shared).
    pub flow: Arc<FlowIdentity>,
    pub device_id: Option<String>,
    pub started_ms: i64,
    /// How many Workflow Trigger nodes led to this run (0 for a run started from outside).
    pub depth: u32,
}

impl RunInfo {
    /// A debug message of node `node_id` in this run, stamped now.
    pub fn debug_message(
        &self,
        node_id: &str,
        level: &str,
        message: String,
        value: Value,
    ) -> DebugMessage {
        DebugMessage {
            time_ms: chrono::Utc::now().timestamp_millis(),
            flow_id: self.flow.flow_id.clone(),
            run_id: self.run_id.clone(),
            version: self.flow.version_name.clone(),
            node_id: Some(node_id.to_owned()),
            level: level.to_owned(),
            message,
            value,
        }
    }
}

/// A node ready to run.
pub trait Node: Send + Sync + 'static {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError>;
}

/// What a node type gets to compile from.
pub struct NodeSpec<'a> {
    pub id: &'a str,
    pub type_name: &'a str,
    pub config: &'a Value,
    pub meta: &'a Value,
    /// The engine's configured limits (a Delay node checks its delay against them).
    pub limits: &'a crate::services::RunLimits,
}

impl NodeSpec<'_> {
    /// Parses the config into a node type's typed config. Unknown fields are ignored; known
    /// ones must have the right shape.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, CompileError> {
        let config = if self.config.is_null() {
            &Value::Object(Default::default())
        } else {
            self.config
        };
        T::deserialize(config).map_err(|e| self.error(format!("config: {e}")))
    }

    /// An error that names this node.
    pub fn error(&self, message: impl std::fmt::Display) -> CompileError {
        CompileError(format!(
            "Node \"{}\" ({}): {message}",
            self.id, self.type_name
        ))
    }
}

/// What compiling a node gives.
pub struct CompiledNodeType {
    pub node: Box<dyn Node>,
    /// How many output ports it has.
    pub ports: usize,
    /// Whether it reads or writes workflow storage (the run loads it first).
    pub uses_storage: bool,
}

impl CompiledNodeType {
    pub fn new(node: impl Node, ports: usize) -> Self {
        CompiledNodeType {
            node: Box::new(node),
            ports,
            uses_storage: false,
        }
    }

    pub fn with_storage(mut self) -> Self {
        self.uses_storage = true;
        self
    }
}

/// A node type's compile function.
pub type CompileFn = fn(&NodeSpec<'_>) -> Result<CompiledNodeType, CompileError>;

/// The config field names a node type knows (camelCase, as in flow JSON), read from its serde
/// config struct: serde hands a struct's field list to `deserialize_struct`, which this probe
/// records instead of deserializing anything. (A struct with `#[serde(flatten)]` fields is
/// deserialized as a map and yields nothing here; such nodes list their fields by hand.)
pub fn config_fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::{Error, Visitor};
    struct Probe<'a>(&'a mut Vec<&'static str>);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(Self::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields = Vec::new();
    let _ = T::deserialize(Probe(&mut fields));
    fields
}
