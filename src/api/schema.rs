//! JSON Schema pieces for the OpenAPI document, built from the same constants the handlers
//! check, so what the document states and what a request meets cannot drift apart.

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, Object, SchemaFormat};

/// Rust's `char::is_whitespace` (Unicode `White_Space`) as a regular-expression class, written
/// with escapes every regex dialect reads alike; `trim()` strips exactly these.
pub const WHITESPACE_CLASS: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// At least one character that is not whitespace (unanchored: matches anywhere).
pub fn not_blank_pattern() -> String {
    format!("[^{WHITESPACE_CLASS}]")
}

/// MQTT strings carry a 16-bit length.
pub const MAX_MQTT_STRING_BYTES: usize = 65_535;

pub fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

pub fn integer(minimum: i64, maximum: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(
            if i32::try_from(minimum).is_ok() && i32::try_from(maximum).is_ok() {
                KnownFormat::Int32
            } else {
                KnownFormat::Int64
            },
        )))
        .minimum(Some(minimum as f64))
        .maximum(Some(maximum as f64))
}

/// A row id: a positive 32-bit integer.
pub fn id() -> ObjectBuilder {
    integer(1, i64::from(i32::MAX))
}

/// A text of at most `MAX_MQTT_STRING_BYTES` bytes: the document can only count characters, so
/// its `maxLength` is exact for ASCII and the description says the rest.
pub fn mqtt_string() -> ObjectBuilder {
    string()
        .max_length(Some(MAX_MQTT_STRING_BYTES))
        .description(Some("At most 65535 bytes as UTF-8."))
}

/// Lets `null` through as well (a nullable field of a body or a response).
pub fn or_null(builder: ObjectBuilder) -> Object {
    let object = builder.build();
    let types = match object.schema_type.clone() {
        SchemaType::Type(single) => vec![single, Type::Null],
        SchemaType::Array(mut several) => {
            several.push(Type::Null);
            several
        }
        SchemaType::AnyValue => return object,
    };
    let mut object = object;
    object.schema_type = SchemaType::Array(types);
    object
}

/// An RFC 3339 time as the API writes it.
pub fn timestamp() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class in the document holds exactly the characters `trim()` strips.
    #[test]
    fn the_whitespace_class_is_rusts() {
        let pattern = format!("^[{WHITESPACE_CLASS}]$");
        let validator = jsonschema::validator_for(&serde_json::json!({"pattern": pattern}))
            .expect("valid pattern");
        for code in 0..=0x3100u32 {
            let Some(character) = char::from_u32(code) else {
                continue;
            };
            let text = serde_json::Value::String(character.to_string());
            assert_eq!(
                validator.is_valid(&text),
                character.is_whitespace(),
                "U+{code:04X}"
            );
        }
    }
}
