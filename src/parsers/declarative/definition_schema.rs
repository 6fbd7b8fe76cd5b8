//! The JSON Schema of the definition format, `parsers/parser-definition.schema.json`, built into
//! the binary. Every file is checked against it first, so that all problems of form in a file
//! are reported at once (serde stops at the first); its violations are turned into messages
//! that name the place and say what to write there, as the checks of the typed reading do.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::checks::{
    check_parser_name, check_pointer, missing_key, name_template_parts, NOTHING_TO_STORE,
};
use super::definition::{
    json_type, sources_at_once, SENSOR_HAS_TWO_NAMES, SENSOR_NEEDS_A_NAME, SOURCES_EXPECTED,
    SOURCE_KEYS, SOURCE_NEEDS_A_KEY, STATUS_VALUES_EXPECTED, TIMESTAMP_NEEDS_A_KEY,
};
use crate::parsers::json_pointer::escape_pointer_token;
use crate::parsers::truncate;

/// The name of the schema file; files of this name are not parsers.
pub(crate) const FILE_NAME: &str = "parser-definition.schema.json";

const TEXT: &str = include_str!("../../../parsers/parser-definition.schema.json");

/// Places in the format's schema that have messages of their own (the parent of a failed
/// keyword's location).
mod places {
    pub(super) const PAYLOAD_SCHEMA: &str = "/properties/schema";
    pub(super) const SENSORS: &str = "/properties/sensors";
    pub(super) const PARSER_NAME: &str = "/$defs/parserName";
    pub(super) const POINTER: &str = "/$defs/jsonPointer";
    pub(super) const SOURCE: &str = "/$defs/source";
    /// Followed by the key whose company is refused.
    pub(super) const SOURCE_KEYS_AT_ONCE: &str = "/$defs/source/dependentSchemas/";
    pub(super) const SOURCE_LIST: &str = "/$defs/sources/then";
    pub(super) const TIMESTAMP: &str = "/$defs/timestamp";
    pub(super) const TIMESTAMP_FORMAT: &str = "/$defs/timestamp/properties/format";
    pub(super) const SENSOR_NAME: &str = "/$defs/sensorName";
    pub(super) const SENSOR: &str = "/$defs/sensor";
    pub(super) const SENSOR_MAP: &str = "/$defs/sensor/properties/map";
    pub(super) const SENSOR_TWO_NAMES: &str = "/$defs/sensor/dependentSchemas/name";
    pub(super) const STATUS_VALUES: &str = "/$defs/statusValues";
    pub(super) const GATEWAY_STATUS: &str = "/$defs/gatewayStatus";
    pub(super) const METADATA: &str = "/$defs/gatewayStatus/properties/metadata";

    #[cfg(test)]
    pub(super) const ALL: &[&str] = &[
        PAYLOAD_SCHEMA,
        SENSORS,
        PARSER_NAME,
        POINTER,
        SOURCE,
        SOURCE_KEYS_AT_ONCE,
        SOURCE_LIST,
        SENSOR_TWO_NAMES,
        TIMESTAMP,
        TIMESTAMP_FORMAT,
        SENSOR_NAME,
        SENSOR,
        SENSOR_MAP,
        STATUS_VALUES,
        GATEWAY_STATUS,
        METADATA,
    ];
}

struct Format {
    schema: Value,
    validator: jsonschema::Validator,
}

static FORMAT: LazyLock<Format> = LazyLock::new(|| {
    // A file of the repository compiled into the binary: a broken one is caught by the tests.
    let schema: Value = serde_json::from_str(TEXT).expect("the definition schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("the definition schema compiles");
    Format { schema, validator }
});

/// The format's schema, as shipped in `parsers/`.
pub(crate) fn schema() -> &'static Value {
    &FORMAT.schema
}

/// Every way `definition` breaks the format's schema, one message per problem, each starting
/// with the JSON pointer of the place it is about (none for the file as a whole).
pub(crate) fn problems(definition: &Value) -> Vec<String> {
    let format = &*FORMAT;
    if format.validator.is_valid(definition) {
        return Vec::new();
    }
    let mut problems: Vec<String> = Vec::new();
    for error in format.validator.iter_errors(definition) {
        for problem in describe(&error, &format.schema) {
            // A source with all three keys breaks two rules that read the same.
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn describe(error: &jsonschema::ValidationError<'_>, schema: &Value) -> Vec<String> {
    let at = error.instance_path().as_str();
    let instance: &Value = error.instance();
    // Where in the format's schema the failed keyword sits, e.g. `/$defs/source` for
    // `/$defs/source/oneOf`: the messages below are chosen by place, not by wording.
    let place = error
        .schema_path()
        .as_str()
        .rsplit_once('/')
        .map_or("", |(place, _keyword)| place);
    let message = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, place);
            return unexpected
                .iter()
                .map(|key| {
                    format!(
                        "{at}/{}: unknown key; expected one of: {allowed}",
                        escape_pointer_token(key)
                    )
                })
                .collect();
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            return vec![if at.is_empty() {
                missing_key(key)
            } else {
                match key {
                    "pointer" | "value" => format!(
                        "{at}/{key} is missing; give a JSON pointer such as \"/temperature\""
                    ),
                    _ => format!("{at}/{key} is missing"),
                }
            }];
        }
        ValidationErrorKind::Type { .. } if at.is_empty() => {
            return vec![format!(
                "the file must hold one JSON object (a parser definition), not {}",
                json_type(instance)
            )];
        }
        ValidationErrorKind::Type { .. } => format!(
            "must be {}, not {}",
            expected_type(schema, place, at),
            json_type(instance)
        ),
        ValidationErrorKind::Pattern { pattern } => {
            let text = instance.as_str().unwrap_or_default();
            let checked = match place {
                places::POINTER => check_pointer(text),
                places::PARSER_NAME => check_parser_name(text),
                places::SENSOR_NAME => name_template_parts(text).map(|_| ()),
                _ => Ok(()),
            };
            checked.err().unwrap_or_else(|| {
                format!(
                    "{} does not match the pattern {pattern}",
                    truncated(instance)
                )
            })
        }
        ValidationErrorKind::MinLength { .. } => "must not be empty".to_owned(),
        ValidationErrorKind::MinItems { .. } => match place {
            places::SOURCE_LIST => format!("must be {SOURCES_EXPECTED}"),
            places::STATUS_VALUES => STATUS_VALUES_EXPECTED.to_owned(),
            _ => "must not be an empty list".to_owned(),
        },
        ValidationErrorKind::Enum { options } if place == places::TIMESTAMP_FORMAT => {
            format!(
                "{} is not a timestamp format; use {}",
                truncated(instance),
                alternatives(options, "or")
            )
        }
        ValidationErrorKind::Enum { options } => {
            format!(
                "{} is not one of {}",
                truncated(instance),
                alternatives(options, "or")
            )
        }
        ValidationErrorKind::AnyOf { .. } if place == places::SOURCE => {
            SOURCE_NEEDS_A_KEY.to_owned()
        }
        ValidationErrorKind::Not { .. } if place.starts_with(places::SOURCE_KEYS_AT_ONCE) => {
            let present: Vec<&str> = SOURCE_KEYS
                .into_iter()
                .filter(|key| instance.get(key).is_some())
                .collect();
            sources_at_once(&present)
        }
        ValidationErrorKind::AnyOf { .. } if place == places::TIMESTAMP => {
            TIMESTAMP_NEEDS_A_KEY.to_owned()
        }
        ValidationErrorKind::AnyOf { .. } if place == places::SENSOR => {
            SENSOR_NEEDS_A_NAME.to_owned()
        }
        ValidationErrorKind::Not { .. } if place == places::SENSOR_TWO_NAMES => {
            SENSOR_HAS_TWO_NAMES.to_owned()
        }
        ValidationErrorKind::AnyOf { .. } if at.is_empty() && place.is_empty() => {
            return vec![NOTHING_TO_STORE.to_owned()];
        }
        ValidationErrorKind::PropertyNames { .. } => "keys must not be empty".to_owned(),
        _ => truncate(&error.to_string()),
    };
    vec![if at.is_empty() {
        message
    } else {
        format!("{at}: {message}")
    }]
}

/// The keys an object of the format may have, for an "unknown key" message; `$comment` and
/// `$schema` go without saying.
fn allowed_keys(schema: &Value, place: &str) -> String {
    schema
        .pointer(place)
        .and_then(|object| object.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .keys()
                .filter(|key| !key.starts_with('$'))
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// What a value of the wrong type should have been, in words that show an example where one
/// helps.
fn expected_type(schema: &Value, place: &str, at: &str) -> String {
    let in_a_list = at
        .rsplit('/')
        .next()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|byte| byte.is_ascii_digit()));
    let phrase = match place {
        places::PAYLOAD_SCHEMA => "a JSON Schema object (or true/false)",
        places::SENSORS => "an array of sensor mappings",
        places::POINTER => "a JSON pointer string such as \"/temperature\"",
        places::SOURCE if in_a_list => {
            "an object with one of the keys capture, pointer, user_property or value"
        }
        places::SOURCE => SOURCES_EXPECTED,
        places::SENSOR => "an object such as {\"name\": \"temperature\", \"value\": \"/temp\"}",
        places::TIMESTAMP => "an object such as {\"pointer\": \"/time\"}",
        places::GATEWAY_STATUS => {
            "an object such as {\"pointer\": \"/status\", \"online\": [\"online\"]}"
        }
        places::METADATA => {
            "an object from metadata keys to JSON pointers, e.g. {\"firmware\": \"/fw\"}"
        }
        places::SENSOR_MAP => {
            "an object from payload strings to numbers, e.g. {\"on\": 1, \"off\": 0}"
        }
        places::STATUS_VALUES => {
            "a non-empty list of strings, numbers or booleans, e.g. [\"online\", \"up\"]"
        }
        _ => return type_names(schema.pointer(place).and_then(|object| object.get("type"))),
    };
    phrase.to_owned()
}

/// `"string"` → "a string"; `["string", "null"]` → "a string or null".
fn type_names(types: Option<&Value>) -> String {
    let name = |value: &Value| -> String {
        match value.as_str().unwrap_or_default() {
            "null" => "null".to_owned(),
            kind @ ("object" | "array" | "integer") => format!("an {kind}"),
            kind => format!("a {kind}"),
        }
    };
    let names: Vec<String> = match types {
        Some(Value::Array(types)) => types.iter().map(name).collect(),
        Some(single) => vec![name(single)],
        None => vec!["another type".to_owned()],
    };
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// `["auto", "unix_s"]` → "auto or unix_s".
fn alternatives(options: &Value, word: &str) -> String {
    let texts: Vec<String> = options
        .as_array()
        .map(|options| {
            options
                .iter()
                .map(|option| {
                    option
                        .as_str()
                        .map_or_else(|| option.to_string(), str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    match texts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} {word} {last}", rest.join(", ")),
        _ => texts.concat(),
    }
}

fn truncated(value: &Value) -> String {
    truncate(&value.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_definitions::relay_definition;
    use super::super::{checks, definition, definition_files};
    use super::*;
    use serde_json::json;

    fn shipped_folder() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"))
    }

    fn shipped_definitions() -> Vec<(String, Value)> {
        let (files, errors) = definition_files(shipped_folder());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!files.is_empty());
        files
            .iter()
            .map(|file| {
                let text = std::fs::read_to_string(file).unwrap();
                (
                    file.display().to_string(),
                    serde_json::from_str(&text).unwrap(),
                )
            })
            .collect()
    }

    /// The verdict of the serde types plus the checks between sections.
    fn typed(definition: &Value) -> Result<(), String> {
        let read = definition::read(definition)?;
        match checks::definition_problems(&read).as_slice() {
            [] => Ok(()),
            problems => Err(problems.join("; ")),
        }
    }

    /// A copy of `base` with one change at a JSON pointer (`null` at a key removes the key).
    fn with(base: &Value, pointer: &str, value: Value) -> Value {
        let mut changed = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = changed.pointer_mut(parent).unwrap();
        match (target, value) {
            (Value::Object(map), Value::Null) => {
                map.remove(key);
            }
            (Value::Object(map), value) => {
                map.insert(key.to_owned(), value);
            }
            (Value::Array(items), value) => items[key.parse::<usize>().unwrap()] = value,
            (other, _) => panic!("cannot change {other}"),
        }
        changed
    }

    fn status() -> Value {
        json!({
            "name": "modem_status_v1",
            "schema": {"type": "object"},
            "gateway": [{"pointer": "/imei"}, {"capture": "gateway"}],
            "gateway_status": {"pointer": "/link", "online": [1], "offline": [0],
                               "metadata": {"imei": "/imei"}}
        })
    }

    fn well_formed() -> Vec<Value> {
        let relay = relay_definition();
        let mut all: Vec<Value> = shipped_definitions().into_iter().map(|(_, d)| d).collect();
        all.extend([
            relay.clone(),
            status(),
            json!({"name": "bare_number_v1", "schema": {"type": ["number", "string"]},
                   "gateway": {"value": "default"}, "datalogger": {"capture": "datalogger"},
                   "sensors": [{"name": "{metric}", "value": ""}]}),
            json!({"name": "n", "schema": true, "gateway": {"pointer": ""},
                   "gateway_status": {"pointer": ""}}),
            json!({"name": "n".repeat(64), "schema": false, "gateway": {"capture": "g"},
                   "gateway_status": {"pointer": "/a~0b~1c/0"}, "sensors": []}),
            with(
                &status(),
                "/$schema",
                json!("./parser-definition.schema.json"),
            ),
            with(&status(), "/$comment", json!(null)),
            with(&status(), "/$comment", json!(["any", {"value": 1}])),
            with(&status(), "/datalogger", json!({"value": "dl"})),
            with(&status(), "/description", json!("")),
            with(&status(), "/gateway/0/$comment", json!("payload first")),
            with(
                &status(),
                "/gateway_status/online",
                json!([true, "up", 1.5]),
            ),
            with(&status(), "/gateway_status/metadata", json!({})),
            with(&status(), "/gateway_status/$comment", json!(1)),
            with(&relay, "/sensors/0/unit", json!(null)),
            with(&relay, "/sensors/0/unit", json!("")),
            with(
                &relay,
                "/sensors/0/map",
                json!({"on": 1.5, "off": -2, "": 0}),
            ),
            with(&relay, "/sensors/0/name", json!("{ spaced capture }")),
            with(&relay, "/sensors/0/$comment", json!("coil")),
            with(&relay, "/timestamp/format", json!("unix_ms")),
            with(&relay, "/timestamp/format", json!("rfc3339")),
            with(&relay, "/timestamp/$comment", json!("device clock")),
            with(&relay, "/gateway_status", json!(null)),
            with(&relay, "/sensors", json!([])),
        ]);
        all
    }

    fn broken() -> Vec<Value> {
        let relay = relay_definition();
        let s = status();
        vec![
            json!([1]),
            json!("name"),
            json!({}),
            with(&s, "/name", json!(null)),
            with(&s, "/name", json!("bad name!")),
            with(&s, "/name", json!("")),
            with(&s, "/name", json!(5)),
            with(&s, "/name", json!("n".repeat(65))),
            with(&s, "/name", json!("ü")),
            with(&s, "/description", json!(5)),
            with(&s, "/$schema", json!(5)),
            with(&s, "/unknown", json!(1)),
            with(&s, "/schema", json!(null)),
            with(&s, "/schema", json!("object")),
            with(&s, "/schema", json!([])),
            with(&s, "/gateway", json!(null)),
            with(&s, "/gateway", json!([])),
            with(&s, "/gateway", json!("gw")),
            with(&s, "/gateway", json!({})),
            with(&s, "/gateway", json!({"value": ""})),
            with(&s, "/gateway", json!({"capture": ""})),
            with(&s, "/gateway", json!({"capture": "g", "value": "x"})),
            with(
                &s,
                "/gateway",
                json!({"capture": "g", "pointer": "/g", "value": "x"}),
            ),
            with(&s, "/gateway", json!({"capture": "g", "other": 1})),
            with(&s, "/gateway/0", json!({"pointer": "imei"})),
            with(&s, "/gateway/0", json!({"pointer": "/a~2"})),
            with(&s, "/gateway/0", json!({"pointer": 5})),
            with(&s, "/gateway/0", json!("imei")),
            with(&s, "/gateway/0", json!({"capture": null})),
            with(&s, "/gateway/0", json!({"capture": null, "value": "x"})),
            with(&s, "/datalogger", json!([])),
            with(&s, "/timestamp", json!("/t")),
            with(&s, "/timestamp", json!({})),
            with(
                &s,
                "/timestamp",
                json!({"pointer": "/t", "format": "epoch"}),
            ),
            with(&s, "/timestamp", json!({"pointer": "/t", "format": null})),
            with(&s, "/timestamp", json!({"pointer": "/t", "unit": "s"})),
            with(&s, "/gateway_status", json!(null)),
            with(&s, "/gateway_status", json!({})),
            with(&s, "/gateway_status", json!("online")),
            with(&s, "/gateway_status/online", json!([])),
            with(&s, "/gateway_status/online", json!("online")),
            with(&s, "/gateway_status/online", json!([null])),
            with(&s, "/gateway_status/offline", json!([["down"]])),
            with(&s, "/gateway_status/metadata", json!({"": "/x"})),
            with(&s, "/gateway_status/metadata", json!({"ip": "ip"})),
            with(&s, "/gateway_status/metadata", json!({"ip": 5})),
            with(&s, "/gateway_status/metadata", json!(["/ip"])),
            with(&s, "/gateway_status/extra", json!(true)),
            with(&s, "/sensors", json!("temperature")),
            with(&s, "/sensors", json!([{"name": "t", "value": "/t"}])),
            with(&relay, "/datalogger", json!(null)),
            with(
                &with(&relay, "/sensors", json!([])),
                "/gateway_status",
                json!(null),
            ),
            with(&relay, "/sensors/0", json!("temperature")),
            with(&relay, "/sensors/0", json!({"value": "/t"})),
            with(&relay, "/sensors/0", json!({"name": "t"})),
            with(
                &relay,
                "/sensors/0",
                json!({"name": "t", "name_from_capture": "c", "value": "/t"}),
            ),
            with(&relay, "/sensors/0/name", json!("   ")),
            with(&relay, "/sensors/0/name", json!("")),
            with(&relay, "/sensors/0/name", json!("a{b")),
            with(&relay, "/sensors/0/name", json!("a}")),
            with(&relay, "/sensors/0/name", json!("x{}")),
            with(&relay, "/sensors/0/name", json!("a{b{c}}")),
            with(&relay, "/sensors/0/name", json!(5)),
            with(&relay, "/sensors/2/name_from_capture", json!("")),
            with(&relay, "/sensors/0/value", json!("state")),
            with(&relay, "/sensors/0/value", json!(5)),
            with(&relay, "/sensors/0/unit", json!(5)),
            with(&relay, "/sensors/0/map", json!({"on": "1"})),
            with(&relay, "/sensors/0/map", json!({"on": null})),
            with(&relay, "/sensors/0/map", json!([1])),
            with(&relay, "/sensors/0/extra", json!("x")),
            with(&relay, "/commands", json!([])),
            with(
                &relay,
                "/commands",
                json!({"set": {"args": {}, "payload": 1}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "payload": 1}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "args": {}}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "args": {}, "payload": 1, "extra": 1}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"bad name!": {"topic": "a", "args": {}, "payload": 1}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "", "args": {}, "payload": 1}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "args": {}, "payload": 1,
                               "confirm": {"topic": "b", "fields": {"state": "on"}}}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "args": {}, "payload": 1,
                               "confirm": {"topic": "b"}}}),
            ),
            with(
                &relay,
                "/commands",
                json!({"set": {"topic": "a", "args": {}, "payload": 1,
                               "switch": {"sensor": "r", "arg": "s", "on": 1}}}),
            ),
        ]
    }

    #[test]
    fn the_schema_and_the_types_agree() {
        for definition in well_formed() {
            assert_eq!(problems(&definition), Vec::<String>::new(), "{definition}");
            assert_eq!(typed(&definition), Ok(()), "{definition}");
        }
        for definition in broken() {
            let by_schema = problems(&definition);
            assert!(!by_schema.is_empty(), "the schema accepts {definition}");
            assert!(
                typed(&definition).is_err(),
                "the types accept {definition}, which the schema refuses: {by_schema:?}"
            );
        }
    }

    /// What only the loader can tell: a value both online and offline, a payload schema that
    /// does not compile.
    #[test]
    fn some_rules_are_beyond_the_schema() {
        let both = with(&status(), "/gateway_status/offline", json!([0, 1.0]));
        assert!(problems(&both).is_empty());
        assert!(typed(&both)
            .unwrap_err()
            .contains("listed as both online and offline"));
        let uncompilable = with(&status(), "/schema", json!({"type": 12}));
        assert!(problems(&uncompilable).is_empty());
        assert_eq!(typed(&uncompilable), Ok(()));
    }

    #[test]
    fn broken_definitions_get_one_message_per_problem_naming_the_place() {
        for definition in broken() {
            for problem in problems(&definition) {
                let known_start = problem.starts_with('/')
                    || problem.starts_with('"')
                    || problem.starts_with("the ");
                assert!(known_start, "{problem}");
                assert!(!problem.contains("is not valid under"), "{problem}");
                assert!(!problem.contains("does not match the pattern"), "{problem}");
            }
        }
    }

    #[test]
    fn the_format_schema_is_a_draft_2020_12_schema() {
        assert_eq!(
            schema()["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        jsonschema::meta::validate(schema()).unwrap();
    }

    #[test]
    fn every_place_with_its_own_message_is_in_the_schema() {
        for place in places::ALL {
            let place = place.trim_end_matches('/');
            assert!(schema().pointer(place).is_some(), "{place}");
        }
    }

    #[test]
    fn shipped_definitions_point_editors_at_the_schema() {
        assert!(shipped_folder().join(FILE_NAME).is_file());
        for (file, definition) in shipped_definitions() {
            assert_eq!(
                definition["$schema"],
                format!("./{FILE_NAME}"),
                "{file} does not reference the format's schema"
            );
        }
    }
}
