//! Running a declarative parser on a validated payload: identifiers, timestamp, sensor values
//! and gateway status, as the definition's sections say.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::checks::same_scalar;
use super::definition::{
    json_type, Definition, IdSource, NamePart, NameTemplate, SensorDefinition, StatusDefinition,
    TimestampDefinition,
};
use crate::parsers::{
    capture, timestamp_from_value, truncate, DataloggerRecord, GatewayRecord, ParseError,
    ParseInput, ParseOutput, SensorSet, SensorValue, TimestampFormat,
};

/// What a definition maps, ready to run.
#[derive(Debug)]
pub(crate) struct Mapping {
    gateway: Vec<IdSource>,
    datalogger: Vec<IdSource>,
    timestamp: Option<TimestampDefinition>,
    sensors: Vec<SensorDefinition>,
    status: Option<StatusDefinition>,
    /// Every pointer the mapping reads, quoted when a payload carries none of them.
    read_pointers: Vec<String>,
}

impl Mapping {
    pub(crate) fn new(definition: Definition) -> Mapping {
        let mut read_pointers: Vec<String> = definition
            .sensors
            .iter()
            .map(|sensor| sensor.value.clone())
            .chain(definition.gateway_status.iter().flat_map(|status| {
                std::iter::once(status.pointer.0.clone())
                    .chain(status.metadata.values().map(|pointer| pointer.0.clone()))
            }))
            .collect();
        read_pointers.sort();
        read_pointers.dedup();
        Mapping {
            gateway: definition.gateway.0,
            datalogger: definition
                .datalogger
                .map(|sources| sources.0)
                .unwrap_or_default(),
            timestamp: definition.timestamp,
            sensors: definition.sensors,
            status: definition.gateway_status,
            read_pointers,
        }
    }

    /// Maps a payload that has passed the parser's schema.
    pub(crate) fn apply(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        let gateway = resolve_identifier(&self.gateway, input, "gateway")?;
        let ts = match &self.timestamp {
            Some(spec) => timestamp_of(spec, input)?.unwrap_or(input.received_at),
            None => input.received_at,
        };

        let mut sensors = SensorSet::default();
        for spec in &self.sensors {
            // One definition often serves several topics of a device, each carrying a subset
            // of the fields: a missing field is simply not this message's business.
            let Some(raw) = input.payload.pointer(&spec.value) else {
                continue;
            };
            let Some(value) = spec.number(raw)? else {
                continue;
            };
            sensors.insert(SensorValue {
                name: spec.name.render(input)?,
                value,
                unit: spec.unit.clone(),
            });
        }

        let mut output = ParseOutput::default();
        if let Some(status) = &self.status {
            output.gateways.extend(status.record(input, &gateway, ts)?);
        }
        if !sensors.is_empty() {
            // Asked only now, so a status-only message needs no datalogger in its topic.
            let datalogger = resolve_identifier(&self.datalogger, input, "datalogger")?;
            output.dataloggers.push(DataloggerRecord {
                gateway,
                identifier: datalogger,
                ts,
                sensors: sensors.into_vec(),
            });
        }
        if output.gateways.is_empty() && output.dataloggers.is_empty() {
            return Err(ParseError::invalid(
                "",
                format!(
                    "none of the fields this parser reads ({}) has a value in the payload, so \
                     there is nothing to store",
                    self.read_pointers.join(", ")
                ),
            ));
        }
        Ok(output)
    }
}

impl SensorDefinition {
    /// `Ok(None)` for JSON null: a device that reports "no reading" has nothing to store.
    fn number(&self, raw: &Value) -> Result<Option<f64>, ParseError> {
        match raw {
            Value::Null => Ok(None),
            Value::Bool(flag) => Ok(Some(if *flag { 1.0 } else { 0.0 })),
            Value::Number(number) => number
                .as_f64()
                .filter(|value| value.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    ParseError::invalid(&self.value, "number does not fit a 64-bit float")
                }),
            Value::String(text) => {
                if let Some(mapped) = self.map.get(text) {
                    return Ok(Some(*mapped));
                }
                match text.trim().parse::<f64>() {
                    Ok(value) if value.is_finite() => Ok(Some(value)),
                    _ => Err(ParseError::invalid(&self.value, self.unmapped(text))),
                }
            }
            Value::Array(_) | Value::Object(_) => Err(ParseError::invalid(
                &self.value,
                format!(
                    "expected a number, boolean or string for sensor {:?}, found {}",
                    self.name.text,
                    json_type(raw)
                ),
            )),
        }
    }

    fn unmapped(&self, text: &str) -> String {
        let shown = truncate(&Value::String(text.to_owned()).to_string());
        if self.map.is_empty() {
            format!(
                "{shown} is not a number; add a \"map\" to sensor {:?} to translate strings",
                self.name.text
            )
        } else {
            let mut known: Vec<&str> = self.map.keys().map(String::as_str).collect();
            known.sort_unstable();
            format!(
                "{shown} is not a number and not in the map of sensor {:?} (known: {})",
                self.name.text,
                known.join(", ")
            )
        }
    }
}

impl NameTemplate {
    fn render(&self, input: &ParseInput<'_>) -> Result<String, ParseError> {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                NamePart::Literal(text) => name.push_str(text),
                NamePart::Capture(key) => {
                    let value =
                        capture(input.captures, key).ok_or_else(|| ParseError::MissingCapture {
                            capture: key.clone(),
                            template: self.text.clone(),
                        })?;
                    name.push_str(value);
                }
            }
        }
        Ok(name)
    }
}

impl StatusDefinition {
    fn record(
        &self,
        input: &ParseInput<'_>,
        gateway: &str,
        ts: DateTime<Utc>,
    ) -> Result<Option<GatewayRecord>, ParseError> {
        let online = match input.payload.pointer(&self.pointer.0) {
            None | Some(Value::Null) => None,
            Some(value) => Some(self.is_online(value)?),
        };
        let metadata: Map<String, Value> = self
            .metadata
            .iter()
            .filter_map(|(key, pointer)| {
                input
                    .payload
                    .pointer(&pointer.0)
                    .filter(|value| !value.is_null())
                    .map(|value| (key.0.clone(), value.clone()))
            })
            .collect();
        if online.is_none() && metadata.is_empty() {
            return Ok(None);
        }
        Ok(Some(GatewayRecord {
            identifier: gateway.to_owned(),
            online,
            metadata,
            ts,
        }))
    }

    fn is_online(&self, value: &Value) -> Result<bool, ParseError> {
        if self.online.iter().any(|known| same_scalar(known, value)) {
            return Ok(true);
        }
        match &self.offline {
            None => Ok(false),
            Some(offline) if offline.iter().any(|known| same_scalar(known, value)) => Ok(false),
            Some(offline) => Err(ParseError::invalid(
                &self.pointer.0,
                format!(
                    "{} is neither an online value ({}) nor an offline value ({})",
                    truncate(&value.to_string()),
                    list_values(&self.online),
                    list_values(offline)
                ),
            )),
        }
    }
}

fn list_values(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The time a message gives: its user property first, then its payload field; `None` when
/// neither is there.
fn timestamp_of(
    spec: &TimestampDefinition,
    input: &ParseInput<'_>,
) -> Result<Option<DateTime<Utc>>, ParseError> {
    if let Some(name) = &spec.user_property {
        if let Some(text) = user_property(input, name) {
            // A user property is always text; a clock in Unix time arrives as digits.
            let value = match (spec.format, text.parse::<serde_json::Number>()) {
                (TimestampFormat::Rfc3339, _) | (_, Err(_)) => Value::String(text.to_owned()),
                (_, Ok(number)) => Value::Number(number),
            };
            let place = format!("user property \"{name}\"");
            return timestamp_from_value(&value, &place, spec.format).map(Some);
        }
    }
    match &spec.pointer {
        Some(pointer) => match input.payload.pointer(&pointer.0) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => timestamp_from_value(value, &pointer.0, spec.format).map(Some),
        },
        None => Ok(None),
    }
}

/// The first non-empty value of a user property.
fn user_property<'a>(input: &'a ParseInput<'_>, name: &str) -> Option<&'a str> {
    input
        .user_properties
        .iter()
        .find(|(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value.as_str())
}

fn resolve_identifier(
    sources: &[IdSource],
    input: &ParseInput<'_>,
    entity: &'static str,
) -> Result<String, ParseError> {
    for source in sources {
        let found = match source {
            IdSource::Capture(key) => capture(input.captures, key).map(str::to_owned),
            IdSource::Pointer(pointer) => match input.payload.pointer(pointer) {
                Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
                // Many devices number themselves; an integer id is as good as a string.
                Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
                    Some(number.to_string())
                }
                _ => None,
            },
            IdSource::UserProperty(name) => user_property(input, name).map(str::to_owned),
            IdSource::Literal(value) => Some(value.clone()),
        };
        if let Some(identifier) = found {
            return Ok(identifier);
        }
    }
    let tried: Vec<String> = sources
        .iter()
        .map(|source| match source {
            IdSource::Capture(key) => {
                format!(
                    "the topic pattern does not capture {{{key}}} (or it matched an empty level)"
                )
            }
            IdSource::Pointer(pointer) => format!(
                "the payload has no non-empty string or integer at {}",
                if pointer.is_empty() {
                    "(root)"
                } else {
                    pointer
                }
            ),
            IdSource::UserProperty(name) => {
                format!("the message has no user property \"{name}\" (MQTT 5) with a value")
            }
            IdSource::Literal(_) => "a literal value".to_owned(),
        })
        .collect();
    Err(ParseError::IdentifierNotFound {
        entity,
        tried: tried.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::{captures, received_at, run};
    use super::super::test_definitions::*;
    use super::*;
    use crate::parsers::Parser;
    use serde_json::json;

    #[test]
    fn relay_state_with_channel_capture() {
        let parser = parser(&relay_definition());
        assert_eq!(parser.kind(), "declarative");
        assert_eq!(parser.name(), "relay_test_v1");
        let out = run(
            &parser,
            "ctl/gw1/relay/3",
            &[("gateway", "gw1"), ("channel", "3")],
            &json!({"state": "on", "time": 1714564800}),
        )
        .unwrap();
        assert!(out.gateways.is_empty());
        let record = &out.dataloggers[0];
        assert_eq!(
            (record.gateway.as_str(), record.identifier.as_str()),
            ("gw1", "controller")
        );
        assert_eq!(record.ts, received_at());
        assert_eq!(
            record.sensors,
            vec![SensorValue {
                name: "relay_3".into(),
                value: 1.0,
                unit: None
            }]
        );
    }

    #[test]
    fn booleans_numeric_strings_and_nulls() {
        let parser = parser(&relay_definition());
        let pairs = [("gateway", "gw1"), ("channel", "2"), ("device", "board-a")];
        let out = run(
            &parser,
            "t",
            &pairs,
            &json!({"state": false, "temperature": null, "level": "12.5"}),
        )
        .unwrap();
        let record = &out.dataloggers[0];
        assert_eq!(record.identifier, "board-a");
        let values: Vec<(&str, f64)> = record
            .sensors
            .iter()
            .map(|s| (s.name.as_str(), s.value))
            .collect();
        assert_eq!(values, vec![("relay_2", 0.0), ("2", 12.5)]);
    }

    #[test]
    fn status_only_message_needs_no_datalogger() {
        let parser = parser(&relay_definition());
        let out = run(
            &parser,
            "ctl/gw1/status",
            &[("gateway", "gw1")],
            &json!({"status": "down", "fw": "1.2.0", "time": "2024-05-01T12:00:00Z"}),
        )
        .unwrap();
        assert!(out.dataloggers.is_empty());
        let record = &out.gateways[0];
        assert_eq!(record.identifier, "gw1");
        assert_eq!(record.online, Some(false));
        assert_eq!(record.ts, received_at());
        assert_eq!(
            Value::Object(record.metadata.clone()),
            json!({"firmware": "1.2.0"})
        );
    }

    #[test]
    fn unknown_status_is_an_error_when_offline_values_are_listed() {
        let parser = parser(&relay_definition());
        let err = run(
            &parser,
            "t",
            &[("gateway", "g")],
            &json!({"status": "rebooting"}),
        )
        .unwrap_err();
        match &err {
            ParseError::InvalidValue { pointer, reason } => {
                assert_eq!(pointer, "/status");
                assert!(reason.contains("\"rebooting\""), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn payload_identifier_wins_and_integers_count() {
        let parser = parser(&relay_definition());
        let out = run(
            &parser,
            "t",
            &[("gateway", "gw1")],
            &json!({"gw": 42, "temperature": 20}),
        )
        .unwrap();
        assert_eq!(out.dataloggers[0].gateway, "42");
    }

    #[test]
    fn nothing_to_store_lists_the_fields_read() {
        let parser = parser(&relay_definition());
        let err = run(&parser, "t", &[("gateway", "g")], &json!({"other": 1})).unwrap_err();
        match &err {
            ParseError::InvalidValue { pointer, reason } => {
                assert_eq!(pointer, "");
                assert!(
                    reason.contains("/state") && reason.contains("/fw"),
                    "{reason}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn runtime_errors_name_what_to_fix() {
        let parser = parser(&relay_definition());
        let err = run(&parser, "t", &[], &json!({"temperature": 1})).unwrap_err();
        assert!(matches!(
            err,
            ParseError::IdentifierNotFound {
                entity: "gateway",
                ..
            }
        ));
        assert!(err.to_string().contains("/gw") && err.to_string().contains("{gateway}"));

        let err = run(&parser, "t", &[("gateway", "g")], &json!({"state": "on"})).unwrap_err();
        assert_eq!(
            err,
            ParseError::MissingCapture {
                capture: "channel".into(),
                template: "relay_{channel}".into()
            }
        );

        let err = run(
            &parser,
            "t",
            &[("gateway", "g"), ("channel", "1")],
            &json!({"state": "half"}),
        )
        .unwrap_err();
        match &err {
            ParseError::InvalidValue { pointer, reason } => {
                assert_eq!(pointer, "/state");
                assert!(reason.contains("known: off, on"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }

        let err = run(
            &parser,
            "t",
            &[("gateway", "g")],
            &json!({"temperature": "warm"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/temperature"), "{err}");

        let err = run(
            &parser,
            "t",
            &[("gateway", "g")],
            &json!({"temperature": 1, "time": "later"}),
        )
        .unwrap_err();
        assert!(matches!(err, ParseError::InvalidValue { ref pointer, .. } if pointer == "/time"));

        let err = run(&parser, "t", &[("gateway", "g")], &json!({"level": [1]})).unwrap_err();
        assert!(matches!(err, ParseError::InvalidValue { ref pointer, .. } if pointer == "/level"));
    }

    #[test]
    fn whole_payload_pointer_reads_bare_values() {
        let parser = parser(&json!({
            "name": "bare_number",
            "schema": {"type": "number"},
            "gateway": {"value": "default"},
            "datalogger": {"capture": "datalogger"},
            "sensors": [{"name": "{metric}", "value": ""}]
        }));
        let captures = captures(&[("datalogger", "dl1"), ("metric", "pressure")]);
        let payload = json!(1013.2);
        let out = parser
            .parse(&ParseInput {
                topic: "s/dl1/pressure",
                captures: &captures,
                payload: &payload,
                user_properties: &[],
                received_at: received_at(),
            })
            .unwrap();
        assert_eq!(out.dataloggers[0].sensors[0].name, "pressure");
        assert_eq!(out.dataloggers[0].gateway, "default");
        assert!(parser.description().contains("test.json"));
    }
}
