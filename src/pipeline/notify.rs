//! What browsers are told after a commit, coalesced so a burst of readings from one datalogger
//! becomes one event per batch.

use std::collections::{BTreeMap, HashMap};

use crate::ws::{Event, SensorUpdate};

use super::persist::SensorKey;
use super::{Outcome, Prepared};

/// Builds the events of a committed batch; `sensor_ids` gives each stored sensor's row id.
pub fn events(
    batch: &[Prepared],
    sensor_ids: &HashMap<SensorKey, i32>,
    new_topics: &[(i32, String)],
) -> Vec<Event> {
    let mut events = Vec::new();
    for (site_id, topic) in new_topics {
        events.push(Event::TopicDiscovered {
            site_id: *site_id,
            topic: topic.clone(),
        });
    }
    let mut dataloggers: BTreeMap<(i32, String, String), Event> = BTreeMap::new();
    let mut gateways: BTreeMap<(i32, String), Event> = BTreeMap::new();
    for message in batch {
        match &message.outcome {
            Outcome::Parsed(output) => {
                for gateway in &output.gateways {
                    gateways.insert(
                        (message.site_id, gateway.identifier.clone()),
                        Event::GatewayUpdate {
                            site_id: message.site_id,
                            gateway: gateway.identifier.clone(),
                            is_online: gateway.online.unwrap_or(true),
                            last_seen: Some(message.received_at),
                            metadata: Some(serde_json::Value::Object(gateway.metadata.clone())),
                        },
                    );
                }
                for record in &output.dataloggers {
                    let key = (
                        message.site_id,
                        record.gateway.clone(),
                        record.identifier.clone(),
                    );
                    let sensors: Vec<SensorUpdate> = record
                        .sensors
                        .iter()
                        .filter_map(|sensor| {
                            let id = sensor_ids.get(&(
                                message.site_id,
                                record.gateway.clone(),
                                record.identifier.clone(),
                                sensor.name.clone(),
                            ))?;
                            Some(SensorUpdate {
                                id: *id,
                                name: sensor.name.clone(),
                                unit: sensor.unit.clone(),
                                value: sensor.value,
                                ts: record.ts,
                            })
                        })
                        .collect();
                    let entry = dataloggers
                        .entry(key)
                        .or_insert_with(|| Event::DataloggerUpdate {
                            site_id: message.site_id,
                            gateway: record.gateway.clone(),
                            datalogger: record.identifier.clone(),
                            ts: record.ts,
                            is_online: true,
                            sensors: Vec::new(),
                        });
                    if let Event::DataloggerUpdate {
                        ts,
                        sensors: existing,
                        ..
                    } = entry
                    {
                        if record.ts >= *ts {
                            *ts = record.ts;
                        }
                        // Latest value per sensor wins within the batch.
                        for sensor in sensors {
                            match existing.iter_mut().find(|s| s.name == sensor.name) {
                                Some(current) if current.ts <= sensor.ts => *current = sensor,
                                Some(_) => {}
                                None => existing.push(sensor),
                            }
                        }
                    }
                }
            }
            Outcome::Failed { error } => events.push(Event::ParsingError {
                site_id: message.site_id,
                topic: message.topic.clone(),
                parser: message.parser().map(str::to_string),
                error: error.clone(),
                log_id: None,
            }),
            Outcome::Unrouted => {}
        }
    }
    events.extend(gateways.into_values());
    events.extend(dataloggers.into_values());
    events
}
