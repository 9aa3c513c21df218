//! Integrations: an application's connections to outside brokers, owned by the engine.
//!
//! An integration is a resource of its application (`/applications/{id}/integrations`). The
//! engine keeps one live connection per enabled integration, shared by every flow and run of
//! that application: the MQTT node publishes through it, and it reports its status for the
//! API. The API tells the engine about every create, change and delete ([`Integrations::apply`],
//! [`Integrations::remove`]); at start the engine connects every stored one.
//!
//! flowd speaks MQTT only for now ([`mqtt`]); the other integration types of Losant's schema
//! (SQS, Pub/Sub, Event Hubs, Particle, WebSocket) are refused when saved rather than stored
//! without ever connecting.

pub mod mqtt;

use crate::error::{ErrorName, NodeError};
use crate::triggers::integration::IntegrationEvent;
use mqtt::{MqttLink, MqttSettings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The integration types flowd can connect.
pub const SUPPORTED_TYPES: &[&str] = &["mqtt"];

/// Where a connection reports its events (messages, connects, disconnects, failures):
/// `(integration id, application id, event)`. The engine routes them to Integration triggers
/// of that application's flows.
pub type EventSink = Arc<dyn Fn(&str, &str, IntegrationEvent) + Send + Sync>;

/// The engine's live integrations, by integration id.
#[derive(Default)]
pub struct Integrations {
    links: Mutex<HashMap<String, Arc<MqttLink>>>,
    events: std::sync::OnceLock<EventSink>,
    /// `(cluster name, node id)` when this node is one of several.
    cluster: std::sync::OnceLock<(String, String)>,
}

fn text<'a>(doc: &'a Value, field: &str) -> &'a str {
    doc.get(field).and_then(Value::as_str).unwrap_or_default()
}

impl Integrations {
    pub fn new() -> Integrations {
        Integrations::default()
    }

    /// Set once, before any integration connects, when other nodes run the same integrations:
    /// each node connects under a client id of its own and subscribes in a shared group, so a
    /// broker message starts one run in the cluster, not one per node. (Connect and disconnect
    /// events are each node's own.)
    pub fn join_cluster(&self, cluster: &str, node: &str) {
        let _ = self.cluster.set((cluster.to_owned(), node.to_owned()));
    }

    /// Set once, before any integration connects: where their events go.
    pub fn on_event(&self, sink: EventSink) {
        let _ = self.events.set(sink);
    }

    /// Checks an integration document before it is saved: a type flowd can connect and a
    /// configuration it can use. The message names the field at fault.
    pub fn check(doc: &Value) -> Result<(), String> {
        let kind = text(doc, "integrationType");
        if !SUPPORTED_TYPES.contains(&kind) {
            return Err(format!(
                "integrationType: \"{kind}\" integrations are not supported by flowd yet; \
                 supported: {}",
                SUPPORTED_TYPES.join(", ")
            ));
        }
        MqttSettings::from_doc(doc).map(|_| ())
    }

    /// Starts, restarts or stops the connection of a created or changed integration. A change
    /// that leaves the connection settings as they were keeps the connection.
    pub fn apply(&self, doc: &Value) {
        let id = text(doc, "id").to_owned();
        let enabled = doc.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let settings = match MqttSettings::from_doc(doc) {
            Ok(settings) => match self.cluster.get() {
                Some((cluster, node)) => settings.for_cluster_node(cluster, node),
                None => settings,
            },
            Err(e) => {
                // Checked when saved; a stored document that no longer parses is logged.
                tracing::error!(integration = %id, error = %e, "integration not connected");
                self.remove(&id);
                return;
            }
        };
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(link) = links.get(&id) {
            if enabled && link.settings() == &settings {
                return;
            }
        }
        if let Some(old) = links.remove(&id) {
            old.stop();
        }
        if enabled {
            links.insert(id, MqttLink::connect(settings, self.events.get().cloned()));
        }
    }

    /// The ids of the integrations this node keeps.
    pub fn ids(&self) -> Vec<String> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Stops the connection of a deleted integration.
    pub fn remove(&self, id: &str) {
        let link = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(link) = link {
            link.stop();
        }
    }

    /// Stops the connections of a deleted application's integrations.
    pub fn remove_application(&self, application_id: &str) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|_, link| {
            let keep = link.settings().application_id != application_id;
            if !keep {
                link.stop();
            }
            keep
        });
    }

    /// Stops every connection (shutdown).
    pub fn stop_all(&self) {
        let links: Vec<_> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, link) in links {
            link.stop();
        }
    }

    /// The `status` object of an integration's document: Losant's fields (times in ms since
    /// the epoch). A disabled integration has no connection and reports no times.
    pub fn status(&self, id: &str) -> Value {
        match self.link(id) {
            Some(link) => link.status(),
            None => json!({ "connectInfo": { "ts": null }, "disconnectInfo": { "ts": null } }),
        }
    }

    fn link(&self, id: &str) -> Option<Arc<MqttLink>> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Publishes a message through an application's MQTT integration.
    pub async fn publish(
        &self,
        application_id: &str,
        integration_id: &str,
        topic: &str,
        message: Vec<u8>,
    ) -> Result<(), NodeError> {
        let link = self
            .link(integration_id)
            .filter(|link| link.settings().application_id == application_id)
            .ok_or_else(|| {
                NodeError::new(
                    ErrorName::MqttError,
                    format!(
                        "MQTT integration {integration_id} was not found in this application, \
                         or it is disabled"
                    ),
                )
            })?;
        link.publish(topic, message).await
    }
}
