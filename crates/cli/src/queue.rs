//! Which run queue flowd uses (`--queue`, `FLOWD_QUEUE`, `queue =` in the config file): the
//! in-process queue (the default, `local`), or a NATS JetStream server shared by several flowd
//! nodes (`nats://host:port`, with `?cluster=NAME` to keep several clusters apart on one server).

use crate::config::ConfigError;
use crate::store::StoreLocation;

/// Where runs wait for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueueLocation {
    /// In this process's memory.
    #[default]
    Local,
    /// A NATS server's JetStream, shared with the other nodes of the cluster.
    Nats(String),
}

impl QueueLocation {
    /// `None` and `local` are the in-process queue; a `nats://` or `tls://` URL is NATS. A
    /// shared queue needs a shared store: nodes on SQLite files of their own would run each
    /// other's jobs against data they do not have.
    pub fn parse(value: Option<&str>, store: &StoreLocation) -> Result<QueueLocation, ConfigError> {
        let queue = match value.map(str::trim) {
            None | Some("local") => QueueLocation::Local,
            Some(url) if url.starts_with("nats://") || url.starts_with("tls://") => {
                QueueLocation::Nats(url.to_owned())
            }
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "queue must be local or a NATS URL (nats://host:port), not {other:?}"
                )))
            }
        };
        if queue != QueueLocation::Local && *store == StoreLocation::Sqlite {
            return Err(ConfigError::Invalid(
                "a NATS queue is shared by several nodes, which need a shared store: give \
                 --store postgres://… as well"
                    .into(),
            ));
        }
        Ok(queue)
    }

    /// What to say in logs and readiness answers.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueLocation::Local => "local",
            QueueLocation::Nats(_) => "nats",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_nats_queues_are_accepted_on_a_shared_store() {
        let postgres = StoreLocation::Postgres("postgres://db/flowd".into());
        assert_eq!(
            QueueLocation::parse(None, &StoreLocation::Sqlite).unwrap(),
            QueueLocation::Local
        );
        assert_eq!(
            QueueLocation::parse(Some("local"), &postgres).unwrap(),
            QueueLocation::Local
        );
        assert_eq!(
            QueueLocation::parse(Some("nats://127.0.0.1:4222?cluster=a"), &postgres).unwrap(),
            QueueLocation::Nats("nats://127.0.0.1:4222?cluster=a".into())
        );
        let wrong = QueueLocation::parse(Some("amqp://x"), &postgres).unwrap_err();
        assert!(wrong.to_string().contains("amqp://x"), "{wrong}");
        let alone = QueueLocation::parse(Some("nats://x:4222"), &StoreLocation::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(alone.contains("--store postgres"), "{alone}");
    }
}
