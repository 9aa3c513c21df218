//! What the nodes of a cluster tell each other. Each node keeps things in memory in front of
//! the shared store (compiled flows, armed triggers, webhooks by token, integrations, cached
//! tokens); a change made through one node's API is applied there and announced as a
//! [`Change`] on a [`ChangeFeed`], and every other node applies it to its own memory. The feed
//! is a seam like the run queue: one node has none; several share one (NATS).

use crate::engine::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A change another node must apply to what it keeps in memory. Plain data: it crosses
/// process boundaries as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// A flow was created or changed, or one of its versions was.
    #[serde(rename_all = "camelCase")]
    Flow {
        application_id: String,
        flow_id: String,
    },
    #[serde(rename_all = "camelCase")]
    FlowDeleted {
        flow_id: String,
    },
    /// An application's name or globals changed.
    #[serde(rename_all = "camelCase")]
    Application {
        application_id: String,
    },
    /// An application was deleted, with these flows.
    #[serde(rename_all = "camelCase")]
    ApplicationDeleted {
        application_id: String,
        flow_ids: Vec<String>,
    },
    /// A webhook was created or changed (its document).
    Webhook {
        doc: Value,
    },
    WebhookDeleted {
        id: String,
    },
    /// An integration was created or changed (its document).
    Integration {
        doc: Value,
    },
    IntegrationDeleted {
        id: String,
    },
    /// API tokens were changed or deleted: cached ones must be read again.
    Tokens,
}

/// Where a node announces its changes to the others.
pub trait ChangeFeed: Send + Sync {
    /// Sends `change` to the other nodes (not back to this one). Best effort: a node that
    /// misses a change catches up when its caches expire or it restarts.
    fn publish(&self, change: &Change);
}

impl Engine {
    /// Applies a change to this node's engine (compiled flows, triggers, webhooks,
    /// integrations). Token changes are the API's business and ignored here.
    pub async fn apply_change(&self, change: &Change) {
        match change {
            Change::Flow {
                application_id,
                flow_id,
            } => self.flow_changed(application_id, flow_id).await,
            Change::FlowDeleted { flow_id } => self.flow_deleted(flow_id),
            Change::Application { application_id } => self.invalidate_application(application_id),
            Change::ApplicationDeleted {
                application_id,
                flow_ids,
            } => {
                for flow_id in flow_ids {
                    self.flow_deleted(flow_id);
                }
                self.integrations().remove_application(application_id);
                self.webhooks().remove_application(application_id);
            }
            Change::Webhook { doc } => self.webhooks().apply(doc),
            Change::WebhookDeleted { id } => self.webhooks().remove(id),
            Change::Integration { doc } => self.integrations().apply(doc),
            Change::IntegrationDeleted { id } => self.integrations().remove(id),
            Change::Tokens => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_cross_as_tagged_json() {
        let change = Change::Flow {
            application_id: "a".into(),
            flow_id: "f".into(),
        };
        let text = serde_json::to_value(&change).unwrap();
        assert_eq!(
            text,
            json!({"kind": "flow", "applicationId": "a", "flowId": "f"})
        );
        assert_eq!(serde_json::from_value::<Change>(text).unwrap(), change);
        let tokens = serde_json::to_value(Change::Tokens).unwrap();
        assert_eq!(tokens, json!({"kind": "tokens"}));
    }
}
