//! Pending webhook replies: a request to a webhook that waits for a reply parks here under its
//! reply id (`<webhookId>.<requestId>`, the run's `data.replyId`) until a Webhook Reply node
//! answers it, the wait times out, or the request goes away. The first reply wins; later ones
//! find nothing to answer.

use std::collections::HashMap;
use std::sync::Mutex;
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

#[derive(Default)]
pub struct Replies {
    pending: Mutex<HashMap<String, Pending>>,
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

    /// Answers a pending request of `application_id`; false when there is none (already
    /// answered, timed out, another application's, or never waiting).
    pub fn send(&self, application_id: &str, reply_id: &str, reply: WebhookReply) -> bool {
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

    /// Whether a request still waits under `reply_id`.
    pub fn is_pending(&self, reply_id: &str) -> bool {
        self.lock().contains_key(reply_id)
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
