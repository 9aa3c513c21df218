//! Output nodes.

pub mod mqtt;
pub mod workflow_trigger;
