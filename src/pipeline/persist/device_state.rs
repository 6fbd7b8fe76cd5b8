//! Latest device state waiting to be written: topic counters, gateways, dataloggers and sensors'
//! latest values, one row per key, merged so the newest news wins whatever order it came in.

use std::collections::HashSet;
use std::hash::Hash;

use chrono::{DateTime, Utc};
use foldhash::HashMap;

use crate::pipeline::discover::TopicTally;
use crate::pipeline::names::{DataloggerKey, GatewayKey, Name, SensorKey};

/// What live messages showed of a gateway. Retained messages show nothing of it: the broker
/// replays them on subscribe, perhaps hours after they were published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sighting {
    pub(super) at: DateTime<Utc>,
    pub(super) is_online: bool,
    /// A status or metadata change: written at once, not with the next flush, and `is_online`
    /// is what the gateway said, not inferred from a message arriving.
    pub(super) announced: bool,
}

#[derive(Debug, Clone)]
pub(super) struct GatewayRow {
    /// `None` when only retained messages spoke of it: the row then changes no `last_seen` or
    /// `is_online`, and a new row is stored as not seen live (no `last_seen`, offline).
    pub(super) seen: Option<Sighting>,
    pub(super) metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl GatewayRow {
    pub(super) fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.seen.map(|seen| seen.at)
    }
}

#[derive(Debug, Clone)]
pub(super) struct SensorRow {
    pub(super) unit: Option<String>,
    pub(super) value: f64,
    pub(super) ts: DateTime<Utc>,
}

/// Latest-state rows (topic counters, last seen, latest values) folded one row per key: a
/// multi-row upsert may not touch a key twice. Readings are not here: they are written at once.
#[derive(Debug, Default, Clone)]
pub struct DeviceState {
    pub(super) topics: HashMap<(i32, Name), TopicTally>,
    pub(super) gateways: HashMap<GatewayKey, GatewayRow>,
    /// When each datalogger was last seen live; `None` when only retained messages spoke of it.
    pub(super) dataloggers: HashMap<DataloggerKey, Option<DateTime<Utc>>>,
    pub(super) sensors: HashMap<SensorKey, SensorRow>,
}

impl DeviceState {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
            && self.gateways.is_empty()
            && self.dataloggers.is_empty()
            && self.sensors.is_empty()
    }

    /// Moves at most `rows` entries of each kind out of `self`, so a large flush is spread over
    /// several batches instead of stalling one.
    pub(super) fn take(&mut self, rows: usize) -> DeviceState {
        fn take_from<K: Hash + Eq + Clone, V>(
            map: &mut HashMap<K, V>,
            rows: usize,
        ) -> HashMap<K, V> {
            let keys: Vec<K> = map.keys().take(rows).cloned().collect();
            keys.into_iter()
                .filter_map(|key| map.remove(&key).map(|value| (key, value)))
                .collect()
        }
        DeviceState {
            topics: take_from(&mut self.topics, rows),
            gateways: take_from(&mut self.gateways, rows),
            dataloggers: take_from(&mut self.dataloggers, rows),
            sensors: take_from(&mut self.sensors, rows),
        }
    }

    /// Folds `newer` in: counts add up, the latest sample, time and value win.
    pub(super) fn merge(&mut self, newer: DeviceState) {
        self.add_topics(newer.topics);
        for (key, row) in newer.gateways {
            self.add_gateway(key, row);
        }
        for (key, last_seen) in newer.dataloggers {
            self.add_datalogger(key, last_seen);
        }
        for (key, row) in newer.sensors {
            self.add_sensor(key, row);
        }
    }

    /// Counts add up; the latest sample and time win.
    pub(super) fn add_topics(&mut self, topics: HashMap<(i32, Name), TopicTally>) {
        for (key, tally) in topics {
            match self.topics.get_mut(&key) {
                Some(existing) => existing.absorb(tally),
                None => {
                    self.topics.insert(key, tally);
                }
            }
        }
    }

    /// Drops the rows of deleted sites.
    pub(super) fn forget_sites(&mut self, sites: &HashSet<i32>) {
        self.topics
            .retain(|(site_id, _), _| !sites.contains(site_id));
        self.gateways
            .retain(|(site_id, _), _| !sites.contains(site_id));
        self.dataloggers
            .retain(|(site_id, _, _), _| !sites.contains(site_id));
        self.sensors
            .retain(|(site_id, _, _, _), _| !sites.contains(site_id));
    }

    /// The latest time wins; a status or metadata announcement overrides what was known. A row
    /// of retained messages only adds metadata: it never changes what live ones showed.
    pub(super) fn add_gateway(&mut self, key: GatewayKey, row: GatewayRow) {
        match self.gateways.get_mut(&key) {
            Some(existing) => {
                existing.seen = match (existing.seen, row.seen) {
                    (Some(mut kept), Some(newer)) => {
                        kept.at = kept.at.max(newer.at);
                        if newer.announced {
                            kept.is_online = newer.is_online;
                            kept.announced = true;
                        }
                        Some(kept)
                    }
                    (kept, newer) => kept.or(newer),
                };
                if let Some(metadata) = row.metadata {
                    existing
                        .metadata
                        .get_or_insert_with(Default::default)
                        .extend(metadata);
                }
            }
            None => {
                self.gateways.insert(key, row);
            }
        }
    }

    /// The latest live sighting wins; `None` (retained messages only) never replaces one.
    pub(super) fn add_datalogger(&mut self, key: DataloggerKey, last_seen: Option<DateTime<Utc>>) {
        let existing = self.dataloggers.entry(key).or_insert(last_seen);
        *existing = (*existing).max(last_seen);
    }

    /// The reading with the later timestamp wins, whatever the order it arrived in.
    pub(super) fn add_sensor(&mut self, key: SensorKey, row: SensorRow) {
        match self.sensors.get_mut(&key) {
            Some(existing) if existing.ts > row.ts => {}
            Some(existing) => {
                let unit = row.unit.or_else(|| existing.unit.take());
                *existing = SensorRow { unit, ..row };
            }
            None => {
                self.sensors.insert(key, row);
            }
        }
    }
}
