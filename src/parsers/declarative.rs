//! Declarative parsers: JSON files in the parsers folder that map a payload and its topic
//! captures to gateway and datalogger records, for device formats that need no Rust code.
//! The file format is documented in `docs/parsers.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    capture, compile_schema, timestamp_from_value, truncate, validate_payload, DataloggerRecord,
    GatewayRecord, LoadError, ParseError, ParseInput, ParseOutput, Parser, SensorSet, SensorValue,
    TimestampFormat,
};

/// Parser names appear in URLs (`/api/parsers/{name}/test`) and in topic bindings, so they are
/// kept to characters that need no escaping anywhere.
const NAME_MAX_CHARS: usize = 64;

/// JSON has no comments; this key is accepted, and ignored, in every object of a definition.
const COMMENT_KEY: &str = "$comment";

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "schema",
    "gateway",
    "datalogger",
    "timestamp",
    "sensors",
    "gateway_status",
];
const SOURCE_KEYS: &[&str] = &["capture", "pointer", "value"];
const SENSOR_KEYS: &[&str] = &["name", "name_from_capture", "value", "unit", "map"];
const TIMESTAMP_KEYS: &[&str] = &["pointer", "format"];
const STATUS_KEYS: &[&str] = &["pointer", "online", "offline", "metadata"];

/// A parser defined by a JSON file.
pub struct DeclarativeParser {
    name: String,
    description: String,
    schema: Value,
    validator: jsonschema::Validator,
    file: PathBuf,
    gateway: Vec<IdSource>,
    datalogger: Vec<IdSource>,
    timestamp: Option<TimestampSpec>,
    sensors: Vec<SensorSpec>,
    status: Option<StatusSpec>,
    /// Every pointer the mapping reads, quoted when a payload carries none of them.
    read_pointers: Vec<String>,
}

/// Where an identifier comes from; a list of sources is tried in order.
enum IdSource {
    Capture(String),
    Pointer(String),
    Literal(String),
}

struct TimestampSpec {
    pointer: String,
    format: TimestampFormat,
}

struct SensorSpec {
    name: NameTemplate,
    value: String,
    unit: Option<String>,
    map: HashMap<String, f64>,
}

/// A sensor name with `{capture}` placeholders filled from the topic.
struct NameTemplate {
    text: String,
    parts: Vec<NamePart>,
}

enum NamePart {
    Literal(String),
    Capture(String),
}

struct StatusSpec {
    pointer: String,
    online: Vec<Value>,
    /// Without an explicit list, anything that is not an online value means offline.
    offline: Option<Vec<Value>>,
    metadata: Vec<(String, String)>,
}

impl DeclarativeParser {
    /// Reads and checks one definition file; every problem found in it is returned.
    pub fn from_file(file: &Path) -> Result<DeclarativeParser, Vec<LoadError>> {
        let bytes = std::fs::read(file).map_err(|source| {
            vec![LoadError::Read {
                file: file.to_path_buf(),
                source,
            }]
        })?;
        let definition: Value = serde_json::from_slice(&bytes).map_err(|e| {
            vec![LoadError::Json {
                file: file.to_path_buf(),
                message: e.to_string(),
            }]
        })?;
        DeclarativeParser::from_value(&definition, file)
    }

    /// Checks an already parsed definition; `file` is only used to name the source in errors.
    pub fn from_value(
        definition: &Value,
        file: &Path,
    ) -> Result<DeclarativeParser, Vec<LoadError>> {
        let mut problems = Problems {
            file,
            errors: Vec::new(),
        };
        let Some(fields) = definition.as_object() else {
            problems.add(format!(
                "the file must hold one JSON object (a parser definition), not {}",
                json_type(definition)
            ));
            return Err(problems.errors);
        };
        check_keys(fields, TOP_LEVEL_KEYS, "", &mut problems);

        let name = match fields.get("name") {
            Some(Value::String(name)) if valid_name(name) => Some(name.clone()),
            Some(Value::String(name)) => {
                problems.add(format!(
                    "/name: {name:?} is not a usable parser name; use 1 to {NAME_MAX_CHARS} \
                     ASCII letters, digits, '_', '-' or '.'"
                ));
                None
            }
            Some(other) => {
                problems.add(format!("/name: must be a string, not {}", json_type(other)));
                None
            }
            None => {
                problems.add("\"name\" is missing; every parser needs a unique name");
                None
            }
        };

        let description = match fields.get("description") {
            None => format!("Declarative parser from {}", file_label(file)),
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                problems.add(format!(
                    "/description: must be a string, not {}",
                    json_type(other)
                ));
                String::new()
            }
        };

        let schema = fields.get("schema").cloned();
        let validator = match &schema {
            None => {
                problems.add(
                    "\"schema\" is missing; give the JSON Schema of the payload (use {} to \
                     accept any JSON)",
                );
                None
            }
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => match compile_schema(schema) {
                Ok(validator) => Some(validator),
                Err(message) => {
                    problems.errors.push(LoadError::Schema {
                        file: file.to_path_buf(),
                        message,
                    });
                    None
                }
            },
            Some(other) => {
                problems.add(format!(
                    "/schema: must be a JSON Schema object (or true/false), not {}",
                    json_type(other)
                ));
                None
            }
        };

        let lists_sensors = fields
            .get("sensors")
            .and_then(Value::as_array)
            .is_some_and(|items| !items.is_empty());
        let sensors = match fields.get("sensors") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    parse_sensor(item, &format!("/sensors/{index}"), &mut problems)
                })
                .collect(),
            Some(other) => {
                problems.add(format!(
                    "/sensors: must be an array of sensor mappings, not {}",
                    json_type(other)
                ));
                Vec::new()
            }
        };

        let status = fields
            .get("gateway_status")
            .and_then(|value| parse_status(value, "/gateway_status", &mut problems));

        let gateway = match fields.get("gateway") {
            Some(value) => parse_sources(value, "/gateway", &mut problems),
            None => {
                problems.add(
                    "\"gateway\" is missing; say where the gateway identifier comes from, e.g. \
                     {\"capture\": \"gateway\"} or {\"value\": \"default\"}",
                );
                Vec::new()
            }
        };

        let datalogger = match fields.get("datalogger") {
            Some(value) => parse_sources(value, "/datalogger", &mut problems),
            None => {
                if lists_sensors {
                    problems.add(
                        "\"datalogger\" is missing; sensors belong to a datalogger, so say where \
                         its identifier comes from, e.g. {\"capture\": \"datalogger\"}",
                    );
                }
                Vec::new()
            }
        };

        let timestamp = fields
            .get("timestamp")
            .and_then(|value| parse_timestamp(value, "/timestamp", &mut problems));

        // Listed but broken outputs have been reported above, with the reason.
        if !lists_sensors && !fields.contains_key("gateway_status") {
            problems.add(
                "the parser would store nothing; add at least one entry to \"sensors\" or a \
                 \"gateway_status\"",
            );
        }

        let (Some(name), Some(schema), Some(validator)) = (name, schema, validator) else {
            problems.ensure_reported();
            return Err(problems.errors);
        };
        if !problems.errors.is_empty() {
            return Err(problems.errors);
        }

        let mut read_pointers: Vec<String> = sensors
            .iter()
            .map(|sensor| sensor.value.clone())
            .chain(status.iter().flat_map(|status| {
                std::iter::once(status.pointer.clone())
                    .chain(status.metadata.iter().map(|(_, pointer)| pointer.clone()))
            }))
            .collect();
        read_pointers.sort();
        read_pointers.dedup();

        Ok(DeclarativeParser {
            name,
            description,
            schema,
            validator,
            file: file.to_path_buf(),
            gateway,
            datalogger,
            timestamp,
            sensors,
            status,
            read_pointers,
        })
    }

    /// The file this parser was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Parser for DeclarativeParser {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn kind(&self) -> &'static str {
        "declarative"
    }

    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        validate_payload(&self.validator, input.payload)?;
        let gateway = resolve_identifier(&self.gateway, input, "gateway")?;
        let ts = match &self.timestamp {
            Some(spec) => match input.payload.pointer(&spec.pointer) {
                None | Some(Value::Null) => input.received_at,
                Some(value) => timestamp_from_value(value, &spec.pointer, spec.format)?,
            },
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

impl SensorSpec {
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
    fn parse(text: &str) -> Result<NameTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(NamePart::Literal(rest.to_owned()));
                    rest = "";
                }
                Some(at) if rest[at..].starts_with('}') => {
                    return Err(format!(
                        "{text:?} has a '}}' without a matching '{{'; placeholders look like \
                         {{channel}}"
                    ));
                }
                Some(at) => {
                    if at > 0 {
                        parts.push(NamePart::Literal(rest[..at].to_owned()));
                    }
                    let after = &rest[at + 1..];
                    let Some(end) = after.find('}') else {
                        return Err(format!("{text:?} has a '{{' that is never closed"));
                    };
                    let capture = &after[..end];
                    if capture.is_empty() || capture.contains('{') {
                        return Err(format!(
                            "{text:?} has an empty or nested placeholder; name a topic capture, \
                             e.g. {{channel}}"
                        ));
                    }
                    parts.push(NamePart::Capture(capture.to_owned()));
                    rest = &after[end + 1..];
                }
            }
        }
        if text.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(NameTemplate {
            text: text.to_owned(),
            parts,
        })
    }

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

impl StatusSpec {
    fn record(
        &self,
        input: &ParseInput<'_>,
        gateway: &str,
        ts: DateTime<Utc>,
    ) -> Result<Option<GatewayRecord>, ParseError> {
        let online = match input.payload.pointer(&self.pointer) {
            None | Some(Value::Null) => None,
            Some(value) => Some(self.is_online(value)?),
        };
        let metadata: Map<String, Value> = self
            .metadata
            .iter()
            .filter_map(|(key, pointer)| {
                input
                    .payload
                    .pointer(pointer)
                    .filter(|value| !value.is_null())
                    .map(|value| (key.clone(), value.clone()))
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
                &self.pointer,
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

/// `1` and `1.0` are the same status code.
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn list_values(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
            IdSource::Literal(_) => "a literal value".to_owned(),
        })
        .collect();
    Err(ParseError::IdentifierNotFound {
        entity,
        tried: tried.join("; "),
    })
}

/// Collects every problem of one file so the operator can fix them in one go.
struct Problems<'a> {
    file: &'a Path,
    errors: Vec<LoadError>,
}

impl Problems<'_> {
    fn add(&mut self, problem: impl Into<String>) {
        self.errors.push(LoadError::Invalid {
            file: self.file.to_path_buf(),
            problem: problem.into(),
        });
    }

    /// A rejected definition must always say why.
    fn ensure_reported(&mut self) {
        if self.errors.is_empty() {
            self.add("the definition is incomplete");
        }
    }
}

fn check_keys(
    fields: &Map<String, Value>,
    allowed: &[&str],
    at: &str,
    problems: &mut Problems<'_>,
) {
    for key in fields.keys() {
        if key != COMMENT_KEY && !allowed.contains(&key.as_str()) {
            problems.add(format!(
                "{at}/{key}: unknown key; expected one of: {}",
                allowed.join(", ")
            ));
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= NAME_MAX_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// RFC 6901: empty (the whole payload) or `/`-separated tokens where `~` escapes only 0 and 1.
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON pointer; pointers start with '/', e.g. \"/{pointer}\" \
             (or are \"\" for the whole payload)"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{pointer:?} is not a valid JSON pointer: '~' must be followed by 0 (for '~') or \
                 1 (for '/')"
            ));
        }
    }
    Ok(())
}

fn pointer_field(value: Option<&Value>, at: &str, problems: &mut Problems<'_>) -> Option<String> {
    match value {
        Some(Value::String(pointer)) => match check_pointer(pointer) {
            Ok(()) => Some(pointer.clone()),
            Err(problem) => {
                problems.add(format!("{at}: {problem}"));
                None
            }
        },
        Some(other) => {
            problems.add(format!(
                "{at}: must be a JSON pointer string such as \"/temperature\", not {}",
                json_type(other)
            ));
            None
        }
        None => {
            problems.add(format!(
                "{at} is missing; give a JSON pointer such as \"/temperature\""
            ));
            None
        }
    }
}

fn non_empty_string(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::String(_) => {
            problems.add(format!("{at}: must not be empty"));
            None
        }
        other => {
            problems.add(format!("{at}: must be a string, not {}", json_type(other)));
            None
        }
    }
}

fn parse_sources(value: &Value, at: &str, problems: &mut Problems<'_>) -> Vec<IdSource> {
    match value {
        Value::Object(_) => parse_source(value, at, problems).into_iter().collect(),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| parse_source(item, &format!("{at}/{index}"), problems))
            .collect(),
        _ => {
            problems.add(format!(
                "{at}: must be a source such as {{\"capture\": \"gateway\"}}, {{\"pointer\": \
                 \"/id\"}} or {{\"value\": \"site-a\"}}, or a non-empty list of them tried in \
                 order"
            ));
            Vec::new()
        }
    }
}

fn parse_source(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<IdSource> {
    let Some(fields) = value.as_object() else {
        problems.add(format!(
            "{at}: must be an object with one of the keys capture, pointer or value, not {}",
            json_type(value)
        ));
        return None;
    };
    check_keys(fields, SOURCE_KEYS, at, problems);
    match (
        fields.get("capture"),
        fields.get("pointer"),
        fields.get("value"),
    ) {
        (Some(key), None, None) => {
            non_empty_string(key, &format!("{at}/capture"), problems).map(IdSource::Capture)
        }
        (None, Some(pointer), None) => {
            pointer_field(Some(pointer), &format!("{at}/pointer"), problems).map(IdSource::Pointer)
        }
        (None, None, Some(value)) => {
            non_empty_string(value, &format!("{at}/value"), problems).map(IdSource::Literal)
        }
        (None, None, None) => {
            problems.add(format!(
                "{at}: needs one of the keys capture, pointer or value"
            ));
            None
        }
        _ => {
            let present: Vec<&str> = SOURCE_KEYS
                .iter()
                .copied()
                .filter(|key| fields.contains_key(*key))
                .collect();
            problems.add(format!(
                "{at}: has {} at once; use exactly one, or a list of sources to try in order",
                present.join(" and ")
            ));
            None
        }
    }
}

fn parse_sensor(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<SensorSpec> {
    let Some(fields) = value.as_object() else {
        problems.add(format!(
            "{at}: must be an object such as {{\"name\": \"temperature\", \"value\": \"/temp\"}}, \
             not {}",
            json_type(value)
        ));
        return None;
    };
    check_keys(fields, SENSOR_KEYS, at, problems);

    let name = match (fields.get("name"), fields.get("name_from_capture")) {
        (Some(_), Some(_)) => {
            problems.add(format!(
                "{at}: has both name and name_from_capture; use one"
            ));
            None
        }
        (Some(Value::String(text)), None) => match NameTemplate::parse(text) {
            Ok(template) => Some(template),
            Err(problem) => {
                problems.add(format!("{at}/name: {problem}"));
                None
            }
        },
        (Some(other), None) => {
            problems.add(format!(
                "{at}/name: must be a string, not {}",
                json_type(other)
            ));
            None
        }
        (None, Some(capture)) => {
            non_empty_string(capture, &format!("{at}/name_from_capture"), problems).map(|key| {
                NameTemplate {
                    text: format!("{{{key}}}"),
                    parts: vec![NamePart::Capture(key)],
                }
            })
        }
        (None, None) => {
            problems.add(format!(
                "{at}: needs a \"name\" (which may use {{capture}} placeholders) or a \
                 \"name_from_capture\""
            ));
            None
        }
    };

    let pointer = pointer_field(fields.get("value"), &format!("{at}/value"), problems);

    let unit = match fields.get("unit") {
        None | Some(Value::Null) => None,
        Some(Value::String(unit)) if unit.is_empty() => None,
        Some(Value::String(unit)) => Some(unit.clone()),
        Some(other) => {
            problems.add(format!(
                "{at}/unit: must be a string, not {}",
                json_type(other)
            ));
            None
        }
    };

    let mut map = HashMap::new();
    match fields.get("map") {
        None => {}
        Some(Value::Object(entries)) => {
            for (key, mapped) in entries {
                match mapped.as_f64().filter(|number| number.is_finite()) {
                    Some(number) => {
                        map.insert(key.clone(), number);
                    }
                    None => problems.add(format!(
                        "{at}/map/{}: must be a number, not {}",
                        super::escape_pointer_token(key),
                        json_type(mapped)
                    )),
                }
            }
        }
        Some(other) => problems.add(format!(
            "{at}/map: must be an object from payload strings to numbers, e.g. {{\"on\": 1, \
             \"off\": 0}}, not {}",
            json_type(other)
        )),
    }

    Some(SensorSpec {
        name: name?,
        value: pointer?,
        unit,
        map,
    })
}

fn parse_timestamp(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<TimestampSpec> {
    let Some(fields) = value.as_object() else {
        problems.add(format!(
            "{at}: must be an object such as {{\"pointer\": \"/time\"}}, not {}",
            json_type(value)
        ));
        return None;
    };
    check_keys(fields, TIMESTAMP_KEYS, at, problems);
    let pointer = pointer_field(fields.get("pointer"), &format!("{at}/pointer"), problems);
    let format = match fields.get("format") {
        None => Some(TimestampFormat::Auto),
        Some(Value::String(text)) => match text.as_str() {
            "auto" => Some(TimestampFormat::Auto),
            "rfc3339" => Some(TimestampFormat::Rfc3339),
            "unix_s" => Some(TimestampFormat::UnixSeconds),
            "unix_ms" => Some(TimestampFormat::UnixMillis),
            _ => {
                problems.add(format!(
                    "{at}/format: {text:?} is not a timestamp format; use auto, rfc3339, unix_s \
                     or unix_ms"
                ));
                None
            }
        },
        Some(other) => {
            problems.add(format!(
                "{at}/format: must be a string, not {}",
                json_type(other)
            ));
            None
        }
    };
    Some(TimestampSpec {
        pointer: pointer?,
        format: format?,
    })
}

fn parse_status(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<StatusSpec> {
    let Some(fields) = value.as_object() else {
        problems.add(format!(
            "{at}: must be an object such as {{\"pointer\": \"/status\", \"online\": \
             [\"online\"]}}, not {}",
            json_type(value)
        ));
        return None;
    };
    check_keys(fields, STATUS_KEYS, at, problems);
    let pointer = pointer_field(fields.get("pointer"), &format!("{at}/pointer"), problems);
    let online = match fields.get("online") {
        None => Some(vec![Value::Bool(true), Value::String("online".to_owned())]),
        Some(value) => status_values(value, &format!("{at}/online"), problems),
    };
    let offline = match fields.get("offline") {
        None => Some(None),
        Some(value) => status_values(value, &format!("{at}/offline"), problems).map(Some),
    };
    if let (Some(online), Some(Some(offline))) = (&online, &offline) {
        for value in online {
            if offline.iter().any(|other| same_scalar(value, other)) {
                problems.add(format!(
                    "{at}: {value} is listed as both online and offline"
                ));
            }
        }
    }
    let mut metadata = Vec::new();
    match fields.get("metadata") {
        None => {}
        Some(Value::Object(entries)) => {
            for (key, pointer) in entries {
                let entry_at = format!("{at}/metadata/{}", super::escape_pointer_token(key));
                if key.is_empty() {
                    problems.add(format!("{entry_at}: metadata keys must not be empty"));
                } else if let Some(pointer) = pointer_field(Some(pointer), &entry_at, problems) {
                    metadata.push((key.clone(), pointer));
                }
            }
        }
        Some(other) => problems.add(format!(
            "{at}/metadata: must be an object from metadata keys to JSON pointers, e.g. \
             {{\"firmware\": \"/fw\"}}, not {}",
            json_type(other)
        )),
    }
    Some(StatusSpec {
        pointer: pointer?,
        online: online?,
        offline: offline?,
        metadata,
    })
}

fn status_values(value: &Value, at: &str, problems: &mut Problems<'_>) -> Option<Vec<Value>> {
    match value {
        Value::Array(items)
            if !items.is_empty()
                && items.iter().all(|item| {
                    matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_))
                }) =>
        {
            Some(items.clone())
        }
        _ => {
            problems.add(format!(
                "{at}: must be a non-empty list of strings, numbers or booleans, e.g. \
                 [\"online\", \"up\"]"
            ));
            None
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn file_label(file: &Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// The definition files of a folder, sorted so that load order and error order are stable.
/// Only `*.json` files directly inside count; hidden files (editor locks, backups) are skipped.
/// A missing folder holds no definitions.
pub(crate) fn definition_files(dir: &Path) -> (Vec<PathBuf>, Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(source) => {
            return (
                Vec::new(),
                vec![LoadError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                }],
            )
        }
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(source) => {
                errors.push(LoadError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if !hidden && is_json && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    (files, errors)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{captures, received_at, run};
    use super::super::Registry;
    use super::*;
    use serde_json::json;

    fn relay_definition() -> Value {
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

    fn parser(definition: &Value) -> DeclarativeParser {
        match DeclarativeParser::from_value(definition, Path::new("test.json")) {
            Ok(parser) => parser,
            Err(errors) => panic!("definition rejected: {errors:?}"),
        }
    }

    fn problems(definition: &Value) -> Vec<String> {
        match DeclarativeParser::from_value(definition, Path::new("bad.json")) {
            Ok(_) => panic!("definition accepted: {definition}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_problem(definition: &Value, needle: &str) {
        let found = problems(definition);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("bad.json: ") && p.contains(needle)),
            "expected a problem containing {needle:?}, got {found:?}"
        );
    }

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
    fn schema_is_enforced_before_mapping() {
        let parser = parser(&relay_definition());
        match run(
            &parser,
            "t",
            &[("gateway", "g")],
            &json!({"temperature": "hot"}),
        ) {
            Err(ParseError::Schema(messages)) => {
                assert!(messages[0].starts_with("/temperature: "), "{messages:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        match run(&parser, "t", &[("gateway", "g")], &json!([1])) {
            Err(ParseError::Schema(messages)) => assert!(messages[0].starts_with("(root): ")),
            other => panic!("unexpected {other:?}"),
        }
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
                received_at: received_at(),
            })
            .unwrap();
        assert_eq!(out.dataloggers[0].sensors[0].name, "pressure");
        assert_eq!(out.dataloggers[0].gateway, "default");
        assert!(parser.description().contains("test.json"));
    }

    #[test]
    fn name_templates() {
        let template = NameTemplate::parse("relay_{channel}_{kind}").unwrap();
        assert_eq!(template.parts.len(), 4);
        for bad in ["relay_{channel", "relay}", "x{}", "a{b{c}}", "   "] {
            assert!(NameTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pointers_are_checked() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/0/b~0~1").is_ok());
        assert!(check_pointer("temp").is_err());
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }

    #[test]
    fn bad_definitions_report_every_problem() {
        let definition = json!({
            "name": "bad name!",
            "schema": {"type": 12},
            "gateway": {"capture": "gateway", "value": "x"},
            "timestamp": {"pointer": "time", "format": "epoch"},
            "sensors": [
                {"value": "temp"},
                {"name": "t", "name_from_capture": "c", "value": "/t"},
                {"name": "u", "value": "/u", "map": {"on": "1"}, "unit": 5},
                "temperature"
            ],
            "gateway_status": {"pointer": "/s", "online": ["up"], "offline": ["up"]},
            "sensor": []
        });
        let found = problems(&definition);
        for needle in [
            "/name: \"bad name!\" is not a usable parser name",
            "\"schema\" is not a usable JSON Schema",
            "/gateway: has capture and value at once",
            "/timestamp/pointer: \"time\" is not a JSON pointer",
            "/timestamp/format: \"epoch\" is not a timestamp format",
            "/sensors/0: needs a \"name\"",
            "/sensors/0/value: \"temp\" is not a JSON pointer",
            "/sensors/1: has both name and name_from_capture",
            "/sensors/2/map/on: must be a number",
            "/sensors/2/unit: must be a string",
            "/sensors/3: must be an object",
            "\"datalogger\" is missing",
            "/gateway_status: \"up\" is listed as both online and offline",
            "/sensor: unknown key",
        ] {
            assert!(
                found
                    .iter()
                    .any(|p| p.starts_with("bad.json: ") && p.contains(needle)),
                "missing {needle:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn definitions_must_declare_output_and_required_keys() {
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}}),
            "would store nothing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}, "sensors": []}),
            "would store nothing",
        );
        assert_problem(
            &json!({"schema": {}, "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "\"name\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "\"schema\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway_status": {"pointer": "/s"}}),
            "\"gateway\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": [], "gateway_status": {"pointer": "/s"}}),
            "/gateway: must be a source",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": ""}, "gateway_status": {"pointer": "/s"}}),
            "/gateway/value: must not be empty",
        );
        assert_problem(
            &json!({"name": "x", "schema": "object", "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "/schema: must be a JSON Schema object",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s", "online": []}}),
            "/gateway_status/online: must be a non-empty list",
        );
        assert_problem(&json!([1]), "must hold one JSON object");
        assert_problem(
            &json!({"name": "", "schema": {}}),
            "/name: \"\" is not a usable parser name",
        );
    }

    #[test]
    fn comments_are_allowed() {
        let mut definition = relay_definition();
        definition["$comment"] = json!("shipped with the relay controller firmware 1.x");
        definition["sensors"][0]["$comment"] = json!("relay coil state");
        parser(&definition);
    }

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn folder_loading_collects_errors_from_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = relay_definition().to_string();
        write(dir.path(), "a_relay.json", &good);
        write(dir.path(), "b_same_name.json", &good);
        write(
            dir.path(),
            "c_builtin.json",
            &json!({
                "name": "flat_telemetry", "schema": {}, "gateway": {"value": "g"},
                "gateway_status": {"pointer": "/s"}
            })
            .to_string(),
        );
        write(dir.path(), "d_broken.json", "{\"name\": ");
        write(dir.path(), "e_not_utf8.json", "\u{0}");
        std::fs::write(dir.path().join("f_binary.json"), [0xff, 0xfe, 0x00]).unwrap();
        write(dir.path(), "README.md", "not a parser");
        write(dir.path(), ".hidden.json", "garbage");
        std::fs::create_dir(dir.path().join("nested.json")).unwrap();

        let errors = Registry::load(dir.path()).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{messages:#?}");
        let expect = [
            ("b_same_name.json", "already taken by"),
            ("c_builtin.json", "already taken by the built-in parser"),
            ("d_broken.json", "not valid JSON"),
            ("e_not_utf8.json", "not valid JSON"),
            ("f_binary.json", "not valid JSON"),
        ];
        for (error, (file, needle)) in errors.iter().zip(expect) {
            assert!(error.path().ends_with(file), "{error}");
            let text = error.to_string();
            assert!(
                text.starts_with(&error.path().display().to_string()),
                "{text}"
            );
            assert!(text.contains(needle), "{text}");
        }
        assert!(messages[0].contains("a_relay.json"), "{}", messages[0]);
    }

    #[test]
    fn folder_loading_succeeds_with_good_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "relay.json", &relay_definition().to_string());
        write(dir.path(), "notes.txt", "ignored");
        let registry = Registry::load(dir.path()).unwrap();
        assert_eq!(registry.names().len(), 4);
        let parser = registry.get("relay_test_v1").unwrap();
        assert_eq!(parser.kind(), "declarative");
        let info = registry
            .describe()
            .into_iter()
            .find(|info| info.name == "relay_test_v1")
            .unwrap();
        assert_eq!(info.description, "relay controller under test");
        assert_eq!(info.schema, relay_definition()["schema"]);
    }

    #[test]
    fn shipped_parsers_load_cleanly() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"));
        let registry = match Registry::load(dir) {
            Ok(registry) => registry,
            Err(errors) => panic!("shipped parsers do not load: {errors:#?}"),
        };
        let (files, _) = definition_files(dir);
        assert!(
            !files.is_empty(),
            "no parser files found in {}",
            dir.display()
        );
        assert_eq!(registry.names().len(), 3 + files.len());
    }

    #[test]
    fn shipped_relay_controller_handles_its_three_topics() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"));
        let parser = DeclarativeParser::from_file(&dir.join("relay_controller_v1.json"))
            .unwrap_or_else(|errors| panic!("{errors:#?}"));
        assert_eq!(parser.name(), "relay_controller_v1");

        let relay = run(
            &parser,
            "relayctl/ctl-7/relay/2",
            &[("gateway", "ctl-7"), ("channel", "2")],
            &json!({"state": "ON", "time": "2024-05-01T12:00:00Z"}),
        )
        .unwrap();
        assert_eq!(relay.dataloggers[0].sensors[0].name, "relay_2");
        assert_eq!(relay.dataloggers[0].sensors[0].value, 1.0);
        assert_eq!(relay.dataloggers[0].ts, received_at());

        let status = run(
            &parser,
            "relayctl/ctl-7/status",
            &[("gateway", "ctl-7")],
            &json!({"status": "online", "firmware": "1.4.2", "ip": "192.0.2.10"}),
        )
        .unwrap();
        assert_eq!(status.gateways[0].online, Some(true));
        assert_eq!(
            status.gateways[0].metadata.get("firmware"),
            Some(&json!("1.4.2"))
        );

        let telemetry = run(
            &parser,
            "relayctl/ctl-7/telemetry",
            &[("gateway", "ctl-7")],
            &json!({"temperature": 41.5, "supply_voltage": 12.1, "rssi": -67,
                    "time": received_at().timestamp_millis()}),
        )
        .unwrap();
        let record = &telemetry.dataloggers[0];
        assert_eq!(record.ts, received_at());
        assert_eq!(record.sensors.len(), 3);
        assert!(record
            .sensors
            .iter()
            .any(|s| s.name == "temperature" && s.unit.as_deref() == Some("°C")));

        let bad = run(
            &parser,
            "relayctl/ctl-7/telemetry",
            &[("gateway", "ctl-7")],
            &json!({"rssi": "weak"}),
        );
        assert!(matches!(bad, Err(ParseError::Schema(_))), "{bad:?}");
    }
}
