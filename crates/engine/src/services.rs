//! What the engine shares with every run: storage, observers, limits (and, as nodes arrive,
//! the JavaScript sandbox and HTTP client). Nodes reach the outside world only through these.

use crate::js::JsSandbox;
use crate::observer::RunObserver;
use crate::storage::StorageService;
use std::sync::Arc;
use std::time::Duration;

/// Run limits (spec decision 9), configurable.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub run_time: Duration,
    /// Longest Delay node wait (Losant's cloud limit: 59 s).
    pub max_delay: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            run_time: crate::run::DEFAULT_RUN_TIME_LIMIT,
            max_delay: crate::nodes::logic::delay::DEFAULT_MAX_DELAY,
        }
    }
}

pub struct Services {
    pub storage: StorageService,
    /// Where Function node scripts run.
    pub js: JsSandbox,
    pub observers: Vec<Arc<dyn RunObserver>>,
    pub limits: RunLimits,
}
