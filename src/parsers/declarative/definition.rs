//! The declarative parser format as Rust types, read with serde. Every object of a file refuses
//! unknown keys except `$comment`; values whose form matters (parser names, JSON pointers,
//! sensor-name templates) are checked as they are read, so a `Definition` that exists is well
//! formed. A new section of the format is a new optional field of [`Definition`] (and a new
//! property in `parsers/parser-definition.schema.json`).

use std::collections::{BTreeMap, HashMap};

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::Value;

use super::checks::{check_parser_name, check_pointer, name_template_parts};
use super::command_definition::CommandDefinition;
use crate::parsers::json_pointer::escape_pointer_token;
use crate::parsers::TimestampFormat;

/// One parser definition file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Definition {
    /// Where editors find the format's schema; the service does not read it.
    #[serde(rename = "$schema", default, deserialize_with = "given")]
    _schema_reference: Option<String>,
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    pub name: ParserName,
    #[serde(default, deserialize_with = "given")]
    pub description: Option<String>,
    /// The JSON Schema of the payload; compiled when the parser is built.
    pub schema: PayloadSchema,
    pub gateway: IdSources,
    #[serde(default, deserialize_with = "given")]
    pub datalogger: Option<IdSources>,
    #[serde(default, deserialize_with = "given")]
    pub timestamp: Option<TimestampDefinition>,
    #[serde(default)]
    pub sensors: Vec<SensorDefinition>,
    #[serde(default, deserialize_with = "given")]
    pub gateway_status: Option<StatusDefinition>,
    /// Commands the parser's devices accept, by name.
    #[serde(default)]
    pub commands: BTreeMap<ParserName, CommandDefinition>,
}

/// Reads a definition, naming the JSON pointer of the first value that does not fit.
pub(crate) fn read(definition: &Value) -> Result<Definition, String> {
    serde_path_to_error::deserialize(definition).map_err(|error| {
        let at = pointer_of(error.path());
        let message = error.into_inner().to_string();
        if at.is_empty() {
            message
        } else {
            format!("{at}: {message}")
        }
    })
}

/// serde_path_to_error writes `sensors[2].value`; the rest of the messages use JSON pointers.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } => format!("/{}", escape_pointer_token(key)),
            Segment::Enum { variant } => format!("/{}", escape_pointer_token(variant)),
            Segment::Unknown => "/?".to_owned(),
        })
        .collect()
}

/// An optional key that, when present, must hold a value: `null` is refused like any other
/// wrong type instead of counting as absent.
fn given<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ParserName(pub String);

impl TryFrom<String> for ParserName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        check_parser_name(&name).map(|()| ParserName(name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct JsonPointer(pub String);

impl TryFrom<String> for JsonPointer {
    type Error = String;
    fn try_from(pointer: String) -> Result<Self, String> {
        check_pointer(&pointer).map(|()| JsonPointer(pointer))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct NonEmptyText(pub String);

impl TryFrom<String> for NonEmptyText {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, &'static str> {
        if text.is_empty() {
            Err("must not be empty")
        } else {
            Ok(NonEmptyText(text))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub(crate) struct PayloadSchema(pub Value);

impl TryFrom<Value> for PayloadSchema {
    type Error = String;
    fn try_from(schema: Value) -> Result<Self, String> {
        match schema {
            Value::Object(_) | Value::Bool(_) => Ok(PayloadSchema(schema)),
            other => Err(format!(
                "must be a JSON Schema object (or true/false), not {}",
                json_type(&other)
            )),
        }
    }
}

/// Where an identifier comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SourceKeys")]
pub(crate) enum IdSource {
    Capture(String),
    Pointer(String),
    UserProperty(String),
    Literal(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceKeys {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "given")]
    capture: Option<NonEmptyText>,
    #[serde(default, deserialize_with = "given")]
    pointer: Option<JsonPointer>,
    #[serde(default, deserialize_with = "given")]
    user_property: Option<NonEmptyText>,
    #[serde(default, deserialize_with = "given")]
    value: Option<NonEmptyText>,
}

impl TryFrom<SourceKeys> for IdSource {
    type Error = String;
    fn try_from(keys: SourceKeys) -> Result<Self, String> {
        let present: Vec<&str> = [
            ("capture", keys.capture.is_some()),
            ("pointer", keys.pointer.is_some()),
            ("user_property", keys.user_property.is_some()),
            ("value", keys.value.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        if present.len() > 1 {
            return Err(sources_at_once(&present));
        }
        if let Some(capture) = keys.capture {
            Ok(IdSource::Capture(capture.0))
        } else if let Some(pointer) = keys.pointer {
            Ok(IdSource::Pointer(pointer.0))
        } else if let Some(name) = keys.user_property {
            Ok(IdSource::UserProperty(name.0))
        } else if let Some(value) = keys.value {
            Ok(IdSource::Literal(value.0))
        } else {
            Err(SOURCE_NEEDS_A_KEY.to_owned())
        }
    }
}

/// The keys of a source, in the order messages name them.
pub(crate) const SOURCE_KEYS: [&str; 4] = ["capture", "pointer", "user_property", "value"];

pub(crate) const SOURCE_NEEDS_A_KEY: &str =
    "needs one of the keys capture, pointer, user_property or value";

/// `present`: the source keys given, in the order of [`SOURCE_KEYS`].
pub(crate) fn sources_at_once(present: &[&str]) -> String {
    format!(
        "has {} at once; use exactly one, or a list of sources to try in order",
        present.join(" and ")
    )
}

/// A source, or a non-empty list of them tried in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdSources(pub Vec<IdSource>);

impl<'de> Deserialize<'de> for IdSources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourcesVisitor;
        impl<'de> serde::de::Visitor<'de> for SourcesVisitor {
            type Value = IdSources;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(SOURCES_EXPECTED)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<IdSources, A::Error> {
                let source =
                    IdSource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(IdSources(vec![source]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<IdSources, A::Error> {
                let sources = Vec::<IdSource>::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                if sources.is_empty() {
                    return Err(serde::de::Error::custom(format!(
                        "must be {SOURCES_EXPECTED}"
                    )));
                }
                Ok(IdSources(sources))
            }
        }
        deserializer.deserialize_any(SourcesVisitor)
    }
}

pub(crate) const SOURCES_EXPECTED: &str = "a source such as {\"capture\": \"gateway\"}, \
     {\"pointer\": \"/id\"}, {\"user_property\": \"device\"} or {\"value\": \"site-a\"}, or a \
     non-empty list of them tried in order";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "TimestampKeys")]
pub(crate) struct TimestampDefinition {
    /// Tried first: a device's own clock sent beside the payload (MQTT 5).
    pub user_property: Option<String>,
    pub pointer: Option<JsonPointer>,
    pub format: TimestampFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampKeys {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "given")]
    pointer: Option<JsonPointer>,
    #[serde(default, deserialize_with = "given")]
    user_property: Option<NonEmptyText>,
    #[serde(default)]
    format: TimestampFormat,
}

pub(crate) const TIMESTAMP_NEEDS_A_KEY: &str =
    "needs pointer (a payload field), user_property (an MQTT 5 user property) or both";

impl TryFrom<TimestampKeys> for TimestampDefinition {
    type Error = &'static str;
    fn try_from(keys: TimestampKeys) -> Result<Self, &'static str> {
        if keys.pointer.is_none() && keys.user_property.is_none() {
            return Err(TIMESTAMP_NEEDS_A_KEY);
        }
        Ok(TimestampDefinition {
            user_property: keys.user_property.map(|name| name.0),
            pointer: keys.pointer,
            format: keys.format,
        })
    }
}

/// One sensor mapping.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SensorKeys")]
pub(crate) struct SensorDefinition {
    pub name: NameTemplate,
    /// The pointer of the value.
    pub value: String,
    pub unit: Option<String>,
    pub map: HashMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorKeys {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "given")]
    name: Option<NameTemplate>,
    #[serde(default, deserialize_with = "given")]
    name_from_capture: Option<NonEmptyText>,
    value: JsonPointer,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    map: HashMap<String, f64>,
}

pub(crate) const SENSOR_NEEDS_A_NAME: &str =
    "needs a \"name\" (which may use {capture} placeholders) or a \"name_from_capture\"";
pub(crate) const SENSOR_HAS_TWO_NAMES: &str = "has both name and name_from_capture; use one";

impl TryFrom<SensorKeys> for SensorDefinition {
    type Error = &'static str;
    fn try_from(keys: SensorKeys) -> Result<Self, &'static str> {
        let name = match (keys.name, keys.name_from_capture) {
            (Some(_), Some(_)) => return Err(SENSOR_HAS_TWO_NAMES),
            (None, None) => return Err(SENSOR_NEEDS_A_NAME),
            (Some(template), None) => template,
            (None, Some(capture)) => NameTemplate {
                text: format!("{{{}}}", capture.0),
                parts: vec![NamePart::Capture(capture.0)],
            },
        };
        Ok(SensorDefinition {
            name,
            value: keys.value.0,
            // An empty unit says as little as none, and is stored as none.
            unit: keys.unit.filter(|unit| !unit.is_empty()),
            map: keys.map,
        })
    }
}

/// A sensor name with `{capture}` placeholders filled from the topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct NameTemplate {
    pub text: String,
    pub parts: Vec<NamePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamePart {
    Literal(String),
    Capture(String),
}

impl TryFrom<String> for NameTemplate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let parts = name_template_parts(&text)?;
        Ok(NameTemplate { text, parts })
    }
}

/// Online/offline state and metadata of the gateway.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusDefinition {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    pub pointer: JsonPointer,
    #[serde(default = "default_online")]
    pub online: StatusValues,
    /// Without an explicit list, anything that is not an online value means offline.
    #[serde(default, deserialize_with = "given")]
    pub offline: Option<StatusValues>,
    #[serde(default)]
    pub metadata: BTreeMap<NonEmptyText, JsonPointer>,
}

fn default_online() -> StatusValues {
    StatusValues(vec![Value::Bool(true), Value::String("online".to_owned())])
}

/// A non-empty list of strings, numbers or booleans.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Vec<Value>")]
pub(crate) struct StatusValues(pub Vec<Value>);

impl std::ops::Deref for StatusValues {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.0
    }
}

impl TryFrom<Vec<Value>> for StatusValues {
    type Error = &'static str;
    fn try_from(values: Vec<Value>) -> Result<Self, &'static str> {
        let scalars = values
            .iter()
            .all(|value| matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)));
        if values.is_empty() || !scalars {
            Err(STATUS_VALUES_EXPECTED)
        } else {
            Ok(StatusValues(values))
        }
    }
}

pub(crate) const STATUS_VALUES_EXPECTED: &str =
    "must be a non-empty list of strings, numbers or booleans, e.g. [\"online\", \"up\"]";

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_definitions::relay_definition;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_reads_into_its_types_with_defaults_filled_in() {
        let mut source = relay_definition();
        source["sensors"][1]["unit"] = json!("");
        source["gateway_status"]
            .as_object_mut()
            .unwrap()
            .remove("online");
        let definition = read(&source).unwrap();
        assert_eq!(definition.name, ParserName("relay_test_v1".into()));
        assert_eq!(
            definition.gateway.0,
            vec![
                IdSource::Pointer("/gw".into()),
                IdSource::Capture("gateway".into())
            ]
        );
        let timestamp = definition.timestamp.unwrap();
        assert_eq!(timestamp.pointer, Some(JsonPointer("/time".into())));
        assert_eq!(timestamp.format, TimestampFormat::Auto);
        let sensors = &definition.sensors;
        assert_eq!(
            sensors[0].name.parts,
            vec![
                NamePart::Literal("relay_".into()),
                NamePart::Capture("channel".into())
            ]
        );
        assert_eq!(sensors[0].map.get("on"), Some(&1.0));
        assert_eq!(sensors[1].unit, None, "an empty unit is no unit");
        assert_eq!(sensors[2].name.text, "{channel}");
        assert_eq!(
            sensors[2].name.parts,
            vec![NamePart::Capture("channel".into())]
        );
        let status = definition.gateway_status.unwrap();
        assert_eq!(status.online.0, vec![json!(true), json!("online")]);
        assert_eq!(
            status.offline.unwrap().0,
            vec![json!("offline"), json!("down")]
        );
        assert_eq!(
            status.metadata.get(&NonEmptyText("firmware".into())),
            Some(&JsonPointer("/fw".into()))
        );
    }

    #[test]
    fn errors_name_the_place_as_a_json_pointer() {
        let mut source = relay_definition();
        source["sensors"][2]["value"] = json!("level");
        let message = read(&source).unwrap_err();
        assert!(
            message.starts_with("/sensors/2/value: \"level\" is not a JSON pointer"),
            "{message}"
        );
        let mut source = relay_definition();
        source["gateway_status"]["metadata"] = json!({"a/b": 5});
        let message = read(&source).unwrap_err();
        assert!(
            message.starts_with("/gateway_status/metadata/a~1b: "),
            "{message}"
        );
    }

    #[test]
    fn null_is_not_the_same_as_leaving_a_key_out() {
        for (pointer, key) in [
            ("", "datalogger"),
            ("", "timestamp"),
            ("", "description"),
            ("/gateway_status", "offline"),
            ("/timestamp", "format"),
        ] {
            let mut source = relay_definition();
            source.pointer_mut(pointer).unwrap()[key] = Value::Null;
            let message = read(&source).unwrap_err();
            assert!(message.contains("null"), "{pointer}/{key}: {message}");
        }
        // A unit and a comment may be null.
        let mut source = relay_definition();
        source["sensors"][0]["unit"] = Value::Null;
        source["$comment"] = Value::Null;
        assert!(read(&source).is_ok());
    }
}
