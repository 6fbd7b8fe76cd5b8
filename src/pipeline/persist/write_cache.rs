//! What a writer remembers between batches: row ids of stored devices and the latest state not
//! yet written.

use std::collections::HashSet;

use foldhash::HashMap;

use super::device_state::DeviceState;
use crate::pipeline::discover::TopicTally;
use crate::pipeline::names::{DataloggerKey, GatewayKey, Name, Names, SensorKey};

/// Row ids a transaction found for devices the cache did not know.
pub(super) struct NewRowIds {
    pub(super) gateways: HashMap<GatewayKey, i32>,
    pub(super) dataloggers: HashMap<DataloggerKey, i32>,
    pub(super) sensors: HashMap<SensorKey, i32>,
}

/// What the writer remembers between batches: row ids of known devices (so a batch needs no
/// lookups) and the latest state not yet written. Latest state is written at most every
/// `flush_interval`, and at once for anything new, so steady traffic costs one insert of
/// readings per batch. Readings and parsing-log rows are never deferred: they are what an
/// acknowledgement promises.
#[derive(Debug)]
pub struct WriteCache {
    pub(super) names: Names,
    pub(super) gateway_ids: HashMap<GatewayKey, i32>,
    pub(super) datalogger_ids: HashMap<DataloggerKey, i32>,
    pub(super) sensor_ids: HashMap<SensorKey, i32>,
    pub(super) known_topics: foldhash::HashSet<(i32, Name)>,
    pub(super) pending: DeviceState,
    pub(super) last_flush: std::time::Instant,
    pub(super) flush_interval: std::time::Duration,
    /// Until when readings are written so that ones already stored are skipped (see
    /// `is_duplicate_reading`).
    pub(super) duplicates_until: Option<std::time::Instant>,
}

/// Bound on remembered keys, so a flood of unique topics or devices cannot grow memory forever.
const CACHE_LIMIT: usize = 200_000;

impl WriteCache {
    pub fn new(flush_interval: std::time::Duration) -> WriteCache {
        WriteCache {
            names: Names::default(),
            gateway_ids: HashMap::default(),
            datalogger_ids: HashMap::default(),
            sensor_ids: HashMap::default(),
            known_topics: HashSet::default(),
            pending: DeviceState::default(),
            last_flush: std::time::Instant::now(),
            flush_interval,
            duplicates_until: None,
        }
    }

    /// Writes readings so that ones already stored are skipped, for the next `period`: a batch
    /// has just been refused for holding one (a redelivery comes with others).
    pub fn expect_duplicates(&mut self, period: std::time::Duration) {
        self.duplicates_until = Some(std::time::Instant::now() + period);
    }

    pub fn expecting_duplicates(&self) -> bool {
        self.duplicates_until
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// The names the batches so far have used; finds a device's key without allocating.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Row ids of the sensors stored so far, those of the last committed batch included.
    pub fn sensor_ids(&self) -> &HashMap<SensorKey, i32> {
        &self.sensor_ids
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn flush_due(&self) -> bool {
        self.last_flush.elapsed() >= self.flush_interval
    }

    /// When the next flush is due.
    pub fn next_flush(&self) -> std::time::Instant {
        self.last_flush + self.flush_interval
    }

    /// Drops latest state the database keeps refusing, so it cannot block every later batch.
    pub fn discard_pending(&mut self) {
        self.pending = DeviceState::default();
        self.last_flush = std::time::Instant::now();
    }

    /// After a failed write: ids may name rows that are gone (a site was deleted).
    pub fn forget_ids(&mut self) {
        self.gateway_ids.clear();
        self.datalogger_ids.clear();
        self.sensor_ids.clear();
        self.known_topics.clear();
    }

    /// Ids of deleted sites' devices name rows that are gone.
    pub(super) fn forget_sites(&mut self, sites: &HashSet<i32>) {
        self.gateway_ids
            .retain(|(site_id, _), _| !sites.contains(site_id));
        self.datalogger_ids
            .retain(|(site_id, _, _), _| !sites.contains(site_id));
        self.sensor_ids
            .retain(|(site_id, _, _, _), _| !sites.contains(site_id));
        self.known_topics
            .retain(|(site_id, _)| !sites.contains(site_id));
        self.pending.forget_sites(sites);
    }

    /// Whether the remembered ids have grown past their bound.
    pub(super) fn remembers_too_much(&self) -> bool {
        self.gateway_ids.len() + self.datalogger_ids.len() + self.sensor_ids.len() > CACHE_LIMIT
            || self.known_topics.len() > CACHE_LIMIT
    }

    /// After a commit, when the rows are durable and the cache may believe in them: forgets
    /// deleted sites, remembers new ids, and (after a flush) the topics written and the state
    /// left pending; the batch's own topic counters join the pending ones.
    pub(super) fn committed(
        &mut self,
        deleted_sites: &HashSet<i32>,
        ids: NewRowIds,
        flushed: Option<(Vec<(i32, Name)>, DeviceState)>,
        batch_topics: Option<HashMap<(i32, Name), TopicTally>>,
    ) {
        if !deleted_sites.is_empty() {
            self.forget_sites(deleted_sites);
        }
        self.gateway_ids.extend(ids.gateways);
        self.datalogger_ids.extend(ids.dataloggers);
        self.sensor_ids.extend(ids.sensors);
        if let Some((written_topics, remaining)) = flushed {
            self.known_topics.extend(written_topics);
            // While rows remain, the flush stays due and the next batch carries on.
            if remaining.is_empty() {
                self.last_flush = std::time::Instant::now();
            }
            self.pending = remaining;
        }
        if let Some(topics) = batch_topics {
            self.pending.add_topics(topics);
        }
    }
}
