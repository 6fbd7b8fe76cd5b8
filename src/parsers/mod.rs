//! Parser registry: turns one MQTT payload, plus the captures of the topic pattern that matched it,
//! into gateway and datalogger records, using built-in Rust parsers or declarative JSON files.

mod datalogger_readings_v1;
mod declarative;
mod flat_telemetry;
mod gateway_status_v1;
mod plain_json;
mod store;

pub use datalogger_readings_v1::DataloggerReadingsV1;
pub use declarative::DeclarativeParser;
pub use flat_telemetry::FlatTelemetry;
pub use gateway_status_v1::GatewayStatusV1;
pub use store::ParserStore;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Deepest array/object nesting a payload may have. Device payloads are flat or nearly so; the
/// limit keeps validation and the recursive walks below far away from any stack limit.
pub const MAX_DEPTH: usize = 64;

/// A payload that breaks many rules would otherwise produce an error list as big as itself, and
/// the list ends up in the parsing log.
const MAX_SCHEMA_ERRORS: usize = 20;
const MAX_MESSAGE_CHARS: usize = 200;

/// Unix timestamps at or above this are taken as milliseconds: as seconds they would lie in the
/// year 5138, as milliseconds they lie after March 1973.
const MILLIS_THRESHOLD: f64 = 1e11;

/// One message handed to a parser.
#[derive(Debug, Clone, Copy)]
pub struct ParseInput<'a> {
    pub topic: &'a str,
    /// Named single-level captures of the topic pattern, e.g. `{gateway}` → `"gw-01"`.
    pub captures: &'a BTreeMap<String, String>,
    pub payload: &'a Value,
    pub received_at: DateTime<Utc>,
}

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

/// Why a payload was not stored. The text is written to the parsing log and shown to operators,
/// so every message names the offending field (as a JSON pointer) or the setting to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "payload is {size} bytes, over the {limit}-byte limit; shorten the message at the device \
         or raise the payload size limit"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "payload is not UTF-8 text (invalid byte sequence at byte offset {offset}); \
         JSON payloads must be UTF-8 encoded"
    )]
    NotUtf8 { offset: usize },
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload is empty; a JSON document was expected")]
    Empty,
    #[error(
        "payload nests arrays/objects deeper than {limit} levels (limit exceeded at byte offset \
         {offset})"
    )]
    TooDeep { limit: usize, offset: usize },
    /// JSON Schema violations, each `"<instance path>: <message>"`.
    #[error("payload does not match the parser's JSON Schema: {}", .0.join("; "))]
    Schema(Vec<String>),
    /// The text says where the identifier was looked for, e.g. which capture and payload field.
    #[error("missing identifier: {0}")]
    MissingIdentifier(&'static str),
    /// A declarative parser found none of its configured identifier sources.
    #[error("missing {entity} identifier: {tried}")]
    IdentifierNotFound { entity: &'static str, tried: String },
    #[error(
        "sensor name template {template:?} needs the topic capture {{{capture}}}, which the topic \
         pattern does not provide (or it matched an empty level)"
    )]
    MissingCapture { capture: String, template: String },
    #[error("invalid value at {}: {reason}", pointer_label(.pointer))]
    InvalidValue { pointer: String, reason: String },
    #[error(
        "no parser named {0:?} is registered; bind the topic pattern to one of the names listed \
         by GET /api/parsers"
    )]
    UnknownParser(String),
}

impl ParseError {
    pub(crate) fn invalid(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError::InvalidValue {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// An empty JSON pointer means the whole document, which reads badly as an empty string.
fn pointer_label(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(root)"
    } else {
        pointer
    }
}

/// Turns raw MQTT payload bytes into JSON: size limit, then UTF-8, then JSON (with a nesting
/// limit and a check that every number is a finite 64-bit float).
pub fn decode_payload(bytes: &[u8], max_bytes: usize) -> Result<Value, ParseError> {
    if bytes.len() > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    // Some device SDKs write a byte-order mark; it carries no meaning and serde_json refuses it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
        return Err(ParseError::Empty);
    }
    // Checked on the raw text so that a hostile payload is refused before any recursive parser
    // sees it.
    check_depth(text.as_bytes(), MAX_DEPTH)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
    // serde_json already refuses numbers such as 1e400, unless some crate in the build turns on
    // its arbitrary-precision mode; this keeps the promise either way.
    if let Some(pointer) = first_non_finite(&value) {
        return Err(ParseError::invalid(
            pointer,
            "number does not fit a 64-bit float",
        ));
    }
    Ok(value)
}

fn check_depth(bytes: &[u8], limit: usize) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(ParseError::TooDeep { limit, offset });
                }
            }
            // Unbalanced brackets are the JSON parser's business; only keep the count sane.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Recursion is safe here: the depth was bounded before parsing.
fn first_non_finite(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => (!n.as_f64().is_some_and(f64::is_finite)).then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_non_finite(item).map(|rest| format!("/{i}{rest}"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            first_non_finite(item).map(|rest| format!("/{}{rest}", escape_pointer_token(key)))
        }),
        _ => None,
    }
}

/// One reference token of a JSON pointer (RFC 6901): `~` and `/` must be escaped.
pub(crate) fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A parser turns one message into records.
pub trait Parser: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The JSON Schema every payload must satisfy before it is mapped.
    fn schema(&self) -> &Value;
    /// `"builtin"` or `"declarative"`.
    fn kind(&self) -> &'static str;
    /// Validates the payload against [`Parser::schema`], then maps it.
    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError>;
    /// Reads the raw payload without building a JSON tree, for the shape that nearly every
    /// message of this parser has. Returns exactly what decoding and [`Parser::parse`] would
    /// return for a payload it can prove acceptable, and `None` for anything else, which then
    /// takes the full path and gets its error message there.
    fn parse_fast(&self, _input: &BytesInput<'_>) -> Option<ParseOutput> {
        None
    }
}

/// One message as received, for [`Parser::parse_fast`]; the size limit is already checked.
#[derive(Debug, Clone, Copy)]
pub struct BytesInput<'a> {
    pub captures: &'a BTreeMap<String, String>,
    pub payload: &'a [u8],
    pub received_at: DateTime<Utc>,
}

/// A parser as `GET /api/parsers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParserInfo {
    pub name: String,
    pub kind: &'static str,
    pub description: String,
    pub schema: Value,
}

/// A problem with one declarative parser file, or with the folder that holds them.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot list the parser folder: {source}", .dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the file: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid JSON: {message}", .file.display())]
    Json { file: PathBuf, message: String },
    #[error("{}: {problem}", .file.display())]
    Invalid { file: PathBuf, problem: String },
    #[error("{}: \"schema\" is not a usable JSON Schema: {message}", .file.display())]
    Schema { file: PathBuf, message: String },
    #[error(
        "{}: parser name {name:?} is already taken by {taken_by}; give this parser another \"name\"",
        .file.display()
    )]
    DuplicateName {
        file: PathBuf,
        name: String,
        taken_by: String,
    },
}

impl LoadError {
    /// The file (or folder) the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::ReadDir { dir, .. } => dir,
            LoadError::Read { file, .. }
            | LoadError::Json { file, .. }
            | LoadError::Invalid { file, .. }
            | LoadError::Schema { file, .. }
            | LoadError::DuplicateName { file, .. } => file,
        }
    }
}

/// All parsers known to the service, by name. Cloning is cheap: the map is shared.
#[derive(Clone)]
pub struct Registry {
    parsers: Arc<BTreeMap<String, Arc<dyn Parser>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("parsers", &self.names())
            .finish()
    }
}

impl Registry {
    /// The built-in parsers only.
    pub fn builtin() -> Registry {
        Registry {
            parsers: Arc::new(builtin_map()),
        }
    }

    /// The built-ins plus every `*.json` file directly inside `dir` (a missing folder adds none).
    /// Every problem in every file is reported, not just the first.
    pub fn load(dir: &Path) -> Result<Registry, Vec<LoadError>> {
        let mut parsers = builtin_map();
        let mut loaded_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        let (files, mut errors) = declarative::definition_files(dir);
        for file in files {
            match DeclarativeParser::from_file(&file) {
                Ok(parser) => {
                    let name = parser.name().to_owned();
                    if parsers.contains_key(&name) {
                        let taken_by = loaded_from.get(&name).map_or_else(
                            || "the built-in parser of that name".to_owned(),
                            |other| other.display().to_string(),
                        );
                        errors.push(LoadError::DuplicateName {
                            file,
                            name,
                            taken_by,
                        });
                        continue;
                    }
                    loaded_from.insert(name.clone(), file);
                    parsers.insert(name, Arc::new(parser));
                }
                Err(mut problems) => errors.append(&mut problems),
            }
        }
        if errors.is_empty() {
            Ok(Registry {
                parsers: Arc::new(parsers),
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Parser>> {
        self.parsers.get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.parsers.contains_key(name)
    }

    /// Sorted.
    pub fn names(&self) -> Vec<String> {
        self.parsers.keys().cloned().collect()
    }

    /// Sorted by name.
    pub fn describe(&self) -> Vec<ParserInfo> {
        self.parsers
            .values()
            .map(|parser| ParserInfo {
                name: parser.name().to_owned(),
                kind: parser.kind(),
                description: parser.description().to_owned(),
                schema: parser.schema().clone(),
            })
            .collect()
    }

    /// Looks the parser up and runs it; an unknown name is a [`ParseError::UnknownParser`].
    pub fn parse(&self, name: &str, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        match self.parsers.get(name) {
            Some(parser) => parser.parse(input),
            None => Err(ParseError::UnknownParser(name.to_owned())),
        }
    }
}

fn builtin_map() -> BTreeMap<String, Arc<dyn Parser>> {
    let parsers: [Arc<dyn Parser>; 3] = [
        Arc::new(DataloggerReadingsV1::new()),
        Arc::new(GatewayStatusV1::new()),
        Arc::new(FlatTelemetry::new()),
    ];
    parsers
        .into_iter()
        .map(|parser| (parser.name().to_owned(), parser))
        .collect()
}

/// Format validation is off by default in recent drafts; operators who write `"format":
/// "date-time"` expect it enforced, and the built-ins rely on it for `ts`.
pub(crate) fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            if matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Referencing(_)
            ) {
                // Network lookups are deliberately not built in: a parser must not depend on
                // another server being up when the service starts.
                format!(
                    "{e}; only references inside the schema (\"$defs\") and absolute file:// \
                     references can be resolved"
                )
            } else {
                match e.instance_path().as_str() {
                    "" => e.to_string(),
                    at => format!("at {at} in the schema: {e}"),
                }
            }
        })
}

pub(crate) fn validate_payload(
    validator: &jsonschema::Validator,
    payload: &Value,
) -> Result<(), ParseError> {
    // Valid payloads are the common case, and this check builds no error messages.
    if validator.is_valid(payload) {
        return Ok(());
    }
    let mut messages = Vec::new();
    let mut total = 0usize;
    for error in validator.iter_errors(payload) {
        total += 1;
        if messages.len() < MAX_SCHEMA_ERRORS {
            let path = pointer_label(error.instance_path().as_str()).to_owned();
            messages.push(format!("{path}: {}", describe_violation(&error)));
        }
    }
    if total > messages.len() {
        messages.push(format!("and {} more errors", total - messages.len()));
    }
    if messages.is_empty() {
        messages.push("(root): rejected by the schema".to_owned());
    }
    Err(ParseError::Schema(messages))
}

/// jsonschema quotes the offending value, which may be an entire object; past a few lines the
/// value is replaced by the word "value" so that the rule it broke stays readable.
fn describe_violation(error: &jsonschema::ValidationError<'_>) -> String {
    let full = error.to_string();
    if full.chars().count() <= MAX_MESSAGE_CHARS {
        full
    } else {
        truncate(&error.masked().to_string())
    }
}

/// Keeps quoted values in messages to a readable length.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How a timestamp field is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampFormat {
    /// A string is RFC 3339; a number is Unix seconds, or milliseconds from 1e11 on.
    Auto,
    Rfc3339,
    UnixSeconds,
    UnixMillis,
}

pub(crate) fn timestamp_from_value(
    value: &Value,
    pointer: &str,
    format: TimestampFormat,
) -> Result<DateTime<Utc>, ParseError> {
    match (value, format) {
        (Value::String(text), TimestampFormat::Auto | TimestampFormat::Rfc3339) => {
            DateTime::parse_from_rfc3339(text)
                .map(|ts| ts.with_timezone(&Utc))
                .map_err(|e| {
                    ParseError::invalid(
                        pointer,
                        format!(
                            "{} is not an RFC 3339 timestamp such as \"2024-05-01T12:00:00Z\" ({e})",
                            truncate(&value.to_string())
                        ),
                    )
                })
        }
        (Value::Number(n), TimestampFormat::Auto) => {
            let number = n.as_f64().unwrap_or(f64::NAN);
            if number.abs() >= MILLIS_THRESHOLD {
                unix_timestamp(n, true, pointer)
            } else {
                unix_timestamp(n, false, pointer)
            }
        }
        (Value::Number(n), TimestampFormat::UnixSeconds) => unix_timestamp(n, false, pointer),
        (Value::Number(n), TimestampFormat::UnixMillis) => unix_timestamp(n, true, pointer),
        _ => {
            let expected = match format {
                TimestampFormat::Auto => "an RFC 3339 string or a Unix time number",
                TimestampFormat::Rfc3339 => "an RFC 3339 string",
                TimestampFormat::UnixSeconds => "a number of Unix seconds",
                TimestampFormat::UnixMillis => "a number of Unix milliseconds",
            };
            Err(ParseError::invalid(
                pointer,
                format!(
                    "timestamp must be {expected}, got {}",
                    truncate(&value.to_string())
                ),
            ))
        }
    }
}

fn unix_timestamp(
    n: &serde_json::Number,
    millis: bool,
    pointer: &str,
) -> Result<DateTime<Utc>, ParseError> {
    // Integers take the exact path; going through f64 would blur milliseconds.
    let exact = match n.as_i64() {
        Some(whole) if millis => Some(DateTime::from_timestamp_millis(whole)),
        Some(whole) => Some(DateTime::from_timestamp(whole, 0)),
        None => None,
    };
    let ts = match exact {
        Some(ts) => ts,
        None => n.as_f64().and_then(|number| {
            let secs = if millis { number / 1000.0 } else { number };
            // chrono spans about ±262 000 years; checking first keeps the casts below exact.
            if !secs.is_finite() || secs.abs() > 8.0e12 {
                return None;
            }
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0);
            DateTime::from_timestamp(whole as i64, nanos as u32)
        }),
    };
    ts.ok_or_else(|| {
        ParseError::invalid(
            pointer,
            format!(
                "{n} is not a usable Unix time in {}",
                if millis { "milliseconds" } else { "seconds" }
            ),
        )
    })
}

/// A topic capture, unless the pattern lacks it or it matched an empty topic level.
pub(crate) fn capture<'a>(captures: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    captures
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// The built-ins' identifier rule: a non-empty payload string field wins over the capture.
pub(crate) fn payload_or_capture(input: &ParseInput<'_>, key: &str) -> Option<String> {
    input
        .payload
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .or_else(|| capture(input.captures, key))
        .map(str::to_owned)
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
pub(crate) mod test_support {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn received_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    pub(crate) fn captures(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub(crate) fn run(
        parser: &dyn Parser,
        topic: &str,
        pairs: &[(&str, &str)],
        payload: &Value,
    ) -> Result<ParseOutput, ParseError> {
        let captures = captures(pairs);
        parser.parse(&ParseInput {
            topic,
            captures: &captures,
            payload,
            received_at: received_at(),
        })
    }

    /// Decodes like the pipeline does, so hostile bytes take the real path.
    pub(crate) fn run_bytes(
        parser: &dyn Parser,
        pairs: &[(&str, &str)],
        bytes: &[u8],
    ) -> Result<ParseOutput, ParseError> {
        let payload = decode_payload(bytes, 64 * 1024)?;
        run(parser, "test/topic", pairs, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_a_plain_object() {
        let value = decode_payload(br#"{"a": 1, "b": [true, null]}"#, 1024).unwrap();
        assert_eq!(value, json!({"a": 1, "b": [true, null]}));
    }

    #[test]
    fn size_limit_is_checked_before_anything_else() {
        let bytes = vec![0xffu8; 2048];
        assert_eq!(
            decode_payload(&bytes, 1024),
            Err(ParseError::TooLarge {
                size: 2048,
                limit: 1024
            })
        );
        let exact = format!("[{}]", "1,".repeat(9) + "1");
        assert!(decode_payload(exact.as_bytes(), exact.len()).is_ok());
    }

    #[test]
    fn empty_and_blank_payloads_are_empty() {
        assert_eq!(decode_payload(b"", 1024), Err(ParseError::Empty));
        assert_eq!(decode_payload(b" \r\n\t", 1024), Err(ParseError::Empty));
        assert_eq!(
            decode_payload(b"\xef\xbb\xbf", 1024),
            Err(ParseError::Empty)
        );
    }

    #[test]
    fn binary_is_not_utf8_and_names_the_offset() {
        let err = decode_payload(b"{\"a\":\xff\xfe}", 1024).unwrap_err();
        assert_eq!(err, ParseError::NotUtf8 { offset: 5 });
        assert!(err.to_string().contains("byte offset 5"));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let value = decode_payload(b"\xef\xbb\xbf{\"a\":1}", 1024).unwrap();
        assert_eq!(value, json!({"a": 1}));
    }

    #[test]
    fn invalid_json_keeps_the_position() {
        let err = decode_payload(b"{\"a\": }", 1024).unwrap_err();
        match &err {
            ParseError::InvalidJson(message) => assert!(message.contains("column"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("payload is not valid JSON"));
    }

    #[test]
    fn huge_numbers_are_rejected() {
        for text in ["1e400", "{\"v\": -1e400}", "[1, 2, 1E+999]"] {
            let err = decode_payload(text.as_bytes(), 1024).unwrap_err();
            assert!(
                matches!(
                    err,
                    ParseError::InvalidJson(_) | ParseError::InvalidValue { .. }
                ),
                "{text}: {err:?}"
            );
        }
        // Big but finite is fine.
        assert_eq!(decode_payload(b"1e300", 1024).unwrap(), json!(1e300));
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let bytes = vec![b'['; 100_000];
        let err = decode_payload(&bytes, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            ParseError::TooDeep {
                limit: MAX_DEPTH,
                offset: MAX_DEPTH
            }
        );
        let objects = "{\"a\":".repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            decode_payload(objects.as_bytes(), 1 << 20),
            Err(ParseError::TooDeep { .. })
        ));
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine_and_brackets_in_strings_do_not_count() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(decode_payload(ok.as_bytes(), 1 << 20).is_ok());
        let text = format!("{{\"s\": \"{}\\\"[\"}}", "[".repeat(500));
        assert!(decode_payload(text.as_bytes(), 1 << 20).is_ok());
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn invalid_value_at_root_reads_well() {
        let err = ParseError::invalid("", "nothing to store");
        assert_eq!(err.to_string(), "invalid value at (root): nothing to store");
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let at = received_at();
        let rfc = json!("2024-05-01T14:00:00+02:00");
        assert_eq!(
            timestamp_from_value(&rfc, "/ts", TimestampFormat::Auto),
            Ok(at)
        );
        let secs = json!(at.timestamp());
        assert_eq!(
            timestamp_from_value(&secs, "/ts", TimestampFormat::Auto),
            Ok(at)
        );
        let millis = json!(at.timestamp_millis() + 250);
        let parsed = timestamp_from_value(&millis, "/ts", TimestampFormat::Auto).unwrap();
        assert_eq!(parsed.timestamp_millis(), at.timestamp_millis() + 250);
        let fractional = json!(at.timestamp() as f64 + 0.5);
        let parsed = timestamp_from_value(&fractional, "/ts", TimestampFormat::UnixSeconds);
        assert_eq!(
            parsed.map(|ts| ts.timestamp_millis()),
            Ok(at.timestamp_millis() + 500)
        );
    }

    #[test]
    fn bad_timestamps_name_the_pointer() {
        for (value, format) in [
            (json!("yesterday"), TimestampFormat::Auto),
            (json!(1e300), TimestampFormat::Auto),
            (json!(true), TimestampFormat::Auto),
            (json!(17), TimestampFormat::Rfc3339),
            (json!("2024-05-01T12:00:00Z"), TimestampFormat::UnixMillis),
        ] {
            let err = timestamp_from_value(&value, "/time", format).unwrap_err();
            match &err {
                ParseError::InvalidValue { pointer, .. } => assert_eq!(pointer, "/time"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn registry_lists_the_builtins_sorted() {
        let registry = Registry::builtin();
        assert_eq!(
            registry.names(),
            vec![
                "datalogger_readings_v1",
                "flat_telemetry",
                "gateway_status_v1"
            ]
        );
        assert!(registry.contains("flat_telemetry"));
        assert!(!registry.contains("nope"));
        assert!(registry.get("gateway_status_v1").is_some());
        let described = registry.describe();
        assert_eq!(described.len(), 3);
        assert!(described.iter().all(|info| info.kind == "builtin"));
        assert!(described.iter().all(|info| !info.description.is_empty()));
        assert!(described.windows(2).all(|pair| pair[0].name < pair[1].name));
        let json = serde_json::to_value(&described).unwrap();
        assert_eq!(json[0]["name"], "datalogger_readings_v1");
        assert_eq!(json[0]["schema"]["type"], "object");
    }

    #[test]
    fn registry_reports_unknown_parsers() {
        let payload = json!({});
        let captures = BTreeMap::new();
        let input = ParseInput {
            topic: "t",
            captures: &captures,
            payload: &payload,
            received_at: received_at(),
        };
        let err = Registry::builtin().parse("nope_v9", &input).unwrap_err();
        assert_eq!(err, ParseError::UnknownParser("nope_v9".into()));
        assert!(err.to_string().contains("\"nope_v9\""));
    }

    #[test]
    fn missing_folder_means_builtins_only() {
        let dir = std::env::temp_dir().join("mqtt-supervisor-parsers-that-do-not-exist-7c1e");
        let registry = Registry::load(&dir).unwrap();
        assert_eq!(registry.names(), Registry::builtin().names());
    }

    #[test]
    fn a_file_instead_of_a_folder_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let errors = Registry::load(file.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], LoadError::ReadDir { .. }));
        assert_eq!(errors[0].path(), file.path());
    }

    #[test]
    fn schema_errors_are_capped() {
        let validator =
            compile_schema(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let payload = Value::Array((0..100).map(|i| json!(i)).collect());
        let err = validate_payload(&validator, &payload).unwrap_err();
        match err {
            ParseError::Schema(messages) => {
                assert_eq!(messages.len(), MAX_SCHEMA_ERRORS + 1);
                assert_eq!(messages[0], "/0: 0 is not of type \"string\"");
                assert_eq!(messages[MAX_SCHEMA_ERRORS], "and 80 more errors");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

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
