//! The change feed: `flowd.<cluster>.changes`, a [peer channel](crate::peers). Each node
//! announces the changes made through its API; the others apply them. A node that was down
//! reads everything afresh when it starts.

use crate::peers::PeerSender;
use crate::NatsCluster;
use flowd_engine::cluster::{Change, ChangeFeed};
use futures::future::BoxFuture;
use std::sync::Arc;

/// What a node does with another node's change.
pub type ApplyChange = Arc<dyn Fn(Change) -> BoxFuture<'static, ()> + Send + Sync>;

/// This node's side of the change feed.
pub struct NatsChangeFeed {
    peers: PeerSender<Change>,
}

impl NatsCluster {
    /// Subscribes to the other nodes' changes (each is handed to `apply`, in order) and
    /// returns the feed this node announces its own changes on.
    pub async fn change_feed(
        &self,
        apply: ApplyChange,
    ) -> Result<NatsChangeFeed, crate::NatsError> {
        let peers = self
            .peer_channel("changes", move |change| apply(change))
            .await?;
        Ok(NatsChangeFeed { peers })
    }
}

impl ChangeFeed for NatsChangeFeed {
    fn publish(&self, change: &Change) {
        if !self.peers.send(change.clone()) {
            tracing::warn!("too many changes waiting; one was not announced to the other nodes");
        }
    }
}
