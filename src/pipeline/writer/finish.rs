//! After a batch's commit: counters, log lines and Sentry events for parsing errors, the
//! acknowledgements to the brokers, then the events for browsers.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{WriterContext, WriterMemory};
use crate::pipeline::notify::events;
use crate::pipeline::persist::Committed;
use crate::pipeline::{Outcome, Prepared};
use crate::telemetry::{report_parsing_error, PARSING_TARGET};

/// After the commit: counters, log lines, acknowledgements, then browser events.
pub(super) fn finish(
    context: &WriterContext,
    batch: &[Prepared],
    committed: Committed,
    memory: &WriterMemory,
) {
    context.metrics.batch_messages.observe(batch.len() as f64);
    // With no page open nobody hears the events; building them is a good part of a batch's CPU.
    let batch_events = if context.hub.client_count() > 0 {
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
    let mut counts: BTreeMap<(i32, &str, bool), (u64, DateTime<Utc>)> = BTreeMap::new();
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
        context
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
        context.hub.send(event);
    }
}
