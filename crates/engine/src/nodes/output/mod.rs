//! Output nodes.

pub mod workflow_trigger;
