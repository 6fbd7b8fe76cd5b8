//! What parsers produce: gateway and datalogger records with their sensor values.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// What a parser wants stored: zero or more gateway updates and datalogger readings.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParseOutput {
    pub gateways: Vec<GatewayRecord>,
    pub dataloggers: Vec<DataloggerRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayRecord {
    pub identifier: String,
    /// `None` when the message says nothing about reachability (e.g. metadata only).
    pub online: Option<bool>,
    pub metadata: serde_json::Map<String, Value>,
    pub ts: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataloggerRecord {
    pub gateway: String,
    pub identifier: String,
    pub ts: DateTime<Utc>,
    pub sensors: Vec<SensorValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorValue {
    pub name: String,
    pub value: f64,
    pub unit: Option<String>,
}

/// Sensors of one message, where a repeated name replaces the earlier value in place.
#[derive(Default)]
pub(crate) struct SensorSet {
    sensors: Vec<SensorValue>,
    /// Built only for long lists: a few names are found faster by scanning, without hashing or
    /// copying them, and a hostile list of thousands must not take quadratic time.
    positions: Option<HashMap<String, usize>>,
}

/// Up to this many sensors, a repeated name is found by scanning the list.
const SCANNED_SENSORS: usize = 16;

impl SensorSet {
    pub(crate) fn insert(&mut self, sensor: SensorValue) {
        if self.positions.is_none() && self.sensors.len() >= SCANNED_SENSORS {
            self.positions = Some(
                self.sensors
                    .iter()
                    .enumerate()
                    .map(|(at, known)| (known.name.clone(), at))
                    .collect(),
            );
        }
        let found = match &self.positions {
            Some(positions) => positions.get(&sensor.name).copied(),
            None => self
                .sensors
                .iter()
                .position(|known| known.name == sensor.name),
        };
        match found {
            Some(at) => self.sensors[at] = sensor,
            None => {
                if let Some(positions) = &mut self.positions {
                    positions.insert(sensor.name.clone(), self.sensors.len());
                }
                self.sensors.push(sensor);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    pub(crate) fn into_vec(self) -> Vec<SensorValue> {
        self.sensors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_set_keeps_the_last_value() {
        let mut set = SensorSet::default();
        for (name, value) in [("a", 1.0), ("b", 2.0), ("a", 3.0)] {
            set.insert(SensorValue {
                name: name.into(),
                value,
                unit: None,
            });
        }
        let sensors = set.into_vec();
        assert_eq!(sensors.len(), 2);
        assert_eq!((sensors[0].name.as_str(), sensors[0].value), ("a", 3.0));
    }

    #[test]
    fn sensor_set_keeps_the_last_value_in_long_lists_too() {
        let mut set = SensorSet::default();
        let names: Vec<String> = (0..3 * SCANNED_SENSORS)
            .map(|index| format!("s{}", index % (2 * SCANNED_SENSORS)))
            .collect();
        for (index, name) in names.iter().enumerate() {
            set.insert(SensorValue {
                name: name.clone(),
                value: index as f64,
                unit: None,
            });
        }
        let sensors = set.into_vec();
        assert_eq!(sensors.len(), 2 * SCANNED_SENSORS);
        // The first names came back after the list grew long; they kept their places.
        assert_eq!(sensors[0].name, "s0");
        assert_eq!(sensors[0].value, (2 * SCANNED_SENSORS) as f64);
        assert_eq!(
            sensors[SCANNED_SENSORS + 1].value,
            (SCANNED_SENSORS + 1) as f64
        );
    }
}
