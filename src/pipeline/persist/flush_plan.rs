//! Folding a batch into latest state and deciding what its transaction writes: the readings, the
//! rows that cannot wait, and a chunk of the pending latest state when a flush is due. Pure.

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use sea_orm::DbErr;

use super::device_state::{DeviceState, GatewayRow, SensorRow, Sighting};
use super::write_cache::WriteCache;
use super::BatchKind;
use crate::pipeline::discover::{tally, TopicTally};
use crate::pipeline::names::{DataloggerKey, GatewayKey, Name, SensorKey};
use crate::pipeline::{Outcome, Prepared};

/// What folding a batch leaves for its transaction.
#[derive(Debug)]
pub(super) struct Folded {
    /// The batch's topic counters. They join the pending ones only after the commit: a batch
    /// whose transaction fails is folded again, and its counts must not add up twice.
    pub(super) topics: HashMap<(i32, Name), TopicTally>,
    /// Latest-state rows that cannot wait for a flush: devices without a stored row (their
    /// readings need its id) and gateways whose status or metadata this batch announces. They
    /// are written with the batch and are not pending.
    pub(super) urgent: DeviceState,
    pub(super) readings: ReadingRows,
}

/// Folds a batch's latest state (last seen, latest values) of stored devices straight into the
/// cache's pending rows, one map update per device and sensor. Folding the same batch again
/// after a failed attempt changes nothing there: the newest time and value win whatever the
/// order. What must be written with the batch (devices without a row, announced gateways) goes
/// to `urgent` only: if the database refuses it, it must not stay pending and fail every flush.
pub(super) fn fold(
    batch: &[Prepared],
    sample_bytes: usize,
    kind: BatchKind,
    cache: &mut WriteCache,
) -> Folded {
    let WriteCache {
        names,
        pending,
        gateway_ids,
        datalogger_ids,
        sensor_ids,
        ..
    } = cache;
    let mut folded = Folded {
        topics: HashMap::with_capacity_and_hasher(batch.len(), Default::default()),
        urgent: DeviceState::default(),
        readings: ReadingRows::with_capacity(batch.len() * 2),
    };
    if kind.counts_topics() {
        for tally in tally(batch, sample_bytes, names) {
            folded
                .topics
                .insert((tally.site_id, tally.topic.clone()), tally);
        }
    }
    for message in batch {
        let Outcome::Parsed(output) = &message.outcome else {
            continue;
        };
        let site_id = message.site_id;
        // A retained message is old news: it creates the devices it names (their readings need
        // rows) and may add metadata, but it never moves `last_seen` or `is_online`.
        let live = !message.retained;
        for record in &output.gateways {
            let key = (site_id, names.intern(&record.identifier));
            let announced = record.online.is_some() || !record.metadata.is_empty();
            let row = GatewayRow {
                seen: live.then_some(Sighting {
                    at: message.received_at,
                    is_online: record.online.unwrap_or(true),
                    announced,
                }),
                metadata: (!record.metadata.is_empty()).then(|| record.metadata.clone()),
            };
            let urgent = (live && announced) || row.metadata.is_some();
            if urgent || !gateway_ids.contains_key(&key) {
                folded.urgent.add_gateway(key, row);
            } else if live {
                pending.add_gateway(key, row);
            }
        }
        for record in &output.dataloggers {
            let gateway = names.intern(&record.gateway);
            let datalogger = names.intern(&record.identifier);
            // Seen, not announced: changes nothing but the time of an announced row.
            let gateway_key = (site_id, gateway.clone());
            let seen = GatewayRow {
                seen: live.then_some(Sighting {
                    at: message.received_at,
                    is_online: true,
                    announced: false,
                }),
                metadata: None,
            };
            if !gateway_ids.contains_key(&gateway_key) {
                folded.urgent.add_gateway(gateway_key, seen);
            } else if live {
                pending.add_gateway(gateway_key, seen);
            }
            let datalogger_key = (site_id, gateway.clone(), datalogger.clone());
            let last_seen = live.then_some(message.received_at);
            if !datalogger_ids.contains_key(&datalogger_key) {
                folded.urgent.add_datalogger(datalogger_key, last_seen);
            } else if live {
                pending.add_datalogger(datalogger_key, last_seen);
            }
            for value in &record.sensors {
                let key: SensorKey = (
                    site_id,
                    gateway.clone(),
                    datalogger.clone(),
                    names.intern(&value.name),
                );
                let row = SensorRow {
                    unit: value.unit.clone(),
                    value: value.value,
                    ts: record.ts,
                };
                if sensor_ids.contains_key(&key) {
                    pending.add_sensor(key.clone(), row);
                } else {
                    folded.urgent.add_sensor(key.clone(), row);
                }
                folded.readings.push((key, record.ts, value.value));
            }
        }
    }
    folded
}

/// Readings in the order their messages came; `reading_rows` settles repeats.
pub(super) type ReadingRows = Vec<(SensorKey, DateTime<Utc>, f64)>;

/// (sensor row id, time, value) in key order, one row per sensor and time: of two readings with
/// the same key in one batch the later message wins. Key order, like every other multi-row
/// write: concurrent writers never wait on each other in opposite orders.
pub(super) fn reading_rows(
    readings: &[(SensorKey, DateTime<Utc>, f64)],
    sensor_id: impl Fn(&SensorKey) -> Option<i32>,
) -> Result<Vec<(i32, DateTime<Utc>, f64)>, DbErr> {
    let mut rows = Vec::with_capacity(readings.len());
    for (key, ts, value) in readings {
        let id = sensor_id(key).ok_or_else(|| {
            DbErr::Custom(format!(
                "sensor {} of datalogger {} has no row",
                key.3, key.2
            ))
        })?;
        rows.push((id, *ts, *value));
    }
    // Stable, so of equal keys the later message stays last; its value replaces the kept one.
    rows.sort_by_key(|(sensor_id, ts, _)| (*sensor_id, *ts));
    rows.dedup_by(|later, kept| {
        let same = (later.0, later.1) == (kept.0, kept.1);
        if same {
            kept.2 = later.2;
        }
        same
    });
    Ok(rows)
}

/// Adds the gateway of every datalogger and the datalogger of every sensor that is being written
/// but has no cached id, so a child row never goes out without its parent (a flush takes each
/// kind in separate chunks, and a failed write forgets the cached ids).
fn add_missing_parents(to_write: &mut DeviceState, known: &[&DeviceState], cache: &WriteCache) {
    // A parent found nowhere is written as not seen live: that changes nothing of a stored row.
    let missing_dataloggers: Vec<DataloggerKey> = to_write
        .sensors
        .keys()
        .map(|(site_id, gateway, datalogger, _)| (*site_id, gateway.clone(), datalogger.clone()))
        .filter(|key| {
            !cache.datalogger_ids.contains_key(key) && !to_write.dataloggers.contains_key(key)
        })
        .collect();
    for key in missing_dataloggers {
        let last_seen = known
            .iter()
            .find_map(|state| state.dataloggers.get(&key).copied())
            .flatten();
        to_write.dataloggers.insert(key, last_seen);
    }
    let missing_gateways: Vec<GatewayKey> = to_write
        .dataloggers
        .keys()
        .map(|(site_id, gateway, _)| (*site_id, gateway.clone()))
        .filter(|key| !cache.gateway_ids.contains_key(key) && !to_write.gateways.contains_key(key))
        .collect();
    for key in missing_gateways {
        let row = known
            .iter()
            .find_map(|state| state.gateways.get(&key).cloned())
            .unwrap_or(GatewayRow {
                seen: None,
                metadata: None,
            });
        to_write.gateways.insert(key, row);
    }
}

/// When pending latest state goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// All of it, with this transaction (the flush timer, shutdown, a replay).
    Everything,
    /// The interval has passed: a chunk of it goes with this batch.
    Due,
    /// Only what cannot wait (new devices, announced gateways, new topics).
    NotDue,
}

/// What one transaction writes of the latest state, and what is left pending after its commit.
#[derive(Debug)]
pub(super) struct FlushPlan {
    /// Whether pending latest state goes out with this transaction.
    pub(super) flushing: bool,
    pub(super) to_write: DeviceState,
    /// Replaces the pending state once the transaction commits (when `flushing`).
    pub(super) remaining: DeviceState,
    /// The batch's topic counters when they are not written now: they join the pending ones
    /// only after the commit, so a retried batch is not counted twice.
    pub(super) batch_topics: Option<HashMap<(i32, Name), TopicTally>>,
}

/// Decides what the batch's transaction writes besides its readings and parsing-log rows.
/// Pure: reads the cache, changes nothing.
pub(super) fn plan(
    topics: HashMap<(i32, Name), TopicTally>,
    urgent: DeviceState,
    cache: &WriteCache,
    flush: Flush,
) -> FlushPlan {
    let has_new_topic = topics.keys().any(|key| !cache.known_topics.contains(key));
    let flushing = flush != Flush::NotDue || has_new_topic;
    if !flushing {
        let mut to_write = urgent;
        add_missing_parents(&mut to_write, &[&cache.pending], cache);
        return FlushPlan {
            flushing,
            to_write,
            remaining: DeviceState::default(),
            batch_topics: Some(topics),
        };
    }
    let mut everything = cache.pending.clone();
    everything.add_topics(topics);
    if flush == Flush::Everything {
        everything.merge(urgent);
        // Everything goes out: a parent not in it has nowhere else to be found.
        add_missing_parents(&mut everything, &[], cache);
        return FlushPlan {
            flushing,
            to_write: everything,
            remaining: DeviceState::default(),
            batch_topics: None,
        };
    }
    let mut chunk = everything.take(FLUSH_ROWS_PER_BATCH);
    chunk.merge(urgent);
    // New topics go out at once, so browsers hear of them at once.
    let new_topics: Vec<(i32, Name)> = everything
        .topics
        .keys()
        .filter(|key| !cache.known_topics.contains(*key))
        .cloned()
        .collect();
    for key in new_topics {
        if let Some(tally) = everything.topics.remove(&key) {
            chunk.topics.insert(key, tally);
        }
    }
    add_missing_parents(&mut chunk, &[&everything], cache);
    FlushPlan {
        flushing,
        to_write: chunk,
        remaining: everything,
        batch_topics: None,
    }
}

/// Latest-state rows of each kind one batch writes along with its readings when a flush is due.
const FLUSH_ROWS_PER_BATCH: usize = 250;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::{DataloggerRecord, GatewayRecord, ParseOutput, SensorValue};
    use crate::pipeline::Outcome;
    use chrono::Duration;

    fn reading(site_id: i32, datalogger: &str, value: f64, at: DateTime<Utc>) -> Prepared {
        Prepared {
            site_id,
            topic: format!("t/{datalogger}"),
            received_at: at,
            retained: false,
            payload: bytes::Bytes::from_static(b"{}"),
            route: Some((1, "datalogger_readings_v1".into())),
            outcome: Outcome::Parsed(ParseOutput {
                gateways: Vec::new(),
                dataloggers: vec![DataloggerRecord {
                    gateway: "gw".into(),
                    identifier: datalogger.into(),
                    ts: at,
                    sensors: vec![SensorValue {
                        name: "temperature".into(),
                        value,
                        unit: Some("°C".into()),
                    }],
                }],
            }),
            ack: None,
        }
    }

    fn cache() -> WriteCache {
        WriteCache::new(std::time::Duration::from_secs(1))
    }

    /// A cache that knows the rows of gateway "gw", datalogger "dl" and its "temperature" sensor
    /// on `sites`.
    fn cache_knowing(sites: &[i32]) -> WriteCache {
        let mut cache = cache();
        for (index, site_id) in sites.iter().copied().enumerate() {
            let id = i32::try_from(index).expect("few sites");
            cache.gateway_ids.insert((site_id, "gw".into()), id);
            cache
                .datalogger_ids
                .insert((site_id, "gw".into(), "dl".into()), id);
            cache.sensor_ids.insert(
                (site_id, "gw".into(), "dl".into(), "temperature".into()),
                id,
            );
        }
        cache
    }

    #[test]
    fn folding_keeps_the_latest_value_and_every_reading() {
        let start = Utc::now();
        let batch = vec![
            reading(1, "dl", 2.0, start + Duration::seconds(1)),
            reading(1, "dl", 1.0, start),
        ];
        let mut cache = cache_knowing(&[1]);
        let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache);
        assert_eq!(folded.readings.len(), 2);
        let key: SensorKey = (1, "gw".into(), "dl".into(), "temperature".into());
        assert_eq!(
            cache.pending.sensors[&key].value, 2.0,
            "the later timestamp wins, not the later message"
        );
        assert_eq!(folded.topics[&(1, Name::from("t/dl"))].count, 2);
        assert!(
            cache.pending.topics.is_empty(),
            "topic counts join the pending ones after the commit"
        );
    }

    #[test]
    fn folding_a_batch_again_leaves_the_latest_state_as_it_was() {
        let start = Utc::now();
        let batch = vec![
            reading(1, "dl", 2.0, start + Duration::seconds(1)),
            reading(1, "dl", 1.0, start),
        ];
        let mut cache = cache_knowing(&[1]);
        fold(&batch, 64, BatchKind::Arrived, &mut cache);
        assert!(!cache.pending.sensors.is_empty());
        let once = format!("{:?}", cache.pending);
        let again = fold(&batch, 64, BatchKind::Arrived, &mut cache);
        assert_eq!(format!("{:?}", cache.pending), once);
        assert_eq!(again.topics[&(1, Name::from("t/dl"))].count, 2);
    }

    #[test]
    fn a_repeated_reading_in_one_batch_is_one_row_and_the_later_message_wins() {
        let start = Utc::now();
        let key = |name: &str| -> SensorKey { (1, "gw".into(), "dl".into(), name.into()) };
        let readings: ReadingRows = vec![
            (key("b"), start, 1.0),
            (key("a"), start + Duration::seconds(1), 2.0),
            (key("a"), start, 3.0),
            (key("b"), start, 4.0),
            (key("unstored"), start, 5.0),
        ];
        let sensor_ids: HashMap<SensorKey, i32> =
            [(key("a"), 7), (key("b"), 3)].into_iter().collect();
        let sensor_id = |key: &SensorKey| sensor_ids.get(key).copied();
        assert!(
            reading_rows(&readings, sensor_id).is_err(),
            "a reading of a sensor without a row is an error, not lost in silence"
        );
        assert_eq!(
            reading_rows(&readings[..4], sensor_id).expect("every sensor has a row"),
            vec![
                (3, start, 4.0),
                (7, start, 3.0),
                (7, start + Duration::seconds(1), 2.0)
            ]
        );
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_newest_state() {
        let start = Utc::now();
        let mut earlier = cache_knowing(&[1]);
        let earlier_topics = fold(
            &[reading(1, "dl", 1.0, start)],
            64,
            BatchKind::Arrived,
            &mut earlier,
        )
        .topics;
        earlier.pending.add_topics(earlier_topics);
        let mut later = cache_knowing(&[1]);
        let later_topics = fold(
            &[reading(1, "dl", 5.0, start + Duration::seconds(2))],
            64,
            BatchKind::Arrived,
            &mut later,
        )
        .topics;
        later.pending.add_topics(later_topics);
        let mut earlier = earlier.pending;
        earlier.merge(later.pending);
        let key: SensorKey = (1, "gw".into(), "dl".into(), "temperature".into());
        assert_eq!(earlier.sensors[&key].value, 5.0);
        assert_eq!(earlier.topics[&(1, Name::from("t/dl"))].count, 2);
        assert_eq!(
            earlier.dataloggers[&(1, Name::from("gw"), Name::from("dl"))],
            Some(start + Duration::seconds(2))
        );
    }

    #[test]
    fn a_large_flush_is_taken_in_chunks_and_nothing_is_lost() {
        let start = Utc::now();
        let batch: Vec<Prepared> = (0..600)
            .map(|index| reading(1, &format!("dl-{index:03}"), index as f64, start))
            .collect();
        let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache());
        let mut state = folded.urgent;
        state.add_topics(folded.topics);
        let first = state.take(250);
        assert_eq!(first.sensors.len(), 250);
        assert_eq!(first.topics.len(), 250);
        let second = state.take(250);
        let third = state.take(250);
        assert_eq!(third.sensors.len(), 100);
        assert!(state.is_empty());
        let mut all = first;
        all.merge(second);
        all.merge(third);
        assert_eq!(all.sensors.len(), 600);
        assert_eq!(all.dataloggers.len(), 600);
    }

    #[test]
    fn only_new_devices_and_announced_gateways_are_urgent() {
        let start = Utc::now();
        let mut cache = cache();
        let everything_new = fold(
            &[reading(1, "dl", 1.0, start)],
            64,
            BatchKind::Arrived,
            &mut cache,
        )
        .urgent;
        assert!(
            cache.pending.is_empty(),
            "rows written with the batch are not pending: if the database refuses them, they \
             must not fail every later flush"
        );
        assert_eq!(everything_new.sensors.len(), 1);
        assert_eq!(everything_new.dataloggers.len(), 1);
        assert_eq!(everything_new.gateways.len(), 1);
        assert!(
            everything_new.topics.is_empty(),
            "topic counters are never urgent"
        );

        cache.gateway_ids.insert((1, "gw".into()), 10);
        cache
            .datalogger_ids
            .insert((1, "gw".into(), "dl".into()), 20);
        cache
            .sensor_ids
            .insert((1, "gw".into(), "dl".into(), "temperature".into()), 30);
        let known = fold(
            &[reading(1, "dl", 2.0, start)],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        assert!(known.urgent.is_empty());
        assert_eq!(known.readings.len(), 1);

        let mut status = reading(1, "dl", 1.0, start);
        if let Outcome::Parsed(output) = &mut status.outcome {
            output.gateways.push(GatewayRecord {
                identifier: "gw".into(),
                online: Some(false),
                metadata: Default::default(),
                ts: start,
            });
        }
        let announced = fold(&[status], 64, BatchKind::Arrived, &mut cache).urgent;
        assert_eq!(
            announced.gateways.len(),
            1,
            "a status change is written at once"
        );
        assert_eq!(
            announced.gateways[&(1, Name::from("gw"))]
                .seen
                .map(|seen| seen.is_online),
            Some(false)
        );
        assert!(announced.sensors.is_empty() && announced.dataloggers.is_empty());
    }

    #[test]
    fn a_deleted_site_leaves_nothing_pending() {
        let start = Utc::now();
        let mut cache = cache_knowing(&[1, 2]);
        fold(
            &[reading(1, "dl", 1.0, start)],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        fold(
            &[reading(2, "dl", 1.0, start)],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        assert_eq!(cache.pending.sensors.len(), 2);
        cache.forget_sites(&[1].into_iter().collect());
        assert_eq!(cache.pending.sensors.len(), 1);
        assert_eq!(cache.pending.dataloggers.len(), 1);
        assert_eq!(cache.pending.gateways.len(), 1);
        assert!(cache.pending.sensors.keys().all(|key| key.0 == 2));
    }

    #[test]
    fn a_steady_batch_writes_only_what_cannot_wait() {
        let start = Utc::now();
        let mut cache = cache_knowing(&[1]);
        let batch = [reading(1, "dl", 1.0, start)];
        let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache);
        cache.known_topics.insert((1, Name::from("t/dl")));
        let plan = plan(folded.topics, folded.urgent, &cache, Flush::NotDue);
        assert!(!plan.flushing);
        assert!(plan.to_write.is_empty(), "known devices wait for the flush");
        assert_eq!(
            plan.batch_topics.map(|topics| topics.len()),
            Some(1),
            "the batch's counters join the pending ones after the commit"
        );
    }

    #[test]
    fn a_new_topic_makes_the_batch_flush_and_goes_out_at_once() {
        let start = Utc::now();
        let mut cache = cache_knowing(&[1]);
        let batch = [reading(1, "dl", 1.0, start)];
        let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache);
        let plan = plan(folded.topics, folded.urgent, &cache, Flush::NotDue);
        assert!(plan.flushing);
        assert!(plan.batch_topics.is_none());
        assert!(plan.to_write.topics.contains_key(&(1, Name::from("t/dl"))));
        assert!(plan.remaining.topics.is_empty());
    }

    #[test]
    fn a_due_flush_takes_a_chunk_and_leaves_the_rest_pending() {
        let start = Utc::now();
        let mut cache = cache();
        let batch: Vec<Prepared> = (0..300)
            .map(|index| reading(1, &format!("dl-{index:03}"), 1.0, start))
            .collect();
        let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache);
        // Stored earlier: their state is pending, their topics known.
        cache.pending = folded.urgent;
        cache.known_topics.extend(folded.topics.keys().cloned());
        let due = plan(
            folded.topics.clone(),
            DeviceState::default(),
            &cache,
            Flush::Due,
        );
        assert_eq!(due.to_write.sensors.len(), 250);
        assert_eq!(due.remaining.sensors.len(), 50);
        assert!(
            due.to_write
                .sensors
                .keys()
                .all(
                    |(site_id, gateway, datalogger, _)| due.to_write.dataloggers.contains_key(&(
                        *site_id,
                        gateway.clone(),
                        datalogger.clone()
                    ))
                ),
            "no sensor goes out without its datalogger"
        );
        let everything = plan(
            folded.topics,
            DeviceState::default(),
            &cache,
            Flush::Everything,
        );
        assert_eq!(everything.to_write.sensors.len(), 300);
        assert!(everything.remaining.is_empty());
    }

    /// `message` as the broker replays it on subscribe: from its retained store.
    fn retained(mut message: Prepared) -> Prepared {
        message.retained = true;
        message
    }

    /// A status message of gateway "gw" (no datalogger), with `metadata`.
    fn status(online: bool, metadata: &[(&str, &str)], at: DateTime<Utc>) -> Prepared {
        let mut message = reading(1, "dl", 0.0, at);
        message.outcome = Outcome::Parsed(ParseOutput {
            gateways: vec![GatewayRecord {
                identifier: "gw".into(),
                online: Some(online),
                metadata: metadata
                    .iter()
                    .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
                    .collect(),
                ts: at,
            }],
            dataloggers: Vec::new(),
        });
        message
    }

    fn gateway_key() -> GatewayKey {
        (1, "gw".into())
    }

    fn datalogger_key() -> DataloggerKey {
        (1, "gw".into(), "dl".into())
    }

    #[test]
    fn a_retained_message_creates_unknown_devices_as_not_seen_live() {
        let old = Utc::now() - Duration::hours(5);
        let mut cache = cache();
        let folded = fold(
            &[retained(reading(1, "dl", 1.5, old))],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        let gateway = &folded.urgent.gateways[&gateway_key()];
        assert_eq!(gateway.seen, None, "no last_seen, not online");
        assert_eq!(folded.urgent.dataloggers[&datalogger_key()], None);
        assert_eq!(
            folded.urgent.sensors.len(),
            1,
            "its readings need a sensor row"
        );
        assert_eq!(folded.readings.len(), 1, "its reading is stored");
        assert!(cache.pending.is_empty());
    }

    #[test]
    fn a_retained_message_moves_nothing_of_known_devices_but_its_values_follow_their_ts() {
        let now = Utc::now();
        let mut cache = cache_knowing(&[1]);
        fold(
            &[reading(1, "dl", 2.0, now)],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        let before = format!(
            "{:?}",
            (&cache.pending.gateways, &cache.pending.dataloggers)
        );
        let sensor: SensorKey = (1, "gw".into(), "dl".into(), "temperature".into());

        let folded = fold(
            &[retained(reading(1, "dl", 1.0, now - Duration::hours(3)))],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        assert!(folded.urgent.is_empty(), "nothing to write at once");
        assert_eq!(folded.readings.len(), 1, "the old reading is stored");
        assert_eq!(
            format!(
                "{:?}",
                (&cache.pending.gateways, &cache.pending.dataloggers)
            ),
            before,
            "last seen and online stay as live messages left them"
        );
        assert_eq!(
            cache.pending.sensors[&sensor].value, 2.0,
            "an older retained reading is no latest value"
        );

        let mut fresh = cache_knowing(&[1]);
        fold(
            &[retained(reading(1, "dl", 3.0, now))],
            64,
            BatchKind::Arrived,
            &mut fresh,
        );
        assert!(fresh.pending.gateways.is_empty() && fresh.pending.dataloggers.is_empty());
        assert_eq!(
            fresh.pending.sensors[&sensor].value, 3.0,
            "a retained reading newer than any stored one is the latest value"
        );
    }

    #[test]
    fn a_retained_status_keeps_its_metadata_but_not_its_flag() {
        let now = Utc::now();
        let mut cache = cache_knowing(&[1]);
        let folded = fold(
            &[retained(status(false, &[("firmware", "2.1")], now))],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        let gateway = &folded.urgent.gateways[&gateway_key()];
        assert_eq!(gateway.seen, None, "its offline flag is old news");
        assert_eq!(
            gateway
                .metadata
                .as_ref()
                .map(|metadata| metadata["firmware"].clone()),
            Some(serde_json::json!("2.1"))
        );
        assert!(cache.pending.gateways.is_empty());

        let bare = fold(
            &[retained(status(false, &[], now))],
            64,
            BatchKind::Arrived,
            &mut cache,
        );
        assert!(
            bare.urgent.is_empty() && cache.pending.is_empty(),
            "a retained status of a stored gateway without metadata writes nothing"
        );
    }

    #[test]
    fn old_news_never_hides_live_news_whatever_the_order() {
        let now = Utc::now();
        let live = || {
            [
                reading(1, "dl", 1.0, now),
                status(true, &[("firmware", "3")], now),
            ]
        };
        let old = || {
            [
                retained(reading(1, "dl", 0.5, now - Duration::hours(1))),
                retained(status(false, &[], now - Duration::hours(1))),
            ]
        };
        for batch in [
            live().into_iter().chain(old()).collect::<Vec<_>>(),
            old().into_iter().chain(live()).collect(),
        ] {
            let folded = fold(&batch, 64, BatchKind::Arrived, &mut cache());
            let gateway = &folded.urgent.gateways[&gateway_key()];
            assert_eq!(
                gateway.seen.map(|seen| (seen.at, seen.is_online)),
                Some((now, true))
            );
            assert_eq!(folded.urgent.dataloggers[&datalogger_key()], Some(now));
        }

        // The same between batches: a pending live row is not undone by a later retained one.
        let mut state = DeviceState::default();
        state.add_gateway(
            gateway_key(),
            GatewayRow {
                seen: Some(Sighting {
                    at: now,
                    is_online: true,
                    announced: false,
                }),
                metadata: None,
            },
        );
        state.add_datalogger(datalogger_key(), Some(now));
        let mut older = DeviceState::default();
        older.add_gateway(
            gateway_key(),
            GatewayRow {
                seen: None,
                metadata: None,
            },
        );
        older.add_datalogger(datalogger_key(), None);
        state.merge(older);
        assert_eq!(
            state.gateways[&gateway_key()]
                .seen
                .map(|seen| seen.is_online),
            Some(true)
        );
        assert_eq!(state.dataloggers[&datalogger_key()], Some(now));
    }

    #[test]
    fn a_parent_found_nowhere_is_written_as_not_seen_live() {
        // A sensor whose datalogger's and gateway's ids were forgotten (a failed write) and
        // that nothing pending names: the parents go out with the sensor, changing nothing.
        let sensor: SensorKey = (1, "gw".into(), "dl".into(), "temperature".into());
        let mut cache = cache();
        cache.sensor_ids.insert(sensor.clone(), 30);
        cache.pending.sensors.insert(
            sensor,
            SensorRow {
                unit: None,
                value: 1.0,
                ts: Utc::now(),
            },
        );
        let plan = plan(
            HashMap::default(),
            DeviceState::default(),
            &cache,
            Flush::Everything,
        );
        assert_eq!(plan.to_write.dataloggers[&datalogger_key()], None);
        assert_eq!(plan.to_write.gateways[&gateway_key()].seen, None);
    }
}
