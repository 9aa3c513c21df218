//! Workflow storage as runs and the API see it: one in-memory map per flow in front of the store,
//! with writes group-committed.
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

use flowd_model::storage::{check_key, encode_value, entry_size, StorageRuleError};
use flowd_store::{StorageCaps, StorageWrite, Store, StoreError};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How long writes wait to be committed together.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(5);

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
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError::Store(e.to_string())
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Value>,
    bytes: u64,
}

/// Which map a pending write belongs to: the flow's storage, or its nodes' state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Space {
    Storage,
    NodeState,
}

/// One flow's entries in memory.
pub struct FlowStorage {
    flow_id: String,
    entries: Mutex<Entries>,
    /// Latch, Throttle and On Change memory: kept and committed like storage, but not part of
    /// it (not listed, not counted in the caps, not cleared with it).
    node_state: Mutex<HashMap<String, Value>>,
    service: Arc<Shared>,
}

/// What the writer has not committed yet. `cleared` flows have their whole table emptied
/// before their keys in `keys` are written.
#[derive(Default)]
struct Pending {
    cleared: Vec<String>,
    keys: HashMap<(Space, String, String), Option<String>>,
    /// Incremented for every change; the writer reports the highest it committed.
    generation: u64,
}

struct Shared {
    store: Arc<dyn Store>,
    caps: StorageCaps,
    pending: Mutex<Pending>,
    wake: Notify,
    committed: watch::Sender<u64>,
    flows: Mutex<HashMap<String, Arc<FlowStorage>>>,
    /// Flows deleted while loaded: late writes from their runs are dropped.
    deleted: Mutex<HashSet<String>>,
}

/// The storage of every flow.
#[derive(Clone)]
pub struct StorageService {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than stopping all storage would; keep going with the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StorageService {
    /// Starts the writer task (on the current tokio runtime).
    pub fn start(store: Arc<dyn Store>, caps: StorageCaps) -> StorageService {
        let (committed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store,
            caps,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            committed,
            flows: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashSet::new()),
        });
        tokio::spawn(writer(shared.clone()));
        StorageService { shared }
    }

    /// A flow's storage, loaded on first use.
    pub async fn flow(&self, flow_id: &str) -> Result<Arc<FlowStorage>, StorageError> {
        if let Some(found) = lock(&self.shared.flows).get(flow_id) {
            return Ok(found.clone());
        }
        let loaded = self.shared.store.storage_entries(flow_id).await?;
        let node_state: HashMap<String, Value> = self
            .shared
            .store
            .node_states(flow_id)
            .await?
            .into_iter()
            .collect();
        let mut entries = Entries::default();
        for (key, value) in loaded {
            entries.bytes += entry_size(&key, &value.to_string());
            entries.map.insert(key, value);
        }
        let mut flows = lock(&self.shared.flows);
        // Another task may have loaded it meanwhile; the first one wins (it may hold writes).
        let storage = flows
            .entry(flow_id.to_owned())
            .or_insert_with(|| {
                Arc::new(FlowStorage {
                    flow_id: flow_id.to_owned(),
                    entries: Mutex::new(entries),
                    node_state: Mutex::new(node_state),
                    service: self.shared.clone(),
                })
            })
            .clone();
        lock(&self.shared.deleted).remove(flow_id);
        Ok(storage)
    }

    /// Forgets a deleted flow: its memory and its uncommitted writes.
    pub fn forget(&self, flow_id: &str) {
        lock(&self.shared.flows).remove(flow_id);
        lock(&self.shared.deleted).insert(flow_id.to_owned());
        let mut pending = lock(&self.shared.pending);
        pending.keys.retain(|(_, flow, _), _| flow != flow_id);
        pending.cleared.retain(|flow| flow != flow_id);
    }

    /// Waits until every write accepted before this call is committed.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let target = lock(&self.shared.pending).generation;
        let mut committed = self.shared.committed.subscribe();
        self.shared.wake.notify_one();
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
        self.record_in(Space::Storage, key, value_json);
    }

    fn record_in(&self, space: Space, key: &str, value_json: Option<String>) {
        if lock(&self.service.deleted).contains(&self.flow_id) {
            return;
        }
        let mut pending = lock(&self.service.pending);
        pending
            .keys
            .insert((space, self.flow_id.clone(), key.to_owned()), value_json);
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
            .map(|k| (k.clone(), entries.map[k].clone()))
            .collect()
    }

    /// `(memoryUsed, keysCount)`.
    pub fn metadata(&self) -> (u64, u64) {
        let entries = lock(&self.entries);
        (entries.bytes, entries.map.len() as u64)
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        lock(&self.entries).map.get(key).cloned()
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
        let caps = self.service.caps;
        let new_size = entry_size(key, json);
        let old_size = entries
            .map
            .get(key)
            .map(|v| entry_size(key, &v.to_string()));
        let keys_after = entries.map.len() as u64 + u64::from(old_size.is_none());
        let bytes_after = entries.bytes - old_size.unwrap_or(0) + new_size;
        if keys_after > caps.max_keys {
            return Err(StorageError::Limit(format!(
                "workflow storage is limited to {} keys",
                caps.max_keys
            )));
        }
        if bytes_after > caps.max_bytes {
            return Err(StorageError::Limit(format!(
                "workflow storage is limited to {} bytes (keys plus JSON values); this write \
                 would make it {bytes_after}",
                caps.max_bytes
            )));
        }
        entries.bytes = bytes_after;
        Ok(entries.map.insert(key.to_owned(), value))
    }

    /// Adds `amount` to a numeric entry (absent counts as 0), atomically; returns the new value.
    pub fn increment(&self, key: &str, amount: f64) -> Result<f64, StorageError> {
        check_key(key)?;
        let mut entries = lock(&self.entries);
        let current = match entries.map.get(key) {
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
        let json = value.to_string();
        self.put(&mut entries, key, value, &json)?;
        self.record(key, Some(json));
        Ok(next)
    }

    /// Removes a key; returns its previous value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut entries = lock(&self.entries);
        let previous = entries.map.remove(key);
        if let Some(old) = &previous {
            entries.bytes -= entry_size(key, &old.to_string());
            self.record(key, None);
        }
        previous
    }

    /// Removes every key.
    pub fn clear(&self) {
        let mut entries = lock(&self.entries);
        entries.map.clear();
        entries.bytes = 0;
        let mut pending = lock(&self.service.pending);
        pending
            .keys
            .retain(|(space, flow, _), _| *space != Space::Storage || flow != &self.flow_id);
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
        self.record_in(Space::NodeState, &key, Some(json));
        out
    }
}

/// Node ids and state ids are free text; a NUL cannot occur in either.
fn node_state_key(node_id: &str, id: &str) -> String {
    format!("{node_id}\u{0}{id}")
}

/// Commits pending writes in groups until the service is dropped.
async fn writer(shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        // Let writes arriving in the same moment join this group.
        tokio::time::sleep(GROUP_COMMIT_WINDOW).await;
        loop {
            let (batch, generation) = {
                let mut pending = lock(&shared.pending);
                if pending.cleared.is_empty() && pending.keys.is_empty() {
                    let generation = pending.generation;
                    drop(pending);
                    shared.committed.send_replace(generation);
                    break;
                }
                let mut batch: Vec<StorageWrite> = std::mem::take(&mut pending.cleared)
                    .into_iter()
                    .map(|flow_id| StorageWrite::Clear { flow_id })
                    .collect();
                batch.extend(std::mem::take(&mut pending.keys).into_iter().map(
                    |((space, flow_id, key), value)| match (space, value) {
                        (Space::Storage, Some(value_json)) => StorageWrite::Set {
                            flow_id,
                            key,
                            value_json,
                        },
                        (Space::Storage, None) => StorageWrite::Delete { flow_id, key },
                        (Space::NodeState, value) => StorageWrite::SetNodeState {
                            flow_id,
                            key,
                            value_json: value.unwrap_or_else(|| "null".into()),
                        },
                    },
                ));
                (batch, pending.generation)
            };
            let mut delay = Duration::from_millis(50);
            loop {
                match shared.store.storage_apply(&batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        // Keep the batch and retry: dropping it would lose acknowledged writes.
                        tracing::error!(error = %e, "storage commit failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            shared.committed.send_replace(generation);
        }
        if Arc::strong_count(&shared) == 1 {
            return;
        }
    }
}
