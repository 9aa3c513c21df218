//! Workflow storage as runs and the API see it, in one of two modes chosen when the engine
//! starts ([`StorageMode`]).
//!
//! **Cached** (the default, for one engine per store): one in-memory map per flow in front of
//! the store, with writes group-committed.
//!
//! * A flow's entries are loaded from the store on first use and then served from memory, so a
//!   Get Value or Store Value node never waits on the database, and `incr`/`decr` are atomic
//!   (one mutex per flow, held for the read-modify-write only).
//! * Every write (from a node or from the REST API) updates memory and records the key's new
//!   state in a pending set. A writer task commits the pending set in one transaction at most
//!   every [`GROUP_COMMIT_WINDOW`]. Only the last state of a key is committed, so the pending set
//!   is bounded by the number of distinct keys, and an `incr` history is never reordered.
//! * [`StorageService::flush`] waits until everything written before it is committed: the REST
//!   API uses it to answer only after its write is durable.
//! * Caps (keys and bytes per flow) are checked in memory before a write is accepted.
//!
//! **Shared** (for several engines on one store): no map is kept between operations. Every
//! operation is one store call, and every read-modify-write (`incr`, node state, the caps check)
//! is one [`StorageStore::storage_modify`](flowd_store::StorageStore::storage_modify), atomic in
//! the store across processes. A node then waits on the store ([`StorageAnswer::Later`]).
//!
//! Both modes answer through [`StorageHandle`], with the same checks and the same errors.

use flowd_model::id::IdMap;
use flowd_model::storage::{check_key, encode_value, entry_size, StorageRuleError};
use flowd_store::{
    StorageCaps, StorageChange, StorageMetadata, StorageSpace, StorageUpdate, StorageWrite, Store,
    StoreError,
};
use futures::future::{BoxFuture, Either};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::{ready, IntoFuture, Ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// How long writes wait to be committed together.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(5);

/// Where workflow storage lives between operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StorageMode {
    /// In memory, in front of the store, writes group-committed: no operation waits on the
    /// store. Correct only while this engine is the only one using the store.
    #[default]
    Cached,
    /// In the store only: each operation is one store call, atomic across every engine sharing
    /// the store. For several engines on one store (a shared run queue).
    Shared,
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Rule(#[from] StorageRuleError),
    #[error("{0}")]
    Limit(String),
    #[error("the value of \"{key}\" is not a number, so it cannot be incremented or decremented")]
    NotANumber { key: String },
    #[error("the result is not a finite number")]
    NotFinite,
    #[error("storage is unavailable: {0}")]
    Store(String),
    /// [`StorageService::flow`] in Shared mode, which keeps no flow in memory.
    #[error("workflow storage is shared with other engines, so none of it is kept in memory")]
    NotCached,
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            // The store checks the caps in Shared mode: the same refusal as in memory.
            StoreError::LimitExceeded(message) => StorageError::Limit(message),
            other => StorageError::Store(other.to_string()),
        }
    }
}

/// What a storage operation answers: at once, from memory (Cached mode), or once the store has
/// answered (Shared mode). Await it, or let a node continue with it
/// (`nodes::continue_after_storage`).
pub enum StorageAnswer<T> {
    Now(Result<T, StorageError>),
    Later(BoxFuture<'static, Result<T, StorageError>>),
}

impl<T: Send + 'static> StorageAnswer<T> {
    /// The answer passed through `f` (without a future when it is already here).
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> StorageAnswer<U> {
        match self {
            StorageAnswer::Now(result) => StorageAnswer::Now(result.map(f)),
            StorageAnswer::Later(future) => {
                StorageAnswer::Later(Box::pin(async move { future.await.map(f) }))
            }
        }
    }
}

impl<T: Send + 'static> IntoFuture for StorageAnswer<T> {
    type Output = Result<T, StorageError>;
    type IntoFuture =
        Either<Ready<Result<T, StorageError>>, BoxFuture<'static, Result<T, StorageError>>>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            StorageAnswer::Now(result) => Either::Left(ready(result)),
            StorageAnswer::Later(future) => Either::Right(future),
        }
    }
}

#[derive(Default)]
struct Entries {
    /// Each value with its size as the caps count it (key and JSON text), so that replacing
    /// or removing it need not write the old value out again to measure it.
    map: HashMap<String, (Value, u64)>,
    bytes: u64,
}

/// One flow's entries in memory (Cached mode).
pub struct FlowStorage {
    flow_id: String,
    entries: Mutex<Entries>,
    /// Latch, Throttle and On Change memory: kept and committed like storage, but not part of
    /// it (not listed, not counted in the caps, not cleared with it).
    node_state: Mutex<HashMap<String, Value>>,
    service: Arc<ServiceState>,
    /// Set when the flow is deleted: late writes from its runs still holding this storage are
    /// dropped. Read and written with the pending lock held, so none slips in after `forget`.
    forgotten: AtomicBool,
}

/// What the writer has not committed yet. `cleared` flows have their whole table emptied
/// before their keys in `keys` are written.
#[derive(Default)]
struct Pending {
    cleared: Vec<String>,
    /// The last state of each written key, by flow: a write finds its flow by the borrowed id
    /// and allocates a key only the first time it is written in a group.
    flows: IdMap<FlowPending>,
    /// Incremented for every change; the writer reports the highest it committed.
    generation: u64,
}

/// One flow's uncommitted keys, `None` for a removed one.
#[derive(Default)]
struct FlowPending {
    storage: HashMap<String, Option<String>>,
    node_state: HashMap<String, Option<String>>,
}

impl FlowPending {
    fn put(&mut self, space: StorageSpace, key: &str, value_json: Option<String>) {
        let keys = match space {
            StorageSpace::Storage => &mut self.storage,
            StorageSpace::NodeState => &mut self.node_state,
        };
        match keys.get_mut(key) {
            Some(slot) => *slot = value_json,
            None => {
                keys.insert(key.to_owned(), value_json);
            }
        }
    }
}

struct ServiceState {
    store: Arc<dyn Store>,
    caps: StorageCaps,
    mode: StorageMode,
    pending: Mutex<Pending>,
    wake: Notify,
    committed: watch::Sender<u64>,
    flows: Mutex<IdMap<Arc<FlowStorage>>>,
}

/// The storage of every flow.
#[derive(Clone)]
pub struct StorageService {
    state: Arc<ServiceState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than stopping all storage would; keep going with the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StorageService {
    /// Starts the service; in Cached mode, with its writer task (on the current tokio runtime).
    pub fn start(store: Arc<dyn Store>, caps: StorageCaps, mode: StorageMode) -> StorageService {
        let (committed, _) = watch::channel(0);
        let state = Arc::new(ServiceState {
            store,
            caps,
            mode,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            committed,
            flows: Mutex::default(),
        });
        if mode == StorageMode::Cached {
            tokio::spawn(writer(state.clone()));
        }
        StorageService { state }
    }

    pub fn mode(&self) -> StorageMode {
        self.state.mode
    }

    /// A flow's storage as runs and the API reach it, in either mode. In Shared mode this reads
    /// nothing: each operation goes to the store.
    pub async fn handle(&self, flow_id: &str) -> Result<StorageHandle, StorageError> {
        match self.state.mode {
            StorageMode::Cached => Ok(StorageHandle::Cached(self.flow(flow_id).await?)),
            StorageMode::Shared => Ok(StorageHandle::Shared(SharedFlowStorage {
                flow_id: flow_id.into(),
                service: self.state.clone(),
            })),
        }
    }

    /// A flow's storage in memory (Cached mode only), loaded on first use.
    pub async fn flow(&self, flow_id: &str) -> Result<Arc<FlowStorage>, StorageError> {
        if self.state.mode == StorageMode::Shared {
            return Err(StorageError::NotCached);
        }
        if let Some(found) = lock(&self.state.flows).get(flow_id) {
            return Ok(found.clone());
        }
        let loaded = self.state.store.storage_entries(flow_id).await?;
        let node_state: HashMap<String, Value> = self
            .state
            .store
            .node_states(flow_id)
            .await?
            .into_iter()
            .collect();
        let mut entries = Entries::default();
        for (key, value) in loaded {
            let size = entry_size(&key, &value.to_string());
            entries.bytes += size;
            entries.map.insert(key, (value, size));
        }
        let mut flows = lock(&self.state.flows);
        // Another task may have loaded it meanwhile; the first one wins (it may hold writes).
        let storage = flows
            .entry(flow_id.to_owned())
            .or_insert_with(|| {
                Arc::new(FlowStorage {
                    flow_id: flow_id.to_owned(),
                    entries: Mutex::new(entries),
                    node_state: Mutex::new(node_state),
                    service: self.state.clone(),
                    forgotten: AtomicBool::new(false),
                })
            })
            .clone();
        Ok(storage)
    }

    /// Forgets a deleted flow: its memory and its uncommitted writes.
    pub fn forget(&self, flow_id: &str) {
        let gone = lock(&self.state.flows).remove(flow_id);
        let mut pending = lock(&self.state.pending);
        if let Some(gone) = gone {
            gone.forgotten.store(true, Ordering::Relaxed);
        }
        pending.flows.remove(flow_id);
        pending.cleared.retain(|flow| flow != flow_id);
    }

    /// Waits until every write accepted before this call is committed (in Shared mode every
    /// write is committed before it answers).
    pub async fn flush(&self) -> Result<(), StorageError> {
        if self.state.mode == StorageMode::Shared {
            return Ok(());
        }
        let target = lock(&self.state.pending).generation;
        let mut committed = self.state.committed.subscribe();
        self.state.wake.notify_one();
        loop {
            if *committed.borrow_and_update() >= target {
                return Ok(());
            }
            if committed.changed().await.is_err() {
                return Err(StorageError::Store("the storage writer stopped".into()));
            }
        }
    }
}

impl FlowStorage {
    fn record(&self, key: &str, value_json: Option<String>) {
        self.record_in(StorageSpace::Storage, key, value_json);
    }

    fn record_in(&self, space: StorageSpace, key: &str, value_json: Option<String>) {
        let mut pending = lock(&self.service.pending);
        if self.forgotten.load(Ordering::Relaxed) {
            return;
        }
        if let Some(flow) = pending.flows.get_mut(&self.flow_id) {
            flow.put(space, key, value_json);
        } else {
            let mut flow = FlowPending::default();
            flow.put(space, key, value_json);
            pending.flows.insert(self.flow_id.clone(), flow);
        }
        pending.generation += 1;
        drop(pending);
        self.service.wake.notify_one();
    }

    /// All entries.
    pub fn entries(&self) -> Map<String, Value> {
        let entries = lock(&self.entries);
        let mut keys: Vec<&String> = entries.map.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| (k.clone(), entries.map[k].0.clone()))
            .collect()
    }

    /// `(memoryUsed, keysCount)`.
    pub fn metadata(&self) -> (u64, u64) {
        let entries = lock(&self.entries);
        (entries.bytes, entries.map.len() as u64)
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        lock(&self.entries)
            .map
            .get(key)
            .map(|(value, _)| value.clone())
    }

    /// Sets a key; returns the previous value.
    pub fn set(&self, key: &str, value: Value) -> Result<Option<Value>, StorageError> {
        check_key(key)?;
        let json = encode_value(key, &value)?;
        let mut entries = lock(&self.entries);
        let previous = self.put(&mut entries, key, value, &json)?;
        self.record(key, Some(json));
        Ok(previous)
    }

    fn put(
        &self,
        entries: &mut Entries,
        key: &str,
        value: Value,
        json: &str,
    ) -> Result<Option<Value>, StorageError> {
        let old_size = entries.map.get(key).map(|(_, size)| *size);
        let current = StorageMetadata {
            memory_used: entries.bytes,
            keys_count: entries.map.len() as u64,
        };
        self.service.caps.check(current, old_size, key, json)?;
        let size = entry_size(key, json);
        entries.bytes = entries.bytes - old_size.unwrap_or(0) + size;
        Ok(entries
            .map
            .insert(key.to_owned(), (value, size))
            .map(|(old, _)| old))
    }

    /// Adds `amount` to a numeric entry (absent counts as 0), atomically; returns the new value.
    pub fn increment(&self, key: &str, amount: f64) -> Result<f64, StorageError> {
        check_key(key)?;
        let mut entries = lock(&self.entries);
        let current = entries.map.get(key).map(|(value, _)| value);
        let (value, next) = incremented(key, current, amount)?;
        let json = value.to_string();
        self.put(&mut entries, key, value, &json)?;
        self.record(key, Some(json));
        Ok(next)
    }

    /// Removes a key; returns its previous value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut entries = lock(&self.entries);
        let (previous, size) = entries.map.remove(key)?;
        entries.bytes -= size;
        self.record(key, None);
        Some(previous)
    }

    /// Removes every key.
    pub fn clear(&self) {
        let mut entries = lock(&self.entries);
        entries.map.clear();
        entries.bytes = 0;
        let mut pending = lock(&self.service.pending);
        if let Some(flow) = pending.flows.get_mut(&self.flow_id) {
            flow.storage.clear();
        }
        pending.cleared.push(self.flow_id.clone());
        pending.generation += 1;
        drop(pending);
        self.service.wake.notify_one();
    }
}

impl FlowStorage {
    /// A node's remembered state under `id` (a latch, a throttle bucket, a previous value).
    pub fn node_state(&self, node_id: &str, id: &str) -> Option<Value> {
        lock(&self.node_state)
            .get(&node_state_key(node_id, id))
            .cloned()
    }

    /// Updates a node's state with `f`, atomically (runs of one flow share it); what `f`
    /// returns is stored and committed like storage, and also returned.
    pub fn update_node_state<T>(
        &self,
        node_id: &str,
        id: &str,
        f: impl FnOnce(Option<&Value>) -> (Value, T),
    ) -> T {
        let key = node_state_key(node_id, id);
        let mut states = lock(&self.node_state);
        let (next, out) = f(states.get(&key));
        let json = next.to_string();
        states.insert(key.clone(), next);
        // Recorded under the lock, so two updates reach the writer in the order they happened.
        self.record_in(StorageSpace::NodeState, &key, Some(json));
        out
    }
}

/// Node ids and state ids are free text; a NUL cannot occur in either.
fn node_state_key(node_id: &str, id: &str) -> String {
    format!("{node_id}\u{0}{id}")
}

/// `current` plus `amount` (absent counts as 0): the value to store, and it as a number.
fn incremented(
    key: &str,
    current: Option<&Value>,
    amount: f64,
) -> Result<(Value, f64), StorageError> {
    let current = match current {
        None => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(_) => {
            return Err(StorageError::NotANumber {
                key: key.to_owned(),
            })
        }
    };
    let next = current + amount;
    let value = crate::value::number_to_json(next).ok_or(StorageError::NotFinite)?;
    Ok((value, next))
}

/// A flow's storage as runs and the API reach it: the same operations, with the same checks
/// and errors, in either mode. Cheap to clone.
#[derive(Clone)]
pub enum StorageHandle {
    /// Cached mode: the flow's entries in memory; every answer is [`StorageAnswer::Now`].
    Cached(Arc<FlowStorage>),
    /// Shared mode: the flow's entries in the store; every answer is [`StorageAnswer::Later`]
    /// (but for a write refused before it reaches the store).
    Shared(SharedFlowStorage),
}

impl StorageHandle {
    /// All entries, by key.
    pub fn entries(&self) -> StorageAnswer<Map<String, Value>> {
        match self {
            StorageHandle::Cached(memory) => StorageAnswer::Now(Ok(memory.entries())),
            StorageHandle::Shared(shared) => {
                shared.call(|store, flow_id| async move { store.storage_entries(&flow_id).await })
            }
        }
    }

    pub fn metadata(&self) -> StorageAnswer<StorageMetadata> {
        match self {
            StorageHandle::Cached(memory) => {
                let (memory_used, keys_count) = memory.metadata();
                StorageAnswer::Now(Ok(StorageMetadata {
                    memory_used,
                    keys_count,
                }))
            }
            StorageHandle::Shared(shared) => {
                shared.call(|store, flow_id| async move { store.storage_metadata(&flow_id).await })
            }
        }
    }

    pub fn get(&self, key: &str) -> StorageAnswer<Option<Value>> {
        match self {
            StorageHandle::Cached(memory) => StorageAnswer::Now(Ok(memory.get(key))),
            StorageHandle::Shared(shared) => {
                let key = key.to_owned();
                shared.call(|store, flow_id| async move { store.storage_get(&flow_id, &key).await })
            }
        }
    }

    /// Sets a key, within the caps.
    pub fn set(&self, key: &str, value: Value) -> StorageAnswer<()> {
        match self {
            StorageHandle::Cached(memory) => StorageAnswer::Now(memory.set(key, value).map(drop)),
            StorageHandle::Shared(shared) => {
                if let Err(e) = check_key(key).and_then(|()| encode_value(key, &value).map(drop)) {
                    return StorageAnswer::Now(Err(e.into()));
                }
                shared.modify(StorageSpace::Storage, key.to_owned(), move |_| {
                    (StorageChange::Set(value), Ok(()))
                })
            }
        }
    }

    /// Adds `amount` to a numeric entry (absent counts as 0), atomically; answers the new value.
    pub fn increment(&self, key: &str, amount: f64) -> StorageAnswer<f64> {
        match self {
            StorageHandle::Cached(memory) => StorageAnswer::Now(memory.increment(key, amount)),
            StorageHandle::Shared(shared) => {
                if let Err(e) = check_key(key) {
                    return StorageAnswer::Now(Err(e.into()));
                }
                let key = key.to_owned();
                shared.modify(
                    StorageSpace::Storage,
                    key.clone(),
                    move |current| match incremented(&key, current.as_ref(), amount) {
                        Ok((value, next)) => (StorageChange::Set(value), Ok(next)),
                        Err(e) => (StorageChange::Keep, Err(e)),
                    },
                )
            }
        }
    }

    /// Removes a key; answers its previous value.
    pub fn remove(&self, key: &str) -> StorageAnswer<Option<Value>> {
        match self {
            StorageHandle::Cached(memory) => StorageAnswer::Now(Ok(memory.remove(key))),
            StorageHandle::Shared(shared) => {
                shared.modify(StorageSpace::Storage, key.to_owned(), |current| {
                    (StorageChange::Delete, Ok(current))
                })
            }
        }
    }

    /// Removes every key (node state is kept).
    pub fn clear(&self) -> StorageAnswer<()> {
        match self {
            StorageHandle::Cached(memory) => {
                memory.clear();
                StorageAnswer::Now(Ok(()))
            }
            StorageHandle::Shared(shared) => {
                shared.call(|store, flow_id| async move { store.storage_clear(&flow_id).await })
            }
        }
    }

    /// Updates a node's state under `id` (a latch, a throttle bucket, a previous value) with
    /// `f`, atomically: runs of the flow — on any engine, in Shared mode — take turns. What `f`
    /// returns is stored, and its second part answered.
    pub fn update_node_state<T: Send + 'static>(
        &self,
        node_id: &str,
        id: &str,
        f: impl FnOnce(Option<&Value>) -> (Value, T) + Send + 'static,
    ) -> StorageAnswer<T> {
        match self {
            StorageHandle::Cached(memory) => {
                StorageAnswer::Now(Ok(memory.update_node_state(node_id, id, f)))
            }
            StorageHandle::Shared(shared) => shared.modify(
                StorageSpace::NodeState,
                node_state_key(node_id, id),
                move |current| {
                    let (next, out) = f(current.as_ref());
                    (StorageChange::Set(next), Ok(out))
                },
            ),
        }
    }
}

/// One flow's storage in Shared mode: where to find it, nothing of it.
#[derive(Clone)]
pub struct SharedFlowStorage {
    flow_id: Arc<str>,
    service: Arc<ServiceState>,
}

impl SharedFlowStorage {
    /// One store call.
    fn call<T, F>(
        &self,
        f: impl FnOnce(Arc<dyn Store>, Arc<str>) -> F + Send + 'static,
    ) -> StorageAnswer<T>
    where
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let future = f(self.service.store.clone(), self.flow_id.clone());
        StorageAnswer::Later(Box::pin(async move { Ok(future.await?) }))
    }

    /// One atomic read-modify-write of `key` in the store: `decide` gets the current value and
    /// says what to store and what to answer (an error keeps the entry as it is).
    fn modify<T: Send + 'static>(
        &self,
        space: StorageSpace,
        key: String,
        decide: impl FnOnce(Option<Value>) -> (StorageChange, Result<T, StorageError>) + Send + 'static,
    ) -> StorageAnswer<T> {
        // The store runs the update and keeps what it stores; the answer comes back this way.
        let (answer, answered) = oneshot::channel();
        let update: StorageUpdate = Box::new(move |current| {
            let (change, outcome) = decide(current);
            // The receiver waits below until the store call has returned.
            let _ = answer.send(outcome);
            change
        });
        let (store, flow_id, caps) = (
            self.service.store.clone(),
            self.flow_id.clone(),
            self.service.caps,
        );
        StorageAnswer::Later(Box::pin(async move {
            store
                .storage_modify(&flow_id, &key, space, update, caps)
                .await?;
            answered.await.map_err(|_| {
                StorageError::Store("the store answered without running the update".into())
            })?
        }))
    }
}

/// Commits pending writes in groups until the service is dropped.
async fn writer(state: Arc<ServiceState>) {
    loop {
        state.wake.notified().await;
        // Let writes arriving in the same moment join this group.
        tokio::time::sleep(GROUP_COMMIT_WINDOW).await;
        loop {
            let (batch, generation) = {
                let mut pending = lock(&state.pending);
                if pending.cleared.is_empty() && pending.flows.is_empty() {
                    let generation = pending.generation;
                    drop(pending);
                    state.committed.send_replace(generation);
                    break;
                }
                let mut batch: Vec<StorageWrite> = std::mem::take(&mut pending.cleared)
                    .into_iter()
                    .map(|flow_id| StorageWrite::Clear { flow_id })
                    .collect();
                for (flow_id, flow) in std::mem::take(&mut pending.flows) {
                    batch.extend(flow.storage.into_iter().map(|(key, value)| match value {
                        Some(value_json) => StorageWrite::Set {
                            flow_id: flow_id.clone(),
                            key,
                            value_json,
                        },
                        None => StorageWrite::Delete {
                            flow_id: flow_id.clone(),
                            key,
                        },
                    }));
                    batch.extend(flow.node_state.into_iter().map(|(key, value)| {
                        StorageWrite::SetNodeState {
                            flow_id: flow_id.clone(),
                            key,
                            value_json: value.unwrap_or_else(|| "null".into()),
                        }
                    }));
                }
                (batch, pending.generation)
            };
            let mut delay = Duration::from_millis(50);
            loop {
                match state.store.storage_apply(&batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        // Keep the batch and retry: dropping it would lose acknowledged writes.
                        tracing::error!(error = %e, "storage commit failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            state.committed.send_replace(generation);
        }
        if Arc::strong_count(&state) == 1 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowd_store::sqlite::SqliteStore;
    use serde_json::json;

    const CAPS: StorageCaps = StorageCaps {
        max_keys: 100,
        max_bytes: 100_000,
    };

    /// A Cached storage service on a fresh SQLite store holding flows `a` and `b`.
    struct Fixture {
        store: Arc<dyn Store>,
        service: StorageService,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        /// What the store holds of a flow's storage.
        async fn entries(&self, flow: &str) -> Value {
            Value::Object(self.store.storage_entries(flow).await.unwrap())
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        // The store keeps storage only for flows it has.
        let now = flowd_model::time::now_iso();
        store
            .insert_application(&json!({"id": "app", "name": "app", "creationDate": now,
                "lastUpdated": now}))
            .await
            .unwrap();
        for flow in ["a", "b"] {
            store
                .insert_flow(&json!({"id": flow, "applicationId": "app", "name": flow,
                    "flowClass": "cloud", "creationDate": now, "lastUpdated": now,
                    "triggers": [], "nodes": []}))
                .await
                .unwrap();
        }
        let service = StorageService::start(store.clone(), CAPS, StorageMode::Cached);
        Fixture {
            store,
            service,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn a_group_commits_the_last_state_of_each_key_of_each_flow() {
        let f = fixture().await;
        let (store, service) = (&f.store, &f.service);
        let a = service.flow("a").await.unwrap();
        let b = service.flow("b").await.unwrap();
        a.set("x", json!(1)).unwrap();
        a.set("x", json!(2)).unwrap();
        a.set("gone", json!(true)).unwrap();
        a.remove("gone");
        b.set("x", json!("b")).unwrap();
        b.increment("n", 1.0).unwrap();
        b.increment("n", 2.0).unwrap();
        a.update_node_state("latch", "s", |_| (json!("on"), ()));
        service.flush().await.unwrap();

        assert_eq!(f.entries("a").await, json!({"x": 2}));
        assert_eq!(f.entries("b").await, json!({"x": "b", "n": 3}));
        let states = store.node_states("a").await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states.values().next(), Some(&json!("on")));
        assert!(store.node_states("b").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn clearing_drops_the_pending_keys_but_not_the_node_state() {
        let f = fixture().await;
        let (store, service) = (&f.store, &f.service);
        let a = service.flow("a").await.unwrap();
        a.set("old", json!(1)).unwrap();
        service.flush().await.unwrap();
        a.set("pending", json!(2)).unwrap();
        a.update_node_state("latch", "s", |_| (json!(1), ()));
        a.clear();
        a.set("after", json!(3)).unwrap();
        service.flush().await.unwrap();
        assert_eq!(f.entries("a").await, json!({"after": 3}));
        assert_eq!(store.node_states("a").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_forgotten_flow_commits_neither_its_pending_nor_its_late_writes() {
        let f = fixture().await;
        let (store, service) = (&f.store, &f.service);
        let a = service.flow("a").await.unwrap();
        let b = service.flow("b").await.unwrap();
        a.set("early", json!(1)).unwrap();
        b.set("kept", json!(1)).unwrap();
        service.forget("a");
        // A run that still holds the flow's storage writes after the delete.
        a.set("late", json!(2)).unwrap();
        a.update_node_state("latch", "s", |_| (json!(1), ()));
        service.flush().await.unwrap();
        assert!(store.storage_entries("a").await.unwrap().is_empty());
        assert!(store.node_states("a").await.unwrap().is_empty());
        assert_eq!(f.entries("b").await, json!({"kept": 1}));
        // Loaded again (an import with the same id), the flow's writes count again.
        let again = service.flow("a").await.unwrap();
        again.set("new", json!(3)).unwrap();
        service.flush().await.unwrap();
        assert_eq!(f.entries("a").await, json!({"new": 3}));
    }
}
