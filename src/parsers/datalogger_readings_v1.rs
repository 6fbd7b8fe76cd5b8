//! Built-in parser `datalogger_readings_v1`: one datalogger's batch of named sensor readings.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::plain_json::{set_once, PlainJson};
use super::{
    capture, compile_schema, payload_or_capture, timestamp_from_value, validate_payload,
    BytesInput, DataloggerRecord, ParseError, ParseInput, ParseOutput, Parser, SensorSet,
    SensorValue, TimestampFormat,
};

const NAME: &str = "datalogger_readings_v1";

const MISSING_GATEWAY: &str =
    "gateway: the topic pattern does not capture {gateway} and the payload has no \"gateway\" field";
const MISSING_DATALOGGER: &str = "datalogger: the topic pattern does not capture {datalogger} and \
                                  the payload has no \"datalogger\" field";

pub struct DataloggerReadingsV1 {
    schema: Value,
    validator: jsonschema::Validator,
    /// The schema's own rule for `ts`, so the fast path judges timestamps exactly as it does.
    ts_validator: jsonschema::Validator,
}

impl DataloggerReadingsV1 {
    pub fn new() -> Self {
        let schema = schema();
        // A constant schema: failing here is a programming error caught by the tests below.
        let validator = compile_schema(&schema).expect("built-in schema compiles");
        let ts_validator =
            compile_schema(&schema["properties"]["ts"]).expect("built-in schema compiles");
        DataloggerReadingsV1 {
            schema,
            validator,
            ts_validator,
        }
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

        Ok(readings_of(gateway, datalogger, ts, sensors))
    }

    fn parse_fast(&self, input: &BytesInput<'_>) -> Option<ParseOutput> {
        let text = std::str::from_utf8(input.payload).ok()?;
        let payload = FastPayload::read(text)?;
        // Each check below is at least as strict as the schema's rule and `parse`'s, so whatever
        // passes would pass there too; a borderline value is left to the full path.
        let identifier = |from_payload: Option<&str>, name: &str| match from_payload {
            Some(text) => (1..=MAX_NAME_BYTES)
                .contains(&text.len())
                .then(|| text.to_owned()),
            None => capture(input.captures, name).map(str::to_owned),
        };
        let gateway = identifier(payload.gateway, "gateway")?;
        let datalogger = identifier(payload.datalogger, "datalogger")?;
        let ts = match payload.ts {
            Some(text) => {
                if !self.ts_validator.is_valid(&Value::String(text.to_owned())) {
                    return None;
                }
                DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc)
            }
            None => input.received_at,
        };
        let mut sensors = SensorSet::default();
        for sensor in payload.sensors {
            // Any printable ASCII character is non-blank under every definition of whitespace
            // (the schema's regular expression and `str::trim` differ beyond ASCII).
            let plainly_named = sensor.name.len() <= MAX_NAME_BYTES
                && sensor.name.bytes().any(|byte| byte.is_ascii_graphic());
            let unit_fits = sensor.unit.is_none_or(|unit| unit.len() <= MAX_UNIT_BYTES);
            if !(plainly_named && unit_fits && sensor.value.is_finite()) {
                return None;
            }
            sensors.insert(SensorValue {
                name: sensor.name.to_owned(),
                value: sensor.value,
                unit: sensor
                    .unit
                    .filter(|unit| !unit.is_empty())
                    .map(str::to_owned),
            });
        }
        Some(readings_of(gateway, datalogger, ts, sensors))
    }
}

/// What both paths return: one datalogger's readings.
fn readings_of(
    gateway: String,
    datalogger: String,
    ts: DateTime<Utc>,
    sensors: SensorSet,
) -> ParseOutput {
    ParseOutput {
        gateways: Vec::new(),
        dataloggers: vec![DataloggerRecord {
            gateway,
            identifier: datalogger,
            ts,
            sensors: sensors.into_vec(),
        }],
    }
}

/// The schema's `maxLength` for names counts characters; a byte count under it is within it.
const MAX_NAME_BYTES: usize = 255;
const MAX_UNIT_BYTES: usize = 64;

/// The usual payload, borrowed from the message text: what `PlainJson` reads (no escapes in
/// strings), only the keys the schema names, each once, and `null` only where the full path
/// takes it too (a unit); anything else makes the payload go the full path.
struct FastPayload<'a> {
    ts: Option<&'a str>,
    gateway: Option<&'a str>,
    datalogger: Option<&'a str>,
    sensors: Vec<FastSensor<'a>>,
}

struct FastSensor<'a> {
    name: &'a str,
    value: f64,
    unit: Option<&'a str>,
}

impl<'a> FastPayload<'a> {
    fn read(text: &'a str) -> Option<Self> {
        let mut json = PlainJson::new(text);
        let (mut ts, mut gateway, mut datalogger, mut sensors) = (None, None, None, None);
        json.object(|json, key| match key {
            "ts" => set_once(&mut ts, json.string()?),
            "gateway" => set_once(&mut gateway, json.string()?),
            "datalogger" => set_once(&mut datalogger, json.string()?),
            "sensors" => {
                let mut list = Vec::new();
                json.array(|json| {
                    list.push(FastSensor::read(json)?);
                    Some(())
                })?;
                set_once(&mut sensors, list)
            }
            _ => None,
        })?;
        if !json.at_end() {
            return None;
        }
        Some(FastPayload {
            ts,
            gateway,
            datalogger,
            sensors: sensors?,
        })
    }
}

impl<'a> FastSensor<'a> {
    fn read(json: &mut PlainJson<'a>) -> Option<Self> {
        let (mut name, mut value, mut unit) = (None, None, None);
        json.object(|json, key| match key {
            "name" => set_once(&mut name, json.string()?),
            "value" => set_once(&mut value, json.number()?),
            "unit" => {
                let read = if json.null() {
                    None
                } else {
                    Some(json.string()?)
                };
                set_once(&mut unit, read)
            }
            _ => None,
        })?;
        Some(FastSensor {
            name: name?,
            value: value?,
            unit: unit.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{captures, received_at, run, run_bytes};
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

    /// Payloads built from the pieces below, valid and not, in every combination.
    fn corpus() -> Vec<String> {
        let long = "a".repeat(256);
        let wide = "é".repeat(255);
        let unit_65 = format!("\"{}\"", "u".repeat(65));
        let unit_64 = format!("\"{}\"", "u".repeat(64));
        let name_255 = format!("\"{}\"", "n".repeat(255));
        let times = [
            None,
            Some(r#""2024-05-01T10:15:00Z""#),
            Some(r#""2024-05-01T10:15:00.123456789Z""#),
            Some(r#""2024-05-01T10:15:00+02:00""#),
            Some(r#""2024-05-01t10:15:00z""#),
            Some(r#""2024-05-01 10:15:00Z""#),
            Some(r#""2024-02-30T10:00:00Z""#),
            Some(r#""2024-05-01T23:59:60Z""#),
            Some(r#""2024-05-01T10:15:60Z""#),
            Some(r#""2024-05-01T24:00:00Z""#),
            Some(r#""2024-05-01T10:15:00+24:00""#),
            Some(r#""2024-05-01T10:15:00""#),
            Some(r#""last tuesday""#),
            Some(r#""\u0032024-05-01T10:15:00Z""#),
            Some("null"),
            Some("1714557600"),
            Some(r#""""#),
        ];
        let gateway_value = format!("\"{long}\"");
        let gateway_wide = format!("\"{wide}\"");
        let gateways = [
            None,
            Some(r#""gw-payload""#),
            Some(r#""""#),
            Some("null"),
            Some("5"),
            Some(gateway_value.as_str()),
            Some(gateway_wide.as_str()),
            Some(r#""g\u0077""#),
        ];
        let sensor_lists = [
            "[]".to_owned(),
            r#"[{"name": "t", "value": 1}]"#.to_owned(),
            r#"[{"unit": "K", "value": 1.5, "name": "t"}, {"name": "t", "value": 2}]"#.to_owned(),
            r#"[{"name": "t", "value": 1, "unit": null}, {"name": "h", "value": -0.0, "unit": ""}]"#
                .to_owned(),
            r#"[{"name": " t ", "value": 123456789012345678901234567890}]"#.to_owned(),
            r#"[{"name": "é", "value": 1}]"#.to_owned(),
            r#"[{"name": " ", "value": 1}]"#.to_owned(),
            "[{\"name\": \"\u{feff}\", \"value\": 1}]".to_owned(),
            "[{\"name\": \"\u{a0}\", \"value\": 1}]".to_owned(),
            r#"[{"name": "", "value": 1}]"#.to_owned(),
            r#"[{"name": "t\u0020", "value": 1}]"#.to_owned(),
            format!(r#"[{{"name": {name_255}, "value": 1}}]"#),
            format!(r#"[{{"name": "x{long}", "value": 1}}]"#),
            r#"[{"name": "t", "value": "1"}]"#.to_owned(),
            r#"[{"name": "t", "value": true}]"#.to_owned(),
            r#"[{"name": "t", "value": null}]"#.to_owned(),
            r#"[{"name": "t", "value": 1e400}]"#.to_owned(),
            r#"[{"name": "t", "value": 1, "unit": 5}]"#.to_owned(),
            format!(r#"[{{"name": "t", "value": 1, "unit": {unit_64}}}]"#),
            format!(r#"[{{"name": "t", "value": 1, "unit": {unit_65}}}]"#),
            r#"[{"name": "t", "value": 1, "extra": [1, 2]}]"#.to_owned(),
            r#"[["t", 1, null]]"#.to_owned(),
            r#"[{"name": "t", "name": "u", "value": 1}]"#.to_owned(),
            r#"[{"name": "t"}]"#.to_owned(),
            r#"[{"value": 1}]"#.to_owned(),
            r#"{"name": "t", "value": 1}"#.to_owned(),
            "null".to_owned(),
        ];
        let mut payloads = Vec::new();
        for ts in &times {
            for gateway in &gateways {
                for sensors in &sensor_lists {
                    let mut fields = Vec::new();
                    if let Some(ts) = ts {
                        fields.push(format!(r#""ts": {ts}"#));
                    }
                    if let Some(gateway) = gateway {
                        fields.push(format!(r#""gateway": {gateway}"#));
                    }
                    fields.push(format!(r#""sensors": {sensors}"#));
                    payloads.push(format!("{{{}}}", fields.join(", ")));
                }
            }
        }
        let ordinary = r#"{"ts": "2024-05-01T10:15:00Z", "sensors": [{"name": "t", "value": 1}]}"#;
        payloads.extend([
            format!("\u{feff}{ordinary}"),
            format!("  {ordinary}\n"),
            format!("{ordinary} x"),
            format!("[{ordinary}]"),
            ordinary.replace('{', "{\"x\": 1, "),
            ordinary.replace("\"ts\"", "\"datalogger\": \"dl-p\", \"ts\""),
            ordinary.replace("\"ts\"", "\"datalogger\": \"\", \"ts\""),
            ordinary.replace("\"ts\"", "\"sensors\": [], \"ts\""),
            String::new(),
            "{}".to_owned(),
            // What a hand-written reader could get wrong: layout, escapes, numbers, literals.
            "{\"sensors\":[{\"name\":\"t\",\"value\":1.0e+2}]}".to_owned(),
            "\t{ \"sensors\" :\r\n[ { \"name\" : \"t\" , \"value\" : -0 } ] }\n".to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1},]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1}], }"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1} {"name": "u", "value": 2}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 01}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1.}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": .5}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": +1}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1-2}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": NaN}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1, "unit": nul}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1, "unit": nullx}]}"#.to_owned(),
            r#"{"sensors": [{"n\u0061me": "t", "value": 1}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t\"", "value": 1}]}"#.to_owned(),
            "{\"sensors\": [{\"name\": \"t\tu\", \"value\": 1}]}".to_owned(),
            r#"{"sensors": [{"name": "t", "value": {"v": 1}}]}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1}]"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1}]}}"#.to_owned(),
            r#"{"sensors": [{"name": "t", "value": 1}], "ts": "2024-05-01T10:15:00Z"#.to_owned(),
            r#"{"sensors" [{"name": "t", "value": 1}]}"#.to_owned(),
            r#"{sensors: [{"name": "t", "value": 1}]}"#.to_owned(),
        ]);
        payloads
    }

    fn fast(
        parser: &DataloggerReadingsV1,
        pairs: &[(&str, &str)],
        payload: &str,
    ) -> Option<ParseOutput> {
        let captures = captures(pairs);
        parser.parse_fast(&BytesInput {
            captures: &captures,
            payload: payload.as_bytes(),
            received_at: received_at(),
        })
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_one_or_stands_aside() {
        let parser = DataloggerReadingsV1::new();
        let only_datalogger: &[(&str, &str)] = &[("datalogger", "dl7")];
        let mut taken = 0;
        for payload in corpus() {
            for pairs in [CAPTURES, only_datalogger] {
                if let Some(output) = fast(&parser, pairs, &payload) {
                    taken += 1;
                    let full = run_bytes(&parser, pairs, payload.as_bytes());
                    assert_eq!(full, Ok(output), "{payload}");
                }
            }
        }
        // The common shapes must take the fast path, or it would be useless.
        assert!(taken >= 100, "only {taken} payloads took the fast path");
        for ordinary in [
            r#"{"ts": "2024-05-01T10:15:00.123456Z", "sensors": [{"name": "temperature", "value": 21.5, "unit": "°C"}, {"name": "humidity", "value": 40, "unit": "%"}]}"#,
            r#"{"sensors": [{"name": "t", "value": 1}], "gateway": "gw-p", "datalogger": "dl-p"}"#,
            r#"{"sensors": []}"#,
        ] {
            assert!(fast(&parser, CAPTURES, ordinary).is_some(), "{ordinary}");
        }
    }

    #[test]
    fn schema_is_reported_as_is() {
        let parser = DataloggerReadingsV1::new();
        assert_eq!(parser.schema()["required"], json!(["sensors"]));
        assert_eq!(parser.kind(), "builtin");
        assert_eq!(parser.name(), NAME);
    }
}
