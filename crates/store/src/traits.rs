//! The store traits. Each resource has its own; [`Store`] is all of them together, which is what
//! the rest of flowd holds (`Arc<dyn Store>`).
//!
//! Documents go in and come out as JSON objects in Losant's shape (without `_type`/`_links`,
//! which the API adds). Ids are chosen by the caller. Every write answers only once committed.

use crate::{AccountingStore, ListQuery, Page, StoreResult};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// An API token as stored: its hash, never its value.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    /// `None` for user-level tokens (the owner token); otherwise the only application it reaches.
    pub application_id: Option<String>,
    /// Hex SHA-256 of the token string.
    pub token_hash: String,
    /// The `apiToken` document (name, scope, status, expirationDate, dates, …).
    pub doc: Value,
}

/// Per-flow storage caps (decision 8), set by configuration.
#[derive(Debug, Clone, Copy)]
pub struct StorageCaps {
    pub max_keys: u64,
    pub max_bytes: u64,
}

/// `GET /storage-metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageMetadata {
    pub memory_used: u64,
    pub keys_count: u64,
}

#[async_trait]
pub trait ApplicationStore: Send + Sync {
    async fn insert_application(&self, doc: &Value) -> StoreResult<()>;
    async fn get_application(&self, id: &str) -> StoreResult<Option<Value>>;
    /// Replaces the document; false when it does not exist.
    async fn update_application(&self, doc: &Value) -> StoreResult<bool>;
    /// Deletes the application with its flows, versions, storage and tokens.
    async fn delete_application(&self, id: &str) -> StoreResult<bool>;
    async fn list_applications(&self, query: &ListQuery) -> StoreResult<Page>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>>;
    async fn get_token(&self, application_id: &str, id: &str) -> StoreResult<Option<TokenRecord>>;
    async fn update_token(&self, token: &TokenRecord) -> StoreResult<bool>;
    async fn delete_token(&self, application_id: &str, id: &str) -> StoreResult<bool>;
    async fn list_tokens(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page>;
    /// User-level tokens (no application): the owner token.
    async fn user_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Deletes a user-level token (used when `FLOWD_OWNER_TOKEN` replaces the owner token).
    async fn delete_user_token(&self, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn insert_flow(&self, doc: &Value) -> StoreResult<()>;
    async fn get_flow(&self, application_id: &str, id: &str) -> StoreResult<Option<Value>>;
    async fn update_flow(&self, doc: &Value) -> StoreResult<bool>;
    /// Deletes the flow with its versions and storage.
    async fn delete_flow(&self, application_id: &str, id: &str) -> StoreResult<bool>;
    async fn list_flows(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page>;
    /// Inserts flows and versions in one transaction: all or nothing.
    async fn import_flows(&self, flows: &[Value], versions: &[Value]) -> StoreResult<()>;
}

#[async_trait]
pub trait FlowVersionStore: Send + Sync {
    /// Inserts a version; with `replace`, one of the same name is overwritten (keeping its id,
    /// which the caller has put in `doc`). Without it, a name clash is a `Conflict`.
    async fn insert_version(&self, doc: &Value, replace: bool) -> StoreResult<()>;
    /// By id or by name.
    async fn get_version(&self, flow_id: &str, id_or_name: &str) -> StoreResult<Option<Value>>;
    async fn update_version(&self, doc: &Value) -> StoreResult<bool>;
    async fn delete_version(&self, flow_id: &str, id: &str) -> StoreResult<bool>;
    async fn list_versions(&self, flow_id: &str, query: &ListQuery) -> StoreResult<Page>;
    /// Every version of a flow (for bulk queries, which are evaluated by the caller).
    async fn all_versions(&self, flow_id: &str) -> StoreResult<Vec<Value>>;
}

/// Which of a flow's two key–value tables an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageSpace {
    /// Workflow storage: listed, counted against the caps.
    Storage,
    /// Node state (Latch, Throttle and On Change memory): neither listed nor counted.
    NodeState,
}

/// What a read-modify-write makes of an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageChange {
    /// Leave it as it is (nothing to change, or the update refused).
    Keep,
    /// Store this value (kept as its compact JSON).
    Set(Value),
    /// Remove the entry.
    Delete,
}

/// The update of [`StorageStore::storage_modify`]: from an entry's current value (`None` when
/// absent), what to make of it. The store runs it once, while it holds the entry locked, so it
/// must be quick and must not wait on anything.
pub type StorageUpdate = Box<dyn FnOnce(Option<Value>) -> StorageChange + Send>;

#[async_trait]
pub trait StorageStore: Send + Sync {
    async fn storage_entries(&self, flow_id: &str) -> StoreResult<Map<String, Value>>;
    /// One entry of a flow's storage.
    async fn storage_get(&self, flow_id: &str, key: &str) -> StoreResult<Option<Value>>;
    /// Reads an entry, lets `update` decide what it becomes, and writes that, as one step that
    /// is atomic across every process sharing the store: no other write to the entry (nor,
    /// in `Storage`, to the flow's caps) comes between the read and the write. A `Set` in
    /// `Storage` must stay within `caps` (node state has none), or it is a `LimitExceeded` and
    /// nothing changes. Returns the entry's value afterwards. A flow that does not exist keeps
    /// nothing: `update` runs on no value, nothing is written, and `None` is returned (as
    /// [`storage_apply`](Self::storage_apply) skips such flows).
    async fn storage_modify(
        &self,
        flow_id: &str,
        key: &str,
        space: StorageSpace,
        update: StorageUpdate,
        caps: StorageCaps,
    ) -> StoreResult<Option<Value>>;
    async fn storage_metadata(&self, flow_id: &str) -> StoreResult<StorageMetadata>;
    /// Upserts one entry (`value_json` is compact JSON), refusing to pass the caps.
    async fn storage_set(
        &self,
        flow_id: &str,
        key: &str,
        value_json: &str,
        caps: StorageCaps,
    ) -> StoreResult<()>;
    async fn storage_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool>;
    async fn storage_clear(&self, flow_id: &str) -> StoreResult<()>;
    /// Applies a batch of writes, in order, in one transaction (the engine's group commit).
    /// Writes to flows that no longer exist are skipped, not errors: a flow deleted while its
    /// runs' writes were queued must not fail the batch of every other flow. Caps are the
    /// caller's business here (the engine enforces them in memory before queueing).
    async fn storage_apply(&self, batch: &[StorageWrite]) -> StoreResult<()>;
    /// The node state of a flow (Latch, Throttle and On Change memory), by key. Not workflow
    /// storage: not listed, not counted in its caps.
    async fn node_states(&self, flow_id: &str) -> StoreResult<Map<String, Value>>;
}

/// One write of a storage batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWrite {
    /// Upsert `key` with compact JSON `value_json`.
    Set {
        flow_id: String,
        key: String,
        value_json: String,
    },
    Delete {
        flow_id: String,
        key: String,
    },
    /// Delete every entry of the flow (workflow storage only; node state is kept).
    Clear {
        flow_id: String,
    },
    /// Upsert a node state entry.
    SetNodeState {
        flow_id: String,
        key: String,
        value_json: String,
    },
}

/// The kinds of application-owned resource documents kept by [`ResourceStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `/applications/{id}/integrations`: connections to outside brokers and services.
    Integration,
    /// `/applications/{id}/webhooks`: public URLs that trigger workflows.
    Webhook,
}

/// Application-owned resources that are plain documents with a name and a few kind-specific
/// columns (integrations: their type; webhooks: their token). One trait serves them all: they
/// differ only in which table holds them.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn insert_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<()>;
    async fn get_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<Option<Value>>;
    async fn update_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<bool>;
    async fn delete_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool>;
    async fn list_resources(
        &self,
        kind: ResourceKind,
        application_id: &str,
        query: &ListQuery,
    ) -> StoreResult<Page>;
    /// Every resource of a kind, in every application (the engine connects them at start).
    async fn all_resources(&self, kind: ResourceKind) -> StoreResult<Vec<Value>>;
}

/// Everything flowd keeps.
#[async_trait]
pub trait Store:
    ApplicationStore
    + TokenStore
    + FlowStore
    + FlowVersionStore
    + StorageStore
    + ResourceStore
    + AccountingStore
    + Send
    + Sync
{
    /// Flushes and closes; called once at shutdown after requests have drained.
    async fn close(&self) -> StoreResult<()>;
}
