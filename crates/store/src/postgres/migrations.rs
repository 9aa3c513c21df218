//! Versioned schema migrations for PostgreSQL. The `schema_version` table has a row per
//! migration applied; each new one is appended to [`MIGRATIONS`] and never edited once
//! released. Migrating takes a transaction-scoped advisory lock first, so that when several
//! flowd processes start against one database at once, one migrates and the others then find
//! the work done.
//!
//! The tables are SQLite's (see `sqlite/migrations.rs`), in PostgreSQL's types:
//! * every text column compares and sorts by bytes (`COLLATE "C"`, SQLite's `BINARY`), whatever
//!   the database's locale; sorting that ignores case folds ASCII letters only, as SQLite does;
//! * documents and storage values are `TEXT`, not `jsonb`: they come back byte for byte, keys
//!   in the order the caller wrote them (`jsonb` would reorder and deduplicate them);
//! * `run_errors` and `run_logs` have an identity column, `seq`, where SQLite has its rowid:
//!   the order of insertion, which breaks ties in time.

use super::quote_identifier;
use crate::{StoreError, StoreResult};
use deadpool_postgres::ClientWrapper;

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store had reached by its migration 6.
    r#"
    CREATE TABLE applications (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL,
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX applications_name ON applications (name);

    CREATE TABLE api_tokens (
        id TEXT COLLATE "C" PRIMARY KEY,
        application_id TEXT COLLATE "C" REFERENCES applications (id) ON DELETE CASCADE,
        token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
        name TEXT COLLATE "C" NOT NULL,
        status TEXT COLLATE "C" NOT NULL,
        expiration_date TEXT COLLATE "C",
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX api_tokens_application ON api_tokens (application_id, name);

    CREATE TABLE flows (
        id TEXT COLLATE "C" PRIMARY KEY,
        application_id TEXT COLLATE "C" NOT NULL
            REFERENCES applications (id) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        flow_class TEXT COLLATE "C" NOT NULL,
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX flows_application ON flows (application_id, flow_class, name);
    -- An application's flows in id order without a sort (start-up walks every flow a page at
    -- a time).
    CREATE INDEX flows_application_id ON flows (application_id, id);

    CREATE TABLE flow_versions (
        id TEXT COLLATE "C" PRIMARY KEY,
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        version TEXT COLLATE "C" NOT NULL,
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (flow_id, version)
    );

    CREATE TABLE storage_entries (
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (flow_id, key)
    );

    -- Node state (Latch, Throttle, On Change), per flow, apart from workflow storage.
    CREATE TABLE node_state (
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (flow_id, key)
    );

    -- Run accounting. `version_key` is 'develop' or the version's id; `version_name` is kept
    -- for display and for the per-version summary. `device_id` is '' when a run had no device,
    -- so it can sit in a primary key. Times are ms since the epoch. Stats rows are keyed
    -- time-first within a flow: every query gives the flow and a time range.
    CREATE TABLE flow_stats (
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        minute_ms BIGINT NOT NULL,
        version_key TEXT COLLATE "C" NOT NULL,
        device_id TEXT COLLATE "C" NOT NULL,
        version_name TEXT COLLATE "C" NOT NULL,
        run_count BIGINT NOT NULL,
        paths_completed BIGINT NOT NULL,
        paths_failed BIGINT NOT NULL,
        wall_time_ms BIGINT NOT NULL,
        PRIMARY KEY (flow_id, minute_ms, version_key, device_id)
    );
    -- Retention deletes across all flows.
    CREATE INDEX flow_stats_minute ON flow_stats (minute_ms);

    CREATE TABLE run_errors (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        time_ms BIGINT NOT NULL,
        version_key TEXT COLLATE "C" NOT NULL,
        version_name TEXT COLLATE "C" NOT NULL,
        device_id TEXT COLLATE "C" NOT NULL,
        node_id TEXT,
        node_label TEXT,
        name TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX run_errors_flow_time ON run_errors (flow_id, time_ms, seq);
    -- Retention deletes across all flows.
    CREATE INDEX run_errors_time ON run_errors (time_ms);

    CREATE TABLE run_logs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        flow_id TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
        started_ms BIGINT NOT NULL,
        version_key TEXT COLLATE "C" NOT NULL,
        version_name TEXT COLLATE "C" NOT NULL,
        wall_time_ms BIGINT NOT NULL,
        paths_completed BIGINT NOT NULL,
        paths_failed BIGINT NOT NULL,
        errors TEXT NOT NULL
    );
    -- Newest-first reads and the ring trim.
    CREATE INDEX run_logs_flow_started ON run_logs (flow_id, started_ms, seq);
    -- Retention deletes across all flows.
    CREATE INDEX run_logs_started ON run_logs (started_ms);

    -- Integrations (MQTT brokers and other outside connections) of an application.
    CREATE TABLE integrations (
        id TEXT COLLATE "C" PRIMARY KEY,
        application_id TEXT COLLATE "C" NOT NULL
            REFERENCES applications (id) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        integration_type TEXT COLLATE "C" NOT NULL,
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX integrations_application ON integrations (application_id, name);

    -- Webhooks of an application. The token names the public URL: unique across all.
    CREATE TABLE webhooks (
        id TEXT COLLATE "C" PRIMARY KEY,
        application_id TEXT COLLATE "C" NOT NULL
            REFERENCES applications (id) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL UNIQUE,
        creation_date TEXT COLLATE "C" NOT NULL,
        last_updated TEXT COLLATE "C" NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX webhooks_application ON webhooks (application_id, name);
    "#,
    // 2: the ids of runs already accounted for that a shared queue may deliver again
    // (`RunRecord::once_id`), kept for an hour.
    r#"
    CREATE TABLE accounted_runs (
        run_id TEXT COLLATE "C" PRIMARY KEY,
        recorded_ms BIGINT NOT NULL
    );
    CREATE INDEX accounted_runs_recorded ON accounted_runs (recorded_ms);
    "#,
];

/// Creates `schema` if it is given and missing, then applies the migrations the database has
/// not had, in one transaction under an advisory lock keyed by the `search_path`.
pub(super) async fn migrate(client: &mut ClientWrapper, schema: Option<&str>) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('flowd migrations ' || current_setting('search_path')))",
    )
    .await?;
    if let Some(schema) = schema {
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .await?
            .try_get(0)?;
        if !exists {
            tx.batch_execute(&format!("CREATE SCHEMA {}", quote_identifier(schema)))
                .await?;
            tracing::info!(schema, "created the PostgreSQL schema");
        }
    }
    let target: Option<String> = tx
        .query_one("SELECT current_schema()", &[])
        .await?
        .try_get(0)?;
    if target.is_none() {
        let search_path: String = tx.query_one("SHOW search_path", &[]).await?.try_get(0)?;
        return Err(StoreError::Backend(format!(
            "PostgreSQL has no schema to hold flowd's tables: none of the search_path \
             ({search_path}) exists; create one or name one in the URL \
             (options=-c search_path=NAME)"
        )));
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len() as i32;
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {current}, newer than this flowd knows ({known}); \
             upgrade flowd"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "applied store migration");
    }
    tx.commit().await?;
    Ok(())
}
