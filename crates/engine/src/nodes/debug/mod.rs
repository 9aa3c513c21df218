//! Debug nodes.

// The Debug node is `debug::debug`, named as Losant's palette names it.
#[allow(clippy::module_inception)]
pub mod debug;
pub mod throw_error;
