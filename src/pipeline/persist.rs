//! Storing one batch in one transaction: discovered topics, gateways, dataloggers, sensors,
//! readings and parsing-log rows, each as a few multi-row upserts.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};

use super::discover::{tally, TopicTally};
use super::{Outcome, Prepared};
use crate::entity::{
    datalogger, discovered_topic, gateway, mqtt_parsing_log, sensor, sensor_reading,
};

/// (site, gateway identifier, datalogger identifier, sensor name).
pub type SensorKey = (i32, String, String, String);

/// Rows per statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK_ROWS: usize = 500;

/// What the writer needs after the commit.
#[derive(Debug, Default)]
pub struct Committed {
    pub sensor_ids: HashMap<SensorKey, i32>,
    pub new_topics: Vec<(i32, String)>,
}

#[derive(Debug, Clone)]
struct GatewayRow {
    last_seen: DateTime<Utc>,
    is_online: bool,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone)]
struct SensorRow {
    unit: Option<String>,
    value: f64,
    ts: DateTime<Utc>,
}

/// The batch folded into one row per key: a multi-row upsert may not touch a key twice.
#[derive(Debug, Default)]
struct Folded {
    gateways: BTreeMap<(i32, String), GatewayRow>,
    dataloggers: BTreeMap<(i32, String, String), DateTime<Utc>>,
    sensors: BTreeMap<SensorKey, SensorRow>,
    readings: BTreeMap<(SensorKey, DateTime<Utc>), f64>,
}

fn fold(batch: &[Prepared]) -> Folded {
    let mut folded = Folded::default();
    for message in batch {
        let Outcome::Parsed(output) = &message.outcome else {
            continue;
        };
        let site_id = message.site_id;
        for record in &output.gateways {
            let row = folded
                .gateways
                .entry((site_id, record.identifier.clone()))
                .or_insert(GatewayRow {
                    last_seen: message.received_at,
                    is_online: true,
                    metadata: None,
                });
            row.last_seen = row.last_seen.max(message.received_at);
            if let Some(online) = record.online {
                row.is_online = online;
            }
            if !record.metadata.is_empty() {
                let metadata = row.metadata.get_or_insert_with(Default::default);
                metadata.extend(record.metadata.clone());
            }
        }
        for record in &output.dataloggers {
            let gateway = folded
                .gateways
                .entry((site_id, record.gateway.clone()))
                .or_insert(GatewayRow {
                    last_seen: message.received_at,
                    is_online: true,
                    metadata: None,
                });
            gateway.last_seen = gateway.last_seen.max(message.received_at);
            let last_seen = folded
                .dataloggers
                .entry((site_id, record.gateway.clone(), record.identifier.clone()))
                .or_insert(message.received_at);
            *last_seen = (*last_seen).max(message.received_at);
            for value in &record.sensors {
                let key: SensorKey = (
                    site_id,
                    record.gateway.clone(),
                    record.identifier.clone(),
                    value.name.clone(),
                );
                match folded.sensors.get_mut(&key) {
                    Some(row) if row.ts > record.ts => {}
                    Some(row) => {
                        row.value = value.value;
                        row.ts = record.ts;
                        if value.unit.is_some() {
                            row.unit = value.unit.clone();
                        }
                    }
                    None => {
                        folded.sensors.insert(
                            key.clone(),
                            SensorRow {
                                unit: value.unit.clone(),
                                value: value.value,
                                ts: record.ts,
                            },
                        );
                    }
                }
                folded.readings.insert((key, record.ts), value.value);
            }
        }
    }
    folded
}

/// Stores the batch; all or nothing. `known_topics` spares a lookup for topics already stored;
/// `None` skips discovery (a replayed payload was counted when it first arrived).
pub async fn persist(
    db: &DatabaseConnection,
    batch: &[Prepared],
    sample_bytes: usize,
    known_topics: Option<&HashSet<(i32, String)>>,
) -> Result<Committed, DbErr> {
    let folded = fold(batch);
    let transaction = db.begin().await?;
    let new_topics = match known_topics {
        Some(known_topics) => {
            let tallies = tally(batch, sample_bytes);
            upsert_discovered(&transaction, &tallies, known_topics).await?
        }
        None => Vec::new(),
    };
    let gateway_ids = upsert_gateways(&transaction, &folded).await?;
    let datalogger_ids = upsert_dataloggers(&transaction, &folded, &gateway_ids).await?;
    let sensor_ids = upsert_sensors(&transaction, &folded, &datalogger_ids).await?;
    insert_readings(&transaction, &folded, &sensor_ids).await?;
    insert_parsing_logs(&transaction, batch).await?;
    transaction.commit().await?;
    Ok(Committed {
        sensor_ids,
        new_topics,
    })
}

async fn upsert_discovered<C: ConnectionTrait>(
    db: &C,
    tallies: &[TopicTally],
    known_topics: &HashSet<(i32, String)>,
) -> Result<Vec<(i32, String)>, DbErr> {
    // Which of the unknown topics are really new: one query per site with unknown topics.
    let mut unknown: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for tally in tallies {
        if !known_topics.contains(&(tally.site_id, tally.topic.clone())) {
            unknown
                .entry(tally.site_id)
                .or_default()
                .push(tally.topic.clone());
        }
    }
    let mut new_topics = Vec::new();
    for (site_id, topics) in unknown {
        for chunk in topics.chunks(CHUNK_ROWS) {
            let existing: HashSet<String> = discovered_topic::Entity::find()
                .filter(discovered_topic::Column::SiteId.eq(site_id))
                .filter(discovered_topic::Column::Topic.is_in(chunk.iter().cloned()))
                .all(db)
                .await?
                .into_iter()
                .map(|row| row.topic)
                .collect();
            new_topics.extend(
                chunk
                    .iter()
                    .filter(|topic| !existing.contains(*topic))
                    .map(|topic| (site_id, topic.clone())),
            );
        }
    }
    for chunk in tallies.chunks(CHUNK_ROWS) {
        let rows = chunk.iter().map(|tally| discovered_topic::ActiveModel {
            site_id: Set(tally.site_id),
            topic: Set(tally.topic.clone()),
            first_seen: Set(tally.first_seen),
            last_seen: Set(tally.last_seen),
            message_count: Set(tally.count),
            last_payload: Set(Some(tally.sample.clone())),
            is_processable: Set(tally.is_processable),
            mqtt_topic_id: Set(tally.mqtt_topic_id),
            ..Default::default()
        });
        discovered_topic::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    discovered_topic::Column::SiteId,
                    discovered_topic::Column::Topic,
                ])
                .update_columns([
                    discovered_topic::Column::LastSeen,
                    discovered_topic::Column::LastPayload,
                    discovered_topic::Column::IsProcessable,
                    discovered_topic::Column::MqttTopicId,
                ])
                .value(
                    discovered_topic::Column::MessageCount,
                    Expr::cust("discovered_topic.message_count + excluded.message_count"),
                )
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(new_topics)
}

async fn upsert_gateways<C: ConnectionTrait>(
    db: &C,
    folded: &Folded,
) -> Result<HashMap<(i32, String), i32>, DbErr> {
    let mut ids = HashMap::new();
    if folded.gateways.is_empty() {
        return Ok(ids);
    }
    let now = Utc::now();
    let entries: Vec<_> = folded.gateways.iter().collect();
    for chunk in entries.chunks(CHUNK_ROWS) {
        let rows = chunk
            .iter()
            .map(|((site_id, identifier), row)| gateway::ActiveModel {
                site_id: Set(*site_id),
                identifier: Set(identifier.clone()),
                name: Set(None),
                last_seen: Set(Some(row.last_seen)),
                is_online: Set(row.is_online),
                metadata: Set(row.metadata.clone().map(serde_json::Value::Object)),
                created_at: Set(now),
                ..Default::default()
            });
        gateway::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([gateway::Column::SiteId, gateway::Column::Identifier])
                    .update_columns([gateway::Column::LastSeen, gateway::Column::IsOnline])
                    .value(
                        gateway::Column::Metadata,
                        Expr::cust("COALESCE(excluded.metadata, gateway.metadata)"),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let mut by_site: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (site_id, identifier) in folded.gateways.keys() {
        by_site
            .entry(*site_id)
            .or_default()
            .push(identifier.clone());
    }
    for (site_id, identifiers) in by_site {
        for chunk in identifiers.chunks(CHUNK_ROWS) {
            for row in gateway::Entity::find()
                .filter(gateway::Column::SiteId.eq(site_id))
                .filter(gateway::Column::Identifier.is_in(chunk.iter().cloned()))
                .all(db)
                .await?
            {
                ids.insert((site_id, row.identifier), row.id);
            }
        }
    }
    Ok(ids)
}

async fn upsert_dataloggers<C: ConnectionTrait>(
    db: &C,
    folded: &Folded,
    gateway_ids: &HashMap<(i32, String), i32>,
) -> Result<HashMap<(i32, String, String), i32>, DbErr> {
    let mut ids = HashMap::new();
    if folded.dataloggers.is_empty() {
        return Ok(ids);
    }
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut gateway_of: HashMap<i32, (i32, String)> = HashMap::new();
    for ((site_id, gateway, identifier), last_seen) in &folded.dataloggers {
        let Some(gateway_id) = gateway_ids.get(&(*site_id, gateway.clone())) else {
            return Err(DbErr::Custom(format!(
                "gateway {gateway} of site {site_id} vanished inside the transaction"
            )));
        };
        gateway_of.insert(*gateway_id, (*site_id, gateway.clone()));
        rows.push(datalogger::ActiveModel {
            gateway_id: Set(*gateway_id),
            identifier: Set(identifier.clone()),
            last_seen: Set(Some(*last_seen)),
            is_online: Set(true),
            metadata: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
    }
    for chunk in rows.chunks(CHUNK_ROWS) {
        datalogger::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    datalogger::Column::GatewayId,
                    datalogger::Column::Identifier,
                ])
                .update_columns([datalogger::Column::LastSeen, datalogger::Column::IsOnline])
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let gateway_id_list: Vec<i32> = gateway_of.keys().copied().collect();
    let wanted: HashSet<(i32, String, String)> = folded.dataloggers.keys().cloned().collect();
    for chunk in gateway_id_list.chunks(CHUNK_ROWS) {
        for row in datalogger::Entity::find()
            .filter(datalogger::Column::GatewayId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            if let Some((site_id, gateway)) = gateway_of.get(&row.gateway_id) {
                let key = (*site_id, gateway.clone(), row.identifier.clone());
                if wanted.contains(&key) {
                    ids.insert(key, row.id);
                }
            }
        }
    }
    Ok(ids)
}

async fn upsert_sensors<C: ConnectionTrait>(
    db: &C,
    folded: &Folded,
    datalogger_ids: &HashMap<(i32, String, String), i32>,
) -> Result<HashMap<SensorKey, i32>, DbErr> {
    let mut ids = HashMap::new();
    if folded.sensors.is_empty() {
        return Ok(ids);
    }
    let mut rows = Vec::new();
    let mut datalogger_of: HashMap<i32, (i32, String, String)> = HashMap::new();
    for ((site_id, gateway, datalogger_identifier, name), row) in &folded.sensors {
        let datalogger_key = (*site_id, gateway.clone(), datalogger_identifier.clone());
        let Some(datalogger_id) = datalogger_ids.get(&datalogger_key) else {
            return Err(DbErr::Custom(format!(
                "datalogger {datalogger_identifier} vanished inside the transaction"
            )));
        };
        datalogger_of.insert(*datalogger_id, datalogger_key);
        rows.push(sensor::ActiveModel {
            datalogger_id: Set(*datalogger_id),
            name: Set(name.clone()),
            unit: Set(row.unit.clone()),
            last_value: Set(Some(row.value)),
            last_reading_at: Set(Some(row.ts)),
            ..Default::default()
        });
    }
    // An older reading arriving late must not overwrite the latest value.
    let newer =
        "(sensor.last_reading_at IS NULL OR excluded.last_reading_at >= sensor.last_reading_at)";
    for chunk in rows.chunks(CHUNK_ROWS) {
        sensor::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([sensor::Column::DataloggerId, sensor::Column::Name])
                    .value(
                        sensor::Column::Unit,
                        Expr::cust("COALESCE(excluded.unit, sensor.unit)"),
                    )
                    .value(
                        sensor::Column::LastValue,
                        Expr::cust(format!(
                            "CASE WHEN {newer} THEN excluded.last_value ELSE sensor.last_value END"
                        )),
                    )
                    .value(
                        sensor::Column::LastReadingAt,
                        Expr::cust(format!(
                            "CASE WHEN {newer} THEN excluded.last_reading_at ELSE sensor.last_reading_at END"
                        )),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let datalogger_id_list: Vec<i32> = datalogger_of.keys().copied().collect();
    for chunk in datalogger_id_list.chunks(CHUNK_ROWS) {
        for row in sensor::Entity::find()
            .filter(sensor::Column::DataloggerId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            if let Some((site_id, gateway, datalogger_identifier)) =
                datalogger_of.get(&row.datalogger_id)
            {
                let key = (
                    *site_id,
                    gateway.clone(),
                    datalogger_identifier.clone(),
                    row.name.clone(),
                );
                if folded.sensors.contains_key(&key) {
                    ids.insert(key, row.id);
                }
            }
        }
    }
    Ok(ids)
}

async fn insert_readings<C: ConnectionTrait>(
    db: &C,
    folded: &Folded,
    sensor_ids: &HashMap<SensorKey, i32>,
) -> Result<(), DbErr> {
    let rows: Vec<sensor_reading::ActiveModel> = folded
        .readings
        .iter()
        .filter_map(|((key, ts), value)| {
            let sensor_id = sensor_ids.get(key)?;
            Some(sensor_reading::ActiveModel {
                sensor_id: Set(*sensor_id),
                ts: Set(*ts),
                value: Set(*value),
            })
        })
        .collect();
    for chunk in rows.chunks(CHUNK_ROWS * 2) {
        sensor_reading::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([sensor_reading::Column::SensorId, sensor_reading::Column::Ts])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

async fn insert_parsing_logs<C: ConnectionTrait>(db: &C, batch: &[Prepared]) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows: Vec<mqtt_parsing_log::ActiveModel> = batch
        .iter()
        .filter_map(|message| match &message.outcome {
            Outcome::Failed { error } => Some(mqtt_parsing_log::ActiveModel {
                site_id: Set(message.site_id),
                topic: Set(message.topic.clone()),
                parser: Set(message.parser().map(str::to_string)),
                error: Set(error.clone()),
                payload: Set(message.payload.clone()),
                received_at: Set(message.received_at),
                created_at: Set(now),
                replayed_at: Set(None),
                ..Default::default()
            }),
            _ => None,
        })
        .collect();
    for chunk in rows.chunks(CHUNK_ROWS / 5) {
        mqtt_parsing_log::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
