//! The change feed on core NATS: `flowd.<cluster>.changes`. Each node publishes the changes
//! made through its API (in order, from one task) and applies the others'. A message names its
//! sender, so a node skips its own. Core NATS keeps nothing: a node that is down misses changes
//! and reads everything afresh when it starts.

use crate::NatsCluster;
use flowd_engine::cluster::{Change, ChangeFeed};
use futures::future::BoxFuture;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;

const CHANGES: &str = "changes";
/// The header naming the node that made a change.
const NODE_HEADER: &str = "Flowd-Node";
/// Announcements waiting to be sent.
const OUTBOX: usize = 4096;

/// What a node does with another node's change.
pub type ApplyChange = Arc<dyn Fn(Change) -> BoxFuture<'static, ()> + Send + Sync>;

/// This node's side of the change feed.
pub struct NatsChangeFeed {
    outbox: mpsc::Sender<Change>,
}

impl NatsCluster {
    /// Subscribes to the other nodes' changes (each is handed to `apply`, in order) and
    /// returns the feed this node announces its own changes on.
    pub async fn change_feed(
        &self,
        apply: ApplyChange,
    ) -> Result<NatsChangeFeed, crate::NatsError> {
        let subject = self.subject(CHANGES);
        let mut subscription = self.client.subscribe(subject.clone()).await.map_err(|e| {
            crate::NatsError::JetStream {
                cluster: self.cluster.clone(),
                reason: format!("subscribing to {subject}: {e}"),
            }
        })?;
        let me = self.node_id.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let sender = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(NODE_HEADER))
                    .map(|v| v.as_str().to_owned());
                if sender.as_deref() == Some(me.as_str()) {
                    continue;
                }
                match serde_json::from_slice::<Change>(&message.payload) {
                    Ok(change) => apply(change).await,
                    Err(e) => tracing::warn!(error = %e, "an unreadable change was ignored"),
                }
            }
        });
        let (outbox, mut queued) = mpsc::channel::<Change>(OUTBOX);
        let (client, me) = (self.client.clone(), self.node_id.clone());
        tokio::spawn(async move {
            while let Some(change) = queued.recv().await {
                let Ok(payload) = serde_json::to_vec(&change) else {
                    continue;
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(NODE_HEADER, me.as_str());
                if let Err(e) = client
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                {
                    tracing::warn!(error = %e, "a change could not be announced to the other nodes");
                }
            }
        });
        Ok(NatsChangeFeed { outbox })
    }
}

impl ChangeFeed for NatsChangeFeed {
    fn publish(&self, change: &Change) {
        if self.outbox.try_send(change.clone()).is_err() {
            tracing::warn!("too many changes waiting; one was not announced to the other nodes");
        }
    }
}
