//! Data nodes.

pub mod get_value;
pub mod http;
pub mod redis;
pub mod sql;
pub mod store_value;
