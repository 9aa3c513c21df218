//! Data nodes.

pub mod get_value;
pub mod store_value;
