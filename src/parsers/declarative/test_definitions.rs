//! Definitions and helpers shared by the declarative parsers' unit tests.

use std::path::Path;

use serde_json::{json, Value};

use super::DeclarativeParser;

pub(super) fn relay_definition() -> Value {
    json!({
        "name": "relay_test_v1",
        "description": "relay controller under test",
        "schema": {
            "type": "object",
            "properties": {
                "state": {"type": ["string", "boolean"]},
                "temperature": {"type": ["number", "null"]},
                "time": {"type": ["string", "number"]},
                "status": {"type": "string"}
            }
        },
        "gateway": [{"pointer": "/gw"}, {"capture": "gateway"}],
        "datalogger": [{"capture": "device"}, {"value": "controller"}],
        "timestamp": {"pointer": "/time"},
        "sensors": [
            {"name": "relay_{channel}", "value": "/state", "map": {"on": 1, "off": 0}},
            {"name": "temperature", "value": "/temperature", "unit": "°C"},
            {"name_from_capture": "channel", "value": "/level"}
        ],
        "gateway_status": {
            "pointer": "/status", "online": ["online", "up"], "offline": ["offline", "down"],
            "metadata": {"firmware": "/fw"}
        }
    })
}

pub(super) fn parser(definition: &Value) -> DeclarativeParser {
    match DeclarativeParser::from_value(definition, Path::new("test.json")) {
        Ok(parser) => parser,
        Err(errors) => panic!("definition rejected: {errors:?}"),
    }
}

pub(super) fn problems(definition: &Value) -> Vec<String> {
    match DeclarativeParser::from_value(definition, Path::new("bad.json")) {
        Ok(_) => panic!("definition accepted: {definition}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn assert_problem(definition: &Value, needle: &str) {
    let found = problems(definition);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("bad.json: ") && p.contains(needle)),
        "expected a problem containing {needle:?}, got {found:?}"
    );
}
