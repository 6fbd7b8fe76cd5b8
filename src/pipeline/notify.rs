//! What browsers are told after a commit, coalesced so a burst of readings from one datalogger
//! becomes one event per batch.

use std::collections::BTreeMap;

use foldhash::HashMap;

use crate::events::{Event, SensorUpdate};

use super::names::{DataloggerKey, Name, Names, SensorKey};
use super::{Outcome, Prepared};

/// Builds the events of a committed batch; `sensor_ids` gives each stored sensor's row id and
/// `names` the shared names its keys were made of.
pub fn events(
    batch: &[Prepared],
    sensor_ids: &HashMap<SensorKey, i32>,
    names: &Names,
    new_topics: &[(i32, String)],
) -> Vec<Event> {
    // Every name of the batch was shared when it was stored; a copy is made only if the shared
    // set was emptied meanwhile (it is bounded).
    let name = |text: &str| names.get(text).unwrap_or_else(|| Name::from(text));
    let mut events = Vec::new();
    for (site_id, topic) in new_topics {
        events.push(Event::TopicDiscovered {
            site_id: *site_id,
            topic: topic.clone(),
        });
    }
    let mut dataloggers: BTreeMap<DataloggerKey, Event> = BTreeMap::new();
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
                    let key: DataloggerKey = (
                        message.site_id,
                        name(&record.gateway),
                        name(&record.identifier),
                    );
                    let sensors: Vec<SensorUpdate> = record
                        .sensors
                        .iter()
                        .filter_map(|sensor| {
                            let id = sensor_ids.get(&(
                                key.0,
                                key.1.clone(),
                                key.2.clone(),
                                name(&sensor.name),
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
