//! What every handler shares: the store, the engine and the limits from configuration.

use flowd_engine::cluster::{Change, ChangeFeed};
use flowd_engine::engine::Engine;
use flowd_store::{StorageCaps, Store};
use std::sync::Arc;

/// Limits that configuration may change (decisions 8 and 9), with their documented defaults.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest API request body, in bytes.
    pub max_body_bytes: usize,
    /// Per-flow storage caps.
    pub storage: StorageCaps,
    /// How long run history (stats, errors, logs) is kept, in ms.
    pub retention_ms: i64,
    /// How long a request to a webhook that waits for a reply waits before its 504.
    pub webhook_reply_timeout: std::time::Duration,
}

/// Largest webhook request body (Losant's limit: 256 KB).
pub const WEBHOOK_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default wait for a webhook reply (Losant's: 60 s).
pub const DEFAULT_WEBHOOK_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Default retention of run history: 30 days.
pub const DEFAULT_RETENTION_MS: i64 = 30 * 86_400_000;

/// Default largest API request body: 1 MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default cap on keys in one flow's storage.
pub const DEFAULT_STORAGE_MAX_KEYS: u64 = 100_000;
/// Default cap on one flow's storage size (keys plus JSON values): 64 MiB.
pub const DEFAULT_STORAGE_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            storage: StorageCaps {
                max_keys: DEFAULT_STORAGE_MAX_KEYS,
                max_bytes: DEFAULT_STORAGE_MAX_BYTES,
            },
            retention_ms: DEFAULT_RETENTION_MS,
            webhook_reply_timeout: DEFAULT_WEBHOOK_REPLY_TIMEOUT,
        }
    }
}

/// Shared state of the router: one `Arc`, since axum hands every extractor of every request its
/// own clone (a struct of several `Arc`s cost an atomic increment and decrement per field).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct AppParts {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub limits: Limits,
    pub tokens: Arc<crate::auth::TokenCache>,
    /// Where changes are announced to the other nodes of a cluster; `None` on one node.
    pub changes: Option<Arc<dyn ChangeFeed>>,
    /// Turns `true` when the server starts shutting down; endless responses (the debug stream)
    /// end then, so that graceful shutdown is not held open by them.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
}

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl AppState {
    /// A change was stored through this node: applies it here, then tells the other nodes.
    pub async fn changed(&self, change: Change) {
        self.apply_change(&change).await;
        if let Some(feed) = &self.changes {
            feed.publish(&change);
        }
    }

    /// Reads again everything this node keeps in memory of the stored resources (tokens,
    /// flows, triggers, webhooks, integrations): after it may have missed other nodes' changes.
    pub async fn resync(&self) -> Result<(), flowd_store::StoreError> {
        self.tokens.clear();
        self.engine.resync().await
    }

    /// Applies a change (made here or announced by another node) to what this node keeps in
    /// memory.
    pub async fn apply_change(&self, change: &Change) {
        if let Change::Tokens = change {
            self.tokens.clear();
        }
        self.engine.apply_change(change).await;
    }
}
