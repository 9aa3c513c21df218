//! Logic nodes.

pub mod json_decode;
pub mod json_encode;
