//! Pending webhook replies: a request to a webhook that waits for a reply parks here under its
//! reply id (`<webhookId>.<requestId>`, the run's `data.replyId`) until a Webhook Reply node
//! answers it, the wait times out, or the request goes away. The first reply wins; later ones
//! find nothing to answer.
//!
//! In a cluster the run may go to another node than the one holding the request: a reply with
//! no request waiting here is handed to the [`ReplyRelay`], which carries it to the other nodes
//! ([`Replies::deliver`] on each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;

/// Largest reply body (Losant's limit).
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

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
}

/// Carries replies to the other nodes of a cluster.
pub trait ReplyRelay: Send + Sync {
    /// Sends a reply whose request does not wait on this node; the node where it waits
    /// delivers it, the others drop it.
    fn forward(&self, application_id: &str, reply_id: &str, reply: WebhookReply);
}

#[derive(Default)]
pub struct Replies {
    pending: Mutex<HashMap<String, Pending>>,
    relay: OnceLock<Arc<dyn ReplyRelay>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a request under `reply_id`: the receiver gets the first reply; the guard removes
    /// the entry when dropped.
    pub fn open(
        &self,
        application_id: &str,
        reply_id: &str,
    ) -> (oneshot::Receiver<WebhookReply>, ReplyGuard<'_>) {
        let (answer, receiver) = oneshot::channel();
        self.lock().insert(
            reply_id.to_owned(),
            Pending {
                application_id: application_id.to_owned(),
                answer,
            },
        );
        (
            receiver,
            ReplyGuard {
                replies: self,
                reply_id: reply_id.to_owned(),
            },
        )
    }

    /// Set once when other nodes share the run queue.
    pub fn set_relay(&self, relay: Arc<dyn ReplyRelay>) {
        let _ = self.relay.set(relay);
    }

    /// Answers a pending request of `application_id`: here when it waits here, else through
    /// the relay (true then means "sent on", not "answered").
    pub fn send(&self, application_id: &str, reply_id: &str, reply: WebhookReply) -> bool {
        if self.is_pending(reply_id) {
            return self.deliver(application_id, reply_id, reply);
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
        let mut pending = self.lock();
        match pending.get(reply_id) {
            Some(p) if p.application_id == application_id => {}
            _ => return false,
        }
        match pending.remove(reply_id) {
            Some(p) => p.answer.send(reply).is_ok(),
            None => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16) -> WebhookReply {
        WebhookReply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_first_reply_wins_and_only_for_its_application() {
        let replies = Replies::new();
        let (receiver, guard) = replies.open("app", "hook.1");
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
        let replies = Replies::new();
        assert!(!replies.may_be_pending("hook.3"));
        let carried = Arc::new(Carried::default());
        replies.set_relay(carried.clone());
        let (_receiver, _guard) = replies.open("app", "hook.here");
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

    #[test]
    fn a_request_that_goes_away_leaves_nothing() {
        let replies = Replies::new();
        {
            let _parked = replies.open("app", "hook.2");
            assert_eq!(replies.waiting(), 1);
        }
        assert_eq!(replies.waiting(), 0);
        assert!(!replies.send("app", "hook.2", reply(200)));
    }
}
