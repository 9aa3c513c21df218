//! # flowd-model
//!
//! The vocabulary every other crate speaks, with no I/O:
//!
//! * [`id`] — 24-hex, time-ordered ids in the shape of MongoDB ObjectIds, as Losant uses them.
//! * [`time`] — timestamps as Losant prints them (ISO 8601, millisecond precision, UTC).
//! * [`scope`] — the action table: every API action, the scopes that allow it, and the check.
//! * [`schema`] — Losant's official JSON schemas, compiled once, and request validation that
//!   names the offending field.
//! * [`catalogue`] — the trigger and node type strings Losant knows.
//! * [`graph`] — save-time checks of a workflow graph (unique ids, wiring, known types).
//! * [`query`] — Losant's advanced queries over workflows and versions, evaluated on documents.
//! * [`storage`] — the rules of workflow storage (key length, value size, the metadata formula).

pub mod catalogue;
pub mod graph;
pub mod id;
pub mod query;
pub mod schema;
pub mod scope;
pub mod storage;
pub mod time;
