//! Running a compiled flow: build the payload, walk the graph, account for the run.
//!
//! * Each port with several targets forks independent paths, each with its own copy of the
//!   payload (the last target takes the original, the others a clone).
//! * Paths that only run synchronous nodes are processed from a stack without any future being
//!   allocated; a path whose node waits is parked in a set of futures while others continue.
//! * An empty port completes a path. A halting error stops every path of the run.
//! * The whole run is bounded by the run time limit; it yields to the scheduler regularly so
//!   that even a graph that cycles forever is stopped by the limit.

use crate::compile::CompiledFlow;
use crate::error::{ErrorName, NodeError};
use crate::node::{NodeContext, Outcome, RunInfo};
use crate::observer::{DebugMessage, RunFailure, RunResult, StepEvent};
use crate::services::Services;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most paths a run may hold at once (ready or waiting), each with its own payload copy; past
/// it the run fails with `PathLimit` instead of growing without bound (a graph whose forks feed
/// back into themselves doubles its paths at every step).
pub const MAX_LIVE_PATHS: usize = 100_000;

/// Steps between two yields to the scheduler.
const STEPS_PER_YIELD: u32 = 256;

/// What starts a run.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub run_id: String,
    /// Index of the firing trigger in the compiled flow.
    pub trigger: usize,
    /// The trigger's `data`.
    pub data: Value,
    pub relay_id: Option<String>,
    pub relay_type: Option<String>,
    pub device_id: Option<String>,
    /// Fire time, ms since the epoch.
    pub time_ms: i64,
}

/// The payload a run starts with (spec §3.1).
pub fn initial_payload(flow: &CompiledFlow, start: &RunStart) -> Value {
    let trigger = &flow.triggers[start.trigger];
    let id = &flow.identity;
    let time = crate::value::date_to_iso(start.time_ms as f64).unwrap_or_default();
    let mut payload = Map::new();
    payload.insert("time".into(), json!(time));
    payload.insert("data".into(), start.data.clone());
    payload.insert("applicationId".into(), json!(id.application_id));
    payload.insert("applicationName".into(), json!(id.application_name));
    payload.insert(
        "triggerId".into(),
        json!(trigger.key.clone().unwrap_or_default()),
    );
    payload.insert("triggerType".into(), json!(trigger.type_name));
    payload.insert("flowId".into(), json!(id.flow_id));
    payload.insert("flowName".into(), json!(id.flow_name));
    payload.insert("flowVersion".into(), json!(id.version_name));
    payload.insert("globals".into(), Value::Object(flow.globals.clone()));
    if let Some(relay_id) = &start.relay_id {
        payload.insert("relayId".into(), json!(relay_id));
    }
    if let Some(relay_type) = &start.relay_type {
        payload.insert("relayType".into(), json!(relay_type));
    }
    if let Some(device_id) = &start.device_id {
        payload.insert("deviceId".into(), json!(device_id));
    }
    Value::Object(payload)
}

struct Walk<'a> {
    flow: &'a CompiledFlow,
    ready: Vec<(usize, Value)>,
    completed: u64,
}

impl Walk<'_> {
    /// Sends the payload down `port` of `node`: one path per target, or a completed path.
    fn emit(&mut self, node: usize, port: usize, payload: Value) {
        let targets = self.flow.nodes[node]
            .outputs
            .get(port)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        self.fork(targets, payload);
    }

    fn fork(&mut self, targets: &[usize], payload: Value) {
        match targets.split_last() {
            None => self.completed += 1,
            Some((last, rest)) => {
                for target in rest {
                    self.ready.push((*target, payload.clone()));
                }
                self.ready.push((*last, payload));
            }
        }
    }
}

fn failure(flow: &CompiledFlow, node: Option<usize>, error: NodeError) -> RunFailure {
    let node = node.map(|i| &flow.nodes[i]);
    RunFailure {
        node_id: node.map(|n| n.id.clone()),
        node_label: node.and_then(|n| n.label.clone()),
        node_type: node.map(|n| n.type_name.clone()),
        error,
        time_ms: chrono::Utc::now().timestamp_millis(),
    }
}

/// Runs `flow` from `start` to the end (or the first halting error, or the time limit), reports
/// to the observers, and returns the result.
pub async fn execute(
    flow: Arc<CompiledFlow>,
    start: RunStart,
    services: Arc<Services>,
) -> RunResult {
    let began = Instant::now();
    let run = RunInfo {
        run_id: start.run_id.clone(),
        application_id: flow.identity.application_id.clone(),
        flow_id: flow.identity.flow_id.clone(),
        flow_name: flow.identity.flow_name.clone(),
        version_name: flow.identity.version_name.clone(),
        version_id: flow.identity.version_id.clone(),
        device_id: start.device_id.clone(),
        started_ms: start.time_ms,
    };
    let limit = services.limits.run_time;
    let outcome = tokio::time::timeout(limit, walk(&flow, &start, &run, &services)).await;
    let (completed, failed, failure) = match outcome {
        Ok(result) => result,
        Err(_) => (
            0,
            1,
            Some(failure(
                &flow,
                None,
                NodeError::new(
                    ErrorName::TimeoutError,
                    format!(
                        "the run took longer than the limit of {} s",
                        limit.as_secs_f64()
                    ),
                ),
            )),
        ),
    };
    let result = RunResult {
        wall_time: began.elapsed(),
        paths_completed: completed,
        paths_failed: failed,
        failure,
    };
    for observer in &services.observers {
        observer.run_finished(&run, &result);
    }
    result
}

type Parked =
    futures::future::BoxFuture<'static, (usize, Value, Result<crate::node::Resume, NodeError>)>;

async fn walk(
    flow: &CompiledFlow,
    start: &RunStart,
    run: &RunInfo,
    services: &Arc<Services>,
) -> (u64, u64, Option<RunFailure>) {
    let storage = if flow.uses_storage {
        match services.storage.flow(&flow.identity.flow_id).await {
            Ok(storage) => Some(storage),
            Err(e) => return (0, 1, Some(failure(flow, None, NodeError::from(e)))),
        }
    } else {
        None
    };
    let tracing_steps = services.observers.iter().any(|o| o.wants_steps());
    let mut walk = Walk {
        flow,
        ready: Vec::new(),
        completed: 0,
    };
    walk.fork(
        &flow.triggers[start.trigger].targets,
        initial_payload(flow, start),
    );
    let mut parked: FuturesUnordered<Parked> = FuturesUnordered::new();
    let mut debug: Vec<DebugMessage> = Vec::new();
    let mut steps: u32 = 0;

    let halt =
        |walk: &Walk<'_>, parked: &FuturesUnordered<Parked>, node: usize, error: NodeError| {
            // The failing path and every path still alive are stopped by the error.
            let failed = 1 + walk.ready.len() as u64 + parked.len() as u64;
            (
                walk.completed,
                failed,
                Some(failure(flow, Some(node), error)),
            )
        };

    loop {
        while let Some((index, mut payload)) = walk.ready.pop() {
            if walk.ready.len() + parked.len() > MAX_LIVE_PATHS {
                let error = NodeError::new(
                    ErrorName::PathLimit,
                    format!("more than {MAX_LIVE_PATHS} paths were alive at once"),
                );
                publish_debug(services, &mut debug);
                return halt(&walk, &parked, index, error);
            }
            let node = &flow.nodes[index];
            let step_began = tracing_steps.then(Instant::now);
            let outcome = {
                let mut cx = NodeContext {
                    run,
                    storage: storage.as_ref(),
                    services,
                    debug: &mut debug,
                    node_id: &node.id,
                };
                node.node.execute(&mut cx, &mut payload)
            };
            if let Some(began) = step_began {
                let (port, error) = match &outcome {
                    Ok(Outcome::Port(p)) => (Some(*p), None),
                    Ok(Outcome::Wait(_)) => (None, None),
                    Err(e) => (None, Some(e)),
                };
                let event = StepEvent {
                    node_id: &node.id,
                    node_type: &node.type_name,
                    port,
                    payload_after: &payload,
                    duration: began.elapsed(),
                    error,
                };
                for observer in services.observers.iter().filter(|o| o.wants_steps()) {
                    observer.step(run, &event);
                }
            }
            publish_debug(services, &mut debug);
            match outcome {
                Ok(Outcome::Port(port)) => walk.emit(index, port, payload),
                Ok(Outcome::Wait(future)) => {
                    parked.push(Box::pin(async move {
                        let result = future.await;
                        (index, payload, result)
                    }));
                }
                Err(error) => return halt(&walk, &parked, index, error),
            }
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(STEPS_PER_YIELD) {
                tokio::task::yield_now().await;
            }
        }
        let Some((index, mut payload, result)) = parked.next().await else {
            break;
        };
        let resumed = result.and_then(|resume| {
            for line in resume.logs {
                debug.push(DebugMessage {
                    time_ms: chrono::Utc::now().timestamp_millis(),
                    flow_id: run.flow_id.clone(),
                    run_id: run.run_id.clone(),
                    version: run.version_name.clone(),
                    node_id: Some(flow.nodes[index].id.clone()),
                    level: "info".into(),
                    message: line,
                    value: Value::Null,
                });
            }
            if let Some(update) = resume.update {
                update(&mut payload)?;
            }
            Ok(resume.port)
        });
        publish_debug(services, &mut debug);
        match resumed {
            Ok(port) => walk.emit(index, port, payload),
            Err(error) => return halt(&walk, &parked, index, error),
        }
    }
    (walk.completed, 0, None)
}

fn publish_debug(services: &Services, debug: &mut Vec<DebugMessage>) {
    for message in debug.drain(..) {
        for observer in &services.observers {
            observer.debug(&message);
        }
    }
}

/// How long runs may last by default (spec §8).
pub const DEFAULT_RUN_TIME_LIMIT: Duration = Duration::from_secs(60);
