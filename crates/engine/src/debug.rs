//! Debug output: Debug node messages and Function node `console.log` lines, kept per flow in a
//! bounded ring (the most recent [`DEBUG_RING`]) and broadcast live to subscribers (the API's
//! Server-Sent Events route).

use crate::observer::{DebugMessage, RunObserver};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Messages kept per flow.
pub const DEBUG_RING: usize = 100;
/// Messages a slow live subscriber may fall behind before it skips ahead.
const SUBSCRIBER_BACKLOG: usize = 256;

struct FlowDebug {
    ring: VecDeque<DebugMessage>,
    /// Made when someone subscribes and dropped when the last one has gone: a broadcast
    /// channel holds its whole backlog of slots, which for thousands of flows nobody watches
    /// was most of the hub's memory.
    live: Option<broadcast::Sender<DebugMessage>>,
}

#[derive(Default)]
pub struct DebugHub {
    flows: Mutex<HashMap<String, FlowDebug>>,
}

impl DebugHub {
    fn with_flow<T>(&self, flow_id: &str, f: impl FnOnce(&mut FlowDebug) -> T) -> T {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = flows
            .entry(flow_id.to_owned())
            .or_insert_with(|| FlowDebug {
                ring: VecDeque::new(),
                live: None,
            });
        f(entry)
    }

    /// The recent messages of a flow, oldest first.
    pub fn recent(&self, flow_id: &str) -> Vec<DebugMessage> {
        let flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        flows
            .get(flow_id)
            .map(|f| f.ring.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Live messages of a flow from now on.
    pub fn subscribe(&self, flow_id: &str) -> broadcast::Receiver<DebugMessage> {
        self.with_flow(flow_id, |f| {
            f.live
                .get_or_insert_with(|| broadcast::channel(SUBSCRIBER_BACKLOG).0)
                .subscribe()
        })
    }

    /// Drops a deleted flow's messages.
    pub fn forget(&self, flow_id: &str) {
        self.flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(flow_id);
    }
}

impl RunObserver for DebugHub {
    fn debug(&self, message: &DebugMessage) {
        self.with_flow(&message.flow_id, |f| {
            if f.ring.len() == DEBUG_RING {
                f.ring.pop_front();
            }
            f.ring.push_back(message.clone());
            if let Some(live) = &f.live {
                // Sending fails only when every subscriber has gone: then the channel goes too.
                if live.send(message.clone()).is_err() {
                    f.live = None;
                }
            }
        });
    }
}
