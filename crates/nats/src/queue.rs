//! The shared run queue on JetStream.
//!
//! One work-queue stream per cluster, `FLOWD_<cluster>_RUNS`, with two subjects: the main lane
//! (presses, webhooks, broker messages, Workflow Error runs) and the scheduled lane (timer
//! ticks), each with one durable pull consumer that every node's workers share. A node serves
//! the scheduled lane first, as the in-process queue does.
//!
//! * **Submitting**: [`RunQueue::submit`] publishes and waits for JetStream's acknowledgement
//!   (what a press answers after); [`RunQueue::try_submit`] hands the job to an ordered outbox
//!   task, for events nobody waits on. A full stream (`max_messages`, discard new) is
//!   [`SubmitError::Full`] — a 429, as on one node. Each message carries a `Nats-Msg-Id`: the
//!   job's idempotency key (one per timer tick) or its run id.
//! * **Running**: a job is acknowledged (and its acknowledgement confirmed) when its run ends,
//!   before the run is accounted for; while it runs, progress acks keep it from being delivered
//!   again. A node killed mid-run never acknowledges: after the ack wait another node gets the
//!   job. A run whose acknowledgement fails is not accounted for, because the job will run again.
//!   Side effects of a run cut short (storage writes, HTTP calls) may therefore happen twice: the
//!   queue is at-least-once, the accounting exactly-once.

use crate::{NatsCluster, NatsError};
use async_nats::jetstream::{self, consumer, stream};
use flowd_engine::queue::{JobHandler, QueueFull, RunJob, RunQueue, Settle, SubmitError};
use futures::future::BoxFuture;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// How the shared queue behaves on this node.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Jobs the stream holds at most (for the whole cluster); past it submissions are refused.
    pub capacity: usize,
    /// Runs this node executes at once.
    pub workers: usize,
    /// How long a job may go without an acknowledgement (or a progress ack) before it is
    /// delivered again.
    pub ack_wait: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            capacity: 10_000,
            workers: 256,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// Ticks a timer submits on every node collapse into one within this window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Deliveries of one job at most (a job that keeps killing nodes is dropped after these).
const MAX_DELIVER: i64 = 10;
/// Jobs fetched ahead per pull request. They wait in this node's buffer, their ack wait
/// running, until it has a free worker: few, so that a node whose workers are all busy for
/// longer than the ack wait hands few jobs to others twice.
const PULL_BATCH: usize = 8;
/// Jobs waiting in the outbox of [`RunQueue::try_submit`].
const OUTBOX: usize = 4096;

const MAIN: &str = "runs.main";
const SCHEDULED: &str = "runs.scheduled";

/// The name of a cluster's run stream.
pub(crate) fn stream_name(cluster: &str) -> String {
    format!("FLOWD_{cluster}_RUNS")
}

/// The stream and consumers of a cluster, ready for [`NatsQueue::start`].
pub struct NatsQueueSetup {
    cluster: NatsCluster,
    jetstream: jetstream::Context,
    settings: QueueSettings,
    main: consumer::PullConsumer,
    scheduled: consumer::PullConsumer,
}

impl NatsCluster {
    /// Creates (or binds to) the cluster's run stream and its consumers.
    pub async fn run_queue(&self, settings: QueueSettings) -> Result<NatsQueueSetup, NatsError> {
        let fail = |reason: String| NatsError::JetStream {
            cluster: self.cluster.clone(),
            reason,
        };
        let jetstream = jetstream::new(self.client.clone());
        let name = stream_name(&self.cluster);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![self.subject(MAIN), self.subject(SCHEDULED)],
            retention: stream::RetentionPolicy::WorkQueue,
            max_messages: settings.capacity as i64,
            discard: stream::DiscardPolicy::New,
            duplicate_window: DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        // Created by the first node; later ones bind to it (and update a changed capacity).
        if jetstream.get_stream(&name).await.is_ok() {
            jetstream
                .update_stream(config)
                .await
                .map_err(|e| fail(format!("updating stream {name}: {e}")))?;
        } else {
            jetstream
                .create_stream(config)
                .await
                .map_err(|e| fail(format!("creating stream {name}: {e}")))?;
        }
        let stream = jetstream
            .get_stream(&name)
            .await
            .map_err(|e| fail(format!("reading stream {name}: {e}")))?;
        let consumer_for = |lane: &str| consumer::pull::Config {
            durable_name: Some(format!("workers-{}", lane.replace('.', "-"))),
            filter_subject: self.subject(lane),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_deliver: MAX_DELIVER,
            max_ack_pending: (settings.capacity as i64).max(1024),
            ..Default::default()
        };
        let mut consumers = Vec::new();
        for lane in [MAIN, SCHEDULED] {
            let config = consumer_for(lane);
            let durable = config.durable_name.clone().unwrap_or_default();
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| fail(format!("creating consumer {durable}: {e}")))?;
            consumers.push(consumer);
        }
        let scheduled = consumers.pop().expect("two consumers");
        let main = consumers.pop().expect("two consumers");
        Ok(NatsQueueSetup {
            cluster: self.clone(),
            jetstream,
            settings,
            main,
            scheduled,
        })
    }
}

/// The shared run queue of one node.
pub struct NatsQueue {
    cluster: NatsCluster,
    jetstream: jetstream::Context,
    outbox: mpsc::Sender<RunJob>,
    stop: watch::Sender<bool>,
    workers: Arc<Semaphore>,
    worker_count: u32,
}

impl NatsQueueSetup {
    /// Starts this node's workers on the queue; `handler` runs each job.
    pub fn start(self, handler: JobHandler) -> NatsQueue {
        let workers = Arc::new(Semaphore::new(self.settings.workers.max(1)));
        let (stop, stopped) = watch::channel(false);
        let heartbeat = self.settings.ack_wait / 3;
        tokio::spawn(dispatch(
            self.scheduled,
            self.main,
            workers.clone(),
            handler,
            stopped,
            heartbeat,
        ));
        let (outbox, queued) = mpsc::channel(OUTBOX);
        tokio::spawn(send_outbox(
            self.cluster.clone(),
            self.jetstream.clone(),
            queued,
        ));
        NatsQueue {
            cluster: self.cluster,
            jetstream: self.jetstream,
            outbox,
            stop,
            workers,
            worker_count: self.settings.workers.max(1) as u32,
        }
    }
}

/// Publishes a job and waits until the stream holds it.
async fn publish(
    cluster: &NatsCluster,
    jetstream: &jetstream::Context,
    job: &RunJob,
) -> Result<(), SubmitError> {
    // While disconnected the client would hold the message and send it on reconnecting,
    // after this press had been refused: refuse it before it is sent instead. (A press whose
    // acknowledgement times out is ambiguous — it may still run — as with any remote queue.)
    if !cluster.is_connected() {
        return Err(SubmitError::Unavailable(
            "the run queue is not connected to NATS".into(),
        ));
    }
    let lane = if job.is_scheduled() { SCHEDULED } else { MAIN };
    let payload = serde_json::to_vec(job)
        .map_err(|e| SubmitError::Unavailable(format!("cannot encode the job: {e}")))?;
    let id = job.idempotency_key.as_deref().unwrap_or(&job.run_id);
    let publish = jetstream::context::Publish::build()
        .payload(payload.into())
        .message_id(id);
    let unavailable = |e: &dyn std::fmt::Display| SubmitError::Unavailable(e.to_string());
    let ack = jetstream
        .send_publish(cluster.subject(lane), publish)
        .await
        .map_err(|e| unavailable(&e))?;
    match ack.await {
        Ok(_) => Ok(()),
        Err(e) if is_full(&e) => Err(SubmitError::Full),
        Err(e) => Err(unavailable(&e)),
    }
}

/// Whether a publish failed because the stream holds `max_messages` already.
fn is_full(error: &jetstream::context::PublishError) -> bool {
    use std::error::Error;
    let text = error
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| error.to_string());
    text.contains("maximum messages") || text.contains("maximum bytes")
}

/// Sends what [`RunQueue::try_submit`] queued, in order.
async fn send_outbox(
    cluster: NatsCluster,
    jetstream: jetstream::Context,
    mut queued: mpsc::Receiver<RunJob>,
) {
    while let Some(job) = queued.recv().await {
        if let Err(e) = publish(&cluster, &jetstream, &job).await {
            tracing::warn!(flow = %job.flow_id, trigger = %job.trigger_type, error = %e, "a run could not be queued and was dropped");
        }
    }
}

/// One lane's pull stream, made again after an error.
struct Lane {
    consumer: consumer::PullConsumer,
    messages: Option<consumer::pull::Stream>,
}

impl Lane {
    fn new(consumer: consumer::PullConsumer) -> Lane {
        Lane {
            consumer,
            messages: None,
        }
    }

    /// The lane's next job message, pulling again (after a pause) when pulling fails. Dropping
    /// the future loses nothing: a message is taken off the stream only when returned.
    async fn next(&mut self) -> jetstream::Message {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => match self
                    .consumer
                    .stream()
                    .max_messages_per_batch(PULL_BATCH)
                    .messages()
                    .await
                {
                    Ok(messages) => self.messages.insert(messages),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot pull jobs from NATS; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(message)) => return message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pulling jobs from NATS failed; pulling again");
                    self.messages = None;
                }
                None => self.messages = None,
            }
        }
    }
}

/// The node's dispatcher: when a worker is free, takes the next job — from the scheduled lane
/// first — runs it, and acknowledges it once settled. One loop for both lanes: a lane waiting
/// for a job never holds a worker the other could use (with one worker, it would hold them all).
async fn dispatch(
    scheduled: consumer::PullConsumer,
    main: consumer::PullConsumer,
    workers: Arc<Semaphore>,
    handler: JobHandler,
    mut stopped: watch::Receiver<bool>,
    heartbeat: Duration,
) {
    let (mut scheduled, mut main) = (Lane::new(scheduled), Lane::new(main));
    loop {
        let permit = tokio::select! {
            permit = workers.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopped.wait_for(|s| *s) => return,
        };
        let message = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => return,
            message = scheduled.next() => message,
            message = main.next() => message,
        };
        let message = Arc::new(message);
        let job: RunJob = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "a queued job could not be read; it is dropped");
                let _ = message.ack_with(jetstream::AckKind::Term).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            // Progress acks while the run goes on, so a long run is not handed to another
            // node; stopped when the run ends (the guard aborts it).
            let beating = message.clone();
            let beat = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(heartbeat).await;
                    let _ = beating.ack_with(jetstream::AckKind::Progress).await;
                }
            });
            // The beat goes on until the job is settled (after the run's accounting is
            // committed), or stops when the settle is dropped unsettled.
            let beat = AbortOnDrop(beat.abort_handle());
            let settle: Settle = Box::new(move || {
                Box::pin(async move {
                    if let Err(e) = message.double_ack().await {
                        tracing::warn!(error = %e, "a finished job's acknowledgement failed; it will run again");
                    }
                    drop(beat);
                })
            });
            handler(job, Some(settle)).await;
            drop(permit);
        });
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RunQueue for NatsQueue {
    fn try_submit(&self, job: RunJob) -> Result<(), QueueFull> {
        if *self.stop.borrow() {
            return Err(QueueFull);
        }
        self.outbox.try_send(job).map_err(|_| QueueFull)
    }

    fn submit(&self, job: RunJob) -> BoxFuture<'static, Result<(), SubmitError>> {
        let (cluster, jetstream) = (self.cluster.clone(), self.jetstream.clone());
        let stopping = *self.stop.borrow();
        Box::pin(async move {
            if stopping {
                return Err(SubmitError::Unavailable(
                    "this node is shutting down".into(),
                ));
            }
            publish(&cluster, &jetstream, &job).await
        })
    }

    fn drain(&self) -> BoxFuture<'static, ()> {
        let _ = self.stop.send(true);
        let (workers, count) = (self.workers.clone(), self.worker_count);
        Box::pin(async move {
            // Queued jobs stay in the stream for the other nodes (or this one's next start);
            // the runs going on here finish and are acknowledged.
            let _all = workers.acquire_many(count).await;
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn ready(&self) -> Result<(), String> {
        if *self.stop.borrow() {
            return Err("this node is shutting down".into());
        }
        if self.cluster.is_connected() {
            Ok(())
        } else {
            Err("the run queue is not connected to NATS".into())
        }
    }
}
