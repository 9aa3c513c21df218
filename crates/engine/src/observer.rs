//! Observers watch runs: accounting (stats, errors, logs), debug output, and — later — a per-run
//! trace recorder. The executor reports to every observer; per-step events are built only when
//! some observer asks for them ([`RunObserver::wants_steps`]), so an engine without a trace
//! recorder pays nothing per node.

use crate::error::NodeError;
use crate::node::RunInfo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A Debug node's output or a Function node's `console.log` line (plain data: in a cluster it
/// travels to the other nodes as JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DebugMessage {
    pub time_ms: i64,
    pub flow_id: String,
    pub run_id: String,
    pub version: String,
    pub node_id: Option<String>,
    /// `verbose`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
    /// What the debug node shows beside the message (the payload or a part of it).
    pub value: Value,
}

/// One node's execution, for observers that want steps.
pub struct StepEvent<'a> {
    pub node_id: &'a str,
    pub node_type: &'a str,
    /// The port taken (`None` when the node failed).
    pub port: Option<usize>,
    pub payload_after: &'a Value,
    pub duration: Duration,
    pub error: Option<&'a NodeError>,
}

/// A halting error with the node that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub node_id: Option<String>,
    pub node_label: Option<String>,
    pub node_type: Option<String>,
    pub error: NodeError,
    pub time_ms: i64,
    /// The payload of the failing path when it failed (none when the run failed before any
    /// node ran).
    pub payload: Option<Value>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub wall_time: Duration,
    pub paths_completed: u64,
    pub paths_failed: u64,
    /// The halting error, if any.
    pub failure: Option<RunFailure>,
}

pub trait RunObserver: Send + Sync {
    /// Whether [`RunObserver::step`] should be called for every node.
    fn wants_steps(&self) -> bool {
        false
    }
    fn step(&self, _run: &RunInfo, _event: &StepEvent<'_>) {}
    /// A debug message, shared: observers that keep it keep the `Arc`, not a copy of its value.
    fn debug(&self, _message: &Arc<DebugMessage>) {}
    fn run_finished(&self, _run: &RunInfo, _result: &RunResult) {}
}
