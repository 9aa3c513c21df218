//! Run accounting in SQLite: the shared rows of a batch ([`BatchRows`]) written row by row on
//! the one writer connection, then each touched flow's log ring trimmed; reads are the shared
//! statements. Tables and indexes are in migration 2.

use super::docs::{execute, select, Sqlite};
use super::SqliteStore;
use crate::shared::accounting::{
    errors_query, flow_ids, log_entry, logs_query, name_count, now_ms, retention_deletes,
    run_summary, stored_error, summary_queries, BatchRows, BucketSums, StatsWindow,
};
use crate::{
    AccountingStore, RunFilter, RunLogEntry, RunRecord, RunSummary, RunVersion, StatsBucket,
    StoreResult, StoredRunError, ONCE_WINDOW_MS,
};
use async_trait::async_trait;
use rusqlite::{params, Connection};
use std::borrow::Cow;
use std::collections::HashSet;

/// The runs of a batch not accounted for before: every run without a `once_id`, and those
/// whose id this call is the first to record. Forgets ids older than the window.
fn first_reports<'a>(tx: &Connection, runs: &'a [RunRecord]) -> StoreResult<Cow<'a, [RunRecord]>> {
    if runs.iter().all(|r| r.once_id.is_none()) {
        return Ok(Cow::Borrowed(runs));
    }
    let now = now_ms();
    tx.prepare_cached("DELETE FROM accounted_runs WHERE recorded_ms < ?1")?
        .execute([now - ONCE_WINDOW_MS])?;
    let mut remember = tx.prepare_cached(
        "INSERT INTO accounted_runs (run_id, recorded_ms) VALUES (?1, ?2) \
         ON CONFLICT (run_id) DO NOTHING",
    )?;
    let mut first = Vec::with_capacity(runs.len());
    for run in runs {
        let new = match &run.once_id {
            Some(id) => remember.execute(params![id, now])? == 1,
            None => true,
        };
        if new {
            first.push(run.clone());
        }
    }
    Ok(Cow::Owned(first))
}

fn record_batch(tx: &Connection, runs: &[RunRecord], log_ring: usize) -> StoreResult<()> {
    let runs = &*first_reports(tx, runs)?;
    let mut exists = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM flows WHERE id = ?1)")?;
    let mut live: HashSet<&str> = HashSet::new();
    for flow_id in flow_ids(runs) {
        if exists.query_row([flow_id], |r| r.get(0))? {
            live.insert(flow_id);
        }
    }
    let rows = BatchRows::new(runs, |flow_id| live.contains(flow_id), log_ring);

    let mut upsert = tx.prepare_cached(
        "INSERT INTO flow_stats (flow_id, minute_ms, version_key, device_id, version_name, \
         run_count, paths_completed, paths_failed, wall_time_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (flow_id, minute_ms, version_key, device_id) DO UPDATE SET \
         version_name = excluded.version_name, \
         run_count = run_count + excluded.run_count, \
         paths_completed = paths_completed + excluded.paths_completed, \
         paths_failed = paths_failed + excluded.paths_failed, \
         wall_time_ms = wall_time_ms + excluded.wall_time_ms",
    )?;
    for row in &rows.stats {
        upsert.execute(params![
            row.flow_id,
            row.minute_ms,
            row.version_key,
            row.device_id,
            row.version_name,
            row.run_count,
            row.paths_completed,
            row.paths_failed,
            row.wall_time_ms,
        ])?;
    }

    let mut insert_error = tx.prepare_cached(
        "INSERT INTO run_errors (flow_id, time_ms, version_key, version_name, device_id, \
         node_id, node_label, name, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for row in &rows.errors {
        insert_error.execute(params![
            row.flow_id,
            row.time_ms,
            row.version_key,
            row.version_name,
            row.device_id,
            row.node_id,
            row.node_label,
            row.name,
            row.message,
        ])?;
    }

    let mut insert_log = tx.prepare_cached(
        "INSERT INTO run_logs (flow_id, started_ms, version_key, version_name, wall_time_ms, \
         paths_completed, paths_failed, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for row in &rows.logs {
        insert_log.execute(params![
            row.flow_id,
            row.started_ms,
            row.version_key,
            row.version_name,
            row.wall_time_ms,
            row.paths_completed,
            row.paths_failed,
            row.errors,
        ])?;
    }

    // Keep each touched flow's newest `log_ring` entries (newest by start, then by insertion).
    let mut trim = tx.prepare_cached(
        "DELETE FROM run_logs WHERE rowid IN (\
         SELECT rowid FROM run_logs WHERE flow_id = ?1 \
         ORDER BY started_ms DESC, rowid DESC LIMIT -1 OFFSET ?2)",
    )?;
    let ring = i64::try_from(log_ring).unwrap_or(i64::MAX);
    for flow_id in rows.flows {
        trim.execute(params![flow_id, ring])?;
    }
    Ok(())
}

#[async_trait]
impl AccountingStore for SqliteStore {
    async fn record_runs(&self, runs: &[RunRecord], log_ring: usize) -> StoreResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let runs = runs.to_vec();
        self.write(move |tx| record_batch(tx, &runs, log_ring))
            .await
    }

    async fn stats(
        &self,
        flow_id: &str,
        filter: &RunFilter,
        start_ms: i64,
        end_ms: i64,
        resolution_ms: i64,
    ) -> StoreResult<Vec<StatsBucket>> {
        let Some(window) = StatsWindow::new(start_ms, end_ms, resolution_ms)? else {
            return Ok(Vec::new());
        };
        let query = window.rows_query::<Sqlite>(flow_id, filter);
        self.read(move |conn| window.buckets(select(conn, &query, |row| BucketSums::read(row))?))
            .await
    }

    async fn errors(
        &self,
        flow_id: &str,
        filter: &RunFilter,
        start_ms: i64,
        end_ms: i64,
        limit: u64,
        ascending: bool,
    ) -> StoreResult<Vec<StoredRunError>> {
        let query = errors_query::<Sqlite>(flow_id, filter, (start_ms, end_ms), limit, ascending);
        self.read(move |conn| select(conn, &query, |row| stored_error(row)))
            .await
    }

    async fn logs(
        &self,
        flow_id: &str,
        version: Option<&RunVersion>,
        since_ms: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<RunLogEntry>> {
        let query = logs_query::<Sqlite>(flow_id, version, since_ms, limit);
        self.read(move |conn| select(conn, &query, |row| log_entry(row)))
            .await
    }

    async fn run_summary(&self, flow_id: &str, since_ms: i64) -> StoreResult<RunSummary> {
        let [runs, errors] = summary_queries::<Sqlite>(flow_id, since_ms);
        self.read(move |conn| {
            let counts = |query| select(conn, query, |row| name_count(row));
            Ok(run_summary(counts(&runs)?, counts(&errors)?))
        })
        .await
    }

    async fn delete_accounting_before(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |tx| {
            let mut removed = 0;
            for delete in retention_deletes::<Sqlite>(before_ms) {
                removed += execute(tx, &delete)?;
            }
            if removed > 0 {
                super::release_free_pages(tx)?;
            }
            Ok(removed as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{migrations::MIGRATIONS, SqliteStore};
    use crate::{AccountingStore, FlowStore, RunError, RunFilter, RunRecord, RunVersion};
    use rusqlite::Connection;

    /// A database written by a flowd that knew only migration 1 takes migration 2 on open,
    /// keeping its data, and its flows can record runs at once.
    #[tokio::test]
    async fn upgrades_a_version_1_database() {
        let dir = tempfile::tempdir().unwrap();
        let flow_id = "00000000000000000000000f";
        {
            let conn = Connection::open(dir.path().join("flowd.db")).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(&format!(
                "INSERT INTO applications VALUES ('a', 'app', 'c', 'u', '{{}}');
                 INSERT INTO flows VALUES ('{flow_id}', 'a', 'flow', 'cloud', 'c', 'u',
                    '{{\"id\":\"{flow_id}\"}}');"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).await.unwrap();
        assert!(store.get_flow("a", flow_id).await.unwrap().is_some());
        let run = RunRecord {
            once_id: None,
            application_id: "a".into(),
            flow_id: flow_id.into(),
            version: RunVersion::Develop,
            device_id: None,
            started_ms: 120_000,
            wall_time_ms: 5,
            paths_completed: 1,
            paths_failed: 0,
            errors: Vec::new(),
        };
        store.record_runs(&[run], 10).await.unwrap();
        let buckets = store
            .stats(flow_id, &RunFilter::default(), 0, 180_000, 60_000)
            .await
            .unwrap();
        let counts: Vec<u64> = buckets.iter().map(|b| b.run_count).collect();
        assert_eq!(counts, [0, 0, 1]);
        let version: i64 = store
            .read(|conn| Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        // The old file was converted so retention can shrink it.
        let auto_vacuum: i64 = store
            .read(|conn| Ok(conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(auto_vacuum, 2, "incremental");
    }

    fn page_count(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap()
    }

    /// Deleting old history gives the space back: the file shrinks to near what the remaining
    /// rows need, instead of staying at its high-water mark.
    #[tokio::test]
    async fn retention_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let flow_id = "00000000000000000000000f";
        store
            .write(move |tx| {
                tx.execute_batch(&format!(
                    "INSERT INTO applications VALUES ('a', 'app', 'c', 'u', '{{}}');
                     INSERT INTO flows VALUES ('{flow_id}', 'a', 'flow', 'cloud', 'c', 'u',
                        '{{\"id\":\"{flow_id}\"}}');"
                ))?;
                Ok(())
            })
            .await
            .unwrap();
        let empty = store.read(|conn| Ok(page_count(conn))).await.unwrap();
        // 20,000 failed runs over 20,000 minutes, each error ~1 KB.
        let runs: Vec<RunRecord> = (0..20_000i64)
            .map(|minute| RunRecord {
                once_id: None,
                application_id: "a".into(),
                flow_id: flow_id.into(),
                version: RunVersion::Develop,
                device_id: None,
                started_ms: minute * 60_000,
                wall_time_ms: 1,
                paths_completed: 0,
                paths_failed: 1,
                errors: vec![RunError {
                    time_ms: minute * 60_000,
                    node_id: Some("n".into()),
                    node_label: None,
                    name: "Error".into(),
                    message: "x".repeat(1000),
                }],
            })
            .collect();
        store.record_runs(&runs, 10).await.unwrap();
        let full = store.read(|conn| Ok(page_count(conn))).await.unwrap();
        assert!(full > empty + 2_000, "{empty} -> {full} pages");
        // Keep the newest 1,000 minutes.
        let removed = store
            .delete_accounting_before(19_000 * 60_000)
            .await
            .unwrap();
        assert!(removed >= 2 * 19_000, "{removed} rows removed");
        let after = store.read(|conn| Ok(page_count(conn))).await.unwrap();
        assert!(
            after < full / 5,
            "{full} pages before the sweep, {after} after: space was not released"
        );
        let kept = store
            .errors(
                flow_id,
                &RunFilter::default(),
                0,
                i64::MAX / 2,
                10_000,
                true,
            )
            .await
            .unwrap();
        assert_eq!(kept.len(), 1_000);
    }
}
