//! # flowd-engine
//!
//! The workflow engine. So far, the foundations the run engine is built on:
//!
//! * [`value`] — JavaScript value semantics (printing, numbers, truthiness, equality, `+`).
//! * [`path`] — payload paths, parsed once and walked at run time.

pub mod path;
pub mod value;
