//! The writer tasks: each gathers prepared messages into batches, commits each batch (retrying
//! while the database is away), then acknowledges the batch's messages to their brokers and tells
//! browsers. Messages are sharded over the writers by site and topic, so one topic's messages
//! stay in order and its counters have one owner, while PostgreSQL commits several batches at
//! once instead of waiting on one round trip after another.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::notify::events;
use super::persist::{is_duplicate_reading, persist, WriteCache};
use super::{Outcome, Prepared};
use crate::state::AppState;
use crate::telemetry::{report_parsing_error, RateLimit, PARSING_TARGET};

#[derive(Clone)]
pub struct WriterHandle {
    senders: std::sync::Arc<[mpsc::Sender<Prepared>]>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("the writer has stopped")]
pub struct WriterStopped;

#[derive(Debug)]
pub enum TrySendError {
    /// The writer's queue is full: wait with `send`. Boxed: the common result is `Ok`, which
    /// should not have to be as large as a message.
    Full(Box<Prepared>),
    Stopped,
}

impl WriterHandle {
    /// The queue of the writer that owns the message's topic.
    fn queue_of(&self, message: &Prepared) -> &mpsc::Sender<Prepared> {
        &self.senders[shard_of(message.site_id, &message.topic, self.senders.len())]
    }

    /// Queues the message if its writer has room; hands it back if not.
    pub fn try_send(&self, message: Prepared) -> Result<(), TrySendError> {
        let queue = self.queue_of(&message);
        // Counted as in `send`.
        self.metrics.pipeline_queue_depth.inc();
        queue.try_send(message).map_err(|error| {
            self.metrics.pipeline_queue_depth.dec();
            match error {
                mpsc::error::TrySendError::Full(message) => TrySendError::Full(Box::new(message)),
                mpsc::error::TrySendError::Closed(_) => TrySendError::Stopped,
            }
        })
    }

    /// Waits while the queue is full: that back-pressure is what keeps the broker holding
    /// messages instead of this process when the database is slow or away.
    pub async fn send(&self, message: Prepared) -> Result<(), WriterStopped> {
        let queue = self.queue_of(&message);
        // Counted before it is queued and uncounted when a writer takes it, so the gauge covers
        // every writer's queue and never goes below zero.
        self.metrics.pipeline_queue_depth.inc();
        queue.send(message).await.map_err(|_| {
            self.metrics.pipeline_queue_depth.dec();
            WriterStopped
        })
    }
}

/// Which writer owns a topic: stable for the life of the process. Worked out for every
/// message, so with a fast fixed-seed hash: the choice only spreads load, and a sender who
/// steers its topics onto one writer only slows itself.
pub fn shard_of(site_id: i32, topic: &str, writers: usize) -> usize {
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::default().hash_one((site_id, topic));
    (hash % writers.max(1) as u64) as usize
}

/// Starts the writers; the returned task ends when all of them have drained and stopped.
pub fn spawn_writer(state: AppState) -> (WriterHandle, JoinHandle<()>) {
    // SQLite has one write lock: more writers would only queue behind it.
    let writers = if crate::db::is_sqlite(&state.db) {
        1
    } else {
        state.config.pipeline.writers.max(1)
    };
    let capacity = state.config.pipeline.batch_max_messages * 4 / writers;
    let sentry_parsing_events = std::sync::Arc::new(std::sync::Mutex::new(RateLimit::per_minute(
        state.config.sentry.parsing_error_events_per_minute,
    )));
    let mut senders = Vec::with_capacity(writers);
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (sender, receiver) = mpsc::channel(capacity.max(16));
        senders.push(sender);
        tasks.push(tokio::spawn(run(
            state.clone(),
            receiver,
            sentry_parsing_events.clone(),
        )));
    }
    let all = tokio::spawn(async move {
        for task in tasks {
            let _ = task.await;
        }
    });
    (
        WriterHandle {
            senders: senders.into(),
            metrics: state.metrics.clone(),
        },
        all,
    )
}

async fn run(
    state: AppState,
    mut receiver: mpsc::Receiver<Prepared>,
    sentry_parsing_events: std::sync::Arc<std::sync::Mutex<RateLimit>>,
) {
    let max_messages = state.config.pipeline.batch_max_messages;
    let linger = Duration::from_millis(state.config.pipeline.batch_linger_ms);
    let mut memory = WriterMemory {
        cache: WriteCache::new(Duration::from_millis(state.config.pipeline.state_flush_ms)),
        sentry_parsing_events,
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
            .dec_by(batch.len() as i64);
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
    /// Shared by every writer: the limit is per process.
    sentry_parsing_events: std::sync::Arc<std::sync::Mutex<RateLimit>>,
}

/// Failed attempts, with the database answering pings, after which a batch is taken apart.
const REFUSALS_BEFORE_ISOLATING: u32 = 3;

/// After a redelivered reading, how long readings are written so that stored ones are skipped:
/// a broker redelivers a whole window of messages at once.
const DUPLICATES_PERIOD: Duration = Duration::from_secs(30);

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
                Err(error)
                    if is_duplicate_reading(&error) && !memory.cache.expecting_duplicates() =>
                {
                    // Not a failure: the batch holds a reading stored before (a redelivery).
                    // Nothing was written; store it again, skipping what is there.
                    tracing::debug!(
                        messages = batch.len(),
                        "a redelivered reading; storing the batch again without duplicates"
                    );
                    memory.cache.expect_duplicates(DUPLICATES_PERIOD);
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
    if batch.is_empty() {
        // Only pending latest state was being written, and the database refuses it: drop it
        // rather than let it block every later batch. Readings are not part of it.
        tracing::error!(
            target: PARSING_TARGET,
            "discarding pending latest state (topic counters, last seen, latest values) the database refuses: {error}"
        );
        memory.cache.discard_pending();
        return true;
    }
    if memory.cache.has_pending() {
        // The refused rows may be pending state rather than this batch: write it alone first;
        // if the database refuses that too, it is discarded above.
        if !commit_with_retry(state, Vec::new(), memory).await {
            return false;
        }
        // Pending state is now written or discarded, so a refusal from here on is the batch's
        // own and leads to `isolate_messages`.
        return commit_with_retry(state, batch, memory).await;
    }
    isolate_messages(state, batch, error, memory).await
}

async fn isolate_messages(
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
    // With no page open nobody hears the events; building them is a good part of a batch's CPU.
    let batch_events = if state.hub.client_count() > 0 {
        events(
            batch,
            memory.cache.sensor_ids(),
            memory.cache.names(),
            &committed.new_topics,
        )
    } else {
        Vec::new()
    };
    // (site, parser, parsed) → (messages, newest receipt): one counter update per kind.
    let mut counts: std::collections::BTreeMap<(i32, &str, bool), (u64, DateTime<Utc>)> =
        std::collections::BTreeMap::new();
    for message in batch {
        let parser = message.parser().unwrap_or("");
        let parsed = match &message.outcome {
            Outcome::Parsed(_) => true,
            Outcome::Unrouted => continue,
            Outcome::Failed { error } => {
                tracing::warn!(
                    target: PARSING_TARGET,
                    site_id = message.site_id,
                    topic = %message.topic,
                    parser,
                    payload_bytes = message.payload.len(),
                    "payload kept in the parsing log: {error}"
                );
                let allowed = memory
                    .sentry_parsing_events
                    .lock()
                    .map(|mut limit| limit.allow(Instant::now()))
                    .unwrap_or(false);
                if allowed {
                    report_parsing_error(message.site_id, &message.topic, parser, error);
                }
                false
            }
        };
        let entry = counts
            .entry((message.site_id, parser, parsed))
            .or_insert((0, message.received_at));
        entry.0 += 1;
        entry.1 = entry.1.max(message.received_at);
    }
    for ((site_id, parser, parsed), (messages, latest)) in counts {
        state
            .metrics
            .record_committed(site_id, parser, parsed, messages, latest);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_always_goes_to_the_same_writer_and_topics_spread() {
        let first = shard_of(1, "a/b", 4);
        assert!((0..100).all(|_| shard_of(1, "a/b", 4) == first));
        let used: std::collections::HashSet<usize> = (0..200)
            .map(|index| shard_of(1, &format!("topic/{index}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
        assert!((0..50).all(|index| shard_of(index, "t", 1) == 0));
    }
}
