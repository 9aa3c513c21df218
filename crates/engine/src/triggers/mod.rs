//! Trigger types, one file each: the type string Losant uses and the config fields it knows.
//! [`REGISTRY`] lists the triggers flowd fires. A flow may hold other trigger types Losant
//! knows (the official schema's list): they are kept, and never fire.

pub mod virtual_button;

/// A trigger type flowd fires.
pub struct TriggerType {
    pub name: &'static str,
    pub config_fields: fn() -> Vec<&'static str>,
}

/// Every trigger type flowd fires.
pub const REGISTRY: &[TriggerType] = &[TriggerType {
    name: "virtualButton",
    config_fields: crate::node::config_fields::<virtual_button::Config>,
}];

/// Whether flowd fires a trigger type.
pub fn is_supported(type_name: &str) -> bool {
    REGISTRY.iter().any(|t| t.name == type_name)
}
