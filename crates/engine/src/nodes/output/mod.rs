//! Output nodes.

pub mod mqtt;
pub mod webhook_reply;
pub mod workflow_trigger;
