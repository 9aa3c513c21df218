//! What the SQLite and PostgreSQL stores have in common, written once: the tables' SQL (both
//! speak SQL; a [`sql::SqlDialect`] says how each spells the few things that differ), the
//! document tables and their columns, and the logic of run accounting and storage caps that
//! does not depend on the database at all. Each backend module keeps only what is its own:
//! connections, transactions, and the statements only it can write.

pub(crate) mod accounting;
pub(crate) mod documents;
pub(crate) mod sql;
pub(crate) mod storage;
