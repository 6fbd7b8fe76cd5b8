//! Committing a batch whatever the database does: while it is away, the same batch is retried
//! with backoff and nothing is acknowledged; when it answers but keeps refusing the batch (bad
//! data, not an outage), the batch is taken apart so one bad message cannot stall a connection.
//!
//! The decisions (when to stop retrying, how to take a refused batch apart, when to give a
//! message up) are pure functions with their unit tests below; `commit` only carries them out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::finish::finish;
use super::{WriterContext, WriterMemory};
use crate::backoff::Backoff;
use crate::pipeline::persist::{is_duplicate_reading, persist, BatchKind};
use crate::pipeline::{Outcome, Prepared};
use crate::telemetry::PARSING_TARGET;

/// Failed attempts, with the database answering pings, after which a batch is taken apart.
const REFUSALS_BEFORE_RECOVERY: u32 = 3;

/// Waits between attempts to store a batch.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// After a redelivered reading, how long readings are written so that stored ones are skipped:
/// a broker redelivers a whole window of messages at once.
const DUPLICATES_PERIOD: Duration = Duration::from_secs(30);

/// Messages to store in one transaction; none is a flush of pending latest state.
#[derive(Debug)]
struct Work {
    messages: Vec<Prepared>,
    /// Pending latest state was written (or dropped) on its own since this work was refused, so
    /// a further refusal is the messages' own.
    pending_settled: bool,
}

impl Work {
    fn new(messages: Vec<Prepared>) -> Work {
        Work {
            messages,
            pending_settled: false,
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// Wait this retry's delay (the database may be away), then try again.
    Retry { attempt: u32 },
    /// The database answers and still refuses: take the work apart.
    Recover,
}

/// Counts one work's failed attempts.
#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    refusals: u32,
}

impl Attempts {
    /// `database_answers`: a ping succeeded after the failure, so it was a refusal, not an
    /// outage. An outage is retried for as long as it lasts.
    fn after_failure(&mut self, database_answers: bool) -> AfterFailure {
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        if database_answers {
            self.refusals += 1;
            if self.refusals >= REFUSALS_BEFORE_RECOVERY {
                return AfterFailure::Recover;
            }
        }
        AfterFailure::Retry { attempt }
    }
}

/// How to go on with work the database keeps refusing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// Only pending latest state was being written: drop it rather than let it block every
    /// later batch. Readings are never part of it.
    DiscardPending,
    /// The refused rows may be pending state rather than the batch's: write that alone first,
    /// then the batch again.
    PendingFirst,
    /// Store the messages one by one.
    Split,
    /// One message refused: keep its payload as a parsing-log row instead.
    KeepAsParsingLog,
    /// Even its parsing-log row is refused: write the payload to the log file, acknowledge it
    /// and go on.
    GiveUp,
}

fn recovery(work: &Work, has_pending: bool) -> Recovery {
    match work.messages.as_slice() {
        [] => Recovery::DiscardPending,
        _ if has_pending && !work.pending_settled => Recovery::PendingFirst,
        [_, _, ..] => Recovery::Split,
        [message] if matches!(message.outcome, Outcome::Failed { .. }) => Recovery::GiveUp,
        [_] => Recovery::KeepAsParsingLog,
    }
}

/// What carrying out a recovery left for the caller to do.
#[derive(Debug)]
enum Recovered {
    /// New work is at the front of the queue.
    Requeued,
    DiscardPending,
    GaveUp(Vec<Prepared>),
}

/// Carries out `recovery` of the refused `work` on the queue of work still to store.
fn recover(
    queue: &mut VecDeque<Work>,
    mut work: Work,
    recovery: Recovery,
    error: &str,
) -> Recovered {
    match recovery {
        Recovery::DiscardPending => return Recovered::DiscardPending,
        Recovery::GiveUp => return Recovered::GaveUp(work.messages),
        Recovery::PendingFirst => {
            work.pending_settled = true;
            queue.push_front(work);
            queue.push_front(Work::new(Vec::new()));
        }
        Recovery::Split => {
            for message in work.messages.into_iter().rev() {
                queue.push_front(Work {
                    messages: vec![message],
                    pending_settled: true,
                });
            }
        }
        Recovery::KeepAsParsingLog => {
            for message in &mut work.messages {
                message.outcome = Outcome::Failed {
                    error: format!("the database refused to store this message: {error}"),
                };
            }
            queue.push_front(work);
        }
    }
    Recovered::Requeued
}

/// How one work's attempts ended.
enum Stored {
    Yes,
    Refused(String),
    /// Shutdown came while the database was away.
    Interrupted,
}

/// Stores the batch and everything a refusal breaks it into. Returns false only when shutdown
/// interrupted the retries: the unstored messages stay unacknowledged, and the broker delivers
/// them again after the restart.
pub(super) async fn commit(
    context: &WriterContext,
    batch: Vec<Prepared>,
    memory: &mut WriterMemory,
) -> bool {
    let mut queue = VecDeque::from([Work::new(batch)]);
    while let Some(work) = queue.pop_front() {
        let error = match store_with_retry(context, &work, memory).await {
            Stored::Yes => continue,
            Stored::Interrupted => return false,
            Stored::Refused(error) => error,
        };
        let recovery = recovery(&work, memory.cache.has_pending());
        match recover(&mut queue, work, recovery, &error) {
            Recovered::Requeued => {}
            Recovered::DiscardPending => {
                tracing::error!(
                    target: PARSING_TARGET,
                    "discarding pending latest state (topic counters, last seen, latest values) the database refuses: {error}"
                );
                memory.cache.discard_pending();
            }
            Recovered::GaveUp(messages) => {
                for message in &messages {
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
                }
            }
        }
    }
    true
}

/// Tries one work until it is stored, refused for good, or shutdown interrupts the waiting.
async fn store_with_retry(
    context: &WriterContext,
    work: &Work,
    memory: &mut WriterMemory,
) -> Stored {
    let mut attempts = Attempts::default();
    loop {
        let started = Instant::now();
        // An empty batch is a flush of pending latest state; at shutdown everything goes.
        let kind = if work.messages.is_empty() || context.shutdown.is_cancelled() {
            BatchKind::ArrivedFlushingAll
        } else {
            BatchKind::Arrived
        };
        let error = match persist(
            &context.db,
            &work.messages,
            context.config.sample_bytes,
            &mut memory.cache,
            kind,
        )
        .await
        {
            Ok(committed) => {
                context
                    .metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                finish(context, &work.messages, committed, memory);
                return Stored::Yes;
            }
            Err(error) if is_duplicate_reading(&error) && !memory.cache.expecting_duplicates() => {
                // Not a failure: the batch holds a reading stored before (a redelivery).
                // Nothing was written; store it again, skipping what is there.
                tracing::debug!(
                    messages = work.messages.len(),
                    "a redelivered reading; storing the batch again without duplicates"
                );
                memory.cache.expect_duplicates(DUPLICATES_PERIOD);
                continue;
            }
            Err(error) => error,
        };
        context.metrics.commit_failures.inc();
        memory.cache.forget_ids();
        let answers = crate::db::ping(&context.db).await;
        match attempts.after_failure(answers) {
            AfterFailure::Recover => return Stored::Refused(error.to_string()),
            AfterFailure::Retry { attempt } => {
                let delay = RETRY.delay_with_random_jitter(attempt);
                report_storage_error(&work.messages, &error, delay);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = context.shutdown.cancelled() => return Stored::Interrupted,
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn message(outcome: Outcome) -> Prepared {
        Prepared {
            site_id: 1,
            topic: "t".into(),
            received_at: Utc::now(),
            retained: false,
            payload: bytes::Bytes::from_static(b"{}"),
            route: None,
            outcome,
            ack: None,
        }
    }

    fn work(messages: usize) -> Work {
        Work::new((0..messages).map(|_| message(Outcome::Unrouted)).collect())
    }

    #[test]
    fn an_outage_is_retried_for_as_long_as_it_lasts_with_growing_delays() {
        let mut attempts = Attempts::default();
        for attempt in 0..100 {
            assert_eq!(
                attempts.after_failure(false),
                AfterFailure::Retry { attempt }
            );
        }
        assert!(RETRY.delay(99, 1.0) > RETRY.delay(0, 1.0));
        assert_eq!(RETRY.delay(99, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn a_database_that_answers_and_refuses_three_times_ends_the_retries() {
        let mut attempts = Attempts::default();
        assert_eq!(
            attempts.after_failure(true),
            AfterFailure::Retry { attempt: 0 }
        );
        // An outage in between counts as an attempt but not as a refusal.
        assert_eq!(
            attempts.after_failure(false),
            AfterFailure::Retry { attempt: 1 }
        );
        assert_eq!(
            attempts.after_failure(true),
            AfterFailure::Retry { attempt: 2 }
        );
        assert_eq!(attempts.after_failure(true), AfterFailure::Recover);
    }

    #[test]
    fn refused_pending_state_alone_is_discarded() {
        assert_eq!(recovery(&work(0), true), Recovery::DiscardPending);
        assert_eq!(recovery(&work(0), false), Recovery::DiscardPending);
    }

    #[test]
    fn pending_state_is_written_on_its_own_once_before_a_batch_is_split() {
        let mut refused = work(3);
        assert_eq!(recovery(&refused, true), Recovery::PendingFirst);
        refused.pending_settled = true;
        // Folding the batch again makes state pending again; it is not flushed a second time.
        assert_eq!(recovery(&refused, true), Recovery::Split);
        assert_eq!(recovery(&work(3), false), Recovery::Split);
    }

    #[test]
    fn one_refused_message_becomes_a_parsing_log_row_and_then_is_given_up() {
        assert_eq!(recovery(&work(1), false), Recovery::KeepAsParsingLog);
        let failed = Work {
            messages: vec![message(Outcome::Failed {
                error: "bad".into(),
            })],
            pending_settled: true,
        };
        assert_eq!(recovery(&failed, true), Recovery::GiveUp);
    }

    /// Follows the decisions through for a batch whose every form is refused: it must end, in
    /// a bounded number of steps, with each message given up once, in order, after being kept
    /// as a parsing-log row; pending state is written on its own once.
    #[test]
    fn taking_a_refused_batch_apart_ends_with_every_message_given_up_once() {
        let mut batch = work(4);
        for (index, message) in batch.messages.iter_mut().enumerate() {
            message.topic = format!("t/{index}");
        }
        let mut queue = VecDeque::from([batch]);
        let mut given_up = Vec::new();
        let mut pending_flushes = 0;
        let mut steps = 0;
        while let Some(work) = queue.pop_front() {
            steps += 1;
            assert!(steps < 100, "recovery must terminate");
            // State is pending again whenever a batch with messages was folded.
            let decision = recovery(&work, !work.messages.is_empty());
            if decision == Recovery::DiscardPending {
                pending_flushes += 1;
            }
            match recover(&mut queue, work, decision, "refused") {
                Recovered::Requeued | Recovered::DiscardPending => {}
                Recovered::GaveUp(messages) => given_up.extend(messages),
            }
        }
        assert_eq!(pending_flushes, 1);
        let topics: Vec<&str> = given_up.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(topics, ["t/0", "t/1", "t/2", "t/3"]);
        assert!(given_up.iter().all(|message| matches!(
            &message.outcome,
            Outcome::Failed { error } if error.contains("the database refused to store this message: refused")
        )));
    }
}
