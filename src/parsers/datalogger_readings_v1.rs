//! Built-in parser `datalogger_readings_v1`: one datalogger's batch of named sensor readings.

use serde_json::{json, Value};

use super::{
    compile_schema, payload_or_capture, timestamp_from_value, validate_payload, DataloggerRecord,
    ParseError, ParseInput, ParseOutput, Parser, SensorSet, SensorValue, TimestampFormat,
};

const NAME: &str = "datalogger_readings_v1";

const MISSING_GATEWAY: &str =
    "gateway: the topic pattern does not capture {gateway} and the payload has no \"gateway\" field";
const MISSING_DATALOGGER: &str = "datalogger: the topic pattern does not capture {datalogger} and \
                                  the payload has no \"datalogger\" field";

pub struct DataloggerReadingsV1 {
    schema: Value,
    validator: jsonschema::Validator,
}

impl DataloggerReadingsV1 {
    pub fn new() -> Self {
        let schema = schema();
        // A constant schema: failing here is a programming error caught by the tests below.
        let validator = compile_schema(&schema).expect("built-in schema compiles");
        DataloggerReadingsV1 { schema, validator }
    }
}

impl Default for DataloggerReadingsV1 {
    fn default() -> Self {
        Self::new()
    }
}

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": NAME,
        "description": "Sensor readings of one datalogger.",
        "type": "object",
        "required": ["sensors"],
        "properties": {
            "ts": {
                "description": "When the readings were taken (RFC 3339). Absent: time of receipt.",
                "type": "string",
                "format": "date-time"
            },
            "gateway": {
                "description": "Gateway identifier; overrides the topic's {gateway} capture.",
                "type": "string", "minLength": 1, "maxLength": 255
            },
            "datalogger": {
                "description": "Datalogger identifier; overrides the topic's {datalogger} capture.",
                "type": "string", "minLength": 1, "maxLength": 255
            },
            "sensors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "value"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S"},
                        "value": {"type": "number"},
                        "unit": {"type": ["string", "null"], "maxLength": 64}
                    }
                }
            }
        }
    })
}

impl Parser for DataloggerReadingsV1 {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Readings of one datalogger: {\"ts\"?, \"sensors\": [{\"name\", \"value\", \"unit\"?}]}. \
         Gateway and datalogger come from the topic captures {gateway} and {datalogger}, or from \
         payload fields of the same names, which take precedence."
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        validate_payload(&self.validator, input.payload)?;
        let gateway = payload_or_capture(input, "gateway")
            .ok_or(ParseError::MissingIdentifier(MISSING_GATEWAY))?;
        let datalogger = payload_or_capture(input, "datalogger")
            .ok_or(ParseError::MissingIdentifier(MISSING_DATALOGGER))?;
        let ts = match input.payload.get("ts") {
            Some(value) => timestamp_from_value(value, "/ts", TimestampFormat::Rfc3339)?,
            None => input.received_at,
        };

        // The schema has already checked every shape below; these errors are a second line of
        // defence that keeps a wrong schema edit from turning into a panic.
        let items = input
            .payload
            .get("sensors")
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError::invalid("/sensors", "expected an array of sensors"))?;
        let mut sensors = SensorSet::default();
        for (index, item) in items.iter().enumerate() {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty())
                .ok_or_else(|| {
                    ParseError::invalid(
                        format!("/sensors/{index}/name"),
                        "expected a non-empty string",
                    )
                })?;
            let value = item
                .get("value")
                .and_then(Value::as_f64)
                .filter(|value| value.is_finite())
                .ok_or_else(|| {
                    ParseError::invalid(
                        format!("/sensors/{index}/value"),
                        "expected a finite number",
                    )
                })?;
            let unit = item
                .get("unit")
                .and_then(Value::as_str)
                .filter(|unit| !unit.is_empty())
                .map(str::to_owned);
            sensors.insert(SensorValue {
                name: name.to_owned(),
                value,
                unit,
            });
        }

        Ok(ParseOutput {
            gateways: Vec::new(),
            dataloggers: vec![DataloggerRecord {
                gateway,
                identifier: datalogger,
                ts,
                sensors: sensors.into_vec(),
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{received_at, run, run_bytes};
    use super::*;
    use chrono::{DateTime, Utc};

    const TOPIC: &str = "bfg/gateway/gw1/datalogger/dl7";
    const CAPTURES: &[(&str, &str)] = &[("gateway", "gw1"), ("datalogger", "dl7")];

    fn parse(payload: Value) -> Result<ParseOutput, ParseError> {
        run(&DataloggerReadingsV1::new(), TOPIC, CAPTURES, &payload)
    }

    fn schema_errors(result: Result<ParseOutput, ParseError>) -> Vec<String> {
        match result {
            Err(ParseError::Schema(messages)) => messages,
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    #[test]
    fn parses_readings_with_topic_identifiers() {
        let out = parse(json!({
            "ts": "2024-05-01T10:15:00Z",
            "sensors": [
                {"name": "temperature", "value": 21.5, "unit": "°C"},
                {"name": "humidity", "value": 40}
            ]
        }))
        .unwrap();
        assert!(out.gateways.is_empty());
        let record = &out.dataloggers[0];
        assert_eq!(record.gateway, "gw1");
        assert_eq!(record.identifier, "dl7");
        assert_eq!(
            record.ts,
            "2024-05-01T10:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            record.sensors,
            vec![
                SensorValue {
                    name: "temperature".into(),
                    value: 21.5,
                    unit: Some("°C".into())
                },
                SensorValue {
                    name: "humidity".into(),
                    value: 40.0,
                    unit: None
                },
            ]
        );
    }

    #[test]
    fn payload_identifiers_win_over_captures() {
        let out = parse(json!({
            "gateway": "gw-payload", "datalogger": "dl-payload",
            "sensors": [{"name": "t", "value": 1}]
        }))
        .unwrap();
        assert_eq!(out.dataloggers[0].gateway, "gw-payload");
        assert_eq!(out.dataloggers[0].identifier, "dl-payload");
    }

    #[test]
    fn missing_ts_takes_the_receive_time() {
        let out = parse(json!({"sensors": [{"name": "t", "value": 1}]})).unwrap();
        assert_eq!(out.dataloggers[0].ts, received_at());
    }

    #[test]
    fn empty_sensor_list_still_marks_the_datalogger_seen() {
        let out = parse(json!({"sensors": []})).unwrap();
        assert!(out.dataloggers[0].sensors.is_empty());
    }

    #[test]
    fn duplicate_sensor_names_keep_the_last_value() {
        let out = parse(json!({"sensors": [
            {"name": "t", "value": 1, "unit": "K"},
            {"name": "t", "value": 2}
        ]}))
        .unwrap();
        assert_eq!(
            out.dataloggers[0].sensors,
            vec![SensorValue {
                name: "t".into(),
                value: 2.0,
                unit: None
            }]
        );
    }

    #[test]
    fn unparseable_ts_names_the_field() {
        let messages = schema_errors(parse(
            json!({"ts": "last tuesday", "sensors": [{"name": "t", "value": 1}]}),
        ));
        assert!(
            messages.iter().any(|m| m.starts_with("/ts: ")),
            "{messages:?}"
        );
        let messages = schema_errors(parse(json!({"ts": 1714557600, "sensors": []})));
        assert!(
            messages.iter().any(|m| m.starts_with("/ts: ")),
            "{messages:?}"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let messages = schema_errors(parse(json!({"sensors": [{"name": "t", "value": "21.5"}]})));
        assert!(
            messages.iter().any(|m| m.starts_with("/sensors/0/value: ")),
            "{messages:?}"
        );
        let messages = schema_errors(parse(json!({"sensors": {"name": "t", "value": 1}})));
        assert!(
            messages.iter().any(|m| m.starts_with("/sensors: ")),
            "{messages:?}"
        );
        let messages = schema_errors(parse(
            json!({"sensors": [{"value": 1}, {"name": "", "value": 2}]}),
        ));
        assert!(
            messages.iter().any(|m| m.starts_with("/sensors/0: ")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("/sensors/1/name: ")),
            "{messages:?}"
        );
        let messages = schema_errors(parse(json!({"readings": []})));
        assert!(messages[0].starts_with("(root): "), "{messages:?}");
        let messages = schema_errors(parse(json!([1, 2])));
        assert!(messages[0].starts_with("(root): "), "{messages:?}");
    }

    #[test]
    fn missing_identifiers_say_where_they_were_looked_for() {
        let parser = DataloggerReadingsV1::new();
        let payload = json!({"sensors": [{"name": "t", "value": 1}]});
        let err = run(&parser, "x/dl7", &[("datalogger", "dl7")], &payload).unwrap_err();
        assert_eq!(err, ParseError::MissingIdentifier(MISSING_GATEWAY));
        assert!(err.to_string().contains("{gateway}"));
        let err = run(&parser, "x/gw1", &[("gateway", "gw1")], &payload).unwrap_err();
        assert_eq!(err, ParseError::MissingIdentifier(MISSING_DATALOGGER));
        // An empty topic level is no identifier.
        let err = run(
            &parser,
            "x//dl7",
            &[("gateway", ""), ("datalogger", "dl7")],
            &payload,
        )
        .unwrap_err();
        assert_eq!(err, ParseError::MissingIdentifier(MISSING_GATEWAY));
    }

    #[test]
    fn hostile_bytes_are_rejected_before_parsing() {
        let parser = DataloggerReadingsV1::new();
        assert_eq!(run_bytes(&parser, CAPTURES, b""), Err(ParseError::Empty));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, &[0x80, 0x00, 0xff]),
            Err(ParseError::NotUtf8 { offset: 0 })
        ));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, &vec![b' '; 70 * 1024]),
            Err(ParseError::TooLarge { .. })
        ));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, &vec![b'['; 100_000][..60_000]),
            Err(ParseError::TooDeep { .. })
        ));
        assert!(run_bytes(
            &parser,
            CAPTURES,
            br#"{"sensors":[{"name":"t","value":1e400}]}"#
        )
        .is_err());
        let ok = run_bytes(
            &parser,
            CAPTURES,
            br#"{"sensors":[{"name":"t","value":-0.5e3}]}"#,
        )
        .unwrap();
        assert_eq!(ok.dataloggers[0].sensors[0].value, -500.0);
    }

    #[test]
    fn schema_is_reported_as_is() {
        let parser = DataloggerReadingsV1::new();
        assert_eq!(parser.schema()["required"], json!(["sensors"]));
        assert_eq!(parser.kind(), "builtin");
        assert_eq!(parser.name(), NAME);
    }
}
