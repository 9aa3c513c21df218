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
/// Log entries kept per flow (decision 7).
pub const DEFAULT_LOG_RING: usize = 1000;

pub struct Accounting {
    store: Arc<dyn Store>,
    buffer: Mutex<Vec<RunRecord>>,
    /// Serialises writers so a flush really waits for the batch before it.
    writing: tokio::sync::Mutex<()>,
    wake: Notify,
    log_ring: usize,
}

impl Accounting {
    /// Starts the periodic writer.
    pub fn start(store: Arc<dyn Store>, log_ring: usize) -> Arc<Accounting> {
        let accounting = Arc::new(Accounting {
            store,
            buffer: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            log_ring,
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

    /// Writes everything buffered so far.
    pub async fn flush(&self) -> Result<(), flowd_store::StoreError> {
        let _writer = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.record_runs(&batch, self.log_ring).await {
            // Put the runs back so the next attempt has them; accounting may lose at most what
            // a crash takes, never what a failed write did.
            let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            let newer = std::mem::replace(&mut *buffer, batch);
            buffer.extend(newer);
            return Err(e);
        }
        Ok(())
    }
}

impl RunObserver for Accounting {
    fn run_finished(&self, run: &RunInfo, result: &RunResult) {
        let version = match &run.version_id {
            None => RunVersion::Develop,
            Some(id) => RunVersion::Named {
                id: id.clone(),
                name: run.version_name.clone(),
            },
        };
        let errors = result
            .failure
            .iter()
            .map(|f| RunError {
                time_ms: f.time_ms,
                node_id: f.node_id.clone(),
                node_label: f.node_label.clone(),
                name: f.error.name.as_str().to_owned(),
                message: f.error.message.clone(),
            })
            .collect();
        let record = RunRecord {
            application_id: run.application_id.clone(),
            flow_id: run.flow_id.clone(),
            version,
            device_id: run.device_id.clone(),
            started_ms: run.started_ms,
            wall_time_ms: result.wall_time.as_millis() as u64,
            paths_completed: result.paths_completed,
            paths_failed: result.paths_failed,
            errors,
        };
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        buffer.push(record);
        if buffer.len() >= EARLY_FLUSH_RUNS {
            self.wake.notify_one();
        }
    }
}
