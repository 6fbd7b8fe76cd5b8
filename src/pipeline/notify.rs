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
                let live = !message.retained;
                for gateway in &output.gateways {
                    let key = (message.site_id, gateway.identifier.clone());
                    // Old news never hides live news of the same batch.
                    if !live && gateways.contains_key(&key) {
                        continue;
                    }
                    gateways.insert(
                        key,
                        Event::GatewayUpdate {
                            site_id: message.site_id,
                            gateway: gateway.identifier.clone(),
                            is_online: live.then(|| gateway.online.unwrap_or(true)),
                            last_seen: live.then_some(message.received_at),
                            metadata: Some(serde_json::Value::Object(gateway.metadata.clone())),
                            retained: !live,
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
                            is_online: live.then_some(true),
                            sensors: Vec::new(),
                            retained: !live,
                        });
                    if let Event::DataloggerUpdate {
                        ts,
                        sensors: existing,
                        is_online,
                        retained,
                        ..
                    } = entry
                    {
                        if record.ts >= *ts {
                            *ts = record.ts;
                        }
                        if live {
                            *is_online = Some(true);
                            *retained = false;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::{DataloggerRecord, GatewayRecord, ParseOutput, SensorValue};
    use chrono::{Duration, Utc};

    fn message(retained: bool, output: ParseOutput) -> Prepared {
        Prepared {
            site_id: 1,
            topic: "t".into(),
            received_at: Utc::now(),
            retained,
            payload: bytes::Bytes::from_static(b"{}"),
            route: Some((1, "p".into())),
            outcome: Outcome::Parsed(output),
            ack: None,
        }
    }

    fn reading(retained: bool, hours_ago: i64) -> Prepared {
        message(
            retained,
            ParseOutput {
                gateways: Vec::new(),
                dataloggers: vec![DataloggerRecord {
                    gateway: "gw".into(),
                    identifier: "dl".into(),
                    ts: Utc::now() - Duration::hours(hours_ago),
                    sensors: vec![SensorValue {
                        name: "t".into(),
                        value: 1.0,
                        unit: None,
                    }],
                }],
            },
        )
    }

    fn status(retained: bool) -> Prepared {
        message(
            retained,
            ParseOutput {
                gateways: vec![GatewayRecord {
                    identifier: "gw".into(),
                    online: Some(false),
                    metadata: Default::default(),
                    ts: Utc::now(),
                }],
                dataloggers: Vec::new(),
            },
        )
    }

    fn liveness(events: &[Event]) -> Vec<(Option<bool>, bool, bool)> {
        events
            .iter()
            .filter_map(|event| match event {
                Event::DataloggerUpdate {
                    is_online,
                    retained,
                    ..
                } => Some((*is_online, *retained, false)),
                Event::GatewayUpdate {
                    is_online,
                    retained,
                    last_seen,
                    ..
                } => Some((*is_online, *retained, last_seen.is_some())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn retained_news_says_nothing_of_being_online() {
        let names = Names::default();
        let sensor_ids = HashMap::default();
        let old = events(&[reading(true, 3), status(true)], &sensor_ids, &names, &[]);
        assert_eq!(
            liveness(&old),
            vec![(None, true, false), (None, true, false)]
        );
        let json = serde_json::to_value(&old[1]).expect("serialises");
        assert!(json.get("is_online").is_none(), "{json}");
        assert_eq!(json["retained"], true);
    }

    #[test]
    fn live_news_of_a_batch_is_not_hidden_by_retained_news() {
        let names = Names::default();
        let sensor_ids = HashMap::default();
        for batch in [
            [
                status(false),
                status(true),
                reading(false, 0),
                reading(true, 3),
            ],
            [
                status(true),
                status(false),
                reading(true, 3),
                reading(false, 0),
            ],
        ] {
            assert_eq!(
                liveness(&events(&batch, &sensor_ids, &names, &[])),
                vec![(Some(false), false, true), (Some(true), false, false)]
            );
        }
        let json = serde_json::to_value(&events(&[reading(false, 0)], &sensor_ids, &names, &[])[0])
            .expect("serialises");
        assert_eq!(json["is_online"], true);
        assert!(json.get("retained").is_none(), "{json}");
    }
}
