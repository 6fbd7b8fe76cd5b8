//! The writer tasks: each gathers prepared messages into batches, commits each batch (retrying
//! while the database is away), then acknowledges the batch's messages to their brokers and tells
//! browsers. Messages are sharded over the writers by site and topic, so one topic's messages
//! stay in order and its counters have one owner, while PostgreSQL commits several batches at
//! once instead of waiting on one round trip after another.

mod commit;
mod finish;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::commit::commit;
use super::persist::WriteCache;
use super::Prepared;
use crate::config::PipelineConfig;
use crate::events::Hub;
use crate::metrics::Metrics;
use crate::telemetry::RateLimit;

/// What the writers need.
#[derive(Clone)]
pub struct WriterContext {
    pub db: DatabaseConnection,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub config: PipelineConfig,
    /// Parsing errors sent to Sentry per minute, over all writers.
    pub parsing_error_events_per_minute: u32,
    pub shutdown: CancellationToken,
}

/// What a writer keeps between batches.
struct WriterMemory {
    cache: WriteCache,
    /// Shared by every writer: the limit is per process.
    sentry_parsing_events: Arc<Mutex<RateLimit>>,
}

#[derive(Clone)]
pub struct WriterHandle {
    senders: Arc<[mpsc::Sender<Prepared>]>,
    metrics: Arc<Metrics>,
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
pub fn spawn_writer(context: WriterContext) -> (WriterHandle, JoinHandle<()>) {
    // SQLite has one write lock: more writers would only queue behind it.
    let writers = if crate::db::is_sqlite(&context.db) {
        1
    } else {
        context.config.writers.max(1)
    };
    let capacity = context.config.batch_max_messages * 4 / writers;
    let sentry_parsing_events = Arc::new(Mutex::new(RateLimit::per_minute(
        context.parsing_error_events_per_minute,
    )));
    let mut senders = Vec::with_capacity(writers);
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (sender, receiver) = mpsc::channel(capacity.max(16));
        senders.push(sender);
        tasks.push(tokio::spawn(run(
            context.clone(),
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
            metrics: context.metrics.clone(),
        },
        all,
    )
}

/// One writer: gathers a batch, commits it, and goes on until shutdown has drained its queue.
async fn run(
    context: WriterContext,
    mut receiver: mpsc::Receiver<Prepared>,
    sentry_parsing_events: Arc<Mutex<RateLimit>>,
) {
    let max_messages = context.config.batch_max_messages;
    let linger = Duration::from_millis(context.config.batch_linger_ms);
    let mut memory = WriterMemory {
        cache: WriteCache::new(Duration::from_millis(context.config.state_flush_ms)),
        sentry_parsing_events,
    };
    loop {
        let next_flush = tokio::time::Instant::from_std(memory.cache.next_flush());
        let first = tokio::select! {
            message = receiver.recv() => message,
            _ = context.shutdown.cancelled() => {
                // Store what is already queued; its senders are stopping too.
                receiver.close();
                receiver.recv().await
            }
            // Quiet traffic: latest state still reaches the database within the interval.
            _ = tokio::time::sleep_until(next_flush), if memory.cache.has_pending() => {
                if !commit(&context, Vec::new(), &mut memory).await {
                    break;
                }
                continue;
            }
        };
        let Some(first) = first else {
            if memory.cache.has_pending() {
                commit(&context, Vec::new(), &mut memory).await;
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
        context
            .metrics
            .pipeline_queue_depth
            .dec_by(batch.len() as i64);
        if !commit(&context, batch, &mut memory).await {
            // Shutting down with the database away: leave the messages unacknowledged so the
            // broker delivers them again after restart.
            break;
        }
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
