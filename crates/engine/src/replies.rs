//! Pending webhook replies: a request to a webhook that waits for a reply parks here under its
//! reply id (`<webhookId>.<requestId>`, the run's `data.replyId`) until a Webhook Reply node
//! answers it, its wait runs out, or the request goes away. The first reply wins; later ones
//! find nothing to answer.
//!
//! Waits run out by a sweep rather than a timer per request (arming and cancelling one was
//! ~1.5 % of a request): while anything waits, one task looks every [`SWEEP_EVERY`] and drops
//! what is past its deadline, which ends the request's wait with nothing.
//!
//! In a cluster the run may go to another node than the one holding the request: a reply with
//! no request waiting here is handed to the [`ReplyRelay`], which carries it to the other nodes
//! ([`Replies::deliver`] on each).

use flowd_model::id::IdMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Largest reply body (Losant's limit).
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// How often waiting requests are checked against their deadline: a wait ends at most this
/// much after it should.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// What a Webhook Reply node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

struct Pending {
    application_id: String,
    answer: oneshot::Sender<WebhookReply>,
    deadline: Instant,
}

/// What [`Replies::take`] found under a reply id.
enum Taken {
    Answer(oneshot::Sender<WebhookReply>),
    OtherApplication,
    NotHere,
}

/// Carries replies to the other nodes of a cluster.
pub trait ReplyRelay: Send + Sync {
    /// Sends a reply whose request does not wait on this node; the node where it waits
    /// delivers it, the others drop it.
    fn forward(&self, application_id: &str, reply_id: &str, reply: WebhookReply);
}

#[derive(Default)]
pub struct Replies {
    pending: Mutex<IdMap<Pending>>,
    relay: OnceLock<Arc<dyn ReplyRelay>>,
    /// Whether the sweeping task runs (one at most; it ends when nothing waits).
    sweeping: AtomicBool,
}

/// Removes a pending reply when the waiting request ends, however it ends.
pub struct ReplyGuard<'a> {
    replies: &'a Replies,
    reply_id: String,
}

impl Drop for ReplyGuard<'_> {
    fn drop(&mut self) {
        self.replies.lock().remove(&self.reply_id);
    }
}

impl Replies {
    pub fn new() -> Replies {
        Replies::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a request under `reply_id` for at most `wait`: the receiver gets the first reply,
    /// or an error once the wait has run out (give or take [`SWEEP_EVERY`]); the guard removes
    /// the entry when dropped. Outside a Tokio runtime nothing sweeps: the wait is the caller's.
    pub fn open(
        self: &Arc<Self>,
        application_id: &str,
        reply_id: &str,
        wait: Duration,
    ) -> (oneshot::Receiver<WebhookReply>, ReplyGuard<'_>) {
        let (answer, receiver) = oneshot::channel();
        self.lock().insert(
            reply_id.to_owned(),
            Pending {
                application_id: application_id.to_owned(),
                answer,
                deadline: crate::services::deadline_after(wait),
            },
        );
        // After the insert: a sweeper that saw nothing waiting has cleared the flag by now
        // (under the lock), so this request gets a new one; one still running sees the entry.
        if !self.sweeping.load(Ordering::Acquire) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                if !self.sweeping.swap(true, Ordering::AcqRel) {
                    runtime.spawn(sweep(Arc::downgrade(self)));
                }
            }
        }
        (
            receiver,
            ReplyGuard {
                replies: self,
                reply_id: reply_id.to_owned(),
            },
        )
    }

    /// Drops the requests whose wait ran out by `now`; how many waits are left.
    fn expire(&self, now: Instant) -> usize {
        let mut pending = self.lock();
        pending.retain(|_, p| p.deadline > now);
        if pending.is_empty() {
            self.sweeping.store(false, Ordering::Release);
        }
        pending.len()
    }

    /// Set once when other nodes share the run queue.
    pub fn set_relay(&self, relay: Arc<dyn ReplyRelay>) {
        let _ = self.relay.set(relay);
    }

    /// Answers a pending request of `application_id`: here when it waits here, else through
    /// the relay (true then means "sent on", not "answered").
    pub fn send(&self, application_id: &str, reply_id: &str, reply: WebhookReply) -> bool {
        match self.take(application_id, reply_id) {
            Taken::Answer(answer) => return answer.send(reply).is_ok(),
            Taken::OtherApplication => return false,
            Taken::NotHere => {}
        }
        match self.relay.get() {
            Some(relay) => {
                relay.forward(application_id, reply_id, reply);
                true
            }
            None => false,
        }
    }

    /// Answers a request waiting on this node; false when there is none (already answered,
    /// timed out, another application's, or never waiting here).
    pub fn deliver(&self, application_id: &str, reply_id: &str, reply: WebhookReply) -> bool {
        match self.take(application_id, reply_id) {
            Taken::Answer(answer) => answer.send(reply).is_ok(),
            _ => false,
        }
    }

    /// Removes the request waiting under `reply_id` when it is `application_id`'s: one lookup
    /// in the common case (another application's is put back).
    fn take(&self, application_id: &str, reply_id: &str) -> Taken {
        let mut pending = self.lock();
        match pending.remove_entry(reply_id) {
            None => Taken::NotHere,
            Some((_, p)) if p.application_id == application_id => Taken::Answer(p.answer),
            Some((id, p)) => {
                pending.insert(id, p);
                Taken::OtherApplication
            }
        }
    }

    /// Whether a request still waits under `reply_id` on this node.
    pub fn is_pending(&self, reply_id: &str) -> bool {
        self.lock().contains_key(reply_id)
    }

    /// Whether a request may still wait under `reply_id`: here, or — in a cluster — on a node
    /// this one cannot see.
    pub fn may_be_pending(&self, reply_id: &str) -> bool {
        self.relay.get().is_some() || self.is_pending(reply_id)
    }

    /// How many requests wait (for tests and leak checks).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}

/// The sweeping task: ends when nothing waits (the next request starts another) or the
/// replies are gone.
async fn sweep(replies: Weak<Replies>) {
    // Cleared on any other end too (the runtime shutting down, a panic), so that the next
    // request starts a sweeper rather than trusting one that is gone.
    struct Running {
        replies: Weak<Replies>,
        done: bool,
    }
    impl Drop for Running {
        fn drop(&mut self) {
            if let (false, Some(replies)) = (self.done, self.replies.upgrade()) {
                replies.sweeping.store(false, Ordering::Release);
            }
        }
    }
    let mut running = Running {
        replies: replies.clone(),
        done: false,
    };
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(replies) = replies.upgrade() else {
            return;
        };
        if replies.expire(Instant::now()) == 0 {
            // `expire` cleared the flag under the lock; a new sweeper may already run.
            running.done = true;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn reply(status: u16) -> WebhookReply {
        WebhookReply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_first_reply_wins_and_only_for_its_application() {
        let replies = Arc::new(Replies::new());
        let (receiver, guard) = replies.open("app", "hook.1", LONG);
        assert!(replies.is_pending("hook.1"));
        assert!(!replies.send("other-app", "hook.1", reply(500)));
        assert!(replies.send("app", "hook.1", reply(201)));
        assert!(!replies.send("app", "hook.1", reply(202)));
        assert_eq!(receiver.await.unwrap().status, 201);
        drop(guard);
        assert_eq!(replies.waiting(), 0);
    }

    #[test]
    fn replies_for_requests_waiting_elsewhere_go_to_the_relay() {
        #[derive(Default)]
        struct Carried(Mutex<Vec<(String, String, u16)>>);
        impl ReplyRelay for Carried {
            fn forward(&self, application_id: &str, reply_id: &str, reply: WebhookReply) {
                self.0.lock().unwrap().push((
                    application_id.to_owned(),
                    reply_id.to_owned(),
                    reply.status,
                ));
            }
        }
        let replies = Arc::new(Replies::new());
        assert!(!replies.may_be_pending("hook.3"));
        let carried = Arc::new(Carried::default());
        replies.set_relay(carried.clone());
        let (_receiver, _guard) = replies.open("app", "hook.here", LONG);
        assert!(replies.send("app", "hook.here", reply(200)));
        assert!(replies.send("app", "hook.elsewhere", reply(201)));
        assert!(replies.may_be_pending("hook.elsewhere"));
        assert_eq!(
            *carried.0.lock().unwrap(),
            vec![("app".to_owned(), "hook.elsewhere".to_owned(), 201)]
        );
        // Delivered from another node: only a request waiting here is answered.
        assert!(!replies.deliver("app", "hook.elsewhere", reply(202)));
    }

    #[tokio::test]
    async fn a_wait_too_long_to_add_to_the_clock_never_runs_out() {
        let replies = Arc::new(Replies::new());
        let (_answer, _guard) = replies.open("app", "hook.forever", Duration::MAX);
        assert_eq!(replies.expire(Instant::now() + SWEEP_EVERY), 1);
        assert!(replies.send("app", "hook.forever", reply(200)));
    }

    #[test]
    fn a_request_that_goes_away_leaves_nothing() {
        let replies = Arc::new(Replies::new());
        {
            let _parked = replies.open("app", "hook.2", LONG);
            assert_eq!(replies.waiting(), 1);
        }
        assert_eq!(replies.waiting(), 0);
        assert!(!replies.send("app", "hook.2", reply(200)));
    }

    #[tokio::test]
    async fn a_wait_runs_out_by_the_sweep_and_the_sweeper_stops_when_nothing_waits() {
        let replies = Arc::new(Replies::new());
        let began = Instant::now();
        let (short, _short_guard) = replies.open("app", "hook.short", Duration::from_millis(50));
        let (_long, _long_guard) = replies.open("app", "hook.long", LONG);
        assert!(short.await.is_err(), "the wait ran out: no reply");
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(
            waited < Duration::from_millis(50) + SWEEP_EVERY * 3,
            "{waited:?}"
        );
        // The other request still waits, and can still be answered.
        assert!(replies.is_pending("hook.long"));
        assert!(!replies.is_pending("hook.short"));
        assert!(replies.sweeping.load(Ordering::Acquire));
        assert!(replies.send("app", "hook.long", reply(200)));
        // Nothing waits: the sweeper ends at its next look, and a new request starts another.
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert!(!replies.sweeping.load(Ordering::Acquire));
        let (again, _guard) = replies.open("app", "hook.again", Duration::from_millis(10));
        assert!(replies.sweeping.load(Ordering::Acquire));
        assert!(again.await.is_err());
    }
}
