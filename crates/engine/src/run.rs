//! Running a compiled flow: build the payload, walk the graph, account for the run.
//!
//! * Each port with several targets forks independent paths, each with its own copy of the
//!   payload (the last target takes the original, the others a clone).
//! * Paths that only run synchronous nodes are processed from a stack without any future being
//!   allocated; a path whose node waits is parked in a set of futures while others continue.
//! * An empty port completes a path. A halting error stops every path of the run.
//! * The whole run is bounded by the run time limit, checked where the walk waits and at its
//!   regular yields to the scheduler (so that even a graph that cycles forever is stopped). A
//!   run stopped by it fails with `TimeoutError` and the payload of a path still alive: the
//!   next one to run, else one that was waiting. The walk keeps the payloads of waiting paths
//!   itself (not inside their futures) so that it can name one; the trigger's `data` is moved
//!   into the run, never copied.

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

/// Loop iterations between two yields: each iteration walks its body in a scope of its own,
/// whose steps may never reach [`STEPS_PER_YIELD`]; without these a long loop of short bodies
/// would never let the run's time limit be checked.
const ITERATIONS_PER_YIELD: usize = 64;

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

/// The fields of a trigger's payload that every run of it shares, in payload order, with
/// `time` and `data` first, as placeholders. Compiled once per trigger; a run clones it (a
/// clone keeps each key's hash) and fills the two placeholders by position.
pub fn payload_base(
    identity: &crate::compile::FlowIdentity,
    trigger_type: &str,
    trigger_key: Option<&str>,
    globals: &Map<String, Value>,
) -> Map<String, Value> {
    let mut base = Map::with_capacity(PAYLOAD_FIELDS);
    base.insert("time".into(), Value::Null);
    base.insert("data".into(), Value::Null);
    base.insert("applicationId".into(), json!(identity.application_id));
    base.insert("applicationName".into(), json!(identity.application_name));
    base.insert("triggerId".into(), json!(trigger_key.unwrap_or_default()));
    base.insert("triggerType".into(), json!(trigger_type));
    base.insert("flowId".into(), json!(identity.flow_id));
    base.insert("flowName".into(), json!(identity.flow_name));
    base.insert("flowVersion".into(), json!(identity.version_name));
    base.insert("globals".into(), Value::Object(globals.clone()));
    base
}

/// Fields of a run's initial payload at most: the shared ones and `relayId`, `relayType`,
/// `deviceId`.
const PAYLOAD_FIELDS: usize = 13;

/// The payload a run starts with (spec §3.1); the trigger's `data` moves into it.
pub fn initial_payload(flow: &CompiledFlow, start: &mut RunStart) -> Value {
    let trigger = &flow.triggers[start.trigger];
    let mut payload = trigger.payload_base.clone();
    let mut time = crate::value::date_to_iso(start.time_ms as f64);
    // `time` and `data` lead the base: found by position, not by hashing their names.
    for (key, slot) in payload.iter_mut().take(2) {
        match key.as_str() {
            "time" => *slot = Value::String(time.take().unwrap_or_default()),
            "data" => *slot = std::mem::take(&mut start.data),
            _ => {}
        }
    }
    // A Workflow Error run names the failing flow (`<flowId>-flowError`), not its own trigger.
    if let ("flowError", Some(failing_flow)) = (trigger.type_name.as_str(), &start.relay_id) {
        payload.insert(
            "triggerId".into(),
            json!(format!("{failing_flow}-flowError")),
        );
    }
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

fn failure(
    flow: &CompiledFlow,
    node: Option<usize>,
    error: NodeError,
    payload: Option<&Value>,
) -> RunFailure {
    let node = node.map(|i| &flow.nodes[i]);
    RunFailure {
        node_id: node.map(|n| n.id.clone()),
        node_label: node.and_then(|n| n.label.clone()),
        node_type: node.map(|n| n.type_name.clone()),
        error,
        time_ms: chrono::Utc::now().timestamp_millis(),
        // Copied only when a run fails, for Workflow Error triggers.
        payload: payload.cloned(),
    }
}

/// Runs `flow` from `start` to the end (or the first halting error, or the time limit), reports
/// to the observers, and returns the result.
pub async fn execute(
    flow: Arc<CompiledFlow>,
    start: RunStart,
    services: Arc<Services>,
) -> RunResult {
    execute_at_depth(flow, start, services, 0).await
}

/// [`execute`] for a run started by a Workflow Trigger node chain `depth` long.
pub async fn execute_at_depth(
    flow: Arc<CompiledFlow>,
    mut start: RunStart,
    services: Arc<Services>,
    depth: u32,
) -> RunResult {
    let began = Instant::now();
    // Shared with the walk (and anything it parks) rather than copied for it.
    let run = Arc::new(RunInfo {
        run_id: std::mem::take(&mut start.run_id),
        flow: Arc::clone(&flow.identity),
        device_id: start.device_id.clone(),
        started_ms: start.time_ms,
        depth,
    });
    let limit = services.limits.run_time;
    let deadline = tokio::time::Instant::from_std(crate::services::deadline_after(limit));
    let (completed, failed, failure) = walk(&flow, start, &run, &services, deadline).await;
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

/// The failure of a run stopped by the run time limit.
fn timed_out(flow: &CompiledFlow, limit: Duration, payload: Option<&Value>) -> RunFailure {
    failure(
        flow,
        None,
        NodeError::new(
            ErrorName::TimeoutError,
            format!(
                "the run took longer than the limit of {} s",
                limit.as_secs_f64()
            ),
        ),
        payload,
    )
}

/// What one walk needs, owned, so that parked work (waits, loops) can be `'static`.
struct WalkContext {
    flow: Arc<CompiledFlow>,
    run: Arc<RunInfo>,
    services: Arc<Services>,
    storage: Option<crate::storage::StorageHandle>,
    tracing_steps: bool,
    /// When the run time limit runs out.
    deadline: tokio::time::Instant,
}

/// A walk stopped by a halting error: the failure and how many paths it stopped.
struct Halt {
    failed: u64,
    failure: RunFailure,
}

/// How a walk ended when no error stopped it.
struct WalkEnd {
    completed: u64,
    /// In a loop body: the first Next/Return/Break reached, with the payload there.
    cap: Option<(crate::node::LoopCap, Value)>,
}

/// Why parked work ended badly: its own node's error, or a halt inside a loop body.
enum Stop {
    Node(NodeError),
    /// Boxed: a halt carries the failing payload and is rare.
    Halt(Box<Halt>),
}

/// Parked work: resolves to its node, the slot of its path's payload, and how it ended.
type Parked =
    futures::future::BoxFuture<'static, (usize, usize, Result<crate::node::Resume, Stop>)>;

/// The payloads of parked paths, by slot; a parked future carries only its slot, so that the
/// walk can still name a payload when the run time runs out.
#[derive(Default)]
struct Waiting {
    payloads: Vec<Option<Value>>,
    free: Vec<usize>,
}

impl Waiting {
    fn park(&mut self, payload: Value) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.payloads[slot] = Some(payload);
                slot
            }
            None => {
                self.payloads.push(Some(payload));
                self.payloads.len() - 1
            }
        }
    }

    fn resume(&mut self, slot: usize) -> Value {
        self.free.push(slot);
        self.payloads
            .get_mut(slot)
            .and_then(Option::take)
            .unwrap_or_default()
    }

    fn any(&self) -> Option<&Value> {
        self.payloads.iter().flatten().next()
    }
}

async fn walk(
    flow: &Arc<CompiledFlow>,
    mut start: RunStart,
    run: &Arc<RunInfo>,
    services: &Arc<Services>,
    deadline: tokio::time::Instant,
) -> (u64, u64, Option<RunFailure>) {
    let storage = if flow.uses_storage {
        match tokio::time::timeout_at(deadline, services.storage.handle(&flow.identity.flow_id))
            .await
        {
            Ok(Ok(storage)) => Some(storage),
            Ok(Err(e)) => return (0, 1, Some(failure(flow, None, NodeError::from(e), None))),
            Err(_) => {
                let payload = initial_payload(flow, &mut start);
                let limit = services.limits.run_time;
                return (0, 1, Some(timed_out(flow, limit, Some(&payload))));
            }
        }
    } else {
        None
    };
    let cx = Arc::new(WalkContext {
        flow: flow.clone(),
        run: run.clone(),
        services: services.clone(),
        storage,
        tracing_steps: services.observers.iter().any(|o| o.wants_steps()),
        deadline,
    });
    let targets = flow.triggers[start.trigger].targets.clone();
    match walk_scope(cx, targets, initial_payload(flow, &mut start), false).await {
        Ok(end) => (end.completed, 0, None),
        Err(halt) => (0, halt.failed, Some(halt.failure)),
    }
}

/// Walks every path from `targets` until all end. In a loop body (`in_loop`) a Next, Return or
/// Break cap ends its path and the first one reached is reported; paths ending otherwise are
/// discarded rather than counted as completed. The run time limit is watched at the top level
/// only: a loop body runs inside work parked there.
fn walk_scope(
    cx: Arc<WalkContext>,
    targets: Vec<usize>,
    payload: Value,
    in_loop: bool,
) -> futures::future::BoxFuture<'static, Result<WalkEnd, Halt>> {
    Box::pin(async move {
        let flow = &*cx.flow;
        let mut walk = Walk {
            flow,
            ready: Vec::new(),
            completed: 0,
        };
        walk.fork(&targets, payload);
        let mut cap: Option<(crate::node::LoopCap, Value)> = None;
        let mut parked: FuturesUnordered<Parked> = FuturesUnordered::new();
        let mut waiting = Waiting::default();
        // Armed the first time the walk waits, so that a run that never waits sets no timer.
        let mut time_limit: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut debug: Vec<DebugMessage> = Vec::new();
        let mut steps: u32 = 0;
        let halt = |walk: &Walk<'_>,
                    parked: &FuturesUnordered<Parked>,
                    node: Option<usize>,
                    error: NodeError,
                    payload: &Value| Halt {
            // The failing path and every path still alive are stopped by the error.
            failed: 1 + walk.ready.len() as u64 + parked.len() as u64,
            failure: failure(flow, node, error, Some(payload)),
        };
        let alive = |walk: &Walk<'_>, parked: &FuturesUnordered<Parked>| {
            walk.ready.len() as u64 + parked.len() as u64
        };
        // Every path still alive fails; the payload named is the next to run, else a waiting one.
        let timeout = |walk: &Walk<'_>, parked: &FuturesUnordered<Parked>, waiting: &Waiting| {
            let payload = walk.ready.last().map(|(_, p)| p).or_else(|| waiting.any());
            Halt {
                failed: alive(walk, parked).max(1),
                failure: timed_out(flow, cx.services.limits.run_time, payload),
            }
        };

        loop {
            while let Some((index, mut payload)) = walk.ready.pop() {
                if walk.ready.len() + parked.len() > MAX_LIVE_PATHS {
                    let error = NodeError::new(
                        ErrorName::PathLimit,
                        format!("more than {MAX_LIVE_PATHS} paths were alive at once"),
                    );
                    publish_debug(&cx.services, &mut debug);
                    return Err(halt(&walk, &parked, Some(index), error, &payload));
                }
                let node = &flow.nodes[index];
                let step_began = cx.tracing_steps.then(Instant::now);
                let outcome = {
                    let mut node_cx = NodeContext {
                        run: &cx.run,
                        storage: cx.storage.as_ref(),
                        services: &cx.services,
                        debug: &mut debug,
                        node_id: &node.id,
                        payload_ends_here: node.ends_paths && !cx.tracing_steps,
                    };
                    node.node.execute(&mut node_cx, &mut payload)
                };
                if let Some(began) = step_began {
                    let (port, error) = match &outcome {
                        Ok(Outcome::Port(p)) => (Some(*p), None),
                        Ok(_) => (None, None),
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
                    for observer in cx.services.observers.iter().filter(|o| o.wants_steps()) {
                        observer.step(&cx.run, &event);
                    }
                }
                publish_debug(&cx.services, &mut debug);
                match outcome {
                    Ok(Outcome::Port(port)) => walk.emit(index, port, payload),
                    Ok(Outcome::Wait(future)) => {
                        let slot = waiting.park(payload);
                        parked.push(Box::pin(async move {
                            let result = future.await.map_err(Stop::Node);
                            (index, slot, result)
                        }));
                    }
                    Ok(Outcome::Loop(plan)) => {
                        let body = node.outputs.get(1).cloned().unwrap_or_default();
                        let cx = cx.clone();
                        let before = payload.clone();
                        let slot = waiting.park(payload);
                        parked.push(Box::pin(async move {
                            let result = run_loop(cx, body, plan, before).await;
                            let result = result.map(|after| {
                                let update: crate::node::PayloadUpdate =
                                    Box::new(move |payload: &mut Value| {
                                        *payload = after;
                                        Ok(())
                                    });
                                crate::node::Resume {
                                    port: 0,
                                    update: Some(update),
                                    logs: Vec::new(),
                                }
                            });
                            (index, slot, result)
                        }));
                    }
                    Ok(Outcome::Cap(signal)) => {
                        if !in_loop {
                            let error = NodeError::new(
                                ErrorName::ValidationError,
                                "a loop cap was reached outside its loop's body",
                            );
                            return Err(halt(&walk, &parked, Some(index), error, &payload));
                        }
                        // The first cap reached in an iteration wins.
                        if cap.is_none() {
                            cap = Some((signal, payload));
                        }
                    }
                    Err(error) => return Err(halt(&walk, &parked, Some(index), error, &payload)),
                }
                steps = steps.wrapping_add(1);
                if steps.is_multiple_of(STEPS_PER_YIELD) {
                    tokio::task::yield_now().await;
                    if !in_loop && tokio::time::Instant::now() >= cx.deadline {
                        publish_debug(&cx.services, &mut debug);
                        return Err(timeout(&walk, &parked, &waiting));
                    }
                }
            }
            if parked.is_empty() {
                break;
            }
            let next = if in_loop {
                parked.next().await
            } else {
                let limit = time_limit
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(cx.deadline)));
                tokio::select! {
                    biased;
                    next = parked.next() => next,
                    () = limit.as_mut() => {
                        publish_debug(&cx.services, &mut debug);
                        return Err(timeout(&walk, &parked, &waiting));
                    }
                }
            };
            let Some((index, slot, result)) = next else {
                break;
            };
            let mut payload = waiting.resume(slot);
            let resumed = result.and_then(|resume| {
                for line in resume.logs {
                    debug.push(cx.run.debug_message(
                        &flow.nodes[index].id,
                        "info",
                        line,
                        Value::Null,
                    ));
                }
                if let Some(update) = resume.update {
                    update(&mut payload).map_err(Stop::Node)?;
                }
                Ok(resume.port)
            });
            publish_debug(&cx.services, &mut debug);
            match resumed {
                Ok(port) => walk.emit(index, port, payload),
                Err(Stop::Node(error)) => {
                    return Err(halt(&walk, &parked, Some(index), error, &payload))
                }
                Err(Stop::Halt(inner)) => {
                    return Err(Halt {
                        failed: inner.failed + alive(&walk, &parked),
                        failure: inner.failure,
                    })
                }
            }
        }
        // Inside a loop body, paths that end without a cap are discarded, not completed.
        let completed = if in_loop { 0 } else { walk.completed };
        Ok(WalkEnd { completed, cap })
    })
}

/// At most this many iterations of a parallel loop run at once (Losant: about 5).
const PARALLEL_ITERATIONS: usize = 5;

/// Runs a loop's iterations over its body and returns the payload it continues with.
async fn run_loop(
    cx: Arc<WalkContext>,
    body: Vec<usize>,
    mut plan: crate::node::LoopPlan,
    mut payload: Value,
) -> Result<Value, Stop> {
    // Map values are kept only when the loop has somewhere to put them: each one is a copy of
    // part of an iteration's payload (by default the current item), one per item.
    let mapping = plan.map_result.is_some();
    let mut map_values: Vec<Value> = Vec::with_capacity(if mapping { plan.items.len() } else { 0 });
    let map_value = |cap: &crate::node::LoopCap, committed: &Value| -> Value {
        let path = cap.map_value.as_ref().unwrap_or(&plan.map_value);
        path.get(committed)
            .map(|v| v.into_owned())
            .unwrap_or(Value::Null)
    };
    if body.is_empty() {
        // No body: the loop goes straight on.
    } else if plan.parallel {
        // Iterations see the payload as it was before the loop and do not change it.
        // Iterations are made as `buffered` asks for them, a few at a time, and each result is
        // reduced to its map value as it arrives, so a long loop holds neither a payload copy
        // per item going in nor one per finished iteration coming out.
        let base = Arc::new(payload.clone());
        let current = plan.current_item.clone();
        let (cx, body) = (cx.clone(), body.clone());
        let items = std::mem::take(&mut plan.items);
        let runs = items.into_iter().map(move |item| {
            let mut iteration = (*base).clone();
            current.set(&mut iteration, item);
            walk_scope(cx.clone(), body.clone(), iteration, true)
        });
        let mut results = futures::stream::iter(runs).buffered(PARALLEL_ITERATIONS);
        let mut first_error = None;
        // Every iteration finishes before the first error is raised.
        let mut finished = 0usize;
        while let Some(result) = results.next().await {
            finished += 1;
            if finished.is_multiple_of(ITERATIONS_PER_YIELD) {
                tokio::task::yield_now().await;
            }
            match result {
                Ok(end) if mapping => map_values.push(match &end.cap {
                    Some((cap, committed)) => map_value(cap, committed),
                    None => Value::Null,
                }),
                Ok(_) => {}
                Err(halt) => {
                    first_error.get_or_insert(halt);
                }
            }
        }
        if let Some(halt) = first_error {
            return Err(Stop::Halt(Box::new(halt)));
        }
    } else {
        for (i, item) in plan.items.iter().enumerate() {
            if i > 0 && i.is_multiple_of(ITERATIONS_PER_YIELD) {
                tokio::task::yield_now().await;
            }
            let mut iteration = payload.clone();
            plan.current_item.set(&mut iteration, item.clone());
            let end = walk_scope(cx.clone(), body.clone(), iteration, true)
                .await
                .map_err(|halt| Stop::Halt(Box::new(halt)))?;
            match end.cap {
                Some((cap, committed)) => {
                    if mapping {
                        map_values.push(map_value(&cap, &committed));
                    }
                    // Changes made in the iteration carry over only through a cap.
                    payload = committed;
                    if cap.should_break {
                        break;
                    }
                }
                None if mapping => map_values.push(Value::Null),
                None => {}
            }
        }
    }
    if let Some(path) = &plan.map_result {
        path.set(&mut payload, Value::Array(map_values));
    }
    Ok(payload)
}

fn publish_debug(services: &Services, debug: &mut Vec<DebugMessage>) {
    for message in debug.drain(..) {
        let message = Arc::new(message);
        for observer in &services.observers {
            observer.debug(&message);
        }
    }
}

/// How long runs may last by default (spec §8).
pub const DEFAULT_RUN_TIME_LIMIT: Duration = Duration::from_secs(60);
