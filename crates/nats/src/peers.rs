//! Messages every node sends to all the others on one core NATS subject of the cluster: each is
//! JSON, sent in order from one task, and names its sender in a header so that a node skips its
//! own. Core NATS keeps nothing: a node that is down misses what was sent meanwhile. The change
//! feed and the debug output travel this way.

use crate::{NatsCluster, NatsError};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use tokio::sync::mpsc;

/// The header naming the node that sent a message.
const NODE_HEADER: &str = "Flowd-Node";
/// Messages waiting to be sent.
const OUTBOX: usize = 4096;

/// This node's side of a peer channel.
pub(crate) struct PeerSender<T> {
    outbox: mpsc::Sender<T>,
}

impl<T> PeerSender<T> {
    /// Queues `message` for the other nodes; false when too many are waiting (it is dropped).
    pub(crate) fn send(&self, message: T) -> bool {
        self.outbox.try_send(message).is_ok()
    }
}

impl NatsCluster {
    /// Subscribes to `flowd.<cluster>.<name>` — each message from another node is handed to
    /// `receive`, in order — and returns the sender for this node's own.
    pub(crate) async fn peer_channel<T, F, Done>(
        &self,
        name: &str,
        receive: F,
    ) -> Result<PeerSender<T>, NatsError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(T) -> Done + Send + 'static,
        Done: Future<Output = ()> + Send,
    {
        let subject = self.subject(name);
        let mut subscription =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| NatsError::JetStream {
                    cluster: self.cluster.clone(),
                    reason: format!("subscribing to {subject}: {e}"),
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
                match serde_json::from_slice::<T>(&message.payload) {
                    Ok(value) => receive(value).await,
                    Err(e) => {
                        tracing::warn!(subject = %message.subject, error = %e, "an unreadable message from another node was ignored")
                    }
                }
            }
        });
        let (outbox, mut queued) = mpsc::channel::<T>(OUTBOX);
        let (client, me) = (self.client.clone(), self.node_id.clone());
        tokio::spawn(async move {
            while let Some(value) = queued.recv().await {
                let Ok(payload) = serde_json::to_vec(&value) else {
                    continue;
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(NODE_HEADER, me.as_str());
                if let Err(e) = client
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                {
                    tracing::warn!(subject = %subject, error = %e, "a message could not be sent to the other nodes");
                }
            }
        });
        Ok(PeerSender { outbox })
    }
}
