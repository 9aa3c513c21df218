//! Trigger types, one file each: the type string Losant uses, its typed config (checked when a
//! flow is saved) and what it needs to fire. [`REGISTRY`] lists the triggers flowd fires; a
//! flow may hold other trigger types Losant knows (the official schema's list): they are kept,
//! and never fire.
//!
//! [`hub`] arms the triggers of every enabled flow's live version and routes events to them.

pub mod flow_error;
pub mod hub;
pub mod integration;
pub mod redis;
pub mod timer;
pub mod virtual_button;
pub mod webhook;

use crate::error::CompileError;
use serde_json::Value;

/// What a trigger needs to fire, compiled from its config.
#[derive(Clone, Debug)]
pub enum TriggerPlan {
    /// Pressed through the API or by a Workflow Trigger node.
    Press,
    Timer(timer::Schedule),
    /// A request to a webhook (`key` = the webhook id).
    Webhook,
    FlowError(flow_error::Scope),
    Integration(integration::Events),
    Redis(redis::Channel),
}

/// What a trigger type compiles from.
pub struct TriggerSpec<'a> {
    pub index: usize,
    pub type_name: &'a str,
    pub key: Option<&'a str>,
    pub config: &'a Value,
    pub meta: &'a Value,
}

impl TriggerSpec<'_> {
    /// The config as a trigger type's typed config; unknown fields are ignored.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, CompileError> {
        let config = if self.config.is_null() {
            &Value::Object(Default::default())
        } else {
            self.config
        };
        T::deserialize(config).map_err(|e| self.error(format!("config: {e}")))
    }

    /// An error that names this trigger.
    pub fn error(&self, message: impl std::fmt::Display) -> CompileError {
        let name = match self.key {
            Some(key) => key.to_owned(),
            None => format!("triggers[{}]", self.index),
        };
        CompileError(format!(
            "Trigger \"{name}\" ({}): {message}",
            self.type_name
        ))
    }
}

/// A trigger type flowd fires.
pub struct TriggerType {
    pub name: &'static str,
    pub config_fields: fn() -> Vec<&'static str>,
    pub compile: fn(&TriggerSpec<'_>) -> Result<TriggerPlan, CompileError>,
}

/// Every trigger type flowd fires.
pub const REGISTRY: &[TriggerType] = &[
    TriggerType {
        name: "virtualButton",
        config_fields: crate::node::config_fields::<virtual_button::Config>,
        compile: |_| Ok(TriggerPlan::Press),
    },
    TriggerType {
        name: "timer",
        config_fields: crate::node::config_fields::<timer::Config>,
        compile: |spec| timer::compile(spec).map(TriggerPlan::Timer),
    },
    TriggerType {
        name: "webhook",
        config_fields: crate::node::config_fields::<webhook::Config>,
        compile: |spec| webhook::compile(spec).map(|()| TriggerPlan::Webhook),
    },
    TriggerType {
        name: "flowError",
        config_fields: crate::node::config_fields::<flow_error::Config>,
        compile: |spec| flow_error::compile(spec).map(TriggerPlan::FlowError),
    },
    TriggerType {
        name: "integration",
        config_fields: crate::node::config_fields::<integration::Config>,
        compile: |spec| integration::compile(spec).map(TriggerPlan::Integration),
    },
    TriggerType {
        name: "redis",
        config_fields: crate::node::config_fields::<redis::Config>,
        compile: |spec| redis::compile(spec).map(TriggerPlan::Redis),
    },
];

/// Compiles a trigger: its plan, or `None` for a type flowd keeps but does not fire.
pub fn compile(spec: &TriggerSpec<'_>) -> Result<Option<TriggerPlan>, CompileError> {
    REGISTRY
        .iter()
        .find(|t| t.name == spec.type_name)
        .map(|t| (t.compile)(spec))
        .transpose()
}

/// Whether flowd fires a trigger type.
pub fn is_supported(type_name: &str) -> bool {
    REGISTRY.iter().any(|t| t.name == type_name)
}
