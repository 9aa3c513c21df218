//! Webhook replies across nodes on core NATS: `flowd.<cluster>.replies`. A Webhook Reply node
//! whose request waits on another node publishes the reply here; every node hears it and the
//! one holding the request answers it (the others find nothing waiting). The body travels as
//! the message's payload, the rest in headers.

use crate::{NatsCluster, NatsError};
use flowd_engine::replies::{ReplyRelay, WebhookReply};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;

const REPLIES: &str = "replies";
const APPLICATION: &str = "Flowd-Application";
const REPLY_ID: &str = "Flowd-Reply-Id";
const STATUS: &str = "Flowd-Status";
/// The reply's own headers, as a JSON array of `[name, value]` pairs.
const HEADERS: &str = "Flowd-Headers";
/// Replies waiting to be sent.
const OUTBOX: usize = 4096;

/// What a node does with a reply heard from another: answers the request if it waits there.
pub type DeliverReply = Arc<dyn Fn(&str, &str, WebhookReply) + Send + Sync>;

/// This node's side of the reply relay.
pub struct NatsReplyRelay {
    outbox: mpsc::Sender<(String, String, WebhookReply)>,
}

impl NatsCluster {
    /// Subscribes to replies sent by other nodes (each handed to `deliver`) and returns the
    /// relay this node sends its own on.
    pub async fn reply_relay(&self, deliver: DeliverReply) -> Result<NatsReplyRelay, NatsError> {
        let subject = self.subject(REPLIES);
        let mut subscription =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| NatsError::JetStream {
                    cluster: self.cluster.clone(),
                    reason: format!("subscribing to {subject}: {e}"),
                })?;
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let header = |name: &str| {
                    message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_owned())
                };
                let (Some(application_id), Some(reply_id)) =
                    (header(APPLICATION), header(REPLY_ID))
                else {
                    continue;
                };
                let status = header(STATUS).and_then(|s| s.parse().ok()).unwrap_or(200);
                let headers = header(HEADERS)
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or_default();
                let reply = WebhookReply {
                    status,
                    headers,
                    body: message.payload.to_vec(),
                };
                deliver(&application_id, &reply_id, reply);
            }
        });
        let (outbox, mut queued) = mpsc::channel::<(String, String, WebhookReply)>(OUTBOX);
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some((application_id, reply_id, reply)) = queued.recv().await {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(APPLICATION, application_id.as_str());
                headers.insert(REPLY_ID, reply_id.as_str());
                headers.insert(STATUS, reply.status.to_string().as_str());
                let pairs = serde_json::to_string(&reply.headers).unwrap_or_default();
                headers.insert(HEADERS, pairs.as_str());
                if let Err(e) = client
                    .publish_with_headers(subject.clone(), headers, reply.body.into())
                    .await
                {
                    tracing::warn!(error = %e, "a webhook reply could not be sent to the other nodes");
                }
            }
        });
        Ok(NatsReplyRelay { outbox })
    }
}

impl ReplyRelay for NatsReplyRelay {
    fn forward(&self, application_id: &str, reply_id: &str, reply: WebhookReply) {
        let message = (application_id.to_owned(), reply_id.to_owned(), reply);
        if self.outbox.try_send(message).is_err() {
            tracing::warn!("too many webhook replies waiting; one was not sent on");
        }
    }
}
