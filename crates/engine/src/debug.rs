//! Debug output: Debug node messages and Function node `console.log` lines, broadcast live to
//! subscribers (the API's Server-Sent Events route) and kept for a while so that a debug panel
//! opened just after a run still shows it.
//!
//! What is kept is bounded for the whole server, not per flow: the newest messages of all flows
//! together, at most [`DEBUG_RETAINED`] of them and [`DEBUG_RETAINED_BYTES`] of JSON; a flow's
//! recent messages are its newest [`DEBUG_RING`] among those. A ring per flow made memory grow
//! with the number of flows that ever printed (10,000 flows × 100 payloads), for output nobody
//! may ever look at.
//!
//! Kept messages are written out as JSON, one allocation each. Kept as value trees, a busy
//! server's last 2,000 payloads (a few MB) were cold memory by the time they were evicted: freeing
//! them, and the next runs reusing their blocks, cost a fifth of a press (BENCHMARKS.md). Live
//! subscribers get the run's own message; only a stream that opens reads the JSON back.

use crate::observer::{DebugMessage, RunObserver};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// Most recent messages one flow's debug stream starts with.
pub const DEBUG_RING: usize = 100;
/// Messages kept, all flows together.
pub const DEBUG_RETAINED: usize = 2_000;
/// Bytes of messages kept (as JSON), all flows together (the newest message is kept whatever its
/// size).
pub const DEBUG_RETAINED_BYTES: usize = 16 * 1024 * 1024;
/// Messages a slow live subscriber may fall behind before it skips ahead.
const SUBSCRIBER_BACKLOG: usize = 256;

/// A kept message: its flow id followed by the message as JSON, in one allocation.
struct Retained {
    text: Box<[u8]>,
    flow_len: usize,
}

impl Retained {
    fn new(message: &DebugMessage) -> Option<Retained> {
        let mut text = Vec::with_capacity(512);
        text.extend_from_slice(message.flow_id.as_bytes());
        serde_json::to_writer(&mut text, message).ok()?;
        Some(Retained {
            text: text.into_boxed_slice(),
            flow_len: message.flow_id.len(),
        })
    }

    fn is_of(&self, flow_id: &str) -> bool {
        &self.text[..self.flow_len] == flow_id.as_bytes()
    }

    fn message(&self) -> Option<DebugMessage> {
        serde_json::from_slice(&self.text[self.flow_len..]).ok()
    }

    fn size(&self) -> usize {
        self.text.len()
    }
}

#[derive(Default)]
struct HubState {
    /// The newest messages of every flow, oldest first.
    retained: VecDeque<Retained>,
    retained_bytes: usize,
    /// Channels of flows someone watches; made on subscribe, dropped when the last watcher has
    /// gone (a broadcast channel holds its whole backlog of slots).
    live: HashMap<String, broadcast::Sender<Arc<DebugMessage>>>,
}

/// Carries this node's debug output to the other nodes of a cluster.
pub trait DebugRelay: Send + Sync {
    fn forward(&self, message: &DebugMessage);
}

#[derive(Default)]
pub struct DebugHub {
    state: Mutex<HubState>,
    relay: OnceLock<Arc<dyn DebugRelay>>,
}

impl DebugHub {
    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set once when other nodes run the same flows: this node's output goes to them too.
    pub fn set_relay(&self, relay: Arc<dyn DebugRelay>) {
        let _ = self.relay.set(relay);
    }

    /// Another node's debug output: kept and streamed here like this node's own.
    pub fn deliver(&self, message: DebugMessage) {
        self.keep(&Arc::new(message));
    }

    /// The recent messages of a flow, oldest first.
    pub fn recent(&self, flow_id: &str) -> Vec<DebugMessage> {
        let state = self.state();
        let mut found: Vec<DebugMessage> = state
            .retained
            .iter()
            .rev()
            .filter(|message| message.is_of(flow_id))
            .take(DEBUG_RING)
            .filter_map(Retained::message)
            .collect();
        found.reverse();
        found
    }

    /// Live messages of a flow from now on.
    pub fn subscribe(&self, flow_id: &str) -> broadcast::Receiver<Arc<DebugMessage>> {
        self.state()
            .live
            .entry(flow_id.to_owned())
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BACKLOG).0)
            .subscribe()
    }

    /// Drops a deleted flow's messages.
    pub fn forget(&self, flow_id: &str) {
        let mut state = self.state();
        state.live.remove(flow_id);
        let before = std::mem::take(&mut state.retained);
        let (gone, kept): (VecDeque<_>, VecDeque<_>) = before
            .into_iter()
            .partition(|message| message.is_of(flow_id));
        state.retained_bytes -= gone.iter().map(Retained::size).sum::<usize>();
        state.retained = kept;
    }
}

impl RunObserver for DebugHub {
    fn debug(&self, message: &Arc<DebugMessage>) {
        self.keep(message);
        if let Some(relay) = self.relay.get() {
            relay.forward(message);
        }
    }
}

impl DebugHub {
    /// Keeps the message written out, and hands the message itself to live subscribers.
    fn keep(&self, message: &Arc<DebugMessage>) {
        let retained = Retained::new(message);
        let mut state = self.state();
        if let Some(retained) = retained {
            state.retained_bytes += retained.size();
            state.retained.push_back(retained);
        }
        while state.retained.len() > DEBUG_RETAINED
            || (state.retained_bytes > DEBUG_RETAINED_BYTES && state.retained.len() > 1)
        {
            if let Some(evicted) = state.retained.pop_front() {
                state.retained_bytes -= evicted.size();
            }
        }
        if let Some(live) = state.live.get(&message.flow_id) {
            // Sending fails only when every subscriber has gone: then the channel goes too.
            if live.send(Arc::clone(message)).is_err() {
                state.live.remove(&message.flow_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn message(flow: &str, n: usize, value: Value) -> DebugMessage {
        DebugMessage {
            time_ms: n as i64,
            flow_id: flow.to_owned(),
            run_id: format!("run{n}"),
            version: "develop".into(),
            node_id: None,
            level: "info".into(),
            message: format!("m{n}"),
            value,
        }
    }

    #[test]
    fn a_flow_gets_its_newest_messages_oldest_first() {
        let hub = DebugHub::default();
        for n in 0..150 {
            hub.debug(&Arc::new(message("a", n, json!(n))));
            hub.debug(&Arc::new(message("b", n, json!(n))));
        }
        let recent = hub.recent("a");
        assert_eq!(recent.len(), DEBUG_RING);
        assert_eq!(recent[0].message, "m50");
        assert_eq!(recent[DEBUG_RING - 1].message, "m149");
        assert!(recent.iter().all(|m| m.flow_id == "a"));
        assert!(hub.recent("c").is_empty());
    }

    #[test]
    fn what_is_kept_is_bounded_for_all_flows_together() {
        let hub = DebugHub::default();
        for n in 0..20_000 {
            hub.debug(&Arc::new(message(&format!("flow{n}"), n, json!({"n": n}))));
        }
        let state = hub.state();
        assert_eq!(state.retained.len(), DEBUG_RETAINED);
        drop(state);
        assert!(
            hub.recent("flow0").is_empty(),
            "the oldest flows' output is gone"
        );
        assert_eq!(hub.recent("flow19999").len(), 1);

        // Big values: the byte budget, not the count, bounds what is kept.
        let big = "x".repeat(1024 * 1024);
        for n in 0..40 {
            hub.debug(&Arc::new(message("big", n, json!(big))));
        }
        let state = hub.state();
        assert!(state.retained_bytes <= DEBUG_RETAINED_BYTES);
        assert!(state.retained.len() < 20, "{} kept", state.retained.len());
        let counted: usize = state.retained.iter().map(Retained::size).sum();
        assert_eq!(counted, state.retained_bytes);
    }

    #[test]
    fn a_kept_message_reads_back_as_it_was() {
        let hub = DebugHub::default();
        let mut sent = message(
            "a",
            7,
            json!({"f": 0.1, "big": u64::MAX, "neg": -3,
            "nested": [null, "é \" \n", {"deep": [true, 1.5e300]}]}),
        );
        sent.node_id = Some("node".into());
        sent.level = "warn".into();
        hub.debug(&Arc::new(sent.clone()));
        assert_eq!(hub.recent("a"), vec![sent]);
        // A flow id that is a prefix of another's is not that flow.
        assert!(hub.recent("").is_empty());
        hub.debug(&Arc::new(message("ab", 8, json!(1))));
        assert_eq!(hub.recent("a").len(), 1);
    }

    #[test]
    fn live_subscribers_get_messages_and_forget_drops_a_flow() {
        let hub = DebugHub::default();
        let mut live = hub.subscribe("a");
        let sent = Arc::new(message("a", 1, json!(1)));
        hub.debug(&sent);
        hub.debug(&Arc::new(message("b", 2, json!(2))));
        let streamed = live.try_recv().expect("a live message");
        assert_eq!(streamed.message, "m1");
        // Streamed as the run's own message, not a copy; kept as the same message.
        assert!(Arc::ptr_eq(&streamed, &sent));
        assert_eq!(hub.recent("a"), vec![DebugMessage::clone(&sent)]);
        assert!(live.try_recv().is_err(), "only its own flow's messages");
        hub.forget("a");
        assert!(hub.recent("a").is_empty());
        assert_eq!(hub.recent("b").len(), 1);
        let state = hub.state();
        assert_eq!(state.retained_bytes, state.retained[0].size());
        assert!(!state.live.contains_key("a"));
    }
}
