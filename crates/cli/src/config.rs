//! Settings of `flowd serve`, layered: flags, then `FLOWD_*` variables (both through clap), then
//! the TOML file, then defaults.

use crate::queue::QueueLocation;
use crate::store::StoreLocation;
use crate::ServeArgs;
use flowd_api::Limits;
use serde::Deserialize;
use std::path::PathBuf;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./flowd-data";

/// The TOML file. Every key is optional; unknown keys are an error so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSettings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub queue: Option<String>,
    pub queue_ack_wait_secs: Option<u64>,
    pub log_format: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub storage_max_keys: Option<u64>,
    pub storage_max_bytes: Option<u64>,
    pub queue_capacity: Option<usize>,
    pub workers: Option<usize>,
    pub run_time_limit_secs: Option<u64>,
    pub delay_max_secs: Option<u64>,
    pub log_ring: Option<usize>,
    pub retention_days: Option<u64>,
    pub retention_minutes: Option<u64>,
    pub trigger_rate_limit: Option<String>,
    pub webhook_reply_timeout_secs: Option<u64>,
    pub function_workers: Option<usize>,
    pub function_time_limit_ms: Option<u64>,
    pub function_memory_mb: Option<usize>,
}

/// The resolved settings.
#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub queue: QueueLocation,
    /// How long a shared queue waits for a job's acknowledgement before another node gets it.
    pub queue_ack_wait: std::time::Duration,
    pub log_format: String,
    pub limits: Limits,
    pub engine: flowd_engine::engine::EngineConfig,
    /// `FLOWD_OWNER_TOKEN`: the owner token's value, when automation chooses it.
    pub owner_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the config file {0} is not valid: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

fn read_file(path: Option<&PathBuf>) -> Result<FileSettings, ConfigError> {
    match path {
        None => Ok(FileSettings::default()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
            toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))
        }
    }
}

/// The data dir and the store alone, for commands that only open the store.
pub fn store_only(
    data_dir: Option<PathBuf>,
    store: Option<String>,
    config: Option<PathBuf>,
) -> Result<(PathBuf, StoreLocation), ConfigError> {
    let file = read_file(config.as_ref())?;
    let data_dir = data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    Ok((
        data_dir,
        StoreLocation::parse(store.or(file.store).as_deref())?,
    ))
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> Result<Settings, ConfigError> {
        let file = read_file(args.config.as_ref())?;
        let store = StoreLocation::parse(args.store.or(file.store).as_deref())?;
        let queue = QueueLocation::parse(args.queue.or(file.queue).as_deref(), &store)?;
        let queue_ack_wait = match file.queue_ack_wait_secs {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "queue-ack-wait-secs must be at least 1".into(),
                ))
            }
            Some(secs) => std::time::Duration::from_secs(secs),
            None => flowd_nats::queue::QueueSettings::default().ack_wait,
        };
        let log_format = args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "pretty".into());
        if log_format != "pretty" && log_format != "json" {
            return Err(ConfigError::Invalid(format!(
                "log-format must be pretty or json, not {log_format}"
            )));
        }
        let defaults = Limits::default();
        let owner_token = std::env::var("FLOWD_OWNER_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        if owner_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "FLOWD_OWNER_TOKEN must be at least 16 characters".into(),
            ));
        }
        let storage = flowd_store::StorageCaps {
            max_keys: file.storage_max_keys.unwrap_or(defaults.storage.max_keys),
            max_bytes: file.storage_max_bytes.unwrap_or(defaults.storage.max_bytes),
        };
        let engine_defaults = flowd_engine::engine::EngineConfig::default();
        let retention = match (file.retention_days, file.retention_minutes) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "set retention-days or retention-minutes, not both".into(),
                ))
            }
            (Some(0), None) => {
                return Err(ConfigError::Invalid(
                    "retention-days must be at least 1".into(),
                ))
            }
            (None, Some(0)) => {
                return Err(ConfigError::Invalid(
                    "retention-minutes must be at least 1".into(),
                ))
            }
            (Some(days), None) => std::time::Duration::from_secs(days.saturating_mul(86_400)),
            (None, Some(minutes)) => std::time::Duration::from_secs(minutes.saturating_mul(60)),
            (None, None) => engine_defaults.retention,
        };
        let run_time = match file.run_time_limit_secs {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "run-time-limit-secs must be at least 1".into(),
                ))
            }
            Some(secs) => std::time::Duration::from_secs(secs),
            None => engine_defaults.limits.run_time,
        };
        let trigger_rate_limit = file
            .trigger_rate_limit
            .as_deref()
            .map(flowd_engine::rate_limit::RateLimit::parse)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("trigger-rate-limit: {e}")))?;
        let engine = flowd_engine::engine::EngineConfig {
            trigger_rate_limit,
            queue_capacity: file
                .queue_capacity
                .unwrap_or(engine_defaults.queue_capacity)
                .max(1),
            workers: file.workers.unwrap_or(engine_defaults.workers).max(1),
            limits: flowd_engine::services::RunLimits {
                run_time,
                max_delay: file
                    .delay_max_secs
                    .map(std::time::Duration::from_secs)
                    .unwrap_or(engine_defaults.limits.max_delay),
            },
            storage_caps: storage,
            // Several nodes share the store: storage goes to it on every operation, atomically;
            // one node keeps its cache in front of it.
            storage_mode: if queue == QueueLocation::Local {
                engine_defaults.storage_mode
            } else {
                flowd_engine::storage::StorageMode::Shared
            },
            log_ring: file.log_ring.unwrap_or(engine_defaults.log_ring).max(1),
            retention,
            js_workers: file
                .function_workers
                .unwrap_or(engine_defaults.js_workers)
                .max(1),
            js_limits: flowd_engine::js::JsLimits {
                time: file
                    .function_time_limit_ms
                    .map(std::time::Duration::from_millis)
                    .unwrap_or(engine_defaults.js_limits.time),
                memory_bytes: file
                    .function_memory_mb
                    .map(|mb| mb.saturating_mul(1024 * 1024))
                    .unwrap_or(engine_defaults.js_limits.memory_bytes),
                ..engine_defaults.js_limits
            },
        };
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            store,
            queue,
            queue_ack_wait,
            log_format,
            limits: Limits {
                max_body_bytes: file.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                storage,
                retention_ms: retention.as_millis() as i64,
                webhook_reply_timeout: match file.webhook_reply_timeout_secs {
                    Some(0) => {
                        return Err(ConfigError::Invalid(
                            "webhook-reply-timeout-secs must be at least 1".into(),
                        ))
                    }
                    Some(secs) => std::time::Duration::from_secs(secs),
                    None => flowd_api::state::DEFAULT_WEBHOOK_REPLY_TIMEOUT,
                },
            },
            engine,
            owner_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\ndata-dir = \"/tmp/x\"\nstorage-max-keys = 7\n",
        )
        .unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:1".into()),
            config: Some(path),
            ..Default::default()
        };
        let settings = Settings::resolve(args).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:1");
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(settings.limits.storage.max_keys, 7);
        assert_eq!(
            settings.limits.max_body_bytes,
            flowd_api::state::DEFAULT_MAX_BODY_BYTES
        );
        assert_eq!(settings.log_format, "pretty");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(matches!(
            Settings::resolve(args),
            Err(ConfigError::Parse(..))
        ));
    }

    fn resolve_file(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.toml");
        std::fs::write(&path, text).unwrap();
        Settings::resolve(ServeArgs {
            config: Some(path),
            ..Default::default()
        })
    }

    #[test]
    fn the_store_comes_from_the_flag_or_the_file() {
        let file = resolve_file("store = \"postgres://flowd@db/flowd\"\n").unwrap();
        assert_eq!(
            file.store,
            StoreLocation::Postgres("postgres://flowd@db/flowd".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.toml");
        std::fs::write(&path, "store = \"postgres://flowd@db/flowd\"\n").unwrap();
        let flag = Settings::resolve(ServeArgs {
            config: Some(path),
            store: Some("sqlite".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flag.store, StoreLocation::Sqlite);
        assert_eq!(resolve_file("").unwrap().store, StoreLocation::Sqlite);
        assert!(matches!(
            resolve_file("store = \"redis://x\"\n"),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn retention_is_set_in_days_or_minutes() {
        let days = resolve_file("retention-days = 2\n").unwrap();
        assert_eq!(days.limits.retention_ms, 2 * 86_400_000);
        let minutes = resolve_file("retention-minutes = 5\n").unwrap();
        assert_eq!(minutes.limits.retention_ms, 5 * 60_000);
        assert_eq!(minutes.engine.retention.as_secs(), 300);
        for bad in [
            "retention-days = 1\nretention-minutes = 5\n",
            "retention-minutes = 0\n",
            "retention-days = 0\n",
        ] {
            assert!(
                matches!(resolve_file(bad), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
