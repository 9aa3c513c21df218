//! The engine as the API and the CLI see it: compiled flows in a cache, a bounded run queue and
//! its workers, storage, accounting and debug output, and the virtual button press.

use crate::accounting::Accounting;
use crate::compile::{compile, CompiledFlow, FlowIdentity};
use crate::debug::DebugHub;
use crate::error::CompileError;
use crate::observer::RunObserver;
use crate::queue::{InProcessQueue, JobHandler, RunJob, RunQueue, VersionRef};
use crate::run::{execute, RunStart};
use crate::services::{RunLimits, Services};
use crate::storage::{StorageMode, StorageService};
use flowd_model::id::IdMap;
use flowd_store::{StorageCaps, Store};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Flows whose compiled versions are kept at once; past it an arbitrary flow's are dropped (they
/// are recompiled on their next use).
pub const MAX_CACHED_FLOWS: usize = 20_000;

/// How long shutdown waits for finished jobs of a shared queue to be acknowledged.
const SETTLE_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(10);

/// Engine settings (configurable, with documented defaults).
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Runs waiting for a worker before presses are refused (429).
    pub queue_capacity: usize,
    /// Runs executing at once.
    pub workers: usize,
    pub limits: RunLimits,
    pub storage_caps: StorageCaps,
    /// Where workflow storage lives: in memory in front of the store (the default), or only
    /// in the store, for several engines sharing it.
    pub storage_mode: StorageMode,
    /// Log entries kept per flow.
    pub log_ring: usize,
    /// How long run history is kept.
    pub retention: std::time::Duration,
    /// Threads running Function node scripts.
    pub js_workers: usize,
    /// Time, memory and stack caps of one Function node run.
    pub js_limits: crate::js::JsLimits,
    /// Most firings of one virtual button or one webhook per window; `None` (the default) for
    /// no limit beyond the run queue's.
    pub trigger_rate_limit: Option<crate::rate_limit::RateLimit>,
}

/// How often old run history is deleted: a tenth of the retention window, between 10 s and an
/// hour, so history never outlives its window by more than a tenth.
fn retention_sweep(retention: std::time::Duration) -> std::time::Duration {
    (retention / 10).clamp(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(3600),
    )
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_capacity: 10_000,
            workers: 256,
            limits: RunLimits::default(),
            storage_caps: StorageCaps {
                max_keys: 100_000,
                max_bytes: 64 * 1024 * 1024,
            },
            storage_mode: StorageMode::Cached,
            log_ring: crate::accounting::DEFAULT_LOG_RING,
            retention: std::time::Duration::from_secs(30 * 86_400),
            js_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            js_limits: crate::js::JsLimits::default(),
            trigger_rate_limit: None,
        }
    }
}

/// Why a press was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PressError {
    /// The press names something that cannot run (decision 4: a 400).
    #[error("{0}")]
    Invalid(String),
    /// The flow does not exist in that application (a 404).
    #[error("Flow was not found")]
    NotFound,
    /// The run queue is full (a 429).
    #[error("the run queue is full; try again shortly")]
    Busy,
    /// The trigger fired more often than its rate limit allows (a 429).
    #[error("{0}")]
    RateLimited(String),
    /// The shared run queue cannot be reached (a 503).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::queue::SubmitError> for PressError {
    fn from(e: crate::queue::SubmitError) -> Self {
        match e {
            crate::queue::SubmitError::Full => PressError::Busy,
            crate::queue::SubmitError::Unavailable(_) => PressError::Unavailable(e.to_string()),
        }
    }
}

/// Why a flow version could not be made ready to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error("{0}")]
    Store(String),
    /// The stored version no longer compiles (a limit was lowered since it was saved, say).
    #[error("{0}")]
    Compile(CompileError),
}

impl From<LoadError> for String {
    fn from(e: LoadError) -> String {
        e.to_string()
    }
}

/// A virtual button press.
#[derive(Debug, Clone, Default)]
pub struct Press {
    pub key: String,
    /// `data` of the run; `None` uses the button's default payload.
    pub payload: Option<Value>,
    /// Version name or id; `None` runs the default version.
    pub flow_version: Option<String>,
    pub device_id: Option<String>,
    pub relay_id: Option<String>,
    pub relay_type: Option<String>,
    /// How many Workflow Trigger nodes led to this press (0 from outside).
    pub depth: u32,
}

/// What a press needs to know of a flow, cached so that a press reads nothing from the store.
#[derive(Debug)]
pub(crate) struct FlowHead {
    application_id: String,
    enabled: bool,
    default_version: Option<String>,
}

/// A flow's compiled versions in the cache.
type CompiledVersions = Vec<(VersionRef, Arc<CompiledFlow>)>;

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) services: Arc<Services>,
    /// Compiled versions by flow id (usually one a flow): a lookup hashes the borrowed id and
    /// allocates nothing.
    pub(crate) cache: Mutex<IdMap<CompiledVersions>>,
    pub(crate) heads: Mutex<IdMap<Arc<FlowHead>>>,
    /// Bumped by every invalidation. A cache miss reads the store and inserts what it read only
    /// if no invalidation happened meanwhile; otherwise a PATCH committed between the read and
    /// the insert would leave the old document cached.
    pub(crate) epoch: std::sync::atomic::AtomicU64,
    pub(crate) queue: OnceLock<Box<dyn RunQueue>>,
    pub(crate) accounting: Arc<Accounting>,
    pub(crate) debug: Arc<DebugHub>,
    pub(crate) rate_limiter: Option<crate::rate_limit::RateLimiter>,
    /// Finished jobs of a shared queue waiting for their accounting commit to be acknowledged;
    /// shutdown waits for them, or other nodes would run them again.
    pub(crate) settling: Arc<Settling>,
}

/// A count of jobs being settled, and a wake-up when it reaches zero.
#[derive(Default)]
pub(crate) struct Settling {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one job as being settled until dropped.
struct SettlingJob(Arc<Settling>);

impl Settling {
    fn begin(self: &Arc<Self>) -> SettlingJob {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SettlingJob(self.clone())
    }

    /// Waits until no job is being settled.
    async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for SettlingJob {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

fn text<'a>(doc: &'a Value, field: &str) -> &'a str {
    doc.get(field).and_then(Value::as_str).unwrap_or_default()
}

impl Engine {
    /// Starts the engine's tasks on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, config: EngineConfig) -> Engine {
        Engine::start_with_observers(store, config, Vec::new())
    }

    /// Starts the engine with extra observers (a trace recorder, a test probe).
    pub fn start_with_observers(
        store: Arc<dyn Store>,
        config: EngineConfig,
        extra: Vec<Arc<dyn RunObserver>>,
    ) -> Engine {
        let (capacity, workers) = (config.queue_capacity, config.workers);
        Engine::start_with_queue(store, config, extra, move |handler| {
            Box::new(InProcessQueue::start(capacity, workers, handler))
        })
    }

    /// Starts the engine on a run queue of the caller's: `make_queue` gets the handler its
    /// workers must call for each job (a queue shared by several nodes, say).
    pub fn start_with_queue(
        store: Arc<dyn Store>,
        config: EngineConfig,
        extra: Vec<Arc<dyn RunObserver>>,
        make_queue: impl FnOnce(JobHandler) -> Box<dyn RunQueue>,
    ) -> Engine {
        let accounting = Accounting::start(store.clone(), config.log_ring);
        let debug = Arc::new(DebugHub::default());
        let mut observers: Vec<Arc<dyn RunObserver>> = vec![accounting.clone(), debug.clone()];
        observers.extend(extra);
        let services = Arc::new(Services::new(
            StorageService::start(store.clone(), config.storage_caps, config.storage_mode),
            crate::js::JsSandbox::new(config.js_workers, config.js_limits),
            observers,
            config.limits,
        ));
        let inner = Arc::new(Inner {
            store,
            services,
            cache: Mutex::default(),
            heads: Mutex::default(),
            epoch: std::sync::atomic::AtomicU64::new(0),
            queue: OnceLock::new(),
            accounting,
            debug,
            rate_limiter: config
                .trigger_rate_limit
                .map(crate::rate_limit::RateLimiter::new),
            settling: Arc::default(),
        });
        let _ = inner
            .services
            .runs
            .set(Arc::new(Starter(Arc::downgrade(&inner))));
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let handler: JobHandler = Arc::new(move |job, settle| {
            let weak = weak.clone();
            Box::pin(async move {
                if let Some(inner) = weak.upgrade() {
                    Engine { inner }.run_job(job, settle).await;
                }
            })
        });
        let queue = make_queue(handler);
        if queue.is_shared() {
            inner.accounting.count_run_ids_once();
        }
        let _ = inner.queue.set(queue);
        crate::arming::connect(&inner);
        let store = inner.store.clone();
        let retention = config.retention;
        tokio::spawn(async move {
            // Keeps the data dir bounded: history older than the retention window goes.
            loop {
                let before = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
                match store.delete_accounting_before(before).await {
                    Ok(removed) if removed > 0 => {
                        tracing::info!(removed, "deleted old run history")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "deleting old run history failed"),
                }
                tokio::time::sleep(retention_sweep(retention)).await;
            }
        });
        Engine { inner }
    }

    /// The run queue's kind (`local`, `nats`).
    pub fn queue_kind(&self) -> &'static str {
        self.inner.queue.get().map_or("local", |q| q.kind())
    }

    /// Whether the run queue can take jobs now; what is wrong when not.
    pub fn queue_ready(&self) -> Result<(), String> {
        match self.inner.queue.get() {
            Some(queue) => queue.ready(),
            None => Err("the run queue is not running".into()),
        }
    }

    /// Webhook requests waiting for a reply.
    pub fn replies(&self) -> &Arc<crate::replies::Replies> {
        &self.inner.services.replies
    }

    /// The live integrations; the API reports changes to them here.
    pub fn integrations(&self) -> &crate::integrations::Integrations {
        &self.inner.services.integrations
    }

    /// The webhooks by token; the API reports changes to them here.
    pub fn webhooks(&self) -> &crate::triggers::webhook::Webhooks {
        &self.inner.services.webhooks
    }

    /// Connects every stored integration (and, when called again, stops those gone from the
    /// store); called at start, before requests are served.
    pub async fn connect_integrations(&self) -> Result<(), flowd_store::StoreError> {
        let docs = self
            .inner
            .store
            .all_resources(flowd_store::ResourceKind::Integration)
            .await?;
        let stored: std::collections::HashSet<&str> =
            docs.iter().map(|doc| text(doc, "id")).collect();
        for id in self.integrations().ids() {
            if !stored.contains(id.as_str()) {
                self.integrations().remove(&id);
            }
        }
        for doc in &docs {
            self.integrations().apply(doc);
        }
        Ok(())
    }

    /// Reads again from the store everything this node keeps in memory of flows, webhooks and
    /// integrations — after it may have missed changes the other nodes announced (its
    /// connection to them was lost). Compiled flows are dropped, triggers re-armed, webhooks and
    /// integrations reloaded (unchanged connections stay up).
    pub async fn resync(&self) -> Result<(), flowd_store::StoreError> {
        self.bump_epoch();
        self.lock_cache().clear();
        self.lock_heads().clear();
        self.inner.services.triggers.disarm_all();
        self.arm_all().await?;
        crate::triggers::webhook::load(&*self.inner.store, self.webhooks()).await?;
        self.connect_integrations().await
    }

    pub fn storage(&self) -> &StorageService {
        &self.inner.services.storage
    }

    pub fn accounting(&self) -> &Arc<Accounting> {
        &self.inner.accounting
    }

    pub fn debug(&self) -> &Arc<DebugHub> {
        &self.inner.debug
    }

    /// Checks that a graph compiles (the API calls this before saving a flow or version).
    pub fn check(
        &self,
        graph: &Value,
        application_globals: Option<&Value>,
    ) -> Result<(), CompileError> {
        let identity = FlowIdentity {
            application_id: String::new(),
            application_name: String::new(),
            flow_id: String::new(),
            flow_name: String::new(),
            version_name: "develop".into(),
            version_id: None,
            enabled: true,
        };
        compile(
            identity,
            graph,
            application_globals,
            &self.inner.services.limits,
        )
        .map(|_| ())
    }

    /// Forgets compiled versions of a flow (after a PATCH, a version change or a delete).
    pub fn invalidate_flow(&self, flow_id: &str) {
        self.bump_epoch();
        self.lock_cache().remove(flow_id);
        self.lock_heads().remove(flow_id);
    }

    fn bump_epoch(&self) {
        self.inner
            .epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets compiled flows of an application (after its globals or name change).
    pub fn invalidate_application(&self, application_id: &str) {
        self.bump_epoch();
        self.lock_cache().retain(|_, versions| {
            !versions
                .iter()
                .any(|(_, flow)| flow.identity.application_id == application_id)
        });
        self.lock_heads()
            .retain(|_, head| head.application_id != application_id);
    }

    /// A flow was deleted: drop its compiled versions, armed triggers, storage memory and debug
    /// output.
    pub fn flow_deleted(&self, flow_id: &str) {
        self.bump_epoch();
        self.invalidate_flow(flow_id);
        self.inner.services.triggers.disarm(flow_id);
        self.inner.services.storage.forget(flow_id);
        self.inner.debug.forget(flow_id);
    }

    fn lock_heads(&self) -> std::sync::MutexGuard<'_, IdMap<Arc<FlowHead>>> {
        self.inner.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The flow's head from the cache, or read from the store. `None` when the flow does not
    /// exist in that application.
    async fn head(
        &self,
        application_id: &str,
        flow_id: &str,
    ) -> Result<Option<Arc<FlowHead>>, PressError> {
        if let Some(head) = self.lock_heads().get(flow_id) {
            return Ok((head.application_id == application_id).then(|| Arc::clone(head)));
        }
        let epoch = self.epoch();
        let Some(flow) = self
            .inner
            .store
            .get_flow(application_id, flow_id)
            .await
            .map_err(|e| PressError::Internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let head = Arc::new(FlowHead {
            application_id: application_id.to_owned(),
            enabled: flow.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            default_version: flow
                .get("defaultVersionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        let mut heads = self.lock_heads();
        if self.epoch() == epoch {
            if heads.len() >= MAX_CACHED_FLOWS {
                heads.clear();
            }
            heads.insert(flow_id.to_owned(), head.clone());
        }
        Ok(Some(head))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, IdMap<CompiledVersions>> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The compiled form of a flow version, from the cache or compiled now. `Ok(None)` when
    /// the flow or version no longer exists.
    pub async fn compiled(
        &self,
        application_id: &str,
        flow_id: &str,
        version: &VersionRef,
    ) -> Result<Option<Arc<CompiledFlow>>, LoadError> {
        let cached = self.lock_cache().get(flow_id).and_then(|versions| {
            versions
                .iter()
                .find(|(cached, _)| cached == version)
                .map(|(_, flow)| Arc::clone(flow))
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let epoch = self.epoch();
        let store = &self.inner.store;
        let Some(application) = store
            .get_application(application_id)
            .await
            .map_err(|e| LoadError::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        let Some(flow) = store
            .get_flow(application_id, flow_id)
            .await
            .map_err(|e| LoadError::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        let (graph, version_name, version_id, version_enabled) = match version {
            VersionRef::Develop => (flow.clone(), "develop".to_owned(), None, true),
            VersionRef::Id(id) => {
                let Some(doc) = store
                    .get_version(flow_id, id)
                    .await
                    .map_err(|e| LoadError::Store(e.to_string()))?
                else {
                    return Ok(None);
                };
                let name = text(&doc, "version").to_owned();
                let enabled = doc.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                (doc, name, Some(id.clone()), enabled)
            }
        };
        let identity = FlowIdentity {
            application_id: application_id.to_owned(),
            application_name: text(&application, "name").to_owned(),
            flow_id: flow_id.to_owned(),
            flow_name: text(&flow, "name").to_owned(),
            version_name,
            version_id,
            enabled: flow.get("enabled").and_then(Value::as_bool).unwrap_or(true)
                && version_enabled,
        };
        let compiled = Arc::new(
            compile(
                identity,
                &graph,
                application.get("globals"),
                &self.inner.services.limits,
            )
            .map_err(LoadError::Compile)?,
        );
        let mut cache = self.lock_cache();
        // Invalidations bump the epoch before clearing under this lock, so an unchanged epoch
        // here means the documents read above are still current.
        if self.epoch() == epoch {
            if cache.len() >= MAX_CACHED_FLOWS && !cache.contains_key(flow_id) {
                if let Some(evict) = cache.keys().next().cloned() {
                    cache.remove(&evict);
                }
            }
            let versions = cache.entry(flow_id.to_owned()).or_default();
            versions.retain(|(cached, _)| cached != version);
            versions.push((version.clone(), compiled.clone()));
        }
        Ok(Some(compiled))
    }

    /// Presses a virtual button of a flow: checks what decision 4 asks, queues the run and
    /// returns its id. Answers once queued, not when the run ends. With the flow's compiled
    /// version cached, nothing is read from the store.
    pub async fn press_virtual_button(
        &self,
        application_id: &str,
        flow_id: &str,
        press: Press,
    ) -> Result<String, PressError> {
        let head = self
            .head(application_id, flow_id)
            .await?
            .ok_or(PressError::NotFound)?;
        if !head.enabled {
            return Err(PressError::Invalid("The workflow is disabled".into()));
        }
        let version = match press.flow_version.as_deref() {
            Some("develop") => VersionRef::Develop,
            Some(name_or_id) => {
                let found = self
                    .inner
                    .store
                    .get_version(flow_id, name_or_id)
                    .await
                    .map_err(|e| PressError::Internal(e.to_string()))?;
                match found {
                    Some(doc) => VersionRef::Id(text(&doc, "id").to_owned()),
                    None => {
                        return Err(PressError::Invalid(format!(
                            "flowVersion: the workflow has no version \"{name_or_id}\""
                        )))
                    }
                }
            }
            None => match &head.default_version {
                Some(id) => VersionRef::Id(id.clone()),
                None => VersionRef::Develop,
            },
        };
        let compiled = self
            .compiled(application_id, flow_id, &version)
            .await
            .map_err(|e| match e {
                LoadError::Compile(e) => {
                    PressError::Invalid(format!("the workflow version cannot run as saved: {e}"))
                }
                LoadError::Store(e) => PressError::Internal(e),
            })?
            .ok_or_else(|| PressError::Invalid("The workflow version no longer exists".into()))?;
        if !compiled.identity.enabled {
            return Err(PressError::Invalid(format!(
                "Version \"{}\" of the workflow is disabled",
                compiled.identity.version_name
            )));
        }
        let Some(trigger) = compiled.trigger("virtualButton", &press.key) else {
            return Err(PressError::Invalid(format!(
                "key: version \"{}\" of the workflow has no virtual button \"{}\"",
                compiled.identity.version_name, press.key
            )));
        };
        let trigger_index = trigger;
        let trigger = &compiled.triggers[trigger];
        self.allow_firing(format_args!(
            "button {} of workflow {flow_id}",
            trigger.key.as_deref().unwrap_or(&press.key)
        ))?;
        let data = match press.payload {
            Some(data) => data,
            None => default_button_payload(&trigger.meta),
        };
        let run_id = flowd_model::id::new_id();
        let job = RunJob {
            run_id: run_id.clone(),
            application_id: application_id.to_owned(),
            flow_id: flow_id.to_owned(),
            version,
            trigger_type: trigger.type_name.clone(),
            trigger_key: trigger.key.clone().unwrap_or_else(|| press.key.clone()),
            trigger_index: Some(trigger_index),
            data,
            relay_id: press.relay_id,
            relay_type: press.relay_type,
            device_id: press.device_id,
            time_ms: chrono::Utc::now().timestamp_millis(),
            depth: press.depth,
            idempotency_key: None,
        };
        let queue = self
            .inner
            .queue
            .get()
            .ok_or_else(|| PressError::Internal("the run queue is not running".into()))?;
        queue.submit(job).await?;
        Ok(run_id)
    }

    /// Counts a firing of a rate-limited trigger (a virtual button, a webhook) named `what`;
    /// refused past the configured limit. The name is written out only when a limit is set.
    pub fn allow_firing(&self, what: std::fmt::Arguments<'_>) -> Result<(), PressError> {
        let Some(limiter) = &self.inner.rate_limiter else {
            return Ok(());
        };
        let what = what.to_string();
        if limiter.allow(&what) {
            return Ok(());
        }
        Err(PressError::RateLimited(format!(
            "The {what} fired more than {} times; try again later",
            limiter.limit()
        )))
    }

    /// A worker's handling of one job.
    async fn run_job(&self, job: RunJob, settle: Option<crate::queue::Settle>) {
        // A job that cannot run is settled all the same: delivering it again would not help.
        async fn discard(settle: Option<crate::queue::Settle>) {
            if let Some(settle) = settle {
                settle().await;
            }
        }
        let compiled = match self
            .compiled(&job.application_id, &job.flow_id, &job.version)
            .await
        {
            Ok(Some(compiled)) => compiled,
            Ok(None) => {
                tracing::info!(flow = %job.flow_id, run = %job.run_id, "the flow was deleted before its run started");
                return discard(settle).await;
            }
            // The store may come back: left unsettled, a shared queue delivers the job again.
            Err(e @ LoadError::Store(_)) => {
                tracing::error!(flow = %job.flow_id, run = %job.run_id, error = %e, "cannot load the flow for a queued run");
                return;
            }
            Err(e) => {
                tracing::error!(flow = %job.flow_id, run = %job.run_id, error = %e, "cannot compile the flow for a queued run");
                return discard(settle).await;
            }
        };
        let hinted = job.trigger_index.filter(|&i| {
            compiled.triggers.get(i).is_some_and(|t| {
                t.type_name == job.trigger_type
                    && t.key.as_deref().unwrap_or_default() == job.trigger_key
            })
        });
        let Some(trigger) =
            hinted.or_else(|| compiled.trigger(&job.trigger_type, &job.trigger_key))
        else {
            tracing::info!(flow = %job.flow_id, run = %job.run_id, "the trigger was removed before its run started");
            return discard(settle).await;
        };
        let start = RunStart {
            run_id: job.run_id,
            trigger,
            data: job.data,
            relay_id: job.relay_id,
            relay_type: job.relay_type,
            device_id: job.device_id,
            time_ms: job.time_ms,
        };
        let failing_flow = compiled.clone();
        let result =
            crate::run::execute_at_depth(compiled, start, self.inner.services.clone(), job.depth)
                .await;
        if let Some(settle) = settle {
            // Acknowledged once the run's accounting is committed, not before: a node that
            // dies in between leaves the job to be run again elsewhere (the store counts a run
            // id once), rather than a run done but never counted. The worker is free meanwhile.
            let accounting = self.inner.accounting.clone();
            let settling = self.inner.settling.begin();
            tokio::spawn(async move {
                let _settling = settling;
                match accounting.committed().await {
                    Ok(()) => settle().await,
                    Err(e) => {
                        tracing::error!(error = %e, "run accounting not written; the job is left to run again")
                    }
                }
            });
        }
        // Errors of a run a Workflow Error trigger started never fire another (no cascades).
        if let (Some(failure), false) = (&result.failure, job.trigger_type == "flowError") {
            self.flow_failed(&failing_flow, failure, job.depth);
        }
    }

    /// Runs a flow now, bypassing the queue, and returns how the run ended (the local runner
    /// and tests use it).
    pub async fn run_now(
        &self,
        flow: Arc<CompiledFlow>,
        start: RunStart,
    ) -> crate::observer::RunResult {
        execute(flow, start, self.inner.services.clone()).await
    }

    /// Stops taking runs, lets queued and running ones finish, and writes storage and
    /// accounting.
    pub async fn shutdown(&self) {
        if let Some(queue) = self.inner.queue.get() {
            queue.drain().await;
        }
        self.integrations().stop_all();
        self.inner.services.triggers.disarm_all();
        if let Err(e) = self.inner.services.storage.flush().await {
            tracing::error!(error = %e, "flushing workflow storage at shutdown failed");
        }
        if let Err(e) = self.inner.accounting.flush().await {
            tracing::error!(error = %e, "flushing run accounting at shutdown failed");
        }
        // With the accounting written, finished jobs of a shared queue get acknowledged.
        let settled = tokio::time::timeout(SETTLE_AT_SHUTDOWN, self.inner.settling.idle()).await;
        if settled.is_err() {
            tracing::warn!("some finished jobs were not acknowledged before shutdown; other nodes will run them again");
        }
    }
}

/// The engine as the Workflow Trigger node's way to start runs (weak: runs must not keep the
/// engine alive).
struct Starter(Weak<Inner>);

impl crate::services::RunStarter for Starter {
    fn press(
        &self,
        application_id: String,
        flow_id: String,
        press: Press,
    ) -> futures::future::BoxFuture<'static, Result<String, PressError>> {
        let inner = self.0.upgrade();
        Box::pin(async move {
            let inner =
                inner.ok_or_else(|| PressError::Internal("the engine has stopped".into()))?;
            Engine { inner }
                .press_virtual_button(&application_id, &flow_id, press)
                .await
        })
    }
}

/// A virtual button's default payload: its `meta.payload` JSON object text; blank or absent is
/// `{}`.
pub fn default_button_payload(meta: &Value) -> Value {
    meta.get("payload")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| json!({}))
}
