//! Run accounting as both stores keep it: `flow_stats` (one row per flow, minute, version and
//! device, counters incremented in place), `run_errors` (one row per error) and `run_logs` (one
//! row per run, a ring per flow trimmed on every batch).
//!
//! Here is everything that does not depend on the database: how a batch of runs becomes rows
//! ([`BatchRows`]), how a stats window is cut into buckets ([`StatsWindow`]), the read
//! statements, and how rows read back become the trait's types. The backends write the rows
//! their own way (SQLite row by row on its one writer, PostgreSQL a statement per table).
//!
//! Stats rows are per minute, so every time filter on them works at minute granularity: a row
//! counts when its minute holds any instant of the window.

use super::sql::{direction_sql, sum_int, QueryBuilder, ResultRow, SqlDialect, SqlQuery};
use crate::{
    RunError, RunFilter, RunLogEntry, RunRecord, RunSummary, RunVersion, SortDirection,
    StatsBucket, StoreError, StoreResult, StoredRunError,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(crate) const MINUTE_MS: i64 = 60_000;

/// The most buckets one `stats` call may ask for.
const MAX_STATS_BUCKETS: i64 = 100_000;

/// The version key stored for develop runs; named versions are stored by their (24-hex) id.
const DEVELOP: &str = "develop";

/// The start of the minute holding `ms`.
pub(crate) fn minute_of(ms: i64) -> i64 {
    ms.saturating_sub(ms.rem_euclid(MINUTE_MS))
}

/// Database integers are signed; counters beyond `i64::MAX` saturate.
pub(crate) fn to_db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn from_db_int(n: i64) -> u64 {
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

/// A log entry's errors, stored as a JSON array (the shape is private to the stores).
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

// ---------------------------------------------------------------------------------------------
// Writing a batch
// ---------------------------------------------------------------------------------------------

/// The distinct flows of a batch, in id order.
pub(crate) fn flow_ids(runs: &[RunRecord]) -> Vec<&str> {
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.flow_id.as_str()).collect();
    ids.into_iter().collect()
}

/// One `flow_stats` row's increments: every run of the batch in that flow, minute, version and
/// device, summed.
pub(crate) struct StatsRow<'a> {
    pub flow_id: &'a str,
    pub minute_ms: i64,
    pub version_key: &'a str,
    /// `''` for runs without a device, so it can sit in the primary key.
    pub device_id: &'a str,
    /// The latest name wins, should a version have been renamed.
    pub version_name: &'a str,
    pub run_count: i64,
    pub paths_completed: i64,
    pub paths_failed: i64,
    pub wall_time_ms: i64,
}

/// One `run_errors` row.
pub(crate) struct ErrorRow<'a> {
    pub flow_id: &'a str,
    pub time_ms: i64,
    pub version_key: &'a str,
    pub version_name: &'a str,
    pub device_id: &'a str,
    pub node_id: Option<&'a str>,
    pub node_label: Option<&'a str>,
    pub name: &'a str,
    pub message: &'a str,
}

/// One `run_logs` row.
pub(crate) struct LogRow<'a> {
    pub flow_id: &'a str,
    pub started_ms: i64,
    pub version_key: &'a str,
    pub version_name: &'a str,
    pub wall_time_ms: i64,
    pub paths_completed: i64,
    pub paths_failed: i64,
    /// The run's errors as JSON.
    pub errors: String,
}

/// What one batch of runs writes.
pub(crate) struct BatchRows<'a> {
    /// In key order (flow, minute, version, device), which is also the table's order.
    pub stats: Vec<StatsRow<'a>>,
    /// In the order of the batch, each run's errors in its order.
    pub errors: Vec<ErrorRow<'a>>,
    /// To insert in this order (oldest start first; runs that started in the same ms in batch
    /// order), so that insertion order breaks ties in start time.
    pub logs: Vec<LogRow<'a>>,
    /// The flows whose log ring must be trimmed after the inserts, in id order.
    pub flows: Vec<&'a str>,
}

impl<'a> BatchRows<'a> {
    /// The rows for the runs whose flow `exists`: runs of flows deleted since they ran are
    /// dropped (the flow's accounting went with it).
    pub fn new(runs: &'a [RunRecord], exists: impl Fn(&str) -> bool, log_ring: usize) -> Self {
        let live: Vec<&RunRecord> = runs.iter().filter(|r| exists(&r.flow_id)).collect();
        let dropped = runs.len() - live.len();
        if dropped > 0 {
            tracing::debug!(dropped, "runs of deleted flows not recorded");
        }

        // One row per stats key touched, however many runs of the batch fall in it.
        let mut stats: BTreeMap<(&str, i64, &str, &str), StatsRow> = BTreeMap::new();
        for run in &live {
            let (key, device) = (
                version_key(&run.version),
                run.device_id.as_deref().unwrap_or(""),
            );
            let minute_ms = minute_of(run.started_ms);
            let row = stats
                .entry((run.flow_id.as_str(), minute_ms, key, device))
                .or_insert_with(|| StatsRow {
                    flow_id: &run.flow_id,
                    minute_ms,
                    version_key: key,
                    device_id: device,
                    version_name: "",
                    run_count: 0,
                    paths_completed: 0,
                    paths_failed: 0,
                    wall_time_ms: 0,
                });
            row.version_name = version_name(&run.version);
            row.run_count = row.run_count.saturating_add(1);
            row.paths_completed = row
                .paths_completed
                .saturating_add(to_db_int(run.paths_completed));
            row.paths_failed = row.paths_failed.saturating_add(to_db_int(run.paths_failed));
            row.wall_time_ms = row.wall_time_ms.saturating_add(to_db_int(run.wall_time_ms));
        }

        let errors = live
            .iter()
            .flat_map(|run| {
                run.errors.iter().map(|error| ErrorRow {
                    flow_id: &run.flow_id,
                    time_ms: error.time_ms,
                    version_key: version_key(&run.version),
                    version_name: version_name(&run.version),
                    device_id: run.device_id.as_deref().unwrap_or(""),
                    node_id: error.node_id.as_deref(),
                    node_label: error.node_label.as_deref(),
                    name: &error.name,
                    message: &error.message,
                })
            })
            .collect();

        // Only a flow's newest `log_ring` runs of the batch can stay in its ring: at thousands
        // of runs a second, writing and then trimming the others was most of a batch's cost.
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
        let mut kept: Vec<&RunRecord> = per_flow.into_values().flatten().collect();
        kept.sort_by_key(|r| r.started_ms);
        let logs = kept
            .into_iter()
            .map(|run| LogRow {
                flow_id: &run.flow_id,
                started_ms: run.started_ms,
                version_key: version_key(&run.version),
                version_name: version_name(&run.version),
                wall_time_ms: to_db_int(run.wall_time_ms),
                paths_completed: to_db_int(run.paths_completed),
                paths_failed: to_db_int(run.paths_failed),
                errors: errors_json(&run.errors),
            })
            .collect();

        let flows: BTreeSet<&str> = live.iter().map(|r| r.flow_id.as_str()).collect();
        BatchRows {
            stats: stats.into_values().collect(),
            errors,
            logs,
            flows: flows.into_iter().collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// `AND …` conditions for a [`RunFilter`].
fn filter_sql<D: SqlDialect>(query: &mut QueryBuilder<D>, filter: &RunFilter) -> String {
    let mut sql = String::new();
    if let Some(version) = &filter.version {
        sql.push_str(&format!(
            " AND version_key = {}",
            query.text(version_key(version))
        ));
    }
    if let Some(device) = &filter.device_id {
        sql.push_str(&format!(" AND device_id = {}", query.text(device.clone())));
    }
    sql
}

/// The buckets of a `stats` call: whole multiples of the resolution since the epoch, the first
/// holding `start_ms`, the last holding the instant before `end_ms`.
pub(crate) struct StatsWindow {
    first: i64,
    /// The end of the last bucket (exclusive).
    stop: i64,
    count: usize,
    resolution: i64,
}

impl StatsWindow {
    /// `None` for an empty or reversed window; `LimitExceeded` for a resolution that is not
    /// positive, too many buckets, or a window out of range.
    pub fn new(start_ms: i64, end_ms: i64, resolution_ms: i64) -> StoreResult<Option<Self>> {
        if resolution_ms <= 0 {
            return Err(StoreError::LimitExceeded(format!(
                "the resolution must be a positive number of milliseconds, not {resolution_ms}"
            )));
        }
        if end_ms <= start_ms {
            return Ok(None);
        }
        // i128 keeps the arithmetic exact at any i64 input.
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
        Ok(Some(StatsWindow {
            first: first as i64,
            stop: stop as i64,
            count: count as usize,
            resolution: resolution_ms,
        }))
    }

    /// Sums per bucket index of a flow's stats rows in the window. Rows are counted in the
    /// bucket their minute starts in; offsets from `first` are never negative, so integer
    /// division rounds down. Columns: bucket, runs, paths completed, paths failed, wall time.
    /// For a backend across a connection: it sends one row per bucket.
    pub fn query<D: SqlDialect>(&self, flow_id: &str, filter: &RunFilter) -> SqlQuery {
        self.build::<D>(flow_id, filter, true)
    }

    /// The same columns, one row per stats row (several per bucket), for [`StatsWindow::buckets`]
    /// to sum. For an in-process backend: SQLite sorts a `GROUP BY` of a computed bucket through
    /// a temporary B-tree, which was a third of a month-at-one-minute answer (43,200 rows),
    /// while handing rows over costs it nothing.
    pub fn rows_query<D: SqlDialect>(&self, flow_id: &str, filter: &RunFilter) -> SqlQuery {
        self.build::<D>(flow_id, filter, false)
    }

    fn build<D: SqlDialect>(&self, flow_id: &str, filter: &RunFilter, grouped: bool) -> SqlQuery {
        let mut query = QueryBuilder::<D>::new();
        let (first, resolution) = (query.int(self.first), query.int(self.resolution));
        let (flow, stop) = (query.text(flow_id), query.int(self.stop));
        let filters = filter_sql(&mut query, filter);
        let columns = [
            "run_count",
            "paths_completed",
            "paths_failed",
            "wall_time_ms",
        ];
        let (columns, group) = match grouped {
            true => (columns.map(sum_int).join(", "), " GROUP BY bucket"),
            false => (columns.join(", "), ""),
        };
        let sql = format!(
            "SELECT (minute_ms - {first}) / {resolution} AS bucket, {columns} \
             FROM flow_stats WHERE flow_id = {flow} AND minute_ms >= {first} \
             AND minute_ms < {stop}{filters}{group}"
        );
        query.finish(sql)
    }

    /// The buckets, empty ones included with zeros, from the rows of [`StatsWindow::query`]
    /// or [`StatsWindow::rows_query`] (rows of one bucket are added up).
    pub fn buckets(&self, rows: Vec<BucketSums>) -> StoreResult<Vec<StatsBucket>> {
        let mut buckets: Vec<StatsBucket> = (0..self.count)
            .map(|i| StatsBucket {
                time_ms: self.first + i as i64 * self.resolution,
                ..StatsBucket::default()
            })
            .collect();
        let add = |sum: &mut u64, value: i64| *sum = sum.saturating_add(from_db_int(value));
        for row in rows {
            let bucket = usize::try_from(row.index)
                .ok()
                .and_then(|i| buckets.get_mut(i))
                .ok_or_else(|| {
                    StoreError::Backend(format!("stats bucket {} out of range", row.index))
                })?;
            add(&mut bucket.run_count, row.run_count);
            add(&mut bucket.paths_completed, row.paths_completed);
            add(&mut bucket.paths_failed, row.paths_failed);
            add(&mut bucket.wall_time_ms, row.wall_time_ms);
        }
        Ok(buckets)
    }
}

/// A row of [`StatsWindow::query`] (a bucket's index and its sums) or of
/// [`StatsWindow::rows_query`] (a bucket's index and one stats row's counters).
pub(crate) struct BucketSums {
    index: i64,
    run_count: i64,
    paths_completed: i64,
    paths_failed: i64,
    wall_time_ms: i64,
}

impl BucketSums {
    pub fn read(row: &impl ResultRow) -> StoreResult<BucketSums> {
        Ok(BucketSums {
            index: row.int(0)?,
            run_count: row.int(1)?,
            paths_completed: row.int(2)?,
            paths_failed: row.int(3)?,
            wall_time_ms: row.int(4)?,
        })
    }
}

/// Errors of a flow in `[start_ms, end_ms]`, in time order (then insertion order), newest
/// first unless `ascending`, at most `limit`; read them with [`stored_error`].
pub(crate) fn errors_query<D: SqlDialect>(
    flow_id: &str,
    filter: &RunFilter,
    (start_ms, end_ms): (i64, i64),
    limit: u64,
    ascending: bool,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let flow = query.text(flow_id);
    let (start, end) = (query.int(start_ms), query.int(end_ms));
    let filters = filter_sql(&mut query, filter);
    let limit = query.int(to_db_int(limit));
    let direction = direction_sql(if ascending {
        SortDirection::Asc
    } else {
        SortDirection::Desc
    });
    let sql = format!(
        "SELECT version_key, version_name, device_id, time_ms, node_id, node_label, name, \
         message FROM run_errors WHERE flow_id = {flow} AND time_ms >= {start} \
         AND time_ms <= {end}{filters} ORDER BY time_ms {direction}, {order} {direction} \
         LIMIT {limit}",
        order = D::INSERTION_ORDER
    );
    query.finish(sql)
}

/// A row of [`errors_query`].
pub(crate) fn stored_error(row: &impl ResultRow) -> StoreResult<StoredRunError> {
    let device = row.text(2)?;
    Ok(StoredRunError {
        version: version_from(row.text(0)?, row.text(1)?),
        device_id: (!device.is_empty()).then_some(device),
        error: RunError {
            time_ms: row.int(3)?,
            node_id: row.optional_text(4)?,
            node_label: row.optional_text(5)?,
            name: row.text(6)?,
            message: row.text(7)?,
        },
    })
}

/// Log entries of a flow newest first (then last inserted first), at most `limit`; read them
/// with [`log_entry`].
pub(crate) fn logs_query<D: SqlDialect>(
    flow_id: &str,
    version: Option<&RunVersion>,
    since_ms: Option<i64>,
    limit: u64,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let mut sql = format!(
        "SELECT version_key, version_name, started_ms, wall_time_ms, paths_completed, \
         paths_failed, errors FROM run_logs WHERE flow_id = {}",
        query.text(flow_id)
    );
    if let Some(since) = since_ms {
        sql.push_str(&format!(" AND started_ms >= {}", query.int(since)));
    }
    if let Some(version) = version {
        sql.push_str(&format!(
            " AND version_key = {}",
            query.text(version_key(version))
        ));
    }
    sql.push_str(&format!(
        " ORDER BY started_ms DESC, {} DESC LIMIT {}",
        D::INSERTION_ORDER,
        query.int(to_db_int(limit))
    ));
    query.finish(sql)
}

/// A row of [`logs_query`].
pub(crate) fn log_entry(row: &impl ResultRow) -> StoreResult<RunLogEntry> {
    Ok(RunLogEntry {
        version: version_from(row.text(0)?, row.text(1)?),
        started_ms: row.int(2)?,
        wall_time_ms: from_db_int(row.int(3)?),
        paths_completed: from_db_int(row.int(4)?),
        paths_failed: from_db_int(row.int(5)?),
        errors: errors_from_json(&row.text(6)?)?,
    })
}

/// Runs per version name since the minute holding `since_ms`, and errors per version name
/// since `since_ms` itself: rows for [`name_count`], then [`run_summary`].
pub(crate) fn summary_queries<D: SqlDialect>(flow_id: &str, since_ms: i64) -> [SqlQuery; 2] {
    let mut runs = QueryBuilder::<D>::new();
    let runs_sql = format!(
        "SELECT version_name, {} FROM flow_stats WHERE flow_id = {} AND minute_ms >= {} \
         GROUP BY version_name",
        sum_int("run_count"),
        runs.text(flow_id),
        runs.int(minute_of(since_ms))
    );
    let mut errors = QueryBuilder::<D>::new();
    let errors_sql = format!(
        "SELECT version_name, COUNT(*) FROM run_errors WHERE flow_id = {} AND time_ms >= {} \
         GROUP BY version_name",
        errors.text(flow_id),
        errors.int(since_ms)
    );
    [runs.finish(runs_sql), errors.finish(errors_sql)]
}

/// A row of the [`summary_queries`]: a version name and a count.
pub(crate) fn name_count(row: &impl ResultRow) -> StoreResult<(String, i64)> {
    Ok((row.text(0)?, row.int(1)?))
}

/// The summary from the rows of the two [`summary_queries`].
pub(crate) fn run_summary(runs: Vec<(String, i64)>, errors: Vec<(String, i64)>) -> RunSummary {
    // Name → (runs, errors).
    let mut by_version: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (name, count) in runs {
        by_version.entry(name).or_default().0 += from_db_int(count);
    }
    for (name, count) in errors {
        by_version.entry(name).or_default().1 += from_db_int(count);
    }
    RunSummary {
        run_count: by_version.values().map(|(runs, _)| runs).sum(),
        error_count: by_version.values().map(|(_, errors)| errors).sum(),
        by_version: by_version
            .into_iter()
            .map(|(name, (runs, errors))| (name, runs, errors))
            .collect(),
    }
}

/// Retention: the deletes of stats, errors and logs older than `before_ms`. A stats minute goes
/// once all of it is before the cutoff; errors and logs go by their own time.
pub(crate) fn retention_deletes<D: SqlDialect>(before_ms: i64) -> [SqlQuery; 3] {
    let delete = |table: &str, column: &str, cutoff: i64| {
        let mut query = QueryBuilder::<D>::new();
        let sql = format!("DELETE FROM {table} WHERE {column} < {}", query.int(cutoff));
        query.finish(sql)
    };
    [
        delete("flow_stats", "minute_ms", minute_of(before_ms)),
        delete("run_errors", "time_ms", before_ms),
        delete("run_logs", "started_ms", before_ms),
    ]
}

/// Now, in ms since the epoch (when the store remembers a run id).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
