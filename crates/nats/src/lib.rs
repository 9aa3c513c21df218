//! # flowd-nats
//!
//! What lets several flowd nodes act as one engine, on NATS (an existing engine; flowd adds no
//! cluster protocol of its own):
//!
//! * [`queue`] — the shared run queue: a JetStream work-queue stream. A press or a webhook
//!   request is acknowledged once the stream holds its job; any node's workers take jobs, and a
//!   job is acknowledged only when its run ends, so a node that dies mid-run loses nothing (the
//!   job is delivered again after the ack wait). Timer ticks carry an idempotency key that
//!   JetStream's duplicate window turns into one job per tick, however many nodes submit it.
//! * [`changes`] — the change feed: a core NATS subject on which each node announces what it
//!   changed, so the others refresh what they keep in memory.
//! * [`replies`] — webhook replies produced on another node than the one holding the request.
//! * [`debug`] — Debug output of runs made on other nodes, for debug panels open on this one.
//! * [`lease`] — roles one node holds at a time (listening to Redis channels).
//!
//! Everything of one cluster lives under a name (`?cluster=NAME` in the URL, `flowd` by
//! default), so that several clusters — or tests — share one NATS server apart.

pub mod changes;
pub mod debug;
pub mod lease;
mod peers;
pub mod queue;
pub mod replies;

use std::time::Duration;

/// Why the cluster's NATS side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("invalid NATS URL \"{url}\": {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot set up JetStream for cluster \"{cluster}\": {reason}")]
    JetStream { cluster: String, reason: String },
}

/// A connection to the cluster's NATS server.
#[derive(Clone)]
pub struct NatsCluster {
    client: async_nats::Client,
    cluster: String,
    /// This node's name in the change feed (so it ignores its own announcements).
    node_id: String,
    /// Counts the connections made to NATS and the messages it dropped for this node: each
    /// is a moment after which this node may have missed what other nodes sent.
    gaps: tokio::sync::watch::Receiver<u64>,
}

/// The longest cluster name taken (it becomes part of subject and stream names).
const MAX_CLUSTER_NAME: usize = 64;

/// Splits `nats://host:port?cluster=NAME` into the server address and the cluster name.
fn parse_url(url: &str) -> Result<(String, String), NatsError> {
    let bad = |reason: &str| NatsError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !(url.starts_with("nats://") || url.starts_with("tls://")) {
        return Err(bad("it must start with nats:// or tls://"));
    }
    let (server, query) = match url.split_once('?') {
        Some((server, query)) => (server, Some(query)),
        None => (url, None),
    };
    let mut cluster = "flowd".to_owned();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("cluster", name)) => cluster = name.to_owned(),
            _ => {
                return Err(bad(&format!(
                    "unknown parameter \"{pair}\" (only cluster=NAME)"
                )))
            }
        }
    }
    let valid = !cluster.is_empty()
        && cluster.len() <= MAX_CLUSTER_NAME
        && cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(bad(
            "the cluster name must be 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    Ok((server.to_owned(), cluster))
}

impl NatsCluster {
    /// Connects to the server in `url` (`nats://host:port`, optionally `?cluster=NAME`).
    pub async fn connect(url: &str) -> Result<NatsCluster, NatsError> {
        let (server, cluster) = parse_url(url)?;
        let node_id = flowd_model::id::new_id();
        let (gap, gaps) = tokio::sync::watch::channel(0u64);
        let gap = std::sync::Arc::new(gap);
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                let gap = gap.clone();
                async move {
                    if matches!(
                        event,
                        async_nats::Event::Connected | async_nats::Event::SlowConsumer(_)
                    ) {
                        gap.send_modify(|n| *n += 1);
                    }
                }
            })
            .name(format!("flowd {cluster} {node_id}"))
            .connection_timeout(Duration::from_secs(5))
            // Keep retrying in the background after a disconnect; jobs wait in the server.
            .retry_on_initial_connect()
            .connect(server.as_str())
            .await
            .map_err(|e| NatsError::Connect {
                url: server.clone(),
                reason: e.to_string(),
            })?;
        // `retry_on_initial_connect` answers before connecting: wait for the first connect,
        // so that a wrong address fails start-up instead of hanging every press.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(NatsError::Connect {
                    url: server,
                    reason: "no answer within 5 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(NatsCluster {
            client,
            cluster,
            node_id,
            gaps,
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.cluster
    }

    /// This node's id in the cluster (random, new at every start).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Changes after every (re)connection to NATS and every message NATS dropped for this node:
    /// the moments after which it must read what it keeps in memory again, since the other
    /// nodes' announcements (core NATS, kept nowhere) may have passed it by.
    pub fn gaps(&self) -> tokio::sync::watch::Receiver<u64> {
        self.gaps.clone()
    }

    /// Whether the connection to NATS is up now (for readiness checks).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Deletes the cluster's streams — the run queue with every job still in it, and the
    /// leases — for tests, and for retiring a cluster; the next node to start makes them
    /// afresh. A stream that does not exist is not an error.
    pub async fn delete_streams(&self) -> Result<(), NatsError> {
        let jetstream = async_nats::jetstream::new(self.client.clone());
        for name in [
            queue::stream_name(&self.cluster),
            lease::stream_name(&self.cluster),
        ] {
            if jetstream.get_stream(&name).await.is_err() {
                continue;
            }
            jetstream
                .delete_stream(&name)
                .await
                .map_err(|e| NatsError::JetStream {
                    cluster: self.cluster.clone(),
                    reason: format!("deleting stream {name}: {e}"),
                })?;
        }
        Ok(())
    }

    /// A subject of this cluster: `flowd.<cluster>.<rest>`.
    fn subject(&self, rest: &str) -> String {
        format!("flowd.{}.{rest}", self.cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_and_a_cluster() {
        assert_eq!(
            parse_url("nats://127.0.0.1:4222").unwrap(),
            ("nats://127.0.0.1:4222".into(), "flowd".into())
        );
        assert_eq!(
            parse_url("nats://127.0.0.1:4222?cluster=test_1").unwrap(),
            ("nats://127.0.0.1:4222".into(), "test_1".into())
        );
        for bad in [
            "http://127.0.0.1:4222",
            "nats://h?cluster=",
            "nats://h?cluster=a.b",
            "nats://h?cluster=a*",
            "nats://h?stream=x",
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
