//! Run accounting: what every run leaves behind for the `errors`, `logs` and `stats` actions
//! (spec decisions 6, 7 and 10). The engine collects runs in memory and hands them over in
//! batches (about once a second), never one write per node or per run.

use crate::StoreResult;
use async_trait::async_trait;

/// The version a run used: develop, or a named version (by id; the name is kept for display).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunVersion {
    Develop,
    Named { id: String, name: String },
}

/// One error recorded by a run (the `flowErrors` item).
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    /// When it happened, ms since the epoch.
    pub time_ms: i64,
    pub node_id: Option<String>,
    /// The node's `meta.label`.
    pub node_label: Option<String>,
    /// From the closed list of error names (decision 10).
    pub name: String,
    pub message: String,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub application_id: String,
    pub flow_id: String,
    pub version: RunVersion,
    /// Edge/embedded runs only.
    pub device_id: Option<String>,
    /// When the run started, ms since the epoch.
    pub started_ms: i64,
    /// How long it took, ms.
    pub wall_time_ms: u64,
    pub paths_completed: u64,
    pub paths_failed: u64,
    pub errors: Vec<RunError>,
    /// The run's id when the run may be reported twice — a job a shared queue can deliver
    /// again, after a node died between committing the run's accounting and acknowledging the
    /// job. The store counts such an id once (within [`ONCE_WINDOW_MS`]); `None` counts always.
    pub once_id: Option<String>,
}

/// How long the store remembers the ids of [`RunRecord::once_id`] runs: far longer than a job
/// can wait to be delivered again (the ack wait times the deliveries), far shorter than the
/// history, so the table stays small.
pub const ONCE_WINDOW_MS: i64 = 3_600_000;

/// Which runs a query covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// `None`: all versions. `Some(Develop)`: develop only. `Some(Named{id,..})`: that version
    /// (matched by id).
    pub version: Option<RunVersion>,
    pub device_id: Option<String>,
}

/// One `stats` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsBucket {
    /// Bucket start, ms since the epoch (a multiple of the resolution).
    pub time_ms: i64,
    pub run_count: u64,
    pub paths_completed: u64,
    pub paths_failed: u64,
    pub wall_time_ms: u64,
}

/// A stored error with the version it happened in.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRunError {
    pub version: RunVersion,
    pub device_id: Option<String>,
    pub error: RunError,
}

/// A `logs` entry: one run (decision 7).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLogEntry {
    pub version: RunVersion,
    pub started_ms: i64,
    pub wall_time_ms: u64,
    pub paths_completed: u64,
    pub paths_failed: u64,
    pub errors: Vec<RunError>,
}

/// Run and error counts per version over a window (the `stats` field of a workflow).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunSummary {
    pub run_count: u64,
    pub error_count: u64,
    /// Keyed by version name (`develop` for develop).
    pub by_version: Vec<(String, u64, u64)>,
}

#[async_trait]
pub trait AccountingStore: Send + Sync {
    /// Records a batch of runs in one transaction: per-minute stats rows are incremented,
    /// errors appended, and each run's log entry added to its flow's ring, which is then trimmed
    /// to the newest `log_ring` entries.
    async fn record_runs(&self, runs: &[RunRecord], log_ring: usize) -> StoreResult<()>;

    /// Buckets of `resolution_ms` covering `[start_ms, end_ms)`, aligned to multiples of the
    /// resolution since the epoch, ascending, empty buckets included with zeros.
    async fn stats(
        &self,
        flow_id: &str,
        filter: &RunFilter,
        start_ms: i64,
        end_ms: i64,
        resolution_ms: i64,
    ) -> StoreResult<Vec<StatsBucket>>;

    /// Errors in `[start_ms, end_ms]`, newest first unless `ascending`, at most `limit`.
    async fn errors(
        &self,
        flow_id: &str,
        filter: &RunFilter,
        start_ms: i64,
        end_ms: i64,
        limit: u64,
        ascending: bool,
    ) -> StoreResult<Vec<StoredRunError>>;

    /// Log entries newest first, at most `limit`, optionally only those started at or after
    /// `since_ms`, optionally only one version.
    async fn logs(
        &self,
        flow_id: &str,
        version: Option<&RunVersion>,
        since_ms: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<RunLogEntry>>;

    /// Runs and errors since `since_ms`, in total and per version.
    async fn run_summary(&self, flow_id: &str, since_ms: i64) -> StoreResult<RunSummary>;

    /// Deletes stats, errors and logs older than `before_ms` (retention); returns rows removed.
    async fn delete_accounting_before(&self, before_ms: i64) -> StoreResult<u64>;
}
