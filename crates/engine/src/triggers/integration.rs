//! `integration`: fires on the events of one of the application's integrations (`key` = its
//! id). flowd's integrations are MQTT brokers (`meta.name: "mqtt"`).
//!
//! Config: four booleans saying which events fire it — `message` (default true), `connect`,
//! `disconnect`, `failure` (default false); at least one must be true. `data`:
//! * message: `{type: "message", topic, message}` — the message as UTF-8 text (bytes that are
//!   not UTF-8 are replaced);
//! * connect: `{type: "connect", topics}` — the topics the integration subscribed to;
//! * disconnect: `{type: "disconnect", disconnectReason}`;
//! * failure: `{type: "failure", failureReason}` — a connection attempt failed.
//!
//! The root carries `relayId` = `triggerId` = the integration id, `relayType: "integration"`.
//! Which messages arrive is the integration's `topics` (wildcards `+`/`#` as MQTT has them).

use crate::error::CompileError;
use crate::triggers::TriggerSpec;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct Config {
    message: Option<bool>,
    connect: Option<bool>,
    disconnect: Option<bool>,
    failure: Option<bool>,
}

/// The events a trigger fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Events {
    pub message: bool,
    pub connect: bool,
    pub disconnect: bool,
    pub failure: bool,
}

pub fn compile(spec: &TriggerSpec<'_>) -> Result<Events, CompileError> {
    let config: Config = spec.config()?;
    let key = spec.key.unwrap_or_default();
    if !flowd_model::id::is_id(key) {
        return Err(spec.error(format!(
            "key must be the id of an integration of the application, not \"{key}\""
        )));
    }
    let events = Events {
        message: config.message.unwrap_or(true),
        connect: config.connect.unwrap_or(false),
        disconnect: config.disconnect.unwrap_or(false),
        failure: config.failure.unwrap_or(false),
    };
    if !(events.message || events.connect || events.disconnect || events.failure) {
        return Err(
            spec.error("at least one of message, connect, disconnect or failure must be true")
        );
    }
    Ok(events)
}

/// An event of an integration, as the trigger's `data` describes it.
#[derive(Clone, Debug)]
pub enum IntegrationEvent {
    Message { topic: String, message: String },
    Connect { topics: Vec<String> },
    Disconnect { reason: String },
    Failure { reason: String },
}

impl IntegrationEvent {
    /// Whether a trigger listening for `events` fires on this one.
    pub fn wanted_by(&self, events: &Events) -> bool {
        match self {
            IntegrationEvent::Message { .. } => events.message,
            IntegrationEvent::Connect { .. } => events.connect,
            IntegrationEvent::Disconnect { .. } => events.disconnect,
            IntegrationEvent::Failure { .. } => events.failure,
        }
    }

    /// The run's `data`.
    pub fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            IntegrationEvent::Message { topic, message } => {
                json!({"type": "message", "topic": topic, "message": message})
            }
            IntegrationEvent::Connect { topics } => json!({"type": "connect", "topics": topics}),
            IntegrationEvent::Disconnect { reason } => {
                json!({"type": "disconnect", "disconnectReason": reason})
            }
            IntegrationEvent::Failure { reason } => {
                json!({"type": "failure", "failureReason": reason})
            }
        }
    }
}
