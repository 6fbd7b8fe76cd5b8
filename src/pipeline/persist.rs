//! Storing one batch in one transaction: discovered topics, gateways, dataloggers, sensors,
//! readings and parsing-log rows, each as a few multi-row upserts.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use foldhash::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockType, OnConflict};
use sea_orm::sqlx;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set,
};

use super::discover::{tally, TopicTally};
use super::postgres_arrays::PostgresArray;
use super::transaction::{execution_error, BatchTransaction, PostgresTransaction};
use super::{Outcome, Prepared};
use crate::entity::{
    datalogger, discovered_topic, gateway, mqtt_parsing_log, mqtt_topic, sensor, sensor_reading,
    site,
};
use crate::telemetry::PARSING_TARGET;

/// A device identifier or sensor name, shared rather than copied, with its hash worked out once:
/// the same few names recur in every batch, and keys built from them are hashed, cloned and
/// compared many times per message. Equal text means equal names, whichever copy holds it.
#[derive(Clone)]
pub struct Name {
    hash: u64,
    text: Arc<str>,
}

/// One seed per process: equal text must give equal hashes in every map, and names come from
/// devices, so the seed must not be one an attacker could know in advance.
static NAME_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

impl Name {
    fn with_text(text: Arc<str>) -> Name {
        use std::hash::BuildHasher;
        Name {
            hash: NAME_HASHER.hash_one(&*text),
            text,
        }
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::with_text(Arc::from(text))
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// By text, so rows sorted by key come out in the same order in every writer.
impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.text, f)
    }
}

/// (site, gateway identifier).
pub type GatewayKey = (i32, Name);
/// (site, gateway identifier, datalogger identifier).
pub type DataloggerKey = (i32, Name, Name);
/// (site, gateway identifier, datalogger identifier, sensor name).
pub type SensorKey = (i32, Name, Name, Name);

/// One shared copy of each name seen recently, so folding a message allocates no strings for
/// names it has seen before.
#[derive(Debug, Default)]
pub struct Names {
    known: HashMap<Arc<str>, Name>,
}

impl Names {
    /// The shared copy of `name`, made on first sight.
    pub fn intern(&mut self, name: &str) -> Name {
        if let Some(known) = self.known.get(name) {
            return known.clone();
        }
        if self.known.len() >= CACHE_LIMIT {
            self.known.clear();
        }
        let shared = Name::from(name);
        self.known.insert(shared.text.clone(), shared.clone());
        shared
    }

    /// The shared copy of `name` if there is one; never allocates.
    pub fn get(&self, name: &str) -> Option<Name> {
        self.known.get(name).cloned()
    }
}

/// Rows per statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK_ROWS: usize = 500;

/// What the writer needs after the commit.
#[derive(Debug, Default)]
pub struct Committed {
    pub new_topics: Vec<(i32, String)>,
}

#[derive(Debug, Clone)]
struct GatewayRow {
    last_seen: DateTime<Utc>,
    is_online: bool,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// A status or metadata change: written at once, not with the next flush.
    announced: bool,
}

#[derive(Debug, Clone)]
struct SensorRow {
    unit: Option<String>,
    value: f64,
    ts: DateTime<Utc>,
}

/// Latest-state rows (topic counters, last seen, latest values) folded one row per key: a
/// multi-row upsert may not touch a key twice. Readings are not here: they are written at once.
#[derive(Debug, Default, Clone)]
pub struct DeviceState {
    topics: HashMap<(i32, Name), TopicTally>,
    gateways: HashMap<GatewayKey, GatewayRow>,
    dataloggers: HashMap<DataloggerKey, DateTime<Utc>>,
    sensors: HashMap<SensorKey, SensorRow>,
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
    fn take(&mut self, rows: usize) -> DeviceState {
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
    fn merge(&mut self, newer: DeviceState) {
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
    fn add_topics(&mut self, topics: HashMap<(i32, Name), TopicTally>) {
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
    fn forget_sites(&mut self, sites: &HashSet<i32>) {
        self.topics
            .retain(|(site_id, _), _| !sites.contains(site_id));
        self.gateways
            .retain(|(site_id, _), _| !sites.contains(site_id));
        self.dataloggers
            .retain(|(site_id, _, _), _| !sites.contains(site_id));
        self.sensors
            .retain(|(site_id, _, _, _), _| !sites.contains(site_id));
    }

    /// The latest time wins; a status or metadata announcement overrides what was known.
    fn add_gateway(&mut self, key: GatewayKey, row: GatewayRow) {
        match self.gateways.get_mut(&key) {
            Some(existing) => {
                existing.last_seen = existing.last_seen.max(row.last_seen);
                if row.announced {
                    existing.is_online = row.is_online;
                    existing.announced = true;
                }
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

    fn add_datalogger(&mut self, key: DataloggerKey, last_seen: DateTime<Utc>) {
        let existing = self.dataloggers.entry(key).or_insert(last_seen);
        *existing = (*existing).max(last_seen);
    }

    /// The reading with the later timestamp wins, whatever the order it arrived in.
    fn add_sensor(&mut self, key: SensorKey, row: SensorRow) {
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

/// What the writer remembers between batches: row ids of known devices (so a batch needs no
/// lookups) and the latest state not yet written. Latest state is written at most every
/// `flush_interval`, and at once for anything new, so steady traffic costs one insert of
/// readings per batch. Readings and parsing-log rows are never deferred: they are what an
/// acknowledgement promises.
#[derive(Debug)]
pub struct WriteCache {
    names: Names,
    gateway_ids: HashMap<GatewayKey, i32>,
    datalogger_ids: HashMap<DataloggerKey, i32>,
    sensor_ids: HashMap<SensorKey, i32>,
    known_topics: foldhash::HashSet<(i32, Name)>,
    pending: DeviceState,
    last_flush: std::time::Instant,
    flush_interval: std::time::Duration,
    /// Until when readings are written so that ones already stored are skipped (see
    /// `is_duplicate_reading`).
    duplicates_until: Option<std::time::Instant>,
}

const GATEWAY_NEWER: &str =
    "(gateway.last_seen IS NULL OR excluded.last_seen >= gateway.last_seen)";
const DATALOGGER_NEWER: &str =
    "(datalogger.last_seen IS NULL OR excluded.last_seen >= datalogger.last_seen)";

/// Latest-state rows of each kind one batch writes along with its readings when a flush is due.
const FLUSH_ROWS_PER_BATCH: usize = 250;

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
    fn forget_sites(&mut self, sites: &HashSet<i32>) {
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
}

/// What folding a batch leaves for its transaction.
#[derive(Debug)]
struct Folded {
    /// The batch's topic counters. They join the pending ones only after the commit: a batch
    /// whose transaction fails is folded again, and its counts must not add up twice.
    topics: HashMap<(i32, Name), TopicTally>,
    /// Latest-state rows that cannot wait for a flush: devices without a stored row (their
    /// readings need its id) and gateways whose status or metadata this batch announces. They
    /// are written with the batch and are not pending.
    urgent: DeviceState,
    readings: ReadingRows,
}

/// Folds a batch's latest state (last seen, latest values) of stored devices straight into the
/// cache's pending rows, one map update per device and sensor. Folding the same batch again
/// after a failed attempt changes nothing there: the newest time and value win whatever the
/// order. What must be written with the batch (devices without a row, announced gateways) goes
/// to `urgent` only: if the database refuses it, it must not stay pending and fail every flush.
fn fold(batch: &[Prepared], sample_bytes: usize, discover: bool, cache: &mut WriteCache) -> Folded {
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
    if discover {
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
        for record in &output.gateways {
            let key = (site_id, names.intern(&record.identifier));
            let row = GatewayRow {
                last_seen: message.received_at,
                is_online: record.online.unwrap_or(true),
                metadata: (!record.metadata.is_empty()).then(|| record.metadata.clone()),
                announced: record.online.is_some() || !record.metadata.is_empty(),
            };
            if row.announced || !gateway_ids.contains_key(&key) {
                folded.urgent.add_gateway(key, row);
            } else {
                pending.add_gateway(key, row);
            }
        }
        for record in &output.dataloggers {
            let gateway = names.intern(&record.gateway);
            let datalogger = names.intern(&record.identifier);
            // Seen, not announced: changes nothing but the time of an announced row.
            let gateway_key = (site_id, gateway.clone());
            let seen = GatewayRow {
                last_seen: message.received_at,
                is_online: true,
                metadata: None,
                announced: false,
            };
            if gateway_ids.contains_key(&gateway_key) {
                pending.add_gateway(gateway_key, seen);
            } else {
                folded.urgent.add_gateway(gateway_key, seen);
            }
            let datalogger_key = (site_id, gateway.clone(), datalogger.clone());
            if datalogger_ids.contains_key(&datalogger_key) {
                pending.add_datalogger(datalogger_key, message.received_at);
            } else {
                folded
                    .urgent
                    .add_datalogger(datalogger_key, message.received_at);
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
type ReadingRows = Vec<(SensorKey, DateTime<Utc>, f64)>;

/// (sensor row id, time, value) in key order, one row per sensor and time: of two readings with
/// the same key in one batch the later message wins. Key order, like every other multi-row
/// write: concurrent writers never wait on each other in opposite orders.
fn reading_rows(
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
    let fallback = DateTime::<Utc>::UNIX_EPOCH;
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
            .unwrap_or(fallback);
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
                last_seen: fallback,
                is_online: true,
                metadata: None,
                announced: false,
            });
        to_write.gateways.insert(key, row);
    }
}

/// The row id of a device: written by this transaction, or known from earlier ones.
fn row_id<K: Hash + Eq>(
    written: &HashMap<K, i32>,
    cached: &HashMap<K, i32>,
    key: &K,
) -> Option<i32> {
    written.get(key).or_else(|| cached.get(key)).copied()
}

/// Rows in one fixed order: several writers may upsert the same gateway (or device) rows, and
/// transactions that lock rows in different orders can deadlock each other.
fn in_key_order<K: Ord, V>(rows: &HashMap<K, V>) -> Vec<(&K, &V)> {
    let mut ordered: Vec<(&K, &V)> = rows.iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(b.0));
    ordered
}

/// Latest state may outlive its site (deleted meanwhile) or name a pattern that is gone; such
/// rows would make every transaction fail, so they are dropped or detached here.
/// Returns the sites of `batch` and `to_write` that no longer exist.
async fn drop_rows_of_deleted_sites<C: ConnectionTrait>(
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

/// Stores the batch in one transaction; all or nothing. With `discover` false the batch's topics
/// are not counted (a replayed payload was counted when it first arrived). With `force_flush`
/// every pending latest-state row is written too (shutdown, replay, the flush timer).
pub async fn persist(
    db: &DatabaseConnection,
    batch: &[Prepared],
    sample_bytes: usize,
    cache: &mut WriteCache,
    discover: bool,
    force_flush: bool,
) -> Result<Committed, DbErr> {
    let started = std::time::Instant::now();
    // Before folding, so this batch's devices are known again (and written) if ids are dropped.
    if cache.gateway_ids.len() + cache.datalogger_ids.len() + cache.sensor_ids.len() > CACHE_LIMIT
        || cache.known_topics.len() > CACHE_LIMIT
    {
        cache.forget_ids();
    }
    let Folded {
        topics,
        urgent,
        mut readings,
    } = fold(batch, sample_bytes, discover, cache);
    let has_new_topic = topics.keys().any(|key| !cache.known_topics.contains(key));
    let flush = force_flush || has_new_topic || cache.flush_due();
    // The batch's topic counters, until they are part of what is written or pending.
    let mut batch_topics = Some(topics);
    // What stays pending after this transaction if it commits.
    let mut remaining = DeviceState::default();
    let mut to_write = if flush {
        let mut everything = cache.pending.clone();
        everything.add_topics(batch_topics.take().unwrap_or_default());
        if force_flush {
            everything.merge(urgent);
            // Everything goes out: a parent not in it has nowhere else to be found.
            add_missing_parents(&mut everything, &[], cache);
            everything
        } else {
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
            remaining = everything;
            chunk
        }
    } else {
        let mut urgent_rows = urgent;
        add_missing_parents(&mut urgent_rows, &[&cache.pending], cache);
        urgent_rows
    };

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
    let new_sensor_ids = upsert_sensors(
        &transaction,
        &to_write.sensors,
        &datalogger_id,
        &cache.sensor_ids,
    )
    .await?;
    let rows = reading_rows(&readings, |key| {
        row_id(&new_sensor_ids, &cache.sensor_ids, key)
    })?;
    let skip_duplicates = cache.expecting_duplicates();
    insert_readings(&transaction, rows, skip_duplicates).await?;
    insert_parsing_logs(&transaction, batch, &deleted_sites).await?;
    transaction.commit().await?;

    // Only now, with the rows durable, may the cache believe in them.
    if !deleted_sites.is_empty() {
        cache.forget_sites(&deleted_sites);
    }
    cache.gateway_ids.extend(gateway_ids);
    cache.datalogger_ids.extend(datalogger_ids);
    cache.sensor_ids.extend(new_sensor_ids);
    if flush {
        cache.known_topics.extend(to_write.topics.into_keys());
        // While rows remain, the flush stays due and the next batch carries on.
        if remaining.is_empty() {
            cache.last_flush = std::time::Instant::now();
        }
        cache.pending = remaining;
    }
    if let Some(topics) = batch_topics {
        cache.pending.add_topics(topics);
    }
    tracing::debug!(
        messages = batch.len(),
        flushed = flush,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "batch stored"
    );
    Ok(Committed { new_topics })
}

async fn upsert_discovered<C: ConnectionTrait>(
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
async fn upsert_gateways<C: ConnectionTrait>(
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
                last_seen: Set(Some(row.last_seen)),
                is_online: Set(row.is_online),
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
async fn upsert_dataloggers(
    db: &BatchTransaction,
    dataloggers: &HashMap<DataloggerKey, DateTime<Utc>>,
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
        if let (Some(_), Some(&id)) = (postgres, cached.get(key)) {
            known_ids.push(id);
            known_times.push(*last_seen);
            continue;
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
            last_seen: Set(Some(*last_seen)),
            is_online: Set(true),
            metadata: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
    }
    if let Some(postgres) = postgres {
        update_known_dataloggers(postgres, &known_ids, &known_times).await?;
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
async fn upsert_sensors(
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
    let mut known = KnownSensors::default();
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

/// Whether a transaction failed only because a reading it inserted is stored already (a
/// redelivered message). The writer then stores the batch again, skipping such readings.
pub fn is_duplicate_reading(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(message))
            if message.contains("sensor_reading_pkey")
    )
}

// Known rows are updated by id on PostgreSQL, from arrays: the multi-row upsert costs the
// database about ten times as much per row (a statement of thousands of parameters planned
// afresh, and an insert tried before each update), and a row the writer has an id for exists,
// since its site is locked for the transaction. Rows go in key order, like every multi-row
// write; two writers share a datalogger only when its messages come on several topics.

/// The same rules as the upsert: the newest time wins, a reading arriving late changes nothing.
async fn update_known_dataloggers(
    transaction: &PostgresTransaction,
    ids: &[i32],
    last_seen: &[DateTime<Utc>],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let newer = "(datalogger.last_seen IS NULL OR known.last_seen >= datalogger.last_seen)";
    let sql = format!(
        "UPDATE datalogger SET \
           last_seen = CASE WHEN {newer} THEN known.last_seen ELSE datalogger.last_seen END, \
           is_online = CASE WHEN {newer} THEN true ELSE datalogger.is_online END \
         FROM (SELECT unnest($1::int4[]) AS id, unnest($2::timestamptz[]) AS last_seen) AS known \
         WHERE datalogger.id = known.id"
    );
    let mut connection = transaction.lock().await;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(PostgresArray(ids))
        .bind(PostgresArray(last_seen))
        .execute(&mut **connection)
        .await
        .map_err(execution_error)?;
    Ok(())
}

/// Sensors with a row id, as four columns.
#[derive(Default)]
struct KnownSensors<'a> {
    ids: Vec<i32>,
    units: Vec<Option<&'a str>>,
    values: Vec<f64>,
    times: Vec<DateTime<Utc>>,
}

impl<'a> KnownSensors<'a> {
    fn push(&mut self, id: i32, row: &'a SensorRow) {
        self.ids.push(id);
        self.units.push(row.unit.as_deref());
        self.values.push(row.value);
        self.times.push(row.ts);
    }

    /// The same rules as the upsert: a unit is kept when none is sent, and an older reading
    /// arriving late does not overwrite the latest value.
    async fn update(self, transaction: &PostgresTransaction) -> Result<(), DbErr> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let newer = "(sensor.last_reading_at IS NULL OR known.ts >= sensor.last_reading_at)";
        let sql = format!(
            "UPDATE sensor SET \
               unit = COALESCE(known.unit, sensor.unit), \
               last_value = CASE WHEN {newer} THEN known.value ELSE sensor.last_value END, \
               last_reading_at = CASE WHEN {newer} THEN known.ts ELSE sensor.last_reading_at END \
             FROM (SELECT unnest($1::int4[]) AS id, unnest($2::text[]) AS unit, \
                          unnest($3::float8[]) AS value, unnest($4::timestamptz[]) AS ts) AS known \
             WHERE sensor.id = known.id"
        );
        let mut connection = transaction.lock().await;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(PostgresArray(&self.ids))
            .bind(self.units)
            .bind(PostgresArray(&self.values))
            .bind(PostgresArray(&self.times))
            .execute(&mut **connection)
            .await
            .map_err(execution_error)?;
        Ok(())
    }
}

/// `rows` as `reading_rows` gives them: (sensor row id, time, value), one per key, in key order.
async fn insert_readings(
    transaction: &BatchTransaction,
    rows: Vec<(i32, DateTime<Utc>, f64)>,
    skip_duplicates: bool,
) -> Result<(), DbErr> {
    if let Some(postgres) = transaction.postgres() {
        return insert_readings_postgres(postgres, rows, skip_duplicates).await;
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

/// PostgreSQL takes the whole batch as three arrays, bound straight through sqlx: one small
/// prepared statement whatever the batch size, instead of three bind parameters per row.
///
/// A plain insert costs PostgreSQL about half of one with `ON CONFLICT DO NOTHING`, and readings
/// are almost never stored twice, so the plain one is tried first: a duplicate fails the
/// transaction, and the writer stores the batch again with `skip_duplicates`.
async fn insert_readings_postgres(
    transaction: &PostgresTransaction,
    rows: Vec<(i32, DateTime<Utc>, f64)>,
    skip_duplicates: bool,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    for (sensor_id, ts, value) in rows {
        ids.push(sensor_id);
        times.push(ts);
        values.push(value);
    }
    // `unnest` in the select list streams the rows; `FROM UNNEST(a, b, c)` first copies each
    // array into a tuple store of its own. The arrays always have the same length, so the
    // select-list form (which runs them in step) gives the same rows for less work.
    let sql = if skip_duplicates {
        "INSERT INTO sensor_reading (sensor_id, ts, value) \
         SELECT unnest($1::int4[]), unnest($2::timestamptz[]), unnest($3::float8[]) \
         ON CONFLICT (sensor_id, ts) DO NOTHING"
    } else {
        "INSERT INTO sensor_reading (sensor_id, ts, value) \
         SELECT unnest($1::int4[]), unnest($2::timestamptz[]), unnest($3::float8[])"
    };
    let mut connection = transaction.lock().await;
    sqlx::query(sql)
        .bind(PostgresArray(&ids))
        .bind(PostgresArray(&times))
        .bind(PostgresArray(&values))
        .execute(&mut **connection)
        .await
        .map_err(execution_error)?;
    Ok(())
}

async fn insert_parsing_logs<C: ConnectionTrait>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::{DataloggerRecord, GatewayRecord, ParseOutput, SensorValue};
    use chrono::Duration;

    fn reading(site_id: i32, datalogger: &str, value: f64, at: DateTime<Utc>) -> Prepared {
        Prepared {
            site_id,
            topic: format!("t/{datalogger}"),
            received_at: at,
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

    #[test]
    fn a_name_is_shared_once_seen_and_found_without_copying() {
        let mut names = Names::default();
        assert!(names.get("dl-1").is_none());
        let first = names.intern("dl-1");
        let again = names.intern(&String::from("dl-1"));
        assert!(
            Arc::ptr_eq(&first.text, &again.text),
            "one shared copy per name"
        );
        let found = names.get("dl-1").expect("known after interning");
        assert!(Arc::ptr_eq(&first.text, &found.text));
        assert_eq!(first, Name::from("dl-1"), "equal text, equal names");
        assert_ne!(first, Name::from("dl-2"));
        assert_eq!(&*names.intern("dl-2"), "dl-2");
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
        let folded = fold(&batch, 64, true, &mut cache);
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
        fold(&batch, 64, true, &mut cache);
        assert!(!cache.pending.sensors.is_empty());
        let once = format!("{:?}", cache.pending);
        let again = fold(&batch, 64, true, &mut cache);
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
        let earlier_topics = fold(&[reading(1, "dl", 1.0, start)], 64, true, &mut earlier).topics;
        earlier.pending.add_topics(earlier_topics);
        let mut later = cache_knowing(&[1]);
        let later_topics = fold(
            &[reading(1, "dl", 5.0, start + Duration::seconds(2))],
            64,
            true,
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
            start + Duration::seconds(2)
        );
    }

    #[test]
    fn a_large_flush_is_taken_in_chunks_and_nothing_is_lost() {
        let start = Utc::now();
        let batch: Vec<Prepared> = (0..600)
            .map(|index| reading(1, &format!("dl-{index:03}"), index as f64, start))
            .collect();
        let folded = fold(&batch, 64, true, &mut cache());
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
        let everything_new = fold(&[reading(1, "dl", 1.0, start)], 64, true, &mut cache).urgent;
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
        let known = fold(&[reading(1, "dl", 2.0, start)], 64, true, &mut cache);
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
        let announced = fold(&[status], 64, true, &mut cache).urgent;
        assert_eq!(
            announced.gateways.len(),
            1,
            "a status change is written at once"
        );
        assert!(!announced.gateways[&(1, Name::from("gw"))].is_online);
        assert!(announced.sensors.is_empty() && announced.dataloggers.is_empty());
    }

    #[test]
    fn a_deleted_site_leaves_nothing_pending() {
        let start = Utc::now();
        let mut cache = cache_knowing(&[1, 2]);
        fold(&[reading(1, "dl", 1.0, start)], 64, true, &mut cache);
        fold(&[reading(2, "dl", 1.0, start)], 64, true, &mut cache);
        assert_eq!(cache.pending.sensors.len(), 2);
        cache.forget_sites(&[1].into_iter().collect());
        assert_eq!(cache.pending.sensors.len(), 1);
        assert_eq!(cache.pending.dataloggers.len(), 1);
        assert_eq!(cache.pending.gateways.len(), 1);
        assert!(cache.pending.sensors.keys().all(|key| key.0 == 2));
    }
}
