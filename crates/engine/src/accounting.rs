//! The accounting observer: every finished run becomes a [`RunRecord`], kept in memory and
//! written to the store in one batch about once a second (never a write per node or per run).
//! Readers call [`Accounting::flush`] first, so the API sees a run as soon as it has ended.

use crate::node::RunInfo;
use crate::observer::{RunObserver, RunResult};
use flowd_store::{RunError, RunRecord, RunVersion, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How often buffered runs are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered runs that trigger an early write.
const EARLY_FLUSH_RUNS: usize = 10_000;
/// Largest emptied batch kept for reuse (runs); a larger one, after a backlog, is freed.
const MAX_SPARE_RUNS: usize = 4 * EARLY_FLUSH_RUNS;
/// Log entries kept per flow (decision 7).
pub const DEFAULT_LOG_RING: usize = 1000;

pub struct Accounting {
    store: Arc<dyn Store>,
    buffer: Mutex<Buffer>,
    /// How many runs have been committed to the store (of those counted in `Buffer::taken`).
    committed: tokio::sync::watch::Sender<u64>,
    /// Serialises writers so a flush really waits for the batch before it.
    writing: tokio::sync::Mutex<()>,
    wake: Notify,
    log_ring: usize,
    /// Set when runs come from a queue that may deliver a job twice: each record then carries
    /// its run id, which the store counts once.
    once_ids: std::sync::atomic::AtomicBool,
}

impl Accounting {
    /// Starts the periodic writer.
    pub fn start(store: Arc<dyn Store>, log_ring: usize) -> Arc<Accounting> {
        let accounting = Arc::new(Accounting {
            store,
            buffer: Mutex::new(Buffer::default()),
            committed: tokio::sync::watch::channel(0).0,
            writing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            log_ring,
            once_ids: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&accounting);
        tokio::spawn(async move {
            loop {
                let wake = match weak.upgrade() {
                    Some(a) => a,
                    None => return,
                };
                tokio::select! {
                    _ = tokio::time::sleep(FLUSH_INTERVAL) => {},
                    _ = wake.wake.notified() => {},
                }
                if let Err(e) = wake.flush().await {
                    tracing::error!(error = %e, "writing run accounting failed; will retry");
                }
            }
        });
        accounting
    }

    /// Runs come from a queue that may deliver a job twice (see `RunRecord::once_id`).
    pub fn count_run_ids_once(&self) {
        self.once_ids
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes everything buffered so far.
    pub async fn flush(&self) -> Result<(), flowd_store::StoreError> {
        let _writer = self.writing.lock().await;
        let (mut batch, through) = {
            let mut buffer = self.lock();
            let spare = std::mem::take(&mut buffer.spare);
            (std::mem::replace(&mut buffer.runs, spare), buffer.recorded)
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.record_runs(&batch, self.log_ring).await {
            // Put the runs back so the next attempt has them; accounting may lose at most what
            // a crash takes, never what a failed write did.
            let mut buffer = self.lock();
            let newer = std::mem::replace(&mut buffer.runs, batch);
            buffer.runs.extend(newer);
            return Err(e);
        }
        // Batches are written in order (one writer at a time), so every run recorded before
        // this batch was taken is now in the store.
        self.committed.send_replace(through);
        batch.clear();
        if batch.capacity() <= MAX_SPARE_RUNS {
            self.lock().spare = batch;
        }
        Ok(())
    }

    /// Waits until every run finished so far is committed to the store, asking for a write
    /// now rather than at the next interval (runs finishing meanwhile join that write).
    pub async fn committed(&self) -> Result<(), flowd_store::StoreError> {
        let target = self.lock().recorded;
        let mut committed = self.committed.subscribe();
        if *committed.borrow() >= target {
            return Ok(());
        }
        self.wake.notify_one();
        committed
            .wait_for(|&through| through >= target)
            .await
            .map(|_| ())
            .map_err(|_| flowd_store::StoreError::Backend("the accounting writer stopped".into()))
    }
}

/// Runs waiting to be written, and how many were ever recorded.
#[derive(Default)]
struct Buffer {
    runs: Vec<RunRecord>,
    /// The last written batch's vector, emptied, for the next batch: a fresh one grew to
    /// thousands of runs every second, reallocated and copied a dozen times on the way.
    spare: Vec<RunRecord>,
    recorded: u64,
}

impl RunObserver for Accounting {
    fn run_finished(&self, run: &RunInfo, result: &RunResult) {
        let version = match &run.flow.version_id {
            None => RunVersion::Develop,
            Some(id) => RunVersion::Named {
                id: id.clone(),
                name: run.flow.version_name.clone(),
            },
        };
        let errors = result
            .failure
            .iter()
            .map(|f| RunError {
                time_ms: f.time_ms,
                node_id: f.node_id.as_deref().map(storable),
                node_label: f.node_label.as_deref().map(storable),
                name: f.error.name.as_str().to_owned(),
                message: storable(&f.error.message),
            })
            .collect();
        let record = RunRecord {
            once_id: self
                .once_ids
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| run.run_id.clone()),
            application_id: run.flow.application_id.clone(),
            flow_id: run.flow.flow_id.clone(),
            version,
            device_id: run.device_id.clone(),
            started_ms: run.started_ms,
            wall_time_ms: result.wall_time.as_millis() as u64,
            paths_completed: result.paths_completed,
            paths_failed: result.paths_failed,
            errors,
        };
        let mut buffer = self.lock();
        buffer.runs.push(record);
        buffer.recorded += 1;
        if buffer.runs.len() >= EARLY_FLUSH_RUNS {
            self.wake.notify_one();
        }
    }
}

/// Text a store can keep in a text column: NUL characters (a script's `throw new
/// Error("a\u0000b")`) become U+FFFD, since PostgreSQL refuses them — and a batch it refuses is
/// retried whole, so one such message would stop every run's accounting after it.
fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn nul_characters_are_replaced_in_stored_text() {
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable("plain"), "plain");
    }
}
