//! Built-in parser `flat_telemetry`: a flat JSON object whose numeric fields are sensor values.

use serde_json::{json, Value};

use super::{
    capture, compile_schema, escape_pointer_token, timestamp_from_value, validate_payload,
    DataloggerRecord, ParseError, ParseInput, ParseOutput, Parser, SensorSet, SensorValue,
    TimestampFormat,
};

const NAME: &str = "flat_telemetry";

/// Gateway identifier used when the topic pattern has no `{gateway}` capture, so that simple
/// one-level fleets (`sensors/{datalogger}`) need no gateway in their topics.
pub const DEFAULT_GATEWAY: &str = "default";

const MISSING_DATALOGGER: &str = "datalogger: the topic pattern does not capture {datalogger}, \
                                  which flat_telemetry needs to know whose values these are";

pub struct FlatTelemetry {
    schema: Value,
    validator: jsonschema::Validator,
}

impl FlatTelemetry {
    pub fn new() -> Self {
        let schema = schema();
        // A constant schema: failing here is a programming error caught by the tests below.
        let validator = compile_schema(&schema).expect("built-in schema compiles");
        FlatTelemetry { schema, validator }
    }
}

impl Default for FlatTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": NAME,
        "description": "Any JSON object; numeric top-level fields are sensor values.",
        "type": "object",
        "properties": {
            "ts": {
                "description": "RFC 3339 string, or Unix seconds (milliseconds from 1e11 on).",
                "type": ["string", "number"]
            }
        }
    })
}

impl Parser for FlatTelemetry {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Any JSON object: each numeric top-level field becomes a sensor (no unit) of the \
         datalogger captured as {datalogger}; the gateway is the {gateway} capture, or \
         \"default\". A top-level \"ts\" is the timestamp; other non-numeric fields are ignored."
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        validate_payload(&self.validator, input.payload)?;
        let fields = input
            .payload
            .as_object()
            .ok_or_else(|| ParseError::invalid("", "expected a JSON object"))?;
        let datalogger = capture(input.captures, "datalogger")
            .ok_or(ParseError::MissingIdentifier(MISSING_DATALOGGER))?;
        let gateway = capture(input.captures, "gateway").unwrap_or(DEFAULT_GATEWAY);
        let ts = match fields.get("ts") {
            Some(value) => timestamp_from_value(value, "/ts", TimestampFormat::Auto)?,
            None => input.received_at,
        };

        let mut sensors = SensorSet::default();
        for (key, value) in fields {
            // "ts" is the timestamp even when numeric; an unnamed field cannot be a sensor.
            if key == "ts" || key.is_empty() {
                continue;
            }
            let Value::Number(number) = value else {
                continue;
            };
            let value = number.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                ParseError::invalid(
                    format!("/{}", escape_pointer_token(key)),
                    "number does not fit a 64-bit float",
                )
            })?;
            sensors.insert(SensorValue {
                name: key.clone(),
                value,
                unit: None,
            });
        }
        if sensors.is_empty() {
            return Err(ParseError::invalid(
                "",
                "the object has no numeric top-level field, so there is nothing to store",
            ));
        }

        Ok(ParseOutput {
            gateways: Vec::new(),
            dataloggers: vec![DataloggerRecord {
                gateway: gateway.to_owned(),
                identifier: datalogger.to_owned(),
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

    const CAPTURES: &[(&str, &str)] = &[("gateway", "gw1"), ("datalogger", "dl7")];

    fn parse(payload: Value) -> Result<ParseOutput, ParseError> {
        run(&FlatTelemetry::new(), "t/gw1/dl7", CAPTURES, &payload)
    }

    fn sensor_pairs(out: &ParseOutput) -> Vec<(String, f64)> {
        let mut pairs: Vec<_> = out.dataloggers[0]
            .sensors
            .iter()
            .map(|s| (s.name.clone(), s.value))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
    }

    #[test]
    fn numeric_fields_become_sensors() {
        let out = parse(json!({
            "temp": 21.5, "hum": 40, "label": "north", "ok": true, "nested": {"x": 1},
            "list": [1, 2], "nothing": null
        }))
        .unwrap();
        assert!(out.gateways.is_empty());
        let record = &out.dataloggers[0];
        assert_eq!(record.gateway, "gw1");
        assert_eq!(record.identifier, "dl7");
        assert_eq!(record.ts, received_at());
        assert!(record.sensors.iter().all(|s| s.unit.is_none()));
        assert_eq!(
            sensor_pairs(&out),
            vec![("hum".to_owned(), 40.0), ("temp".to_owned(), 21.5)]
        );
    }

    #[test]
    fn ts_is_the_timestamp_not_a_sensor() {
        let out = parse(json!({"ts": "2024-05-01T13:00:00+01:00", "v": 1})).unwrap();
        assert_eq!(out.dataloggers[0].ts, received_at());
        assert_eq!(sensor_pairs(&out), vec![("v".to_owned(), 1.0)]);
        let out = parse(json!({"ts": received_at().timestamp_millis(), "v": 1})).unwrap();
        assert_eq!(out.dataloggers[0].ts, received_at());
        assert_eq!(out.dataloggers[0].sensors.len(), 1);
    }

    #[test]
    fn bad_ts_names_the_field() {
        match parse(json!({"ts": "soon", "v": 1})) {
            Err(ParseError::InvalidValue { pointer, .. }) => assert_eq!(pointer, "/ts"),
            other => panic!("unexpected {other:?}"),
        }
        match parse(json!({"ts": false, "v": 1})) {
            Err(ParseError::Schema(messages)) => assert!(messages[0].starts_with("/ts: ")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn gateway_defaults_when_not_captured() {
        let out = run(
            &FlatTelemetry::new(),
            "sensors/dl7",
            &[("datalogger", "dl7")],
            &json!({"v": 1}),
        )
        .unwrap();
        assert_eq!(out.dataloggers[0].gateway, DEFAULT_GATEWAY);
    }

    #[test]
    fn datalogger_capture_is_required() {
        let err = run(
            &FlatTelemetry::new(),
            "sensors/gw1",
            &[("gateway", "gw1")],
            &json!({"v": 1}),
        )
        .unwrap_err();
        assert_eq!(err, ParseError::MissingIdentifier(MISSING_DATALOGGER));
        assert!(err.to_string().contains("{datalogger}"));
    }

    #[test]
    fn nothing_numeric_is_an_error() {
        for payload in [json!({}), json!({"a": "1", "b": true}), json!({"ts": 1})] {
            match parse(payload.clone()) {
                Err(ParseError::InvalidValue { pointer, reason }) => {
                    assert_eq!(pointer, "", "{payload}");
                    assert!(reason.contains("nothing to store"));
                }
                other => panic!("{payload}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn non_objects_are_schema_errors() {
        for payload in [json!([1, 2]), json!(21.5), json!("x"), json!(null)] {
            match parse(payload.clone()) {
                Err(ParseError::Schema(messages)) => {
                    assert!(messages[0].starts_with("(root): "), "{messages:?}")
                }
                other => panic!("{payload}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_bytes_are_rejected() {
        let parser = FlatTelemetry::new();
        assert_eq!(run_bytes(&parser, CAPTURES, b""), Err(ParseError::Empty));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, b"\x00\x01\x02\xff"),
            Err(ParseError::NotUtf8 { offset: 3 })
        ));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, b"{\"v\": 1e400}"),
            Err(ParseError::InvalidJson(_) | ParseError::InvalidValue { .. })
        ));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, &vec![b'{'; 60_000]),
            Err(ParseError::TooDeep { .. })
        ));
        let big = format!("{{\"v\": \"{}\"}}", "x".repeat(65 * 1024));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, big.as_bytes()),
            Err(ParseError::TooLarge { .. })
        ));
    }
}
