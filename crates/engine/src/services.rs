//! What the engine shares with every run: storage, observers, limits (and, as nodes arrive,
//! the JavaScript sandbox and HTTP client). Nodes reach the outside world only through these.

use crate::js::JsSandbox;
use crate::observer::RunObserver;
use crate::storage::StorageService;
use std::sync::Arc;
use std::time::Duration;

/// `wait` from now, or a moment that never comes (30 years on) when `wait` is too long to add
/// to the clock: a limit configured as `u64::MAX` seconds means no limit, not a panic.
pub(crate) fn deadline_after(wait: Duration) -> std::time::Instant {
    const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);
    let now = std::time::Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(NEVER))
        .unwrap_or(now)
}

/// Run limits (spec decision 9), configurable.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub run_time: Duration,
    /// Longest Delay node wait (Losant's cloud limit: 59 s).
    pub max_delay: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            run_time: crate::run::DEFAULT_RUN_TIME_LIMIT,
            max_delay: crate::nodes::logic::delay::DEFAULT_MAX_DELAY,
        }
    }
}

/// Starts runs of other flows (the Workflow Trigger node); the engine provides it.
pub trait RunStarter: Send + Sync {
    fn press(
        &self,
        application_id: String,
        flow_id: String,
        press: crate::engine::Press,
    ) -> futures::future::BoxFuture<'static, Result<String, crate::engine::PressError>>;
}

/// Most scheduled Workflow Trigger runs waiting at once.
pub const MAX_SCHEDULED_RUNS: usize = 100_000;

/// Runs scheduled by Workflow Trigger nodes, by run id, so that they can be replaced or
/// cancelled. Kept in memory: a restart forgets them (documented).
#[derive(Default)]
pub struct Scheduler {
    jobs: Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>>,
}

impl Scheduler {
    /// Runs `job` after `delay` under `run_id`, replacing a pending one of that id. Returns
    /// whether one was replaced, or `None` when too many are waiting.
    pub fn schedule(
        &self,
        run_id: String,
        delay: Duration,
        job: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<bool> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = jobs.remove(&run_id).map(|old| old.abort()).is_some();
        if jobs.len() >= MAX_SCHEDULED_RUNS {
            return None;
        }
        let registry = self.jobs.clone();
        let id = run_id.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            job.await;
        });
        jobs.insert(run_id, handle.abort_handle());
        Some(replaced)
    }

    /// Cancels a pending run; false when there is none of that id.
    pub fn cancel(&self, run_id: &str) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.remove(run_id).map(|job| job.abort()).is_some()
    }
}

pub struct Services {
    pub storage: StorageService,
    /// Where Function node scripts run.
    pub js: JsSandbox,
    pub observers: Vec<Arc<dyn RunObserver>>,
    /// Set once the engine exists (it owns the queue the runs go to).
    pub runs: std::sync::OnceLock<Arc<dyn RunStarter>>,
    pub schedule: Scheduler,
    pub limits: RunLimits,
    /// The HTTP node's clients, shared by every run (connection pools live here).
    pub http: crate::nodes::data::http::HttpClients,
    /// The SQL node's connection pools, one per connection, shared by every run.
    pub sql: crate::nodes::data::sql::SqlPools,
    /// The Redis node's connections, one per server, shared by every run.
    pub redis: crate::nodes::data::redis::RedisConnections,
    /// The applications' integrations (MQTT brokers), one connection each.
    pub integrations: crate::integrations::Integrations,
    /// The applications' webhooks by token, for the public route that receives their requests.
    pub webhooks: crate::triggers::webhook::Webhooks,
    /// The armed triggers and where events go.
    pub triggers: crate::triggers::hub::TriggerHub,
    /// Webhook requests waiting for a Webhook Reply node.
    pub replies: Arc<crate::replies::Replies>,
}

impl Services {
    /// The services of an engine: these parts, and every shared connection registry empty.
    pub fn new(
        storage: StorageService,
        js: JsSandbox,
        observers: Vec<Arc<dyn RunObserver>>,
        limits: RunLimits,
    ) -> Services {
        Services {
            storage,
            js,
            observers,
            runs: std::sync::OnceLock::new(),
            schedule: Scheduler::default(),
            limits,
            http: crate::nodes::data::http::HttpClients::new(),
            sql: crate::nodes::data::sql::SqlPools::new(),
            redis: crate::nodes::data::redis::RedisConnections::new(),
            integrations: crate::integrations::Integrations::new(),
            webhooks: crate::triggers::webhook::Webhooks::new(),
            triggers: crate::triggers::hub::TriggerHub::new(),
            replies: Arc::new(crate::replies::Replies::new()),
        }
    }
}
