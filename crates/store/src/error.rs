//! The store's errors: a few outcomes the API maps to Losant error bodies, and backend failures.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a version name already used, a token hash reused).
    #[error("{0}")]
    Conflict(String),
    /// A configured cap would be exceeded (storage keys or bytes per flow).
    #[error("{0}")]
    LimitExceeded(String),
    /// The database failed; the message is for logs, not for clients.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;
