//! The run queue: presses, webhooks, timers and other triggers become [`RunJob`]s that wait in a
//! bounded queue for a worker. When the queue is full, the caller is told at once (the API
//! answers 429) instead of memory growing. [`RunQueue`] is the seam for a NATS JetStream queue:
//! a job is plain data (ids, not pointers), so it can cross a process boundary.
//!
//! Timer ticks have a lane of their own, served first: a flood of presses fills the main lane,
//! and a tick queued behind it would run late by the whole backlog, or be dropped when it is
//! full. A tick waits only for a free worker.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Which version a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionRef {
    Develop,
    Id(String),
}

/// One run to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: String,
    pub application_id: String,
    pub flow_id: String,
    pub version: VersionRef,
    pub trigger_type: String,
    pub trigger_key: String,
    /// The trigger's index in the version, when known: it tells apart two triggers of one
    /// type and key (two Workflow Error triggers, say). Checked against type and key at run time.
    #[serde(default)]
    pub trigger_index: Option<usize>,
    pub data: Value,
    pub relay_id: Option<String>,
    pub relay_type: Option<String>,
    pub device_id: Option<String>,
    pub time_ms: i64,
    /// How many Workflow Trigger nodes led to this run.
    #[serde(default)]
    pub depth: u32,
    /// Jobs with the same key are one job to a queue that deduplicates (a timer tick that every
    /// node of a cluster submits); `None` for a job only its submitter makes.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The trigger types whose jobs take the scheduled lane.
const SCHEDULED_TRIGGERS: &[&str] = &["timer"];

/// Ticks waiting in the scheduled lane at most: one per armed timer is the steady state, so this
/// only bounds a pathological backlog.
const SCHEDULED_CAPACITY: usize = 4096;

impl RunJob {
    /// Whether the job comes from a schedule (and takes the scheduled lane).
    pub fn is_scheduled(&self) -> bool {
        SCHEDULED_TRIGGERS.contains(&self.trigger_type.as_str())
    }
}

/// The queue is full; try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run queue is full")]
pub struct QueueFull;

/// Why a job was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the run queue is full")]
    Full,
    /// The queue's service could not be reached or refused the job.
    #[error("the run queue is unavailable: {0}")]
    Unavailable(String),
}

impl From<QueueFull> for SubmitError {
    fn from(_: QueueFull) -> Self {
        SubmitError::Full
    }
}

/// Where jobs wait for a worker.
pub trait RunQueue: Send + Sync {
    /// Queues a job without waiting, or refuses at once when full. For events nobody waits on
    /// (a timer tick, a broker message): a queue that persists jobs elsewhere may still be
    /// sending it when this returns.
    fn try_submit(&self, job: RunJob) -> Result<(), QueueFull>;
    /// Queues a job and answers once the queue holds it (durably, for a queue that persists
    /// jobs): what a press or a webhook request is acknowledged after.
    fn submit(&self, job: RunJob) -> BoxFuture<'static, Result<(), SubmitError>> {
        let queued = self.try_submit(job).map_err(SubmitError::from);
        Box::pin(std::future::ready(queued))
    }
    /// Stops taking jobs and waits until the running ones are done (and, for the in-process
    /// queue, the queued ones too; a shared queue leaves them to the other nodes).
    fn drain(&self) -> BoxFuture<'static, ()>;
    /// Whether other flowd nodes take jobs from this queue too.
    fn is_shared(&self) -> bool {
        false
    }
    /// What kind of queue this is, for readiness answers: `local` or the service's name.
    fn kind(&self) -> &'static str {
        "local"
    }
    /// Whether the queue can take jobs now; what is wrong when not.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Settles a job with its queue once its run has ended and the run's accounting is committed:
/// a shared queue acknowledges the job here. Until then the job is the queue's to deliver
/// again (to another node, when this one dies); dropped unsettled, it will be.
pub type Settle = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// What a worker does with a job.
pub type JobHandler = Arc<dyn Fn(RunJob, Option<Settle>) -> BoxFuture<'static, ()> + Send + Sync>;

/// The in-process queue: two bounded channels (the main lane and the scheduled lane) and a
/// dispatcher that runs up to `workers` jobs at once as tokio tasks, taking scheduled jobs first.
/// A job that finds a worker free and nothing queued starts at once, without the dispatcher.
pub struct InProcessQueue {
    sender: std::sync::Mutex<Option<Lanes>>,
    workers: Arc<Semaphore>,
    worker_count: u32,
    done: Arc<tokio::sync::Notify>,
    handler: JobHandler,
    runtime: tokio::runtime::Handle,
}

struct Lanes {
    main: mpsc::Sender<RunJob>,
    scheduled: mpsc::Sender<RunJob>,
}

impl InProcessQueue {
    pub fn start(capacity: usize, workers: usize, handler: JobHandler) -> InProcessQueue {
        let (main, mut main_jobs) = mpsc::channel::<RunJob>(capacity.max(1));
        let (scheduled, mut scheduled_jobs) = mpsc::channel::<RunJob>(SCHEDULED_CAPACITY);
        let semaphore = Arc::new(Semaphore::new(workers.max(1)));
        let done = Arc::new(tokio::sync::Notify::new());
        let permits = semaphore.clone();
        let finished = done.clone();
        let (dispatched, runtime) = (handler.clone(), tokio::runtime::Handle::current());
        let dispatcher_runtime = runtime.clone();
        tokio::spawn(async move {
            loop {
                // Waiting for a worker first, then taking a job, lets a tick that arrives while
                // every worker is busy overtake the main lane's backlog.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let job = tokio::select! {
                    biased;
                    Some(job) = scheduled_jobs.recv() => job,
                    Some(job) = main_jobs.recv() => job,
                    else => break,
                };
                start_job(&dispatcher_runtime, &dispatched, job, permit);
            }
            finished.notify_waiters();
        });
        InProcessQueue {
            sender: std::sync::Mutex::new(Some(Lanes { main, scheduled })),
            workers: semaphore,
            worker_count: workers.max(1) as u32,
            done,
            handler,
            runtime,
        }
    }
}

/// Runs a job as a task of its own, holding its worker until it ends. Nothing to settle: a job
/// in this process's memory is delivered once.
fn start_job(
    runtime: &tokio::runtime::Handle,
    handler: &JobHandler,
    job: RunJob,
    worker: tokio::sync::OwnedSemaphorePermit,
) {
    let run = handler(job, None);
    runtime.spawn(async move {
        run.await;
        drop(worker);
    });
}

impl RunQueue for InProcessQueue {
    fn try_submit(&self, job: RunJob) -> Result<(), QueueFull> {
        let guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(lanes) = guard.as_ref() else {
            return Err(QueueFull);
        };
        let lane = if job.is_scheduled() {
            &lanes.scheduled
        } else {
            &lanes.main
        };
        // Nothing queued ahead and a worker free: start the run now, sparing the dispatcher a
        // wake-up per job. A permit freed while the dispatcher waits goes to the dispatcher
        // (the semaphore serves waiters first), so a tick still overtakes a backlog.
        let idle_lanes = [&lanes.main, &lanes.scheduled]
            .iter()
            .all(|l| l.capacity() == l.max_capacity());
        if idle_lanes {
            if let Ok(permit) = self.workers.clone().try_acquire_owned() {
                start_job(&self.runtime, &self.handler, job, permit);
                return Ok(());
            }
        }
        lane.try_send(job).map_err(|_| QueueFull)
    }

    fn drain(&self) -> BoxFuture<'static, ()> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let workers = self.workers.clone();
        let count = self.worker_count;
        let done = self.done.clone();
        Box::pin(async move {
            if let Some(sender) = sender {
                let notified = done.notified();
                // Closing the lanes lets the dispatcher finish the queued jobs and stop.
                drop(sender);
                notified.await;
            }
            // Every permit back means no job is running.
            let _all = workers.acquire_many(count).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn job(n: usize) -> RunJob {
        RunJob {
            run_id: n.to_string(),
            application_id: String::new(),
            flow_id: String::new(),
            version: VersionRef::Develop,
            trigger_type: "virtualButton".into(),
            trigger_key: String::new(),
            trigger_index: None,
            data: Value::Null,
            relay_id: None,
            relay_type: None,
            device_id: None,
            time_ms: 0,
            depth: 0,
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn runs_jobs_refuses_when_full_and_drains() {
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (counter, blocker) = (ran.clone(), gate.clone());
        let handler: JobHandler = Arc::new(move |_job, _| {
            let (counter, blocker) = (counter.clone(), blocker.clone());
            Box::pin(async move {
                let _ = blocker.acquire().await.map(|p| p.forget());
                counter.fetch_add(1, Ordering::SeqCst);
            })
        });
        let queue = InProcessQueue::start(2, 1, handler);
        // One job runs (blocked), then the queue holds two; one more must be refused.
        let mut accepted = 0;
        for n in 0..10 {
            if queue.try_submit(job(n)).is_ok() {
                accepted += 1;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            accepted <= 4,
            "accepted {accepted} with capacity 2 and 1 worker"
        );
        assert!(queue.try_submit(job(99)).is_err());
        gate.add_permits(100);
        queue.drain().await;
        assert_eq!(ran.load(Ordering::SeqCst), accepted);
        assert_eq!(queue.try_submit(job(100)), Err(QueueFull));
    }

    #[tokio::test]
    async fn jobs_started_at_once_still_count_against_the_workers() {
        // Jobs that find a worker free skip the dispatcher; they must still hold a worker, so
        // that no more than `workers` run at once however they were started.
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (now, peak, blocker) = (running.clone(), most.clone(), gate.clone());
        let handler: JobHandler = Arc::new(move |_job, _| {
            let (now, peak, blocker) = (now.clone(), peak.clone(), blocker.clone());
            Box::pin(async move {
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(at_once, Ordering::SeqCst);
                let _ = blocker.acquire().await.map(|p| p.forget());
                now.fetch_sub(1, Ordering::SeqCst);
            })
        });
        let queue = InProcessQueue::start(100, 3, handler);
        tokio::task::yield_now().await;
        let mut accepted = 0;
        for n in 0..20 {
            // Back to back (the lanes stay empty while workers are free), then with yields.
            if queue.try_submit(job(n)).is_ok() {
                accepted += 1;
            }
            if n >= 10 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(accepted, 20, "the main lane has room for all");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(most.load(Ordering::SeqCst), 3, "three workers, all busy");
        gate.add_permits(100);
        queue.drain().await;
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_timer_tick_overtakes_a_full_main_lane() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (seen, blocker) = (order.clone(), gate.clone());
        let handler: JobHandler = Arc::new(move |job, _| {
            let (seen, blocker) = (seen.clone(), blocker.clone());
            Box::pin(async move {
                let _ = blocker.acquire().await.map(|p| p.forget());
                seen.lock().unwrap().push(job.run_id);
            })
        });
        let queue = InProcessQueue::start(3, 1, handler);
        // One press runs (blocked on the gate) and the main lane fills up behind it. Bounded, so
        // that a queue ignoring its worker limit fails here instead of taking presses forever.
        let mut presses = 0;
        while presses < 100 && queue.try_submit(job(presses)).is_ok() {
            presses += 1;
            tokio::task::yield_now().await;
        }
        assert!(
            (3..100).contains(&presses),
            "{presses} presses taken by a queue of 3 with 1 worker"
        );
        let mut tick = job(1000);
        tick.trigger_type = "timer".into();
        assert!(tick.is_scheduled());
        queue
            .try_submit(tick)
            .expect("a tick is taken while presses are refused");
        gate.add_permits(100);
        queue.drain().await;
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), presses + 1);
        // The press already running finishes first; the tick comes next, before the backlog.
        assert_eq!(order[1], "1000", "{order:?}");
    }
}
