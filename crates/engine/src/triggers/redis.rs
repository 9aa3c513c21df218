//! `redis`: fires on messages published to a Redis channel (`SUBSCRIBE`) or to channels
//! matching a pattern (`PSUBSCRIBE`, when `topic` holds `*`, `?` or `[`).
//!
//! Config (all four sent by Losant's editor): `host` (required), `port` (`""` ⇒ 6379),
//! `password`, `topic` (required; a channel or a pattern like `sensor.*`). `data`:
//! `{message, pattern, channel}` — `pattern` is the subscribed topic, `channel` the one the
//! message came on. `triggerId` is the trigger's key.
//!
//! One subscription per server, password and topic is shared by every flow listening to it; it
//! reconnects on its own (1 s doubling to 60 s) and ends when the last such trigger is disarmed.

use crate::error::CompileError;
use crate::triggers::TriggerSpec;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Deserialize)]
pub(crate) struct Config {
    host: Option<String>,
    port: Option<Value>,
    password: Option<String>,
    topic: Option<String>,
}

/// A subscription: where, as whom, and to what.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Channel {
    pub host: String,
    pub port: u16,
    pub password: String,
    pub topic: String,
}

impl Channel {
    fn is_pattern(&self) -> bool {
        self.topic.contains(['*', '?', '['])
    }
}

pub fn compile(spec: &TriggerSpec<'_>) -> Result<Channel, CompileError> {
    let config: Config = spec.config()?;
    let host = config.host.unwrap_or_default().trim().to_owned();
    if host.is_empty() {
        return Err(spec.error("host is required"));
    }
    let port = match config.port {
        None | Some(Value::Null) => 6379,
        Some(Value::String(s)) if s.trim().is_empty() => 6379,
        Some(Value::String(s)) => s.trim().parse::<u16>().map_err(|_| {
            spec.error(format!(
                "port must be a number from 1 to 65535, not \"{s}\""
            ))
        })?,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| spec.error(format!("port must be a number from 1 to 65535, not {n}")))?,
        Some(other) => return Err(spec.error(format!("port must be a number, not {other}"))),
    };
    if port == 0 {
        return Err(spec.error("port must be a number from 1 to 65535, not 0"));
    }
    let topic = config.topic.unwrap_or_default().trim().to_owned();
    if topic.is_empty() {
        return Err(spec.error("topic is required (a channel, or a pattern like sensor.*)"));
    }
    Ok(Channel {
        host,
        port,
        password: config.password.unwrap_or_default(),
        topic,
    })
}

/// Listens on `channel` until aborted, handing each message's `data` to `deliver`.
pub async fn listen(channel: Channel, deliver: impl Fn(Value) + Send + Sync + 'static) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match subscribe(&channel).await {
            Ok(mut pubsub) => {
                backoff = Duration::from_secs(1);
                tracing::info!(host = %channel.host, topic = %channel.topic, "Redis trigger subscribed");
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let text: String = message
                        .get_payload::<Vec<u8>>()
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_default();
                    deliver(json!({
                        "message": text,
                        "pattern": channel.topic,
                        "channel": message.get_channel_name(),
                    }));
                }
                tracing::warn!(host = %channel.host, topic = %channel.topic, "Redis trigger subscription ended; reconnecting");
            }
            Err(e) => {
                tracing::warn!(host = %channel.host, topic = %channel.topic, error = %e, "Redis trigger cannot subscribe");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

async fn subscribe(channel: &Channel) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut settings = redis::RedisConnectionInfo::default();
    if !channel.password.is_empty() {
        settings = settings.set_password(&channel.password);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        channel.host.clone(),
        channel.port,
    ))?
    .set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connecting timed out")))??;
    if channel.is_pattern() {
        pubsub.psubscribe(&channel.topic).await?;
    } else {
        pubsub.subscribe(&channel.topic).await?;
    }
    Ok(pubsub)
}
