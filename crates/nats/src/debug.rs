//! Debug output across nodes: `flowd.<cluster>.debug`, a [peer channel](crate::peers). Each
//! node sends the Debug node messages and `console.log` lines of its runs; the others keep and
//! stream them as their own, so a debug panel open on any node shows the runs of every node.
//! Best effort, like a debug panel: when too many wait to be sent, some are dropped.

use crate::peers::PeerSender;
use crate::{NatsCluster, NatsError};
use flowd_engine::debug::DebugRelay;
use flowd_engine::observer::DebugMessage;
use std::sync::Arc;

/// What a node does with another node's debug output.
pub type DeliverDebug = Arc<dyn Fn(DebugMessage) + Send + Sync>;

/// This node's side of the debug relay.
pub struct NatsDebugRelay {
    peers: PeerSender<DebugMessage>,
}

impl NatsCluster {
    /// Subscribes to the other nodes' debug output (each message handed to `deliver`) and
    /// returns the relay this node sends its own on.
    pub async fn debug_relay(&self, deliver: DeliverDebug) -> Result<NatsDebugRelay, NatsError> {
        let peers = self
            .peer_channel("debug", move |message| {
                deliver(message);
                std::future::ready(())
            })
            .await?;
        Ok(NatsDebugRelay { peers })
    }
}

impl DebugRelay for NatsDebugRelay {
    fn forward(&self, message: &DebugMessage) {
        // Dropped when the outbox is full: debug output must never hold a run up.
        let _ = self.peers.send(message.clone());
    }
}
