//! Storing one batch in one transaction: discovered topics, gateways, dataloggers, sensors,
//! readings and parsing-log rows, each as a few multi-row writes. `flush_plan` decides what the
//! transaction holds, `statements` (and on PostgreSQL `postgres`) write it, and the writer's
//! `WriteCache` remembers row ids and pending latest state between batches.

mod device_state;
mod flush_plan;
mod postgres;
mod postgres_arrays;
mod statements;
mod transaction;
mod write_cache;

use sea_orm::{DatabaseConnection, DbErr};

use self::flush_plan::reading_rows;
use self::flush_plan::{fold, plan, Flush, FlushPlan, Folded};
use self::statements::{
    drop_rows_of_deleted_sites, in_key_order, insert_parsing_logs, insert_readings, row_id,
    upsert_dataloggers, upsert_discovered, upsert_gateways, upsert_sensors,
};
use self::transaction::BatchTransaction;
use self::write_cache::NewRowIds;
pub use self::write_cache::WriteCache;
use super::discover::TopicTally;
use super::names::{DataloggerKey, GatewayKey};
use super::Prepared;
use crate::telemetry::PARSING_TARGET;

/// What the writer needs after the commit.
#[derive(Debug, Default)]
pub struct Committed {
    pub new_topics: Vec<(i32, String)>,
}

/// What kind of batch is stored, which decides what else its transaction writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Messages as they arrived (or none: the flush timer): topics are counted, and pending
    /// latest state goes out when its interval has passed.
    Arrived,
    /// Arrived messages with every pending latest-state row (shutdown, the flush timer).
    ArrivedFlushingAll,
    /// A parsing-log row replayed: its topic was counted when it first arrived; whatever it
    /// touches is written now.
    Replayed,
}

impl BatchKind {
    fn counts_topics(self) -> bool {
        self != BatchKind::Replayed
    }

    fn flushes_everything(self) -> bool {
        self != BatchKind::Arrived
    }
}

/// Stores the batch in one transaction; all or nothing.
pub async fn persist(
    db: &DatabaseConnection,
    batch: &[Prepared],
    sample_bytes: usize,
    cache: &mut WriteCache,
    kind: BatchKind,
) -> Result<Committed, DbErr> {
    let started = std::time::Instant::now();
    // Before folding, so this batch's devices are known again (and written) if ids are dropped.
    if cache.remembers_too_much() {
        cache.forget_ids();
    }
    let Folded {
        topics,
        urgent,
        mut readings,
    } = fold(batch, sample_bytes, kind, cache);
    let flush = if kind.flushes_everything() {
        Flush::Everything
    } else if cache.flush_due() {
        Flush::Due
    } else {
        Flush::NotDue
    };
    let FlushPlan {
        flushing,
        mut to_write,
        mut remaining,
        batch_topics,
    } = plan(topics, urgent, cache, flush);

    let transaction = BatchTransaction::begin(db).await?;
    // Messages of a site deleted meanwhile have nowhere to go: they are acknowledged unstored.
    // One small query per batch; readings have no per-row foreign key check on PostgreSQL.
    let deleted_sites =
        drop_rows_of_deleted_sites(&transaction, batch, &mut to_write, &mut remaining).await?;
    if !deleted_sites.is_empty() {
        readings.retain(|((site_id, _, _, _), _, _)| !deleted_sites.contains(site_id));
        tracing::info!(target: PARSING_TARGET, sites = ?deleted_sites, "dropping messages of deleted sites");
    }
    let tallies: Vec<TopicTally> = in_key_order(&to_write.topics)
        .into_iter()
        .map(|(_, tally)| tally.clone())
        .collect();
    let new_topics = upsert_discovered(&transaction, &tallies, &cache.known_topics).await?;
    let gateway_ids = upsert_gateways(&transaction, &to_write.gateways, &cache.gateway_ids).await?;
    let gateway_id = |key: &GatewayKey| row_id(&gateway_ids, &cache.gateway_ids, key);
    let datalogger_ids = upsert_dataloggers(
        &transaction,
        &to_write.dataloggers,
        &gateway_id,
        &cache.datalogger_ids,
    )
    .await?;
    let datalogger_id = |key: &DataloggerKey| row_id(&datalogger_ids, &cache.datalogger_ids, key);
    let sensor_ids = upsert_sensors(
        &transaction,
        &to_write.sensors,
        &datalogger_id,
        &cache.sensor_ids,
    )
    .await?;
    let rows = reading_rows(&readings, |key| row_id(&sensor_ids, &cache.sensor_ids, key))?;
    insert_readings(&transaction, rows, cache.expecting_duplicates()).await?;
    insert_parsing_logs(&transaction, batch, &deleted_sites).await?;
    transaction.commit().await?;

    // Only now, with the rows durable, may the cache believe in them.
    cache.committed(
        &deleted_sites,
        NewRowIds {
            gateways: gateway_ids,
            dataloggers: datalogger_ids,
            sensors: sensor_ids,
        },
        flushing.then(|| (to_write.topics.into_keys().collect(), remaining)),
        batch_topics,
    );
    tracing::debug!(
        messages = batch.len(),
        flushed = flushing,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "batch stored"
    );
    Ok(Committed { new_topics })
}

/// Whether a transaction failed only because a reading it inserted is stored already (a
/// redelivered message). The writer then stores the batch again, skipping such readings.
pub fn is_duplicate_reading(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(message))
            if message.contains("sensor_reading_pkey")
    )
}
