//! Logic nodes.

pub mod conditional;
pub mod delay;
pub mod function;
pub mod json_decode;
pub mod json_encode;
pub mod math;
pub mod mutate;
pub mod object;
pub mod switch;
