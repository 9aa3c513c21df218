//! Leases: a role that one node of the cluster holds at a time (listening to Redis channels,
//! which have no shared subscriptions, so every listening node would start the same runs).
//!
//! A lease is a subject of the cluster's stream `FLOWD_<cluster>_LEASES`, which keeps one
//! message per subject and drops messages `ttl` after they were written — a key-value entry
//! with an expiry, written with JetStream's compare-and-set (`Nats-Expected-Last-Subject-Sequence`).
//! (JetStream's own key-value API would do the same, but its client asks the server for
//! account details this machine's NATS 2.9 answers in a shape the client cannot read.)
//! The holder rewrites its entry every `ttl / 3`, expecting its own last write; the others try
//! to write expecting none, which succeeds once the holder has stopped and its entry expired.
//! A holder whose rewrite fails gives the role up at once, before its entry can expire, so two
//! nodes never hold it together. A node that stops cleanly releases its roles ([`Lease::release`]),
//! so another takes over at its next try instead of after the expiry.

use crate::{NatsCluster, NatsError};
use async_nats::jetstream::{self, context::Publish, stream};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// A node's part in competing for a role.
pub struct Lease {
    /// Whether this node holds the role now.
    pub held: watch::Receiver<bool>,
    stop: oneshot::Sender<oneshot::Sender<()>>,
}

impl Lease {
    /// Stops competing and, when this node holds the role, gives it up at once.
    pub async fn release(self) {
        let (done, released) = oneshot::channel();
        if self.stop.send(done).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), released).await;
        }
    }
}

/// The name of a cluster's lease stream.
pub(crate) fn stream_name(cluster: &str) -> String {
    format!("FLOWD_{cluster}_LEASES")
}

impl NatsCluster {
    /// Competes for `role` from now on, until the lease is released (the role given up at once)
    /// or dropped (renewals stop; the role passes on when the entry expires).
    pub async fn lease(&self, role: &str, ttl: Duration) -> Result<Lease, NatsError> {
        let jetstream = jetstream::new(self.client.clone());
        let name = stream_name(&self.cluster);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![self.subject("lease.*")],
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let stream = match jetstream.get_stream(&name).await {
            Ok(stream) => stream,
            Err(_) => jetstream
                .create_stream(config)
                .await
                .map_err(|e| NatsError::JetStream {
                    cluster: self.cluster.clone(),
                    reason: format!("creating stream {name}: {e}"),
                })?,
        };
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<()>>();
        let (held, holding) = watch::channel(false);
        let subject = self.subject(&format!("lease.{role}"));
        let (role, me) = (role.to_owned(), self.node_id.clone());
        tokio::spawn(async move {
            // The sequence of this node's last write while it holds the role.
            let mut holding_at: Option<u64> = None;
            loop {
                let write = Publish::build()
                    .payload(me.clone().into())
                    .expected_last_subject_sequence(holding_at.unwrap_or(0));
                holding_at = match jetstream.send_publish(subject.clone(), write).await {
                    Ok(ack) => ack.await.ok().map(|ack| ack.sequence),
                    Err(_) => None,
                };
                let now_held = holding_at.is_some();
                if *held.borrow() != now_held {
                    tracing::info!(role, held = now_held, "cluster lease changed hands");
                    held.send_replace(now_held);
                }
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    // Released: the entry goes now. Dropped: renewals stop and the entry
                    // expires, as when the node dies.
                    asked = &mut stopped => {
                        if let Ok(done) = asked {
                            if holding_at.is_some() {
                                held.send_replace(false);
                                if let Err(e) = stream.purge().filter(subject.clone()).await {
                                    tracing::warn!(role, error = %e, "a lease could not be released; it expires instead");
                                }
                            }
                            let _ = done.send(());
                        }
                        return;
                    }
                }
            }
        });
        Ok(Lease {
            held: holding,
            stop,
        })
    }
}
