//! Scratch schemas, for tests that need a PostgreSQL store of their own in a shared database:
//! a fresh schema name, and the schema dropped when the [`ScratchSchema`] is (also when a test
//! panics). Schemas that a killed test run left behind are dropped by the next run once they
//! are an hour old (their name says when they were made).

use super::{describe_error, describe_target, parse_url, quote_identifier};
use crate::{StoreError, StoreResult};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::{Client, NoTls};

/// What every scratch schema's name starts with; then the Unix time it was made, `_`, and a
/// random id.
const PREFIX: &str = "flowd_test_";

/// Where tests find PostgreSQL: this environment variable, or [`DEFAULT_TEST_DATABASE`].
pub const TEST_DATABASE_VARIABLE: &str = "FLOWD_TEST_POSTGRES";

/// The database tests use when [`TEST_DATABASE_VARIABLE`] is not set.
pub const DEFAULT_TEST_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Scratch schemas older than this are taken to be left over from a run that died.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A schema name of its own in the database at a URL; the schema (made by whoever connects a
/// store to it) and everything in it are dropped on drop.
///
/// Dropping blocks until the schema is gone (at most about 10 s, the lock timeout). Drop it in a
/// multi-thread runtime, after the stores using it: on a current-thread runtime, connections
/// that runtime still has to close would hold their locks while it is blocked.
pub struct ScratchSchema {
    url: String,
    name: String,
}

async fn connect(url: &str) -> StoreResult<Client> {
    let config = parse_url(url)?;
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        StoreError::Backend(format!(
            "cannot connect to PostgreSQL at {}: {}",
            describe_target(&config),
            describe_error(&e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "scratch schema connection failed");
        }
    });
    Ok(client)
}

async fn drop_schema(client: &Client, name: &str) -> StoreResult<()> {
    client
        .batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            quote_identifier(name)
        ))
        .await?;
    Ok(())
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl ScratchSchema {
    /// A fresh schema name in the database at `url`. Connects once, to check that the database
    /// answers and to drop stale scratch schemas.
    pub async fn new(url: &str) -> StoreResult<ScratchSchema> {
        let client = connect(url).await?;
        let now = unix_now();
        let rows = client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
                &[&PREFIX],
            )
            .await?;
        for row in rows {
            let name: String = row.try_get(0)?;
            let made = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            let stale = made
                .is_some_and(|secs| now.saturating_sub(Duration::from_secs(secs)) > STALE_AFTER);
            if stale {
                drop_schema(&client, &name).await?;
                tracing::info!(schema = %name, "dropped a stale scratch schema");
            }
        }
        Ok(ScratchSchema {
            url: url.to_owned(),
            name: format!("{PREFIX}{}_{}", now.as_secs(), flowd_model::id::new_id()),
        })
    }

    /// A scratch schema in the tests' database (see [`TEST_DATABASE_VARIABLE`]). Panics, saying
    /// where it looked, when that database does not answer: tests that need PostgreSQL fail
    /// without it rather than skip.
    pub async fn for_tests() -> ScratchSchema {
        let url = Self::test_database();
        ScratchSchema::new(&url).await.unwrap_or_else(|e| {
            panic!(
                "this test needs PostgreSQL at {url} (set {TEST_DATABASE_VARIABLE} to another \
                 URL): {e}"
            )
        })
    }

    /// The URL of the tests' database.
    pub fn test_database() -> String {
        std::env::var(TEST_DATABASE_VARIABLE).unwrap_or_else(|_| DEFAULT_TEST_DATABASE.into())
    }

    /// The schema's name (a lowercase identifier).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL with `options=-c search_path=<name>` added: connecting a store with it puts its
    /// tables in this schema.
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }
}

impl Drop for ScratchSchema {
    /// Drops the schema on a connection of its own, from a thread of its own (this may run
    /// inside an async runtime, which cannot be blocked on).
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> StoreResult<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            runtime.block_on(async {
                let client = connect(&url).await?;
                drop_schema(&client, &name).await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the scratch schema {}: {e}", self.name),
            Err(_) => eprintln!("could not drop the scratch schema {}", self.name),
        }
    }
}
