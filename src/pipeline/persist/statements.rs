//! The statements of a batch's transaction, portable between SQLite and PostgreSQL (sea-orm
//! multi-row upserts in key order); where PostgreSQL has a faster way, `postgres` takes over.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use sea_orm::sea_query::{Expr, LockType, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};

use super::device_state::{DeviceState, GatewayRow, SensorRow};
use super::postgres;
use super::transaction::BatchTransaction;
use crate::entity::{
    datalogger, discovered_topic, gateway, mqtt_parsing_log, mqtt_topic, sensor, sensor_reading,
    site,
};
use crate::pipeline::discover::TopicTally;
use crate::pipeline::names::{DataloggerKey, GatewayKey, Name, SensorKey};
use crate::pipeline::{Outcome, Prepared};

/// Why a device's `is_online` was written, as its `online_cause` (kept in `device_event` rows
/// when `is_online` changes): a status message announced it, or any message showed it alive.
pub(super) const ONLINE_BY_STATUS_MESSAGE: &str = "status_message";
pub(super) const ONLINE_BY_MESSAGE: &str = "message";

/// Rows per statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK_ROWS: usize = 500;

/// A row without `last_seen` comes of retained messages only (old news) and changes no
/// `last_seen` or `is_online`; otherwise the newest sighting wins.
const GATEWAY_NEWER: &str = "(excluded.last_seen IS NOT NULL \
     AND (gateway.last_seen IS NULL OR excluded.last_seen >= gateway.last_seen))";
const DATALOGGER_NEWER: &str = "(excluded.last_seen IS NOT NULL \
     AND (datalogger.last_seen IS NULL OR excluded.last_seen >= datalogger.last_seen))";

/// The row id of a device: written by this transaction, or known from earlier ones.
pub(super) fn row_id<K: Hash + Eq>(
    written: &HashMap<K, i32>,
    cached: &HashMap<K, i32>,
    key: &K,
) -> Option<i32> {
    written.get(key).or_else(|| cached.get(key)).copied()
}

/// Rows in one fixed order: several writers may upsert the same gateway (or device) rows, and
/// transactions that lock rows in different orders can deadlock each other.
pub(super) fn in_key_order<K: Ord, V>(rows: &HashMap<K, V>) -> Vec<(&K, &V)> {
    let mut ordered: Vec<(&K, &V)> = rows.iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(b.0));
    ordered
}

/// Latest state may outlive its site (deleted meanwhile) or name a pattern that is gone; such
/// rows would make every transaction fail, so they are dropped or detached here.
/// Returns the sites of `batch` and `to_write` that no longer exist.
pub(super) async fn drop_rows_of_deleted_sites<C: ConnectionTrait>(
    db: &C,
    batch: &[Prepared],
    to_write: &mut DeviceState,
    remaining: &mut DeviceState,
) -> Result<HashSet<i32>, DbErr> {
    let mut sites: HashSet<i32> = to_write
        .topics
        .keys()
        .map(|(site_id, _)| *site_id)
        .collect();
    sites.extend(to_write.gateways.keys().map(|(site_id, _)| *site_id));
    sites.extend(to_write.dataloggers.keys().map(|(site_id, _, _)| *site_id));
    sites.extend(to_write.sensors.keys().map(|(site_id, _, _, _)| *site_id));
    sites.extend(batch.iter().map(|message| message.site_id));
    if sites.is_empty() {
        return Ok(HashSet::new());
    }
    // The key-share lock holds off a deletion of these sites until this transaction ends, as a
    // foreign key would, so no reading is stored for a sensor that a deletion has just removed.
    let existing: HashSet<i32> = site::Entity::find()
        .filter(site::Column::Id.is_in(sites.iter().copied()))
        .lock(LockType::KeyShare)
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    let deleted: HashSet<i32> = sites.difference(&existing).copied().collect();
    if !deleted.is_empty() {
        // Only the sites found deleted: rows of sites this batch did not ask about stay.
        to_write.forget_sites(&deleted);
        remaining.forget_sites(&deleted);
    }
    let patterns: HashSet<i32> = to_write
        .topics
        .values()
        .filter_map(|tally| tally.mqtt_topic_id)
        .collect();
    if !patterns.is_empty() {
        let existing: HashSet<i32> = mqtt_topic::Entity::find()
            .filter(mqtt_topic::Column::Id.is_in(patterns.iter().copied()))
            .all(db)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        for tally in to_write.topics.values_mut() {
            if tally
                .mqtt_topic_id
                .is_some_and(|id| !existing.contains(&id))
            {
                tally.mqtt_topic_id = None;
                tally.is_processable = false;
            }
        }
    }
    Ok(deleted)
}

pub(super) async fn upsert_discovered<C: ConnectionTrait>(
    db: &C,
    tallies: &[TopicTally],
    known_topics: &foldhash::HashSet<(i32, Name)>,
) -> Result<Vec<(i32, String)>, DbErr> {
    // Which of the unknown topics are really new: one query per site with unknown topics.
    let mut unknown: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for tally in tallies {
        if !known_topics.contains(&(tally.site_id, tally.topic.clone())) {
            unknown
                .entry(tally.site_id)
                .or_default()
                .push(tally.topic.to_string());
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
            topic: Set(tally.topic.to_string()),
            first_seen: Set(tally.first_seen),
            last_seen: Set(tally.last_seen),
            message_count: Set(tally.count),
            last_payload: Set(Some(tally.sample.text())),
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

/// Writes the rows; returns the ids of those the cache does not know yet.
pub(super) async fn upsert_gateways<C: ConnectionTrait>(
    db: &C,
    gateways: &HashMap<GatewayKey, GatewayRow>,
    cached: &HashMap<GatewayKey, i32>,
) -> Result<HashMap<GatewayKey, i32>, DbErr> {
    let mut ids = HashMap::default();
    if gateways.is_empty() {
        return Ok(ids);
    }
    let now = Utc::now();
    let entries = in_key_order(gateways);
    for chunk in entries.chunks(CHUNK_ROWS) {
        let rows = chunk
            .iter()
            .map(|((site_id, identifier), row)| gateway::ActiveModel {
                site_id: Set(*site_id),
                identifier: Set(identifier.to_string()),
                name: Set(None),
                last_seen: Set(row.last_seen()),
                // Not seen live (retained messages only): offline, with no cause.
                is_online: Set(row.seen.is_some_and(|seen| seen.is_online)),
                online_cause: Set(row.seen.map(|seen| {
                    if seen.announced {
                        ONLINE_BY_STATUS_MESSAGE
                    } else {
                        ONLINE_BY_MESSAGE
                    }
                    .into()
                })),
                online_changed_at: Set(row.last_seen()),
                metadata: Set(row.metadata.clone().map(serde_json::Value::Object)),
                created_at: Set(now),
                ..Default::default()
            });
        gateway::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([gateway::Column::SiteId, gateway::Column::Identifier])
                    // Several writers may hold state of one gateway: the newest news wins.
                    .value(
                        gateway::Column::LastSeen,
                        Expr::cust(format!(
                            "CASE WHEN {GATEWAY_NEWER} THEN excluded.last_seen ELSE gateway.last_seen END"
                        )),
                    )
                    .value(
                        gateway::Column::IsOnline,
                        Expr::cust(format!(
                            "CASE WHEN {GATEWAY_NEWER} THEN excluded.is_online ELSE gateway.is_online END"
                        )),
                    )
                    .value(
                        gateway::Column::OnlineCause,
                        Expr::cust(format!(
                            "CASE WHEN {GATEWAY_NEWER} THEN excluded.online_cause ELSE gateway.online_cause END"
                        )),
                    )
                    .value(
                        gateway::Column::OnlineChangedAt,
                        Expr::cust(format!(
                            "CASE WHEN {GATEWAY_NEWER} THEN excluded.online_changed_at ELSE gateway.online_changed_at END"
                        )),
                    )
                    .value(
                        gateway::Column::Metadata,
                        Expr::cust("COALESCE(excluded.metadata, gateway.metadata)"),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let mut by_site: BTreeMap<i32, Vec<Name>> = BTreeMap::new();
    for (site_id, identifier) in gateways.keys().filter(|key| !cached.contains_key(*key)) {
        by_site
            .entry(*site_id)
            .or_default()
            .push(identifier.clone());
    }
    for (site_id, identifiers) in by_site {
        for chunk in identifiers.chunks(CHUNK_ROWS) {
            let by_text: HashMap<&str, &Name> = chunk.iter().map(|name| (&**name, name)).collect();
            for row in gateway::Entity::find()
                .filter(gateway::Column::SiteId.eq(site_id))
                .filter(
                    gateway::Column::Identifier.is_in(chunk.iter().map(|name| name.to_string())),
                )
                .all(db)
                .await?
            {
                // The key the batch used, so later lookups share its name.
                if let Some(identifier) = by_text.get(row.identifier.as_str()) {
                    ids.insert((site_id, (*identifier).clone()), row.id);
                }
            }
        }
    }
    Ok(ids)
}

/// Writes the rows; returns the ids of those the cache does not know yet.
pub(super) async fn upsert_dataloggers(
    db: &BatchTransaction,
    dataloggers: &HashMap<DataloggerKey, Option<DateTime<Utc>>>,
    gateway_id: &impl Fn(&GatewayKey) -> Option<i32>,
    cached: &HashMap<DataloggerKey, i32>,
) -> Result<HashMap<DataloggerKey, i32>, DbErr> {
    let mut ids = HashMap::default();
    if dataloggers.is_empty() {
        return Ok(ids);
    }
    let now = Utc::now();
    let postgres = db.postgres();
    let (mut known_ids, mut known_times) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    let mut gateway_of: HashMap<i32, GatewayKey> = HashMap::default();
    for (key, last_seen) in in_key_order(dataloggers) {
        match (postgres, cached.get(key), last_seen) {
            // A stored row and retained messages only: nothing to change.
            (_, Some(_), None) => continue,
            (Some(_), Some(&id), Some(last_seen)) => {
                known_ids.push(id);
                known_times.push(*last_seen);
                continue;
            }
            _ => {}
        }
        let (site_id, gateway, identifier) = key;
        let Some(gateway_id) = gateway_id(&(*site_id, gateway.clone())) else {
            return Err(DbErr::Custom(format!(
                "gateway {gateway} of site {site_id} vanished inside the transaction"
            )));
        };
        if !cached.contains_key(key) {
            gateway_of.insert(gateway_id, (*site_id, gateway.clone()));
        }
        rows.push(datalogger::ActiveModel {
            gateway_id: Set(gateway_id),
            identifier: Set(identifier.to_string()),
            last_seen: Set(*last_seen),
            // Not seen live (retained messages only): offline, with no cause.
            is_online: Set(last_seen.is_some()),
            online_cause: Set(last_seen.map(|_| ONLINE_BY_MESSAGE.into())),
            online_changed_at: Set(*last_seen),
            metadata: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
    }
    if let Some(postgres) = postgres {
        postgres::update_known_dataloggers(postgres, &known_ids, &known_times).await?;
    }
    for chunk in rows.chunks(CHUNK_ROWS) {
        datalogger::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    datalogger::Column::GatewayId,
                    datalogger::Column::Identifier,
                ])
                .value(
                    datalogger::Column::LastSeen,
                    Expr::cust(format!(
                        "CASE WHEN {DATALOGGER_NEWER} THEN excluded.last_seen ELSE datalogger.last_seen END"
                    )),
                )
                .value(
                    datalogger::Column::IsOnline,
                    Expr::cust(format!(
                        "CASE WHEN {DATALOGGER_NEWER} THEN excluded.is_online ELSE datalogger.is_online END"
                    )),
                )
                .value(
                    datalogger::Column::OnlineCause,
                    Expr::cust(format!(
                        "CASE WHEN {DATALOGGER_NEWER} THEN excluded.online_cause ELSE datalogger.online_cause END"
                    )),
                )
                .value(
                    datalogger::Column::OnlineChangedAt,
                    Expr::cust(format!(
                        "CASE WHEN {DATALOGGER_NEWER} THEN excluded.online_changed_at ELSE datalogger.online_changed_at END"
                    )),
                )
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let gateway_id_list: Vec<i32> = gateway_of.keys().copied().collect();
    let wanted: HashMap<(i32, &str, &str), &DataloggerKey> = dataloggers
        .keys()
        .filter(|key| !cached.contains_key(*key))
        .map(|key| ((key.0, &*key.1, &*key.2), key))
        .collect();
    for chunk in gateway_id_list.chunks(CHUNK_ROWS) {
        for row in datalogger::Entity::find()
            .filter(datalogger::Column::GatewayId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            if let Some((site_id, gateway)) = gateway_of.get(&row.gateway_id) {
                if let Some(key) = wanted.get(&(*site_id, &**gateway, row.identifier.as_str())) {
                    ids.insert((*key).clone(), row.id);
                }
            }
        }
    }
    Ok(ids)
}

/// Writes the rows; returns the ids of those the cache does not know yet.
pub(super) async fn upsert_sensors(
    db: &BatchTransaction,
    sensors: &HashMap<SensorKey, SensorRow>,
    datalogger_id: &impl Fn(&DataloggerKey) -> Option<i32>,
    cached: &HashMap<SensorKey, i32>,
) -> Result<HashMap<SensorKey, i32>, DbErr> {
    let mut ids = HashMap::default();
    if sensors.is_empty() {
        return Ok(ids);
    }
    let postgres = db.postgres();
    let mut known = postgres::KnownSensors::default();
    let mut rows = Vec::new();
    let mut datalogger_of: HashMap<i32, DataloggerKey> = HashMap::default();
    for (key, row) in in_key_order(sensors) {
        if let (Some(_), Some(&id)) = (postgres, cached.get(key)) {
            known.push(id, row);
            continue;
        }
        let (site_id, gateway, datalogger_identifier, name) = key;
        let datalogger_key = (*site_id, gateway.clone(), datalogger_identifier.clone());
        let Some(datalogger_id) = datalogger_id(&datalogger_key) else {
            return Err(DbErr::Custom(format!(
                "datalogger {datalogger_identifier} vanished inside the transaction"
            )));
        };
        if !cached.contains_key(key) {
            datalogger_of.insert(datalogger_id, datalogger_key);
        }
        rows.push(sensor::ActiveModel {
            datalogger_id: Set(datalogger_id),
            name: Set(name.to_string()),
            unit: Set(row.unit.clone()),
            last_value: Set(Some(row.value)),
            last_reading_at: Set(Some(row.ts)),
            ..Default::default()
        });
    }
    if let Some(postgres) = postgres {
        known.update(postgres).await?;
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
    // The keys the batch used, found by the text the database returns.
    let wanted: HashMap<(i32, &str, &str, &str), &SensorKey> = sensors
        .keys()
        .filter(|key| !cached.contains_key(*key))
        .map(|key| ((key.0, &*key.1, &*key.2, &*key.3), key))
        .collect();
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
                let key = wanted.get(&(
                    *site_id,
                    &**gateway,
                    &**datalogger_identifier,
                    row.name.as_str(),
                ));
                if let Some(key) = key {
                    ids.insert((*key).clone(), row.id);
                }
            }
        }
    }
    Ok(ids)
}

/// `rows` as `reading_rows` gives them: (sensor row id, time, value), one per key, in key order.
pub(super) async fn insert_readings(
    transaction: &BatchTransaction,
    rows: Vec<(i32, DateTime<Utc>, f64)>,
    skip_duplicates: bool,
) -> Result<(), DbErr> {
    if let Some(postgres) = transaction.postgres() {
        return postgres::insert_readings(postgres, rows, skip_duplicates).await;
    }
    let rows: Vec<sensor_reading::ActiveModel> = rows
        .into_iter()
        .map(|(sensor_id, ts, value)| sensor_reading::ActiveModel {
            sensor_id: Set(sensor_id),
            ts: Set(ts),
            value: Set(value),
        })
        .collect();
    for chunk in rows.chunks(CHUNK_ROWS * 2) {
        sensor_reading::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([sensor_reading::Column::SensorId, sensor_reading::Column::Ts])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(transaction)
            .await?;
    }
    Ok(())
}

pub(super) async fn insert_parsing_logs<C: ConnectionTrait>(
    db: &C,
    batch: &[Prepared],
    deleted_sites: &HashSet<i32>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows: Vec<mqtt_parsing_log::ActiveModel> = batch
        .iter()
        .filter(|message| !deleted_sites.contains(&message.site_id))
        .filter_map(|message| match &message.outcome {
            Outcome::Failed { error } => Some(mqtt_parsing_log::ActiveModel {
                site_id: Set(message.site_id),
                topic: Set(message.topic.clone()),
                parser: Set(message.parser().map(str::to_string)),
                error: Set(error.clone()),
                payload: Set(message.payload.to_vec()),
                received_at: Set(message.received_at),
                created_at: Set(now),
                replayed_at: Set(None),
                retained: Set(message.retained),
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
