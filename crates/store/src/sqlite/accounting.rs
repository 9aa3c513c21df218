//! Run accounting in SQLite: `flow_stats` (one row per flow, minute, version and device, counters
//! incremented in place), `run_errors` (one row per error) and `run_logs` (one row per run, a
//! ring per flow trimmed on every batch). Tables and indexes are in migration 2.
//!
//! Stats rows are per minute, so every time filter on them works at minute granularity: a row
//! counts when its minute holds any instant of the window.

use super::SqliteStore;
use crate::{
    AccountingStore, RunError, RunFilter, RunLogEntry, RunRecord, RunSummary, RunVersion,
    StatsBucket, StoreError, StoreResult, StoredRunError,
};
use async_trait::async_trait;
use rusqlite::{params, params_from_iter, types::Value as SqlValue, Connection, Row};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const MINUTE_MS: i64 = 60_000;

/// The most buckets one `stats` call may ask for.
const MAX_STATS_BUCKETS: i64 = 100_000;

/// The version key stored for develop runs; named versions are stored by their (24-hex) id.
const DEVELOP: &str = "develop";

/// The start of the minute holding `ms`.
fn minute_of(ms: i64) -> i64 {
    ms.saturating_sub(ms.rem_euclid(MINUTE_MS))
}

/// SQLite integers are signed; counters beyond `i64::MAX` saturate.
fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql_int(n: i64) -> u64 {
    n.max(0) as u64
}

fn version_key(version: &RunVersion) -> &str {
    match version {
        RunVersion::Develop => DEVELOP,
        RunVersion::Named { id, .. } => id,
    }
}

fn version_name(version: &RunVersion) -> &str {
    match version {
        RunVersion::Develop => DEVELOP,
        RunVersion::Named { name, .. } => name,
    }
}

fn version_from(key: String, name: String) -> RunVersion {
    if key == DEVELOP {
        RunVersion::Develop
    } else {
        RunVersion::Named { id: key, name }
    }
}

fn device_from(device: String) -> Option<String> {
    (!device.is_empty()).then_some(device)
}

/// `AND …` conditions for a [`RunFilter`], appended to `params`.
fn filter_sql(filter: &RunFilter, params: &mut Vec<SqlValue>) -> String {
    let mut sql = String::new();
    if let Some(version) = &filter.version {
        sql.push_str(" AND version_key = ?");
        params.push(SqlValue::Text(version_key(version).to_owned()));
    }
    if let Some(device) = &filter.device_id {
        sql.push_str(" AND device_id = ?");
        params.push(SqlValue::Text(device.clone()));
    }
    sql
}

/// A log entry's errors, stored as a JSON array (the shape is private to this module).
fn errors_json(errors: &[RunError]) -> String {
    Value::Array(
        errors
            .iter()
            .map(|e| {
                json!({
                    "time": e.time_ms,
                    "nodeId": e.node_id,
                    "nodeLabel": e.node_label,
                    "name": e.name,
                    "message": e.message,
                })
            })
            .collect(),
    )
    .to_string()
}

fn errors_from_json(text: &str) -> StoreResult<Vec<RunError>> {
    let bad = || StoreError::Backend("stored run log errors are malformed".into());
    let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|e| {
            Ok(RunError {
                time_ms: e.get("time").and_then(Value::as_i64).ok_or_else(bad)?,
                node_id: string(e, "nodeId"),
                node_label: string(e, "nodeLabel"),
                name: string(e, "name").ok_or_else(bad)?,
                message: string(e, "message").ok_or_else(bad)?,
            })
        })
        .collect()
}

/// Counters of one stats row, summed over a batch before they are written.
#[derive(Default)]
struct Counts {
    version_name: String,
    run_count: u64,
    paths_completed: u64,
    paths_failed: u64,
    wall_time_ms: u64,
}

fn flow_exists(conn: &Connection, flow_id: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM flows WHERE id = ?1)")?
        .query_row([flow_id], |r| r.get(0))?)
}

fn record_batch(tx: &Connection, runs: &[RunRecord], log_ring: usize) -> StoreResult<()> {
    // Runs of flows deleted since they ran are dropped: the flow's accounting went with it.
    let mut exists: HashMap<&str, bool> = HashMap::new();
    for run in runs {
        if !exists.contains_key(run.flow_id.as_str()) {
            exists.insert(&run.flow_id, flow_exists(tx, &run.flow_id)?);
        }
    }
    let live: Vec<&RunRecord> = runs.iter().filter(|r| exists[r.flow_id.as_str()]).collect();
    let dropped = runs.len() - live.len();
    if dropped > 0 {
        tracing::debug!(dropped, "runs of deleted flows not recorded");
    }

    // One upsert per stats row touched, however many runs of the batch fall in it; in key order,
    // which is also the table's order.
    let mut stats: BTreeMap<(&str, i64, &str, &str), Counts> = BTreeMap::new();
    for run in &live {
        let key = (
            run.flow_id.as_str(),
            minute_of(run.started_ms),
            version_key(&run.version),
            run.device_id.as_deref().unwrap_or(""),
        );
        let counts = stats.entry(key).or_default();
        // The latest name wins, should a version have been renamed.
        version_name(&run.version).clone_into(&mut counts.version_name);
        counts.run_count += 1;
        counts.paths_completed = counts.paths_completed.saturating_add(run.paths_completed);
        counts.paths_failed = counts.paths_failed.saturating_add(run.paths_failed);
        counts.wall_time_ms = counts.wall_time_ms.saturating_add(run.wall_time_ms);
    }
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
    for ((flow_id, minute_ms, key, device), counts) in &stats {
        upsert.execute(params![
            flow_id,
            minute_ms,
            key,
            device,
            counts.version_name,
            to_sql_int(counts.run_count),
            to_sql_int(counts.paths_completed),
            to_sql_int(counts.paths_failed),
            to_sql_int(counts.wall_time_ms),
        ])?;
    }

    let mut insert_error = tx.prepare_cached(
        "INSERT INTO run_errors (flow_id, time_ms, version_key, version_name, device_id, \
         node_id, node_label, name, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut insert_log = tx.prepare_cached(
        "INSERT INTO run_logs (flow_id, started_ms, version_key, version_name, wall_time_ms, \
         paths_completed, paths_failed, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // Only a flow's newest `log_ring` runs of the batch can stay in its ring: at thousands of
    // runs a second, writing and then trimming the others was most of the batch's cost.
    let mut per_flow: HashMap<&str, Vec<&RunRecord>> = HashMap::new();
    for run in &live {
        per_flow.entry(run.flow_id.as_str()).or_default().push(run);
    }
    for runs in per_flow.values_mut() {
        // Stable: runs that started in the same ms keep their completion order.
        runs.sort_by_key(|r| r.started_ms);
        let skip = runs.len().saturating_sub(log_ring);
        runs.drain(..skip);
    }
    for run in &live {
        let (key, name) = (version_key(&run.version), version_name(&run.version));
        let device = run.device_id.as_deref().unwrap_or("");
        for error in &run.errors {
            insert_error.execute(params![
                run.flow_id,
                error.time_ms,
                key,
                name,
                device,
                error.node_id,
                error.node_label,
                error.name,
                error.message,
            ])?;
        }
    }
    let mut kept: Vec<&RunRecord> = per_flow.into_values().flatten().collect();
    kept.sort_by_key(|r| r.started_ms);
    for run in kept {
        let (key, name) = (version_key(&run.version), version_name(&run.version));
        insert_log.execute(params![
            run.flow_id,
            run.started_ms,
            key,
            name,
            to_sql_int(run.wall_time_ms),
            to_sql_int(run.paths_completed),
            to_sql_int(run.paths_failed),
            errors_json(&run.errors),
        ])?;
    }

    // Keep each touched flow's newest `log_ring` entries (newest by start, then by insertion).
    let mut trim = tx.prepare_cached(
        "DELETE FROM run_logs WHERE rowid IN (\
         SELECT rowid FROM run_logs WHERE flow_id = ?1 \
         ORDER BY started_ms DESC, rowid DESC LIMIT -1 OFFSET ?2)",
    )?;
    let ring = i64::try_from(log_ring).unwrap_or(i64::MAX);
    let touched: BTreeSet<&str> = live.iter().map(|r| r.flow_id.as_str()).collect();
    for flow_id in touched {
        trim.execute(params![flow_id, ring])?;
    }
    Ok(())
}

fn stored_error(row: &Row) -> rusqlite::Result<StoredRunError> {
    Ok(StoredRunError {
        version: version_from(row.get(0)?, row.get(1)?),
        device_id: device_from(row.get(2)?),
        error: RunError {
            time_ms: row.get(3)?,
            node_id: row.get(4)?,
            node_label: row.get(5)?,
            name: row.get(6)?,
            message: row.get(7)?,
        },
    })
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
        if resolution_ms <= 0 {
            return Err(StoreError::LimitExceeded(format!(
                "the resolution must be a positive number of milliseconds, not {resolution_ms}"
            )));
        }
        if end_ms <= start_ms {
            return Ok(Vec::new());
        }
        // Buckets are whole multiples of the resolution: the first holds `start_ms`, the last
        // holds the instant before `end_ms`. i128 keeps the arithmetic exact at any i64 input.
        let (start, end, res) = (start_ms as i128, end_ms as i128, resolution_ms as i128);
        let first = start.div_euclid(res) * res;
        let count = (end - first + res - 1).div_euclid(res);
        if count > MAX_STATS_BUCKETS as i128 {
            return Err(StoreError::LimitExceeded(format!(
                "{count} buckets of {resolution_ms} ms are too many; at most \
                 {MAX_STATS_BUCKETS} are allowed"
            )));
        }
        let stop = (first + count * res).min(i64::MAX as i128);
        if first < i64::MIN as i128 || stop - first > i64::MAX as i128 {
            return Err(StoreError::LimitExceeded(format!(
                "the window [{start_ms}, {end_ms}) in buckets of {resolution_ms} ms is out of range"
            )));
        }
        let (first, stop, count) = (first as i64, stop as i64, count as usize);

        let (flow_id, filter) = (flow_id.to_owned(), filter.clone());
        self.read(move |conn| {
            // Rows are counted in the bucket their minute starts in; offsets from `first` are
            // never negative, so integer division rounds down.
            let mut params = vec![
                SqlValue::Integer(first),
                SqlValue::Integer(resolution_ms),
                SqlValue::Text(flow_id),
                SqlValue::Integer(first),
                SqlValue::Integer(stop),
            ];
            let filters = filter_sql(&filter, &mut params);
            let sql = format!(
                "SELECT (minute_ms - ?) / ? AS bucket, SUM(run_count), SUM(paths_completed), \
                 SUM(paths_failed), SUM(wall_time_ms) FROM flow_stats \
                 WHERE flow_id = ? AND minute_ms >= ? AND minute_ms < ?{filters} \
                 GROUP BY bucket"
            );
            let mut buckets: Vec<StatsBucket> = (0..count)
                .map(|i| StatsBucket {
                    time_ms: first + i as i64 * resolution_ms,
                    ..StatsBucket::default()
                })
                .collect();
            let mut statement = conn.prepare(&sql)?;
            let mut rows = statement.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                let index: i64 = row.get(0)?;
                let bucket = usize::try_from(index)
                    .ok()
                    .and_then(|i| buckets.get_mut(i))
                    .ok_or_else(|| {
                        StoreError::Backend(format!("stats bucket {index} out of range"))
                    })?;
                bucket.run_count = from_sql_int(row.get(1)?);
                bucket.paths_completed = from_sql_int(row.get(2)?);
                bucket.paths_failed = from_sql_int(row.get(3)?);
                bucket.wall_time_ms = from_sql_int(row.get(4)?);
            }
            Ok(buckets)
        })
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
        let (flow_id, filter) = (flow_id.to_owned(), filter.clone());
        self.read(move |conn| {
            let mut params = vec![
                SqlValue::Text(flow_id),
                SqlValue::Integer(start_ms),
                SqlValue::Integer(end_ms),
            ];
            let filters = filter_sql(&filter, &mut params);
            params.push(SqlValue::Integer(to_sql_int(limit)));
            let direction = if ascending { "ASC" } else { "DESC" };
            let sql = format!(
                "SELECT version_key, version_name, device_id, time_ms, node_id, node_label, name, \
                 message FROM run_errors \
                 WHERE flow_id = ? AND time_ms >= ? AND time_ms <= ?{filters} \
                 ORDER BY time_ms {direction}, rowid {direction} LIMIT ?"
            );
            let mut statement = conn.prepare(&sql)?;
            let errors = statement
                .query_map(params_from_iter(params), stored_error)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(errors)
        })
        .await
    }

    async fn logs(
        &self,
        flow_id: &str,
        version: Option<&RunVersion>,
        since_ms: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<RunLogEntry>> {
        let mut params = vec![SqlValue::Text(flow_id.to_owned())];
        let mut conditions = String::new();
        if let Some(since) = since_ms {
            conditions.push_str(" AND started_ms >= ?");
            params.push(SqlValue::Integer(since));
        }
        if let Some(version) = version {
            conditions.push_str(" AND version_key = ?");
            params.push(SqlValue::Text(version_key(version).to_owned()));
        }
        params.push(SqlValue::Integer(to_sql_int(limit)));
        self.read(move |conn| {
            let sql = format!(
                "SELECT version_key, version_name, started_ms, wall_time_ms, paths_completed, \
                 paths_failed, errors FROM run_logs WHERE flow_id = ?{conditions} \
                 ORDER BY started_ms DESC, rowid DESC LIMIT ?"
            );
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map(params_from_iter(params), |r| {
                Ok((
                    version_from(r.get(0)?, r.get(1)?),
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            rows.map(|row| {
                let (version, started_ms, wall, completed, failed, errors) = row?;
                Ok(RunLogEntry {
                    version,
                    started_ms,
                    wall_time_ms: from_sql_int(wall),
                    paths_completed: from_sql_int(completed),
                    paths_failed: from_sql_int(failed),
                    errors: errors_from_json(&errors)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn run_summary(&self, flow_id: &str, since_ms: i64) -> StoreResult<RunSummary> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| {
            // Name → (runs, errors).
            let mut by_version: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut statement = conn.prepare(
                "SELECT version_name, SUM(run_count) FROM flow_stats \
                 WHERE flow_id = ?1 AND minute_ms >= ?2 GROUP BY version_name",
            )?;
            let rows = statement.query_map(params![flow_id, minute_of(since_ms)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (name, runs) = row?;
                by_version.entry(name).or_default().0 += from_sql_int(runs);
            }
            let mut statement = conn.prepare(
                "SELECT version_name, COUNT(*) FROM run_errors \
                 WHERE flow_id = ?1 AND time_ms >= ?2 GROUP BY version_name",
            )?;
            let rows = statement.query_map(params![flow_id, since_ms], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (name, errors) = row?;
                by_version.entry(name).or_default().1 += from_sql_int(errors);
            }
            Ok(RunSummary {
                run_count: by_version.values().map(|(runs, _)| runs).sum(),
                error_count: by_version.values().map(|(_, errors)| errors).sum(),
                by_version: by_version
                    .into_iter()
                    .map(|(name, (runs, errors))| (name, runs, errors))
                    .collect(),
            })
        })
        .await
    }

    async fn delete_accounting_before(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |tx| {
            // A stats minute goes once all of it is before the cutoff.
            let stats = tx.execute(
                "DELETE FROM flow_stats WHERE minute_ms < ?1",
                [minute_of(before_ms)],
            )?;
            let errors = tx.execute("DELETE FROM run_errors WHERE time_ms < ?1", [before_ms])?;
            let logs = tx.execute("DELETE FROM run_logs WHERE started_ms < ?1", [before_ms])?;
            if stats + errors + logs > 0 {
                super::release_free_pages(tx)?;
            }
            Ok((stats + errors + logs) as u64)
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
