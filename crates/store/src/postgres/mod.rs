//! The PostgreSQL store: the same tables and semantics as the SQLite one, in a database that
//! several flowd processes can share.
//!
//! * Connections come from a pool (deadpool), [`POOL_SIZE`] at most per process. Statements are
//!   prepared once per connection and cached. A write that is one statement runs on its own
//!   (autocommit); a write of several statements runs in one transaction. Either way the call
//!   answers only once PostgreSQL has committed.
//! * Where a write reads before it writes (storage caps, version names), it first locks the
//!   flow's row, so concurrent writers to one flow take turns, as they do on SQLite's single
//!   writer. Batches (`storage_apply`, `record_runs`) lock the rows of the flows they write
//!   `FOR KEY SHARE`: a flow cannot be deleted under a batch, and batches do not wait on each
//!   other.
//! * Tables live in the first schema of the connection's `search_path`. To keep flowd in a
//!   schema of its own, give it in the URL (`?options=-c%20search_path%3Dflowd`) or call
//!   [`PostgresStore::connect_in_schema`]; the schema is created if missing.
//! * Migrations are versioned in a `schema_version` table and applied at connect under an
//!   advisory lock, so several processes starting at once migrate once (see [`migrations`]).
//! * Maintenance: nothing like SQLite's incremental vacuum or WAL truncation is needed here.
//!   Autovacuum reclaims the rows retention deletes, and PostgreSQL manages its own WAL.
//! * Connections are plain TCP or Unix sockets (no TLS): `sslmode=require` is refused.

mod accounting;
mod applications;
mod docs;
mod flows;
mod migrations;
mod resources;
mod scratch;
mod storage;
mod tokens;
mod versions;

pub use scratch::{ScratchSchema, DEFAULT_TEST_DATABASE, TEST_DATABASE_VARIABLE};

use crate::shared::sql::ResultRow;
use crate::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use std::collections::HashSet;
use std::time::Duration;
use tokio_postgres::{Config, NoTls};

/// Connections one process keeps at most. The engine's writers are batched (one storage batch
/// and one accounting batch at a time), so most are for API reads.
const POOL_SIZE: usize = 16;

/// How long connecting may take before the store gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call may wait for a free connection.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Backend(describe_error(&e))
    }
}

/// The error with what the server said (tokio-postgres's own message is only "db error").
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {db}"),
        None => match std::error::Error::source(e) {
            Some(source) => format!("PostgreSQL: {e}: {source}"),
            None => format!("PostgreSQL: {e}"),
        },
    }
}

/// A failed insert: a broken integrity constraint (a unique id, name or hash, a missing parent)
/// is a `Conflict`, as on SQLite; anything else is the backend's.
fn insert_error(table: &str, e: tokio_postgres::Error) -> StoreError {
    let integrity = e.code().is_some_and(|code| code.code().starts_with("23"));
    if integrity {
        StoreError::Conflict(format!("{table} already exists"))
    } else {
        e.into()
    }
}

/// Locks a flow's row until the transaction ends, so that writes which read before they write
/// (caps, version names, read-modify-writes) take turns per flow. Rows referencing the flow can
/// still be inserted. Returns whether the flow exists.
async fn lock_flow(tx: &impl GenericClient, flow_id: &str) -> StoreResult<bool> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM flows WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    Ok(tx.query_opt(&statement, &[&flow_id]).await?.is_some())
}

/// Which of `flow_ids` exist, their rows locked `FOR KEY SHARE` until the transaction ends: no
/// flow can be deleted under a batch that writes to it, and batches do not block each other.
async fn existing_flows(
    tx: &impl GenericClient,
    flow_ids: &[&str],
) -> StoreResult<HashSet<String>> {
    let statement = tx
        .prepare_cached("SELECT id FROM flows WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
        .await?;
    let rows = tx.query(&statement, &[&flow_ids]).await?;
    rows.iter().map(|row| row.text(0)).collect()
}

/// The connection settings in `url`, a libpq URL (`postgres://…` or `postgresql://…`) or
/// key=value string.
fn parse_url(url: &str) -> StoreResult<Config> {
    url.parse::<Config>().map_err(|e| {
        StoreError::Backend(format!(
            "the PostgreSQL URL is not valid: {}",
            describe_error(&e)
        ))
    })
}

/// Where a configuration connects, for messages (never the password).
fn describe_target(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}:{} database {} as {}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default user)")
    )
}

/// The schema the `options` of a connection put first in `search_path`, if any: what the
/// store creates when it is missing. Options are libpq's: words separated by spaces (`\`
/// escapes), with `-c name=value` or `--name=value` settings. `$user` is left alone.
fn search_path_schema(options: Option<&str>) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = options?.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)))
            }
            c => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    let mut setting = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let assignment = match word.as_str() {
            "-c" => words.next().map(String::as_str),
            other => other
                .strip_prefix("--")
                .or_else(|| other.strip_prefix("-c")),
        };
        if let Some((name, value)) = assignment.and_then(|a| a.split_once('=')) {
            if name.replace('-', "_").eq_ignore_ascii_case("search_path") {
                setting = Some(value.to_owned());
            }
        }
    }
    let first = setting?.split(',').next()?.trim().to_owned();
    let schema = match first.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => first.to_ascii_lowercase(),
    };
    (!schema.is_empty() && schema != "$user").then_some(schema)
}

/// `name` as an SQL identifier, quoted.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db?options=…`) and brings
    /// its schema up to date. Tables go in the first schema of the connection's `search_path`,
    /// which is created if the URL's `options` name it (`-c search_path=NAME`) and it is missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let config = parse_url(url)?;
        let schema = search_path_schema(config.get_options());
        Self::open(config, schema).await
    }

    /// Connects as [`PostgresStore::connect`] does, with every connection's `search_path` set
    /// to `schema` (created if missing): one database can then hold several flowd stores (tests
    /// use a schema each). `schema` is a lowercase identifier: letters, digits and `_`.
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        let plain = schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(StoreError::Backend(format!(
                "{schema:?} is not a schema name flowd accepts: use lowercase letters, digits \
                 and _ (at most 63)"
            )));
        }
        let mut config = parse_url(url)?;
        let options = match config.get_options() {
            Some(options) if !options.trim().is_empty() => {
                format!("{options} -c search_path={schema}")
            }
            _ => format!("-c search_path={schema}"),
        };
        config.options(options);
        Self::open(config, Some(schema.to_owned())).await
    }

    async fn open(mut config: Config, schema: Option<String>) -> StoreResult<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("flowd");
        }
        let target = describe_target(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL connection pool: {e}")))?;
        let store = PostgresStore { pool };
        let mut client = store.pool.get().await.map_err(|e| {
            StoreError::Backend(format!("cannot connect to PostgreSQL at {target}: {e}"))
        })?;
        migrations::migrate(&mut client, schema.as_deref()).await?;
        Ok(store)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("PostgreSQL connection: {e}")))
    }
}

#[async_trait]
impl Store for PostgresStore {
    /// Closes the pool: connections in use close when they are returned.
    async fn close(&self) -> StoreResult<()> {
        self.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::search_path_schema;

    #[test]
    fn the_schema_comes_from_the_options_search_path() {
        let cases = [
            (None, None),
            (Some(""), None),
            (Some("-c search_path=flowd"), Some("flowd")),
            (Some("-csearch_path=flowd"), Some("flowd")),
            (Some("--search_path=Flowd,public"), Some("flowd")),
            (Some("--search-path=flowd"), Some("flowd")),
            (
                Some("-c geqo=off -c search_path=\"My\\ Schema\",public"),
                Some("My Schema"),
            ),
            (Some("-c search_path=$user,public"), None),
            (Some("-c statement_timeout=5s"), None),
        ];
        for (options, schema) in cases {
            assert_eq!(
                search_path_schema(options).as_deref(),
                schema,
                "{options:?}"
            );
        }
    }
}
