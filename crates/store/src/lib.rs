//! # flowd-store
//!
//! Persistence behind traits, so the API and the engine never know which database holds the data.
//!
//! * [`Store`] — everything flowd keeps, as one object: applications, API tokens, flows, flow
//!   versions and workflow storage (one sub-trait each, in [`traits`]), and run accounting
//!   (stats, errors and logs, in [`accounting`]).
//! * [`sqlite`] — the default, embedded implementation (one file in the data dir, WAL, versioned
//!   migrations, foreign keys). Blocking SQLite calls run on tokio's blocking pool, never on the
//!   async executor threads.
//! * [`postgres`] — the same tables and semantics in a PostgreSQL database that several flowd
//!   processes can share (a connection pool, versioned migrations under an advisory lock).
//!
//! What the two have in common — the document tables and their SQL, the accounting and storage
//! logic — is written once, in a private `shared` module; each backend keeps only what is its
//! own. The same test suite (`tests/store.rs`) runs against both.
//!
//! Resources are kept as their Losant JSON documents (a `serde_json::Value` object) plus the
//! columns the API sorts and filters by. The store does not interpret the documents beyond those
//! columns; the API owns their shape. No SQLite type crosses the trait.

pub mod accounting;
pub mod error;
pub mod postgres;
pub mod query;
mod shared;
pub mod sqlite;
pub mod traits;

pub use accounting::*;
pub use error::{StoreError, StoreResult};
pub use query::{Column, ListQuery, Page, SortDirection};
pub use traits::*;
