//! Data nodes.

pub mod get_value;
pub mod http;
pub mod store_value;
