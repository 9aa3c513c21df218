//! Run accounting in PostgreSQL: the shared rows of a batch ([`BatchRows`]) written a table at
//! a time — one statement for every stats row, one for every error, one for every log entry,
//! each taking its rows as arrays (`unnest`) — then one statement trimming the log ring of
//! every flow the batch touched. Reads are the shared statements. Tables are in migration 1.

use super::docs::{execute, select, Postgres};
use super::{existing_flows, PostgresStore};
use crate::shared::accounting::{
    errors_query, flow_ids, log_entry, logs_query, name_count, now_ms, retention_deletes,
    run_summary, stored_error, summary_queries, BatchRows, BucketSums, StatsWindow,
};
use crate::{
    AccountingStore, RunFilter, RunLogEntry, RunRecord, RunSummary, RunVersion, StatsBucket,
    StoreResult, StoredRunError, ONCE_WINDOW_MS,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::borrow::Cow;
use std::collections::HashSet;

/// The runs of a batch not accounted for before: every run without a `once_id`, and those
/// whose id this call is the first to record (one statement). Forgets ids older than the
/// window.
async fn first_reports<'a>(
    tx: &impl GenericClient,
    runs: &'a [RunRecord],
) -> StoreResult<Cow<'a, [RunRecord]>> {
    let mut ids: Vec<&str> = runs.iter().filter_map(|r| r.once_id.as_deref()).collect();
    if ids.is_empty() {
        return Ok(Cow::Borrowed(runs));
    }
    // In one order on every node, so two batches holding the same ids cannot deadlock.
    ids.sort_unstable();
    let now = now_ms();
    let forget = tx
        .prepare_cached("DELETE FROM accounted_runs WHERE recorded_ms < $1")
        .await?;
    tx.execute(&forget, &[&(now - ONCE_WINDOW_MS)]).await?;
    let remember = tx
        .prepare_cached(
            "INSERT INTO accounted_runs (run_id, recorded_ms) \
             SELECT id, $2 FROM unnest($1::text[]) AS id \
             ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
        )
        .await?;
    let mut new: HashSet<String> = tx
        .query(&remember, &[&ids, &now])
        .await?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect();
    // Taking an id out of `new` keeps only its first report when a batch holds it twice.
    Ok(Cow::Owned(
        runs.iter()
            .filter(|r| r.once_id.as_ref().is_none_or(|id| new.remove(id)))
            .cloned()
            .collect(),
    ))
}

/// Adds the batch's counters to the stats rows (one row per key in a batch, so no row is hit
/// twice by the one statement).
async fn upsert_stats(tx: &impl GenericClient, rows: &BatchRows<'_>) -> StoreResult<()> {
    if rows.stats.is_empty() {
        return Ok(());
    }
    let stats = &rows.stats;
    let flows: Vec<&str> = stats.iter().map(|r| r.flow_id).collect();
    let minutes: Vec<i64> = stats.iter().map(|r| r.minute_ms).collect();
    let keys: Vec<&str> = stats.iter().map(|r| r.version_key).collect();
    let devices: Vec<&str> = stats.iter().map(|r| r.device_id).collect();
    let names: Vec<&str> = stats.iter().map(|r| r.version_name).collect();
    let runs: Vec<i64> = stats.iter().map(|r| r.run_count).collect();
    let completed: Vec<i64> = stats.iter().map(|r| r.paths_completed).collect();
    let failed: Vec<i64> = stats.iter().map(|r| r.paths_failed).collect();
    let wall: Vec<i64> = stats.iter().map(|r| r.wall_time_ms).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO flow_stats AS s (flow_id, minute_ms, version_key, device_id, \
             version_name, run_count, paths_completed, paths_failed, wall_time_ms) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], \
             $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) \
             ON CONFLICT (flow_id, minute_ms, version_key, device_id) DO UPDATE SET \
             version_name = excluded.version_name, \
             run_count = s.run_count + excluded.run_count, \
             paths_completed = s.paths_completed + excluded.paths_completed, \
             paths_failed = s.paths_failed + excluded.paths_failed, \
             wall_time_ms = s.wall_time_ms + excluded.wall_time_ms",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &flows, &minutes, &keys, &devices, &names, &runs, &completed, &failed, &wall,
        ],
    )
    .await?;
    Ok(())
}

/// Appends the batch's errors, in batch order (their `seq` keeps it).
async fn insert_errors(tx: &impl GenericClient, rows: &BatchRows<'_>) -> StoreResult<()> {
    if rows.errors.is_empty() {
        return Ok(());
    }
    let errors = &rows.errors;
    let flows: Vec<&str> = errors.iter().map(|r| r.flow_id).collect();
    let times: Vec<i64> = errors.iter().map(|r| r.time_ms).collect();
    let keys: Vec<&str> = errors.iter().map(|r| r.version_key).collect();
    let names: Vec<&str> = errors.iter().map(|r| r.version_name).collect();
    let devices: Vec<&str> = errors.iter().map(|r| r.device_id).collect();
    let nodes: Vec<Option<&str>> = errors.iter().map(|r| r.node_id).collect();
    let labels: Vec<Option<&str>> = errors.iter().map(|r| r.node_label).collect();
    let error_names: Vec<&str> = errors.iter().map(|r| r.name).collect();
    let messages: Vec<&str> = errors.iter().map(|r| r.message).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO run_errors (flow_id, time_ms, version_key, version_name, device_id, \
             node_id, node_label, name, message) \
             SELECT flow_id, time_ms, version_key, version_name, device_id, node_id, \
             node_label, name, message \
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY \
             AS e (flow_id, time_ms, version_key, version_name, device_id, node_id, \
             node_label, name, message, position) ORDER BY position",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &flows,
            &times,
            &keys,
            &names,
            &devices,
            &nodes,
            &labels,
            &error_names,
            &messages,
        ],
    )
    .await?;
    Ok(())
}

/// Appends the batch's log entries in the order given (their `seq` breaks ties in start time),
/// then trims the ring of every flow touched to its newest `log_ring` entries.
async fn insert_logs(
    tx: &impl GenericClient,
    rows: &BatchRows<'_>,
    log_ring: usize,
) -> StoreResult<()> {
    if !rows.logs.is_empty() {
        let logs = &rows.logs;
        let flows: Vec<&str> = logs.iter().map(|r| r.flow_id).collect();
        let starts: Vec<i64> = logs.iter().map(|r| r.started_ms).collect();
        let keys: Vec<&str> = logs.iter().map(|r| r.version_key).collect();
        let names: Vec<&str> = logs.iter().map(|r| r.version_name).collect();
        let wall: Vec<i64> = logs.iter().map(|r| r.wall_time_ms).collect();
        let completed: Vec<i64> = logs.iter().map(|r| r.paths_completed).collect();
        let failed: Vec<i64> = logs.iter().map(|r| r.paths_failed).collect();
        let errors: Vec<&str> = logs.iter().map(|r| r.errors.as_str()).collect();
        let statement = tx
            .prepare_cached(
                "INSERT INTO run_logs (flow_id, started_ms, version_key, version_name, \
                 wall_time_ms, paths_completed, paths_failed, errors) \
                 SELECT flow_id, started_ms, version_key, version_name, wall_time_ms, \
                 paths_completed, paths_failed, errors \
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], \
                 $6::bigint[], $7::bigint[], $8::text[]) WITH ORDINALITY \
                 AS l (flow_id, started_ms, version_key, version_name, wall_time_ms, \
                 paths_completed, paths_failed, errors, position) ORDER BY position",
            )
            .await?;
        tx.execute(
            &statement,
            &[
                &flows, &starts, &keys, &names, &wall, &completed, &failed, &errors,
            ],
        )
        .await?;
    }
    if rows.flows.is_empty() {
        return Ok(());
    }
    // Newest by start, then by insertion.
    let statement = tx
        .prepare_cached(
            "DELETE FROM run_logs WHERE seq IN (\
             SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY flow_id \
             ORDER BY started_ms DESC, seq DESC) AS newer \
             FROM run_logs WHERE flow_id = ANY($1)) AS ranked WHERE newer > $2)",
        )
        .await?;
    let ring = i64::try_from(log_ring).unwrap_or(i64::MAX);
    tx.execute(&statement, &[&rows.flows, &ring]).await?;
    Ok(())
}

#[async_trait]
impl AccountingStore for PostgresStore {
    async fn record_runs(&self, runs: &[RunRecord], log_ring: usize) -> StoreResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let runs = &*first_reports(&tx, runs).await?;
        if runs.is_empty() {
            return Ok(());
        }
        let live = existing_flows(&tx, &flow_ids(runs)).await?;
        let rows = BatchRows::new(runs, |flow_id| live.contains(flow_id), log_ring);
        upsert_stats(&tx, &rows).await?;
        insert_errors(&tx, &rows).await?;
        insert_logs(&tx, &rows, log_ring).await?;
        tx.commit().await?;
        Ok(())
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
        let query = window.query::<Postgres>(flow_id, filter);
        let sums = select(&self.client().await?, &query, BucketSums::read).await?;
        window.buckets(sums)
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
        let query = errors_query::<Postgres>(flow_id, filter, (start_ms, end_ms), limit, ascending);
        select(&self.client().await?, &query, stored_error).await
    }

    async fn logs(
        &self,
        flow_id: &str,
        version: Option<&RunVersion>,
        since_ms: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<RunLogEntry>> {
        let query = logs_query::<Postgres>(flow_id, version, since_ms, limit);
        select(&self.client().await?, &query, log_entry).await
    }

    async fn run_summary(&self, flow_id: &str, since_ms: i64) -> StoreResult<RunSummary> {
        let [runs, errors] = summary_queries::<Postgres>(flow_id, since_ms);
        let client = self.client().await?;
        let runs = select(&client, &runs, name_count).await?;
        let errors = select(&client, &errors, name_count).await?;
        Ok(run_summary(runs, errors))
    }

    async fn delete_accounting_before(&self, before_ms: i64) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut removed = 0;
        for delete in retention_deletes::<Postgres>(before_ms) {
            removed += execute(&tx, &delete).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}
