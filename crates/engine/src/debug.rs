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
//! Messages are kept written out as JSON, one allocation each: kept as value trees, a busy
//! server's last 2,000 payloads were cold memory by the time they were evicted, and freeing them
//! (and the next runs reusing their blocks) cost a fifth of a press. But writing every message
//! out cost 5 % of a press, mostly for a busy flow's output that no stream could ever show (only
//! a flow's newest [`DEBUG_RING`] are). So the newest [`FRESH`] messages of all flows are
//! tracked: a message of a flow that has none among them is written out at once; one of a flow
//! that has is held as the run made it, and when pushed out of the fresh ones it is written out
//! only if its flow has fewer than [`DEBUG_RING`] newer ones — otherwise dropped unwritten. A
//! busy flow's output is thus seldom written out, and a quiet flow's is written while warm.

use crate::observer::{DebugMessage, RunObserver};
use flowd_model::id::IdMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// Most recent messages one flow's debug stream starts with.
pub const DEBUG_RING: usize = 100;
/// Messages kept, all flows together.
pub const DEBUG_RETAINED: usize = 2_000;
/// Bytes of messages kept (as JSON), all flows together (the newest message is kept whatever its
/// size).
pub const DEBUG_RETAINED_BYTES: usize = 16 * 1024 * 1024;
/// Newest messages kept as they are, before they are written out or dropped: as many as one
/// flow's stream starts with, so that a message with this many newer ones of its flow here is
/// one no stream can show.
const FRESH: usize = DEBUG_RING;
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

/// One of the newest messages: held as the run made it (with its estimated JSON size), or
/// already written out (its flow's id kept for the count).
enum Fresh {
    Held {
        message: Arc<DebugMessage>,
        size: usize,
    },
    Written {
        flow_id: String,
    },
}

impl Fresh {
    fn flow_id(&self) -> &str {
        match self {
            Fresh::Held { message, .. } => &message.flow_id,
            Fresh::Written { flow_id } => flow_id,
        }
    }

    /// A held message and its estimated JSON size; nothing for one already written out.
    fn held(&self) -> Option<(&Arc<DebugMessage>, usize)> {
        match self {
            Fresh::Held { message, size } => Some((message, *size)),
            Fresh::Written { .. } => None,
        }
    }
}

#[derive(Default)]
struct HubState {
    /// The newest messages, oldest first.
    fresh: VecDeque<Fresh>,
    /// How many of `fresh` are held, and their estimated JSON size.
    held: usize,
    held_bytes: usize,
    /// How many of `fresh` each flow has.
    fresh_per_flow: IdMap<usize>,
    /// Older messages of every flow, written out, oldest first.
    retained: VecDeque<Retained>,
    retained_bytes: usize,
    /// Channels of flows someone watches; made on subscribe, dropped when the last watcher has
    /// gone (a broadcast channel holds its whole backlog of slots).
    live: IdMap<broadcast::Sender<Arc<DebugMessage>>>,
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
            .fresh
            .iter()
            .rev()
            .filter_map(|fresh| fresh.held().map(|(message, _)| message))
            .filter(|message| message.flow_id == flow_id)
            .take(DEBUG_RING)
            .map(|message| DebugMessage::clone(message))
            .collect();
        let older = DEBUG_RING - found.len();
        found.extend(
            state
                .retained
                .iter()
                .rev()
                .filter(|message| message.is_of(flow_id))
                .take(older)
                .filter_map(Retained::message),
        );
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
        let state = &mut *state;
        state.live.remove(flow_id);
        state.fresh_per_flow.remove(flow_id);
        let (mut gone, mut gone_bytes) = (0, 0);
        state.fresh.retain(|fresh| {
            let keep = fresh.flow_id() != flow_id;
            if let (false, Some((_, size))) = (keep, fresh.held()) {
                gone += 1;
                gone_bytes += size;
            }
            keep
        });
        state.held -= gone;
        state.held_bytes -= gone_bytes;
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
    /// Keeps the message, and hands it to live subscribers.
    fn keep(&self, message: &Arc<DebugMessage>) {
        let mut state = self.state();
        let state = &mut *state;
        let quiet = match state.fresh_per_flow.get_mut(&message.flow_id) {
            Some(count) => {
                *count += 1;
                false
            }
            None => {
                state.fresh_per_flow.insert(message.flow_id.clone(), 1);
                true
            }
        };
        if quiet {
            state.write_out(message);
            state.fresh.push_back(Fresh::Written {
                flow_id: message.flow_id.clone(),
            });
        } else {
            let size = estimated_size(message);
            state.held += 1;
            state.held_bytes += size;
            state.fresh.push_back(Fresh::Held {
                message: Arc::clone(message),
                size,
            });
        }
        // Out of the fresh ones: written out, or dropped if no stream could show it.
        while state.fresh.len() > FRESH
            || (state.held_bytes > DEBUG_RETAINED_BYTES / 4 && state.held > 1)
        {
            let Some(oldest) = state.fresh.pop_front() else {
                break;
            };
            let newer = match state.fresh_per_flow.get_mut(oldest.flow_id()) {
                Some(count) => {
                    *count -= 1;
                    *count
                }
                None => 0,
            };
            if newer == 0 {
                state.fresh_per_flow.remove(oldest.flow_id());
            }
            if let Fresh::Held { message, size } = oldest {
                state.held -= 1;
                state.held_bytes -= size;
                if newer < DEBUG_RING {
                    state.write_out(&message);
                }
            }
        }
        // Both together stay within the bounds; the written-out messages go first.
        while !state.retained.is_empty()
            && (state.retained.len() + state.held > DEBUG_RETAINED
                || state.retained_bytes + state.held_bytes > DEBUG_RETAINED_BYTES)
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

impl HubState {
    fn write_out(&mut self, message: &DebugMessage) {
        if let Some(retained) = Retained::new(message) {
            self.retained_bytes += retained.size();
            self.retained.push_back(retained);
        }
    }
}

/// About how long a message is as JSON, without writing it out (escapes not counted): what the
/// fresh tier counts toward the byte bound.
fn estimated_size(message: &DebugMessage) -> usize {
    /// The field names, punctuation and time of a message.
    const FRAME: usize = 120;
    FRAME
        + message.flow_id.len()
        + message.run_id.len()
        + message.version.len()
        + message.node_id.as_ref().map_or(0, String::len)
        + message.level.len()
        + message.message.len()
        + estimated_value_size(&message.value)
}

fn estimated_value_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) => 5,
        // Most numbers are short; a long one is at most 24 characters.
        Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => {
            2 + items
                .iter()
                .map(|v| estimated_value_size(v) + 1)
                .sum::<usize>()
        }
        Value::Object(fields) => {
            2 + fields
                .iter()
                .map(|(key, v)| key.len() + 4 + estimated_value_size(v))
                .sum::<usize>()
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
        // A flow with nothing among the newest messages is written out at once.
        assert_eq!(state.fresh.len(), FRESH);
        assert_eq!(state.held, 0);
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
        assert!(state.retained_bytes + state.held_bytes <= DEBUG_RETAINED_BYTES);
        assert!(state.held_bytes <= DEBUG_RETAINED_BYTES / 4);
        assert!(state.held > 0);
        let kept = state.retained.len() + state.held;
        assert!((8..20).contains(&kept), "{kept} kept");
        let counted: usize = state.retained.iter().map(Retained::size).sum();
        assert_eq!(counted, state.retained_bytes);
        let held: Vec<(&Arc<DebugMessage>, usize)> =
            state.fresh.iter().filter_map(Fresh::held).collect();
        assert_eq!(held.len(), state.held);
        let estimated: usize = held.iter().map(|(_, size)| size).sum();
        assert_eq!(estimated, state.held_bytes);
        // The estimate is close to the JSON: within the escapes and the length of numbers.
        let (first, estimate) = held[0];
        let written = Retained::new(first).map_or(0, |r| r.size());
        assert!(written.abs_diff(estimate) < 200, "{written} vs {estimate}");
    }

    #[test]
    fn a_busy_flows_output_beyond_its_ring_is_never_written_out() {
        let hub = DebugHub::default();
        hub.debug(&Arc::new(message("quiet", 0, json!(0))));
        for n in 1..=500 {
            hub.debug(&Arc::new(message("busy", n, json!(n))));
        }
        let state = hub.state();
        // Written out: the quiet flow's message and the busy flow's first (its flow had none
        // among the newest then). Every other busy one pushed out had a full ring of newer ones.
        assert_eq!(state.retained.len(), 2);
        assert!(state.retained[0].is_of("quiet"));
        assert!(state.retained[1].is_of("busy"));
        assert_eq!(state.held, FRESH);
        assert_eq!(state.fresh_per_flow.get("busy"), Some(&FRESH));
        assert!(!state.fresh_per_flow.contains_key("quiet"));
        drop(state);
        let busy = hub.recent("busy");
        assert_eq!(busy.len(), DEBUG_RING);
        assert_eq!(busy[0].message, "m401");
        assert_eq!(busy[DEBUG_RING - 1].message, "m500");
        assert_eq!(hub.recent("quiet"), vec![message("quiet", 0, json!(0))]);
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
        // The first is written out at once; the second is held, then pushed out by another
        // flow's output and written out. Both read back as they were, in order.
        hub.debug(&Arc::new(sent.clone()));
        let mut second = sent.clone();
        second.message = "second".into();
        hub.debug(&Arc::new(second.clone()));
        assert_eq!(hub.state().held, 1);
        assert_eq!(hub.recent("a"), vec![sent.clone(), second.clone()]);
        for n in 0..FRESH {
            hub.debug(&Arc::new(message("ab", n, json!(n))));
        }
        let state = hub.state();
        assert_eq!(state.retained.len(), 3, "a, a, and ab's first");
        assert_eq!(state.held, FRESH - 1);
        drop(state);
        assert_eq!(hub.recent("a"), vec![sent, second]);
        // A flow id that is a prefix of another's is not that flow.
        assert!(hub.recent("").is_empty());
        for n in 0..FRESH {
            hub.debug(&Arc::new(message("b", n, json!(n))));
        }
        assert_eq!(hub.recent("a").len(), 2);
        assert_eq!(hub.recent("ab").len(), FRESH);
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
        assert_eq!(state.fresh.len(), 1);
        assert!(!state.fresh_per_flow.contains_key("a"));
        assert!(!state.live.contains_key("a"));
        drop(state);
        // Forgetting reaches held messages.
        hub.debug(&Arc::new(message("c", 3, json!(3))));
        hub.debug(&Arc::new(message("c", 4, json!(4))));
        let held = hub.state().held;
        assert_eq!((held, hub.recent("c").len()), (1, 2));
        hub.forget("c");
        let state = hub.state();
        assert_eq!((state.held, state.held_bytes), (0, 0));
        assert!(!state.fresh.iter().any(|f| f.flow_id() == "c"));
        drop(state);
        assert!(hub.recent("c").is_empty());
        // Forgetting reaches the written-out tier too.
        for n in 0..2 * FRESH {
            hub.debug(&Arc::new(message(&format!("other{n}"), n, json!(n))));
        }
        assert!(hub.state().retained.iter().any(|r| r.is_of("b")));
        hub.forget("b");
        let state = hub.state();
        assert!(!state.retained.iter().any(|r| r.is_of("b")));
        let counted: usize = state.retained.iter().map(Retained::size).sum();
        assert_eq!(counted, state.retained_bytes);
    }
}
