//! Built-in parser `gateway_status_v1`: a gateway's online/offline report with its metadata.

use serde_json::{json, Value};

use super::{
    compile_schema, payload_or_capture, timestamp_from_value, validate_payload, GatewayRecord,
    ParseError, ParseInput, ParseOutput, Parser, TimestampFormat,
};

const NAME: &str = "gateway_status_v1";

const MISSING_GATEWAY: &str =
    "gateway: the topic pattern does not capture {gateway} and the payload has no \"gateway\" field";

/// Fields with a meaning of their own; everything else in the payload is metadata.
const RESERVED: [&str; 3] = ["status", "ts", "gateway"];

pub struct GatewayStatusV1 {
    schema: Value,
    validator: jsonschema::Validator,
}

impl GatewayStatusV1 {
    pub fn new() -> Self {
        let schema = schema();
        // A constant schema: failing here is a programming error caught by the tests below.
        let validator = compile_schema(&schema).expect("built-in schema compiles");
        GatewayStatusV1 { schema, validator }
    }
}

impl Default for GatewayStatusV1 {
    fn default() -> Self {
        Self::new()
    }
}

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": NAME,
        "description": "Reachability report of one gateway.",
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["online", "offline"]},
            "ip": {"type": "string"},
            "firmware": {"type": "string"},
            "uptime": {"description": "Seconds since the gateway started.", "type": "number", "minimum": 0},
            "ts": {"type": "string", "format": "date-time"},
            "gateway": {
                "description": "Gateway identifier; overrides the topic's {gateway} capture.",
                "type": "string", "minLength": 1, "maxLength": 255
            }
        }
    })
}

impl Parser for GatewayStatusV1 {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Gateway status: {\"status\": \"online\"|\"offline\", \"ip\"?, \"firmware\"?, \"uptime\"?, \
         \"ts\"?}. The gateway comes from the topic capture {gateway} or a payload \"gateway\" \
         field (which takes precedence); all fields other than status, ts and gateway are kept \
         as the gateway's metadata."
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
        let online = match input.payload.get("status").and_then(Value::as_str) {
            Some("online") => true,
            Some("offline") => false,
            _ => {
                return Err(ParseError::invalid(
                    "/status",
                    "expected \"online\" or \"offline\"",
                ))
            }
        };
        let ts = match input.payload.get("ts") {
            Some(value) => timestamp_from_value(value, "/ts", TimestampFormat::Rfc3339)?,
            None => input.received_at,
        };
        let metadata = input
            .payload
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ParseOutput {
            gateways: vec![GatewayRecord {
                identifier: gateway,
                online: Some(online),
                metadata,
                ts,
            }],
            dataloggers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{received_at, run, run_bytes};
    use super::*;

    const CAPTURES: &[(&str, &str)] = &[("gateway", "gw1")];

    fn parse(payload: Value) -> Result<ParseOutput, ParseError> {
        run(&GatewayStatusV1::new(), "gw/gw1/status", CAPTURES, &payload)
    }

    #[test]
    fn online_with_metadata() {
        let out = parse(json!({
            "status": "online", "ip": "10.0.0.7", "firmware": "2.1.0", "uptime": 3600,
            "ts": "2024-05-01T11:59:30Z"
        }))
        .unwrap();
        assert!(out.dataloggers.is_empty());
        let record = &out.gateways[0];
        assert_eq!(record.identifier, "gw1");
        assert_eq!(record.online, Some(true));
        assert_eq!(record.ts, received_at() - chrono::Duration::seconds(30));
        assert_eq!(
            Value::Object(record.metadata.clone()),
            json!({"ip": "10.0.0.7", "firmware": "2.1.0", "uptime": 3600})
        );
    }

    #[test]
    fn offline_without_extras() {
        let out = parse(json!({"status": "offline", "gateway": "gw-from-payload"})).unwrap();
        let record = &out.gateways[0];
        assert_eq!(record.identifier, "gw-from-payload");
        assert_eq!(record.online, Some(false));
        assert!(record.metadata.is_empty());
        assert_eq!(record.ts, received_at());
    }

    #[test]
    fn unknown_fields_are_metadata_too() {
        let out = parse(json!({"status": "online", "rssi": -71})).unwrap();
        assert_eq!(out.gateways[0].metadata.get("rssi"), Some(&json!(-71)));
    }

    #[test]
    fn bad_status_and_types_name_the_field() {
        for (payload, pointer) in [
            (json!({"status": "up"}), "/status: "),
            (json!({"status": true}), "/status: "),
            (json!({"ip": "10.0.0.7"}), "(root): "),
            (json!({"status": "online", "uptime": "3 days"}), "/uptime: "),
            (json!({"status": "online", "uptime": -5}), "/uptime: "),
            (json!({"status": "online", "ts": "noon"}), "/ts: "),
            (json!("online"), "(root): "),
        ] {
            match parse(payload.clone()) {
                Err(ParseError::Schema(messages)) => assert!(
                    messages.iter().any(|m| m.starts_with(pointer)),
                    "{payload}: {messages:?}"
                ),
                other => panic!("{payload}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn missing_gateway_is_reported() {
        let err = run(
            &GatewayStatusV1::new(),
            "status",
            &[],
            &json!({"status": "online"}),
        )
        .unwrap_err();
        assert_eq!(err, ParseError::MissingIdentifier(MISSING_GATEWAY));
    }

    #[test]
    fn hostile_bytes_are_rejected() {
        let parser = GatewayStatusV1::new();
        assert_eq!(run_bytes(&parser, CAPTURES, b"   "), Err(ParseError::Empty));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, b"\xc3\x28"),
            Err(ParseError::NotUtf8 { .. })
        ));
        assert!(matches!(
            run_bytes(&parser, CAPTURES, br#"{"status":"online","uptime":1e400}"#),
            Err(ParseError::InvalidJson(_) | ParseError::InvalidValue { .. })
        ));
        let deep =
            "{\"status\":\"online\",\"x\":".to_owned() + &"[".repeat(100) + &"]".repeat(100) + "}";
        assert!(matches!(
            run_bytes(&parser, CAPTURES, deep.as_bytes()),
            Err(ParseError::TooDeep { .. })
        ));
    }
}
