//! Logic nodes.

pub mod function;
pub mod json_decode;
pub mod json_encode;
