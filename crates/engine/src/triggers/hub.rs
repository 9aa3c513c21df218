//! The trigger hub: which triggers are armed, and where events go.
//!
//! A flow's triggers are armed in its *live* version — the default version, else develop —
//! when the flow and that version are enabled. The engine re-arms a flow after every change that
//! could matter (create, PATCH, enable/disable, a version created, changed or deleted, the
//! default version changed, the flow or its application deleted): [`TriggerHub::arm`] first
//! drops what the flow had armed, so nothing is left over however often it changes.
//!
//! Armed triggers are of two kinds:
//! * **timers**: a task each, aborted when the flow is disarmed;
//! * **routed** triggers (webhook, integration, Workflow Error, Redis): entries in a routing table
//!   from an event source to the triggers listening to it. A Redis route also owns the one
//!   subscription all its triggers share, started with the first and ended with the last.
//!
//! Firing makes a [`RunJob`] for the run queue, exactly as a button press does.

use crate::queue::{QueueFull, RunJob, VersionRef};
use crate::triggers::{redis, timer, TriggerPlan};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// An armed trigger: which flow, version and trigger a firing runs.
#[derive(Debug)]
pub struct Target {
    pub application_id: String,
    pub flow_id: String,
    pub version: VersionRef,
    pub trigger_index: usize,
    pub trigger_type: String,
    pub trigger_key: String,
    pub plan: TriggerPlan,
}

/// An event source that routed triggers listen to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// A webhook, by id.
    Webhook(String),
    /// An integration, by id.
    Integration(String),
    /// Failed runs of an application's flows, by application id.
    FlowErrors(String),
    /// A Redis channel or pattern.
    Redis(redis::Channel),
}

/// How the hub hands a run to the queue.
pub type Submit = Arc<dyn Fn(RunJob) -> Result<(), QueueFull> + Send + Sync>;

/// Aborts a task when dropped.
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct ArmedFlow {
    routes: Vec<Route>,
    timers: Vec<TaskGuard>,
}

#[derive(Default)]
struct State {
    flows: HashMap<String, ArmedFlow>,
    routes: HashMap<Route, Vec<Arc<Target>>>,
    /// Tasks feeding a route (Redis subscriptions), alive while the route has targets.
    listeners: HashMap<Route, TaskGuard>,
}

/// What is armed, for tests and health checks: leaks show up here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Armed {
    pub flows: usize,
    pub timers: usize,
    pub routed: usize,
    pub listeners: usize,
}

#[derive(Default)]
pub struct TriggerHub {
    state: Arc<Mutex<State>>,
    submit: OnceLock<Submit>,
    /// Set when several flowd nodes share the run queue: every node arms every timer, ticks
    /// are computed the same way on all of them (interval timers from the Unix epoch, not from
    /// when each node armed them) and each tick's job carries one idempotency key, so the
    /// shared queue keeps one job per tick.
    cluster_ticks: std::sync::atomic::AtomicBool,
    /// Whether this node subscribes to Redis channels. On by default; in a cluster only the
    /// node holding the listening lease does (Redis has no shared subscriptions).
    quiet: std::sync::atomic::AtomicBool,
    /// Serializes re-arming, so that two quick changes of a flow cannot be applied out of order.
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl TriggerHub {
    pub fn new() -> TriggerHub {
        TriggerHub::default()
    }

    /// Set once by the engine: where firings go, and whether other nodes share that queue.
    pub(crate) fn connect(&self, submit: Submit, shared_queue: bool) {
        let _ = self.submit.set(submit);
        self.cluster_ticks
            .store(shared_queue, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms `targets`, the triggers of one flow's live version, replacing what the flow had
    /// armed before (an empty list disarms it).
    pub fn arm(&self, flow_id: &str, targets: Vec<Target>) {
        let flow_id = flow_id.to_owned();
        let mut armed = ArmedFlow::default();
        let mut routed: Vec<(Route, Arc<Target>)> = Vec::new();
        for target in targets {
            let target = Arc::new(target);
            let key = target.trigger_key.clone();
            match &target.plan {
                TriggerPlan::Press => {}
                TriggerPlan::Timer(schedule) => {
                    if let Some(submit) = self.submit.get() {
                        let task = tokio::spawn(run_timer(
                            schedule.clone(),
                            target.clone(),
                            submit.clone(),
                            self.cluster_ticks
                                .load(std::sync::atomic::Ordering::Relaxed),
                        ));
                        armed.timers.push(TaskGuard(task.abort_handle()));
                    }
                }
                TriggerPlan::FlowError(_) => {
                    let route = Route::FlowErrors(target.application_id.clone());
                    routed.push((route, target))
                }
                TriggerPlan::Integration(_) => routed.push((Route::Integration(key), target)),
                TriggerPlan::Webhook => routed.push((Route::Webhook(key), target)),
                TriggerPlan::Redis(channel) => {
                    let route = Route::Redis(channel.clone());
                    routed.push((route, target))
                }
            }
        }
        let mut state = self.lock();
        let old = state.flows.remove(&flow_id);
        if let Some(old) = old {
            Self::unroute(&mut state, &flow_id, old);
        }
        for (route, target) in routed {
            if !armed.routes.contains(&route) {
                armed.routes.push(route.clone());
            }
            state.routes.entry(route.clone()).or_default().push(target);
            self.listen(&mut state, &route);
        }
        if !armed.routes.is_empty() || !armed.timers.is_empty() {
            state.flows.insert(flow_id, armed);
        }
    }

    /// Starts the listener feeding `route` (a Redis channel) unless it runs or this node is
    /// quiet.
    fn listen(&self, state: &mut State, route: &Route) {
        let Route::Redis(channel) = route else {
            return;
        };
        if self.quiet.load(std::sync::atomic::Ordering::Relaxed)
            || state.listeners.contains_key(route)
        {
            return;
        }
        let task = tokio::spawn(redis::listen(
            channel.clone(),
            self.deliverer(route.clone()),
        ));
        state
            .listeners
            .insert(route.clone(), TaskGuard(task.abort_handle()));
    }

    /// Whether this node listens to Redis channels: turned off, its subscriptions end (routes
    /// stay armed); turned on, every armed channel is subscribed.
    pub fn set_listening(&self, listening: bool) {
        self.quiet
            .store(!listening, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.lock();
        if listening {
            let routes: Vec<Route> = state.routes.keys().cloned().collect();
            for route in routes {
                self.listen(&mut state, &route);
            }
        } else {
            state.listeners.clear();
        }
    }

    /// Disarms every trigger of a flow (disabled, deleted, or nothing live to arm).
    pub fn disarm(&self, flow_id: &str) {
        let mut state = self.lock();
        if let Some(old) = state.flows.remove(flow_id) {
            Self::unroute(&mut state, flow_id, old);
        }
    }

    /// Removes a flow's routing entries; its timers stop as `old` is dropped.
    fn unroute(state: &mut State, flow_id: &str, old: ArmedFlow) {
        for route in old.routes {
            let now_empty = match state.routes.get_mut(&route) {
                Some(targets) => {
                    targets.retain(|t| t.flow_id != flow_id);
                    targets.is_empty()
                }
                None => false,
            };
            if now_empty {
                state.routes.remove(&route);
                state.listeners.remove(&route);
            }
        }
    }

    /// Disarms everything (shutdown).
    pub fn disarm_all(&self) {
        let mut state = self.lock();
        state.flows.clear();
        state.routes.clear();
        state.listeners.clear();
    }

    /// The triggers listening to a route.
    pub fn targets(&self, route: &Route) -> Vec<Arc<Target>> {
        self.lock().routes.get(route).cloned().unwrap_or_default()
    }

    /// What is armed now.
    pub fn armed(&self) -> Armed {
        let state = self.lock();
        Armed {
            flows: state.flows.len(),
            timers: state.flows.values().map(|f| f.timers.len()).sum(),
            routed: state.routes.values().map(Vec::len).sum(),
            listeners: state.listeners.len(),
        }
    }

    /// Queues a run of `target` with `data`. Returns the run id.
    pub fn fire(
        &self,
        target: &Target,
        data: Value,
        relay: Option<(String, &str)>,
        time_ms: i64,
        depth: u32,
    ) -> Result<String, QueueFull> {
        let submit = self.submit.get().ok_or(QueueFull)?;
        fire_with(submit, target, data, relay, time_ms, depth)
    }

    /// A callback handing events of `route` to its targets (what a listener task calls).
    fn deliverer(&self, route: Route) -> impl Fn(Value) + Send + Sync + 'static {
        let state = Arc::downgrade(&self.state);
        let submit = self.submit.get().cloned();
        move |data: Value| {
            let (Some(state), Some(submit)) = (state.upgrade(), submit.as_ref()) else {
                return;
            };
            let targets = state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .routes
                .get(&route)
                .cloned()
                .unwrap_or_default();
            for target in targets {
                if fire_with(submit, &target, data.clone(), None, now_ms(), 0).is_err() {
                    tracing::warn!(flow = %target.flow_id, trigger = %target.trigger_key, "run queue full; a trigger firing was dropped");
                }
            }
        }
    }
}

fn fire_with(
    submit: &Submit,
    target: &Target,
    data: Value,
    relay: Option<(String, &str)>,
    time_ms: i64,
    depth: u32,
) -> Result<String, QueueFull> {
    let job = job_for(target, data, relay, time_ms, depth);
    let run_id = job.run_id.clone();
    submit(job)?;
    Ok(run_id)
}

/// The job of one firing of `target`, under a new run id.
pub fn job_for(
    target: &Target,
    data: Value,
    relay: Option<(String, &str)>,
    time_ms: i64,
    depth: u32,
) -> RunJob {
    let (relay_id, relay_type) = match relay {
        Some((id, kind)) => (Some(id), Some(kind.to_owned())),
        None => (None, None),
    };
    RunJob {
        run_id: flowd_model::id::new_id(),
        application_id: target.application_id.clone(),
        flow_id: target.flow_id.clone(),
        version: target.version.clone(),
        trigger_type: target.trigger_type.clone(),
        trigger_key: target.trigger_key.clone(),
        trigger_index: Some(target.trigger_index),
        data,
        relay_id,
        relay_type,
        device_id: None,
        time_ms,
        depth,
        idempotency_key: None,
    }
}

/// A timer's task: sleeps until each firing and queues a run, until aborted. With
/// `cluster_ticks`, interval ticks count from the Unix epoch and each job carries the tick's
/// idempotency key (see [`TriggerHub`]).
async fn run_timer(
    schedule: timer::Schedule,
    target: Arc<Target>,
    submit: Submit,
    cluster_ticks: bool,
) {
    let now = chrono::Utc::now();
    let anchor = if cluster_ticks {
        chrono::DateTime::UNIX_EPOCH
    } else {
        now
    };
    let mut after = now;
    loop {
        let Some(next) = schedule.next_after(after, anchor) else {
            return;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let fire_ms = next.timestamp_millis();
        let relay = Some((target.trigger_key.clone(), "timer"));
        let mut job = job_for(&target, serde_json::json!({}), relay, fire_ms, 0);
        if cluster_ticks {
            job.idempotency_key = Some(format!(
                "timer.{}.{}.{}.{fire_ms}",
                target.flow_id,
                match &target.version {
                    VersionRef::Develop => "develop",
                    VersionRef::Id(id) => id,
                },
                target.trigger_index
            ));
        }
        if submit(job).is_err() {
            tracing::warn!(flow = %target.flow_id, "run queue full; a timer firing was dropped");
        }
        // The next tick after now: a stall longer than the interval skips ticks, never bursts.
        after = next.max(chrono::Utc::now());
    }
}
