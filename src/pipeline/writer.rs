//! The writer task: gathers prepared messages into batches, commits each batch (retrying while the
//! database is away), then acknowledges the batch's messages to their brokers and tells browsers.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::notify::events;
use super::persist::{persist, WriteCache};
use super::{Outcome, Prepared};
use crate::state::AppState;
use crate::telemetry::{report_parsing_error, RateLimit, PARSING_TARGET};

#[derive(Clone)]
pub struct WriterHandle {
    sender: mpsc::Sender<Prepared>,
}

#[derive(Debug, thiserror::Error)]
#[error("the writer has stopped")]
pub struct WriterStopped;

impl WriterHandle {
    /// Waits while the queue is full: that back-pressure is what keeps the broker holding
    /// messages instead of this process when the database is slow or away.
    pub async fn send(&self, message: Prepared) -> Result<(), WriterStopped> {
        self.sender.send(message).await.map_err(|_| WriterStopped)
    }

    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

pub fn spawn_writer(state: AppState) -> (WriterHandle, JoinHandle<()>) {
    let capacity = state.config.pipeline.batch_max_messages * 4;
    let (sender, receiver) = mpsc::channel(capacity);
    let task = tokio::spawn(run(state, receiver));
    (WriterHandle { sender }, task)
}

async fn run(state: AppState, mut receiver: mpsc::Receiver<Prepared>) {
    let max_messages = state.config.pipeline.batch_max_messages;
    let linger = Duration::from_millis(state.config.pipeline.batch_linger_ms);
    let mut memory = WriterMemory {
        cache: WriteCache::new(Duration::from_millis(state.config.pipeline.state_flush_ms)),
        sentry_parsing_events: RateLimit::per_minute(
            state.config.sentry.parsing_error_events_per_minute,
        ),
    };
    loop {
        let next_flush = tokio::time::Instant::from_std(memory.cache.next_flush());
        let first = tokio::select! {
            message = receiver.recv() => message,
            _ = state.shutdown.cancelled() => {
                // Store what is already queued; its senders are stopping too.
                receiver.close();
                receiver.recv().await
            }
            // Quiet traffic: latest state still reaches the database within the interval.
            _ = tokio::time::sleep_until(next_flush), if memory.cache.has_pending() => {
                if !commit_with_retry(&state, Vec::new(), &mut memory).await {
                    break;
                }
                continue;
            }
        };
        let Some(first) = first else {
            if memory.cache.has_pending() {
                commit_with_retry(&state, Vec::new(), &mut memory).await;
            }
            break;
        };
        let mut batch = Vec::with_capacity(max_messages);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max_messages {
            match receiver.try_recv() {
                Ok(message) => batch.push(message),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, receiver.recv()).await {
                        Ok(Some(message)) => batch.push(message),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        state
            .metrics
            .pipeline_queue_depth
            .set(receiver.len() as i64);
        if !commit_with_retry(&state, batch, &mut memory).await {
            // Shutting down with the database away: leave the messages unacknowledged so the
            // broker delivers them again after restart.
            break;
        }
    }
}

/// What the writer keeps between batches.
struct WriterMemory {
    cache: WriteCache,
    sentry_parsing_events: RateLimit,
}

/// Failed attempts, with the database answering pings, after which a batch is taken apart.
const REFUSALS_BEFORE_ISOLATING: u32 = 3;

/// Stores the batch, retrying while the database is away. A batch the database keeps refusing
/// while it answers (bad data, not an outage) is split so one bad message cannot stall the
/// connection. Returns false only when shutdown interrupted the retries.
fn commit_with_retry<'a>(
    state: &'a AppState,
    batch: Vec<Prepared>,
    memory: &'a mut WriterMemory,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
    Box::pin(async move {
        let mut delay = Duration::from_millis(100);
        let mut refusals = 0;
        loop {
            let started = Instant::now();
            // An empty batch is a flush of pending latest state.
            let force_flush = batch.is_empty() || state.shutdown.is_cancelled();
            match persist(
                &state.db,
                &batch,
                state.config.pipeline.sample_bytes,
                &mut memory.cache,
                true,
                force_flush,
            )
            .await
            {
                Ok(committed) => {
                    state
                        .metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    finish(state, &batch, committed, memory).await;
                    return true;
                }
                Err(error) => {
                    state.metrics.commit_failures.inc();
                    memory.cache.forget_ids();
                    report_storage_error(&batch, &error, delay);
                    if crate::db::ping(&state.db).await {
                        refusals += 1;
                        if refusals >= REFUSALS_BEFORE_ISOLATING {
                            return isolate(state, batch, error.to_string(), memory).await;
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = state.shutdown.cancelled() => return false,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    })
}

async fn isolate(
    state: &AppState,
    batch: Vec<Prepared>,
    error: String,
    memory: &mut WriterMemory,
) -> bool {
    if batch.len() > 1 {
        for message in batch {
            if !commit_with_retry(state, vec![message], memory).await {
                return false;
            }
        }
        return true;
    }
    let Some(mut message) = batch.into_iter().next() else {
        return true;
    };
    if matches!(message.outcome, Outcome::Failed { .. }) {
        // Even the parsing-log row is refused: keep the payload in the log file and let the
        // connection go on.
        tracing::error!(
            target: PARSING_TARGET,
            site_id = message.site_id,
            topic = %message.topic.escape_debug(),
            payload = %String::from_utf8_lossy(&message.payload).escape_debug(),
            "the database refuses to store this message even as a parsing-log row; it is dropped: {error}"
        );
        if let Some(ack) = &message.ack {
            ack.acknowledge();
        }
        return true;
    }
    message.outcome = Outcome::Failed {
        error: format!("the database refused to store this message: {error}"),
    };
    commit_with_retry(state, vec![message], memory).await
}

fn report_storage_error(batch: &[Prepared], error: &sea_orm::DbErr, delay: Duration) {
    let sites: Vec<String> = batch
        .iter()
        .map(|message| message.site_id.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    sentry::with_scope(
        |scope| scope.set_tag("site_id", sites.join(",")),
        || {
            tracing::error!(
                target: PARSING_TARGET,
                %error,
                messages = batch.len(),
                retry_in_ms = delay.as_millis() as u64,
                "cannot store a batch; holding its acknowledgements and retrying"
            )
        },
    );
}

/// After the commit: counters, log lines, acknowledgements, then browser events.
async fn finish(
    state: &AppState,
    batch: &[Prepared],
    committed: super::persist::Committed,
    memory: &mut WriterMemory,
) {
    state.metrics.batch_messages.observe(batch.len() as f64);
    let batch_events = events(batch, &committed.sensor_ids, &committed.new_topics);
    for message in batch {
        let parser = message.parser().unwrap_or("");
        match &message.outcome {
            Outcome::Parsed(_) => {
                state
                    .metrics
                    .record_committed(message.site_id, parser, true, message.received_at)
            }
            Outcome::Failed { error } => {
                state
                    .metrics
                    .record_committed(message.site_id, parser, false, message.received_at);
                tracing::warn!(
                    target: PARSING_TARGET,
                    site_id = message.site_id,
                    topic = %message.topic,
                    parser,
                    payload_bytes = message.payload.len(),
                    "payload kept in the parsing log: {error}"
                );
                if memory.sentry_parsing_events.allow(Instant::now()) {
                    report_parsing_error(message.site_id, &message.topic, parser, error);
                }
            }
            Outcome::Unrouted => {}
        }
    }
    // Acknowledge only now: the rows are durable.
    for message in batch {
        if let Some(ack) = &message.ack {
            ack.acknowledge();
        }
    }
    for event in &batch_events {
        state.hub.send(event);
    }
}
