//! # flowd-engine
//!
//! The workflow engine. So far, the foundations the run engine is built on:
//!
//! * [`value`] — JavaScript value semantics (printing, numbers, truthiness, equality, `+`).
//! * [`path`] — payload paths, parsed once and walked at run time.

pub mod accounting;
pub mod arming;
pub mod cluster;
pub mod compile;
pub mod debug;
pub mod engine;
pub mod error;
pub mod expression;
pub mod integrations;
pub mod js;
pub mod node;
pub mod nodes;
pub mod observer;
pub mod path;
pub mod queue;
pub mod rate_limit;
pub mod replies;
pub mod run;
pub mod services;
pub mod storage;
pub mod template;
#[cfg(test)]
mod testing;
pub mod triggers;
pub mod value;
