//! The JavaScript sandbox behind the Function node (`RawFunctionNode`): user scripts run in
//! QuickJS (`rquickjs`) on a bounded pool of dedicated worker threads, never on the async
//! executor.
//!
//! # What a script sees (NODES.md, RawFunctionNode)
//! - a global `payload`: a deep copy of the run's payload as plain JavaScript values (strings stay
//!   strings, so an ISO `payload.time` stays a string);
//! - its body runs inside an `async function`, so a top-level `return` works and so does `await`;
//!   the run settles when the body's promise does and no queued job is left;
//! - the result: the returned value when it is not `undefined` (it replaces the payload),
//!   otherwise the global `payload` as the script left it (mutated or reassigned); it goes through
//!   `JSON.stringify`, so `undefined` properties and functions disappear, `NaN`/`±Infinity` become
//!   `null` and Dates ISO strings; a result JSON cannot hold at all (`undefined`) is `null`;
//! - `console.log/info/warn/error/debug/trace/dir/assert` write lines formatted like Node's
//!   `util.format` (strings raw, other values inspected on one line): at most [`MAX_LOG_LINES`]
//!   per run and [`MAX_LOG_LINE_BYTES`] per line, cut beyond;
//! - the ECMAScript built-ins (plus `atob`/`btoa`, `performance`), and nothing else: no `require`,
//!   `process`, `fetch`, `setTimeout`, `Buffer`, file or network access (QuickJS's `std`/`os`
//!   modules are not loaded).
//!
//! # Failures
//! A thrown value (or the reason of a rejected promise the script awaits or returns) becomes
//! [`JsError::Script`] with the error's `name` and `message` (or `Error` and `String(value)` for a
//! non-Error, or its type when that throws); the memory limit [`JsError::OutOfMemory`]; the time
//! limit [`JsError::Timeout`] (an interrupt handler checks the deadline while the script runs);
//! too deep a recursion a `RangeError` script error. Mapping these to Losant's error names
//! (`FunctionNodeTypeError`, …) is the node's business.
//!
//! # Isolation and the pool
//! Each worker owns one QuickJS runtime and context (memory, stack and time limits) in a memory
//! region of its own, and puts that region back to a snapshot taken after set-up once each run is
//! over, while nobody waits (see `worker.rs` for why and what it costs; `arena.rs` for the
//! region). Memory is counted in the region's size classes (up to 12.5 % above what a large
//! allocation asked for). After a run that touched much more memory than the snapshot, the
//! worker gives those pages back to the system.
//! Jobs reach the workers through one bounded queue that every idle worker takes from, so a
//! worker busy with a slow script never holds up a run another worker could take; answers come
//! back on a `oneshot` channel (the handoff costs ~5 µs of a run's ~50). A run whose caller stops
//! waiting (drops the `run` future) is skipped if still queued and stopped at the next interrupt
//! check if running, so it frees its worker at once. A worker that panics answers
//! [`JsError::Internal`] and starts over on a new runtime; a worker thread that dies is replaced.

mod arena;
mod worker;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use worker::Worker;

/// Most `console.*` lines kept per run; later ones are dropped.
pub const MAX_LOG_LINES: usize = 100;
/// Longest `console.*` line kept, in bytes of UTF-8; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Longest error message reported for a thrown value, in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 16 * 1024;
/// Jobs that may wait in the queue per worker before [`JsSandbox::run`] waits for room.
pub const QUEUE_PER_WORKER: usize = 64;
/// Stack a worker thread has beyond the script's own stack limit (for Rust and QuickJS frames
/// outside the checked region).
const THREAD_STACK_HEADROOM: usize = 2 * 1024 * 1024;

/// Limits applied to every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsLimits {
    /// Wall-clock time a run may take, from the start of its JavaScript work.
    pub time: Duration,
    /// Memory a worker's QuickJS runtime may hold (0 = unlimited).
    pub memory_bytes: usize,
    /// Stack the script may use; deeper recursion is a `RangeError`.
    pub max_stack_bytes: usize,
}

impl Default for JsLimits {
    /// 5 s, 64 MiB, 1 MiB of stack.
    fn default() -> Self {
        JsLimits {
            time: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            max_stack_bytes: 1024 * 1024,
        }
    }
}

/// What a successful run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct JsOutcome {
    /// The payload after the script (or the value it returned).
    pub payload: serde_json::Value,
    /// What the script wrote with `console.*`, one entry per call.
    pub logs: Vec<String>,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsError {
    /// The script ran past [`JsLimits::time`].
    #[error("the script ran out of time")]
    Timeout,
    /// The script went over [`JsLimits::memory_bytes`].
    #[error("the script ran out of memory")]
    OutOfMemory,
    /// The script threw (or failed to compile).
    #[error("{name}: {message}")]
    Script { name: String, message: String },
    /// The sandbox itself failed; not the script's fault.
    #[error("JavaScript sandbox failure: {0}")]
    Internal(String),
}

/// One run waiting for a worker.
struct Job {
    script: Arc<str>,
    /// The payload as JSON text: what the worker hands QuickJS's `JSON.parse`.
    payload_json: String,
    reply: oneshot::Sender<Result<JsOutcome, JsError>>,
}

/// The queue's receiving end, shared by the workers: whichever is idle takes the next job.
type SharedReceiver = Arc<Mutex<mpsc::Receiver<Job>>>;

/// A bounded pool of worker threads running Function node scripts. Cheap to share (`Arc` it);
/// dropping it lets the workers finish what they hold and exit. Clones share the workers.
#[derive(Clone)]
pub struct JsSandbox {
    queue: mpsc::Sender<Job>,
}

impl JsSandbox {
    /// Starts `workers` threads (at least one), each with its own QuickJS runtime.
    pub fn new(workers: usize, limits: JsLimits) -> Self {
        let workers = workers.max(1);
        let (queue, receiver) = mpsc::channel(workers * QUEUE_PER_WORKER);
        let receiver: SharedReceiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            spawn_worker(index, Arc::clone(&receiver), limits);
        }
        JsSandbox { queue }
    }

    /// Runs `script` as a Losant Function node body with `payload` bound; resolves when done.
    pub async fn run(
        &self,
        script: &str,
        payload: impl std::borrow::Borrow<serde_json::Value>,
    ) -> Result<JsOutcome, JsError> {
        let payload_json = payload_json(payload.borrow())?;
        self.run_json(script.into(), payload_json).await
    }

    /// [`JsSandbox::run`] with the payload already written as JSON (by [`payload_json`]), so that
    /// a caller can write it from a borrowed payload before it awaits.
    pub async fn run_json(
        &self,
        script: Arc<str>,
        payload_json: String,
    ) -> Result<JsOutcome, JsError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            script,
            payload_json,
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| JsError::Internal("the JavaScript workers have stopped".to_owned()))?;
        answer.await.map_err(|_| {
            JsError::Internal("a JavaScript worker stopped before answering".to_owned())
        })?
    }
}

/// A payload as the JSON text [`JsSandbox::run_json`] takes.
pub fn payload_json(payload: &serde_json::Value) -> Result<String, JsError> {
    serde_json::to_string(payload)
        .map_err(|e| JsError::Internal(format!("payload does not serialize: {e}")))
}

fn spawn_worker(index: usize, receiver: SharedReceiver, limits: JsLimits) {
    let spawned = std::thread::Builder::new()
        .name(format!("flowd-js-{index}"))
        .stack_size(limits.max_stack_bytes.saturating_add(THREAD_STACK_HEADROOM))
        .spawn(move || {
            let _replace_if_it_dies = Respawn {
                index,
                receiver: Arc::clone(&receiver),
                limits,
            };
            work(&receiver, limits);
        });
    if let Err(e) = spawned {
        // Without threads the jobs wait in the queue; nothing better can be done here.
        tracing::error!(worker = index, error = %e, "cannot start a JavaScript worker");
    }
}

/// Starts a replacement when a worker thread unwinds past its loop.
struct Respawn {
    index: usize,
    receiver: SharedReceiver,
    limits: JsLimits,
}

impl Drop for Respawn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            spawn_worker(self.index, Arc::clone(&self.receiver), self.limits);
        }
    }
}

/// A worker's loop: take a job, run it, answer, prepare for the next.
fn work(receiver: &SharedReceiver, limits: JsLimits) {
    // Made for the first job, not at start: a server whose flows have no Function node keeps
    // no QuickJS runtime (and no snapshot of one).
    let mut worker: Option<Worker> = None;
    loop {
        // One idle worker waits on the queue while holding the lock; the others wait for the
        // lock. A worker that panicked cannot have left the receiver half-updated.
        let job = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        let Some(job) = job else {
            return; // the sandbox was dropped
        };
        if job.reply.is_closed() {
            continue; // the caller gave up while the job was queued
        }
        // The interrupt handler watches the reply channel too, so a run nobody waits for any
        // more (the caller's future was dropped) stops at once and frees the worker.
        let reply = Rc::new(job.reply);
        let watched = Rc::clone(&reply);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let worker = match &mut worker {
                Some(worker) => worker,
                slot => slot.insert(Worker::new(limits)?),
            };
            worker.run(
                &job.script,
                &job.payload_json,
                Box::new(move || watched.is_closed()),
            )
        }));
        let result = result.unwrap_or_else(|panic| {
            worker = None; // start over on a new runtime
            Err(JsError::Internal(format!(
                "the JavaScript worker panicked: {}",
                panic_message(&*panic)
            )))
        });
        if let Ok(reply) = Rc::try_unwrap(reply) {
            let _ = reply.send(result);
        }
        // Reset for the next run now, while nobody waits; a worker that cannot give back the
        // memory a big run touched starts over on a new region.
        if !worker.as_mut().is_some_and(Worker::prepare) {
            drop(worker.take());
            worker = Worker::new(limits).ok();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "unknown panic"
    }
}
