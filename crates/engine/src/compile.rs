//! Compiling a workflow: a document (a flow's develop version or a named version) becomes an
//! immutable graph of ready-to-run nodes, with node indices instead of ids and every template,
//! expression and path already parsed. Runs share it through an `Arc`.

use crate::error::CompileError;
use crate::node::{Node, NodeSpec};
use crate::nodes;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A trigger of a compiled flow.
pub struct CompiledTrigger {
    pub key: Option<String>,
    pub type_name: String,
    pub config: Value,
    pub meta: Value,
    /// Indices of the nodes its port 0 feeds.
    pub targets: Vec<usize>,
    /// What it needs to fire; `None` for a trigger type flowd keeps but does not fire.
    pub plan: Option<crate::triggers::TriggerPlan>,
    /// The part of its runs' payload that is the same for every run (see
    /// [`crate::run::payload_base`]).
    pub payload_base: serde_json::Map<String, Value>,
}

/// A node of a compiled flow.
pub struct CompiledNode {
    pub id: String,
    pub type_name: String,
    /// `meta.label`, reported with errors.
    pub label: Option<String>,
    pub node: Box<dyn Node>,
    /// `outputs[port]` = indices of the nodes that port feeds.
    pub outputs: Vec<Vec<usize>>,
    /// No port is wired: a path ends with this node whatever it answers.
    pub ends_paths: bool,
}

/// The identity a compiled graph runs under.
#[derive(Debug, Clone)]
pub struct FlowIdentity {
    pub application_id: String,
    pub application_name: String,
    pub flow_id: String,
    pub flow_name: String,
    /// `develop` or the version's name.
    pub version_name: String,
    /// `None` for develop.
    pub version_id: Option<String>,
    /// The flow is enabled and so is this version.
    pub enabled: bool,
}

/// A workflow version ready to run.
pub struct CompiledFlow {
    /// Shared with every run of the flow (a run's [`crate::node::RunInfo`]).
    pub identity: Arc<FlowIdentity>,
    pub triggers: Vec<CompiledTrigger>,
    pub nodes: Vec<CompiledNode>,
    /// Application globals overlaid with the version's globals, each value parsed.
    pub globals: Map<String, Value>,
    /// Whether any node touches workflow storage.
    pub uses_storage: bool,
}

impl CompiledFlow {
    /// The trigger of a type with this key (virtual buttons are also found by `meta.uiId`).
    pub fn trigger(&self, type_name: &str, key: &str) -> Option<usize> {
        self.triggers.iter().position(|t| {
            t.type_name == type_name
                && (t.key.as_deref() == Some(key)
                    || t.meta.get("uiId").and_then(Value::as_str) == Some(key))
        })
    }
}

fn parse_globals(
    globals: Option<&Value>,
    into: &mut Map<String, Value>,
    whose: &str,
) -> Result<(), CompileError> {
    for (index, global) in globals
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = global
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = global.get("json").and_then(Value::as_str).unwrap_or("null");
        let value = serde_json::from_str(text).map_err(|e| {
            CompileError(format!(
                "{whose} globals[{index}] (\"{key}\"): not valid JSON ({e})"
            ))
        })?;
        into.insert(key.to_owned(), value);
    }
    Ok(())
}

/// Compiles `graph` (a flow document or a version document: `triggers`, `nodes`, `globals`)
/// under `identity`, overlaying `application_globals`.
pub fn compile(
    identity: FlowIdentity,
    graph: &Value,
    application_globals: Option<&Value>,
    limits: &crate::services::RunLimits,
) -> Result<CompiledFlow, CompileError> {
    let mut globals = Map::new();
    parse_globals(application_globals, &mut globals, "application")?;
    parse_globals(graph.get("globals"), &mut globals, "workflow")?;

    let empty = Vec::new();
    let node_docs = graph
        .get("nodes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let trigger_docs = graph
        .get("triggers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);

    let index: HashMap<&str, usize> = node_docs
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.get("id").and_then(Value::as_str).map(|id| (id, i)))
        .collect();
    let resolve =
        |doc: &Value, what: &str, port: Option<usize>| -> Result<Vec<Vec<usize>>, CompileError> {
            let ports = doc.get("outputIds").and_then(Value::as_array);
            let mut out = Vec::new();
            for (p, targets) in ports.into_iter().flatten().enumerate() {
                if port.is_some_and(|only| p != only) {
                    continue;
                }
                let mut resolved = Vec::new();
                for target in targets.as_array().into_iter().flatten() {
                    let id = target.as_str().unwrap_or_default();
                    let i = index.get(id).copied().ok_or_else(|| {
                        CompileError(format!("{what}: Referenced output ID {id} does not exist."))
                    })?;
                    resolved.push(i);
                }
                out.push(resolved);
            }
            Ok(out)
        };

    let mut nodes = Vec::with_capacity(node_docs.len());
    let mut uses_storage = false;
    for (i, doc) in node_docs.iter().enumerate() {
        let type_name = doc.get("type").and_then(Value::as_str).unwrap_or_default();
        let fallback_id = format!("nodes[{i}]");
        let id = doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&fallback_id);
        let spec = NodeSpec {
            id,
            type_name,
            config: doc.get("config").unwrap_or(&Value::Null),
            meta: doc.get("meta").unwrap_or(&Value::Null),
            limits,
        };
        let compiled = nodes::compile(&spec)?;
        let mut outputs = resolve(doc, &format!("Node \"{id}\" ({type_name})"), None)?;
        // Exports of some revisions wire a terminal node as `[[]]` even when it has no port:
        // trailing empty ports carry nothing and are dropped.
        while outputs.len() > compiled.ports && outputs.last().is_some_and(Vec::is_empty) {
            outputs.pop();
        }
        if outputs.len() > compiled.ports {
            return Err(spec.error(format!(
                "has {} output ports wired, but this node type has {}",
                outputs.len(),
                compiled.ports
            )));
        }
        uses_storage |= compiled.uses_storage;
        nodes.push(CompiledNode {
            id: id.to_owned(),
            type_name: type_name.to_owned(),
            label: spec
                .meta
                .get("label")
                .and_then(Value::as_str)
                .map(str::to_owned),
            node: compiled.node,
            ends_paths: outputs.iter().all(Vec::is_empty),
            outputs,
        });
    }

    let mut triggers = Vec::with_capacity(trigger_docs.len());
    for (i, doc) in trigger_docs.iter().enumerate() {
        let type_name = doc.get("type").and_then(Value::as_str).unwrap_or_default();
        let key = doc.get("key").and_then(Value::as_str).map(str::to_owned);
        let what = format!(
            "Trigger \"{}\" ({type_name})",
            key.as_deref().unwrap_or(&format!("triggers[{i}]"))
        );
        let targets = resolve(doc, &what, Some(0))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let config = doc.get("config").cloned().unwrap_or(Value::Null);
        let meta = doc.get("meta").cloned().unwrap_or(Value::Null);
        let plan = crate::triggers::compile(&crate::triggers::TriggerSpec {
            index: i,
            type_name,
            key: key.as_deref(),
            config: &config,
            meta: &meta,
        })?;
        let payload_base = crate::run::payload_base(&identity, type_name, key.as_deref(), &globals);
        triggers.push(CompiledTrigger {
            key,
            type_name: type_name.to_owned(),
            config,
            meta,
            targets,
            plan,
            payload_base,
        });
    }

    Ok(CompiledFlow {
        identity: Arc::new(identity),
        triggers,
        nodes,
        globals,
        uses_storage,
    })
}
