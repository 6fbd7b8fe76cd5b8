//! Request extractors whose failures are [`ApiError`]s: axum's own extractors answer in plain
//! text, and callers of this API always get the JSON error body naming what to fix.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// A JSON body. A body that is not JSON is a 400 (`invalid_json`); JSON of the wrong shape (a
/// missing field, a wrong type) is a 422 naming the field; a body over the size limit is a 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
            // A missing Content-Type is accepted so `curl -d` works; a different one is a
            // mistake worth pointing out rather than guessing.
            let text = content_type
                .to_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let essence = text.split(';').next().unwrap_or_default().trim();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type must be application/json (got '{essence}')"
                )));
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(
                        "request body is larger than the configured limit (http.body_limit_bytes)"
                            .into(),
                    )
                } else {
                    ApiError::InvalidJson(format!("cannot read the request body: {rejection}"))
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialises `bytes`, turning serde's error into a message that names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "body",
            "the request body is empty; send a JSON object",
        ));
    }
    // serde would also accept a struct written as an array of its values, by position: no
    // caller means that, so anything but an object is refused up front.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::validation("body", "must be a JSON object")),
            Err(error) => Err(ApiError::InvalidJson(format!(
                "body is not valid JSON: {error}"
            ))),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            return Err(json_error(&path, &inner));
        }
    };
    deserializer
        .end()
        .map_err(|error| ApiError::InvalidJson(format!("body is not valid JSON: {error}")))?;
    Ok(value)
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = strip_position(&error.to_string());
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::InvalidJson(format!("body is not valid JSON: {error}"))
        }
        Category::Data => {
            // serde reports a missing field at its parent, with the name in backticks.
            if let Some(name) = text
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
            {
                let field = if path == "." || path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                return ApiError::validation(field, "this field is required");
            }
            // An unknown field: name it, and keep serde's list of the expected ones.
            if let Some((name, expected)) = text
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                let field = if path == "." || path.is_empty() {
                    name.to_string()
                } else if path == name || path.ends_with(&format!(".{name}")) {
                    path.to_string()
                } else {
                    format!("{path}.{name}")
                };
                let expected = expected.trim_start_matches(',').trim();
                let message = if expected.is_empty() {
                    "unknown field".to_string()
                } else {
                    format!("unknown field; {expected}")
                };
                return ApiError::validation(field, message);
            }
            let field = if path == "." || path.is_empty() {
                "body".to_string()
            } else {
                path.to_string()
            };
            ApiError::validation(field, text)
        }
    }
}

/// serde_json appends " at line L column C", which means little to a caller that sent one line.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) if message[index..].contains(" column ") => message[..index].to_string(),
        _ => message.to_string(),
    }
}

/// A whole number in a JSON body, however it is written: JSON knows only numbers, so `5.0` is
/// the integer 5 as much as `5` is (JSON Schema's `integer` agrees); `5.5` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonInteger(pub i64);

impl<'de> Deserialize<'de> for JsonInteger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;

        impl serde::de::Visitor<'_> for IntegerVisitor {
            type Value = JsonInteger;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<JsonInteger, E> {
                Ok(JsonInteger(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<JsonInteger, E> {
                i64::try_from(value)
                    .map(JsonInteger)
                    .map_err(|_| E::custom(format!("{value} is out of range")))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<JsonInteger, E> {
                // Beyond ±2^63 an f64 is still whole, but no longer an i64.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if value.fract() != 0.0 || !value.is_finite() {
                    return Err(E::custom(format!("must be an integer (got {value})")));
                }
                if !(-LIMIT..LIMIT).contains(&value) {
                    return Err(E::custom(format!("{value} is out of range")));
                }
                Ok(JsonInteger(value as i64))
            }
        }

        deserializer.deserialize_any(IntegerVisitor)
    }
}

/// A field of a PATCH body: absent (leave as is), `null` (clear, where allowed) or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called when the key is present; `#[serde(default)]` covers absence.
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::Value(value),
            None => Patch::Null,
        })
    }
}

impl<T> Patch<T> {
    /// For columns that cannot be empty: `null` is refused, naming the field.
    pub fn required(self, field: &str) -> Result<Option<T>, ApiError> {
        match self {
            Patch::Absent => Ok(None),
            Patch::Null => Err(ApiError::validation(field, "must not be null")),
            Patch::Value(value) => Ok(Some(value)),
        }
    }

    /// For nullable columns: `Some(None)` clears.
    pub fn nullable(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(value) => Some(Some(value)),
        }
    }
}

/// A name in the path (a parser's); one that cannot be read names no resource, so it is a 404.
pub struct PathName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(name)| PathName(name))
            .map_err(|_| ApiError::not_found("no such resource"))
    }
}

/// An integer id in the path; anything else names no resource, so it is a 404.
pub struct PathId(pub i32);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found("no such resource"))?;
        raw.parse::<i32>()
            .map(PathId)
            .map_err(|_| ApiError::not_found(format!("'{raw}' is not an id; ids are integers")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        port: i64,
        #[serde(default)]
        note: Patch<String>,
    }

    fn field_and_message(error: ApiError) -> (String, String) {
        match error {
            ApiError::Validation { field, message } => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = parse_json::<Body>(br#"{"port": 1}"#).expect_err("must fail");
        assert_eq!(
            field_and_message(error),
            ("name".into(), "this field is required".into())
        );
    }

    #[test]
    fn a_wrong_type_is_named_without_position() {
        let error = parse_json::<Body>(br#"{"name": "a", "port": "x"}"#).expect_err("must fail");
        let (field, message) = field_and_message(error);
        assert_eq!(field, "port");
        assert!(message.starts_with("invalid type"), "{message}");
        assert!(!message.contains("line"), "{message}");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        name: String,
    }

    #[test]
    fn an_unknown_field_is_named() {
        let error =
            parse_json::<Strict>(br#"{"name": "a", "colour": "red"}"#).expect_err("must fail");
        assert_eq!(
            field_and_message(error),
            ("colour".into(), "unknown field; expected `name`".into())
        );
    }

    #[test]
    fn broken_json_is_not_a_validation_error() {
        let error = parse_json::<Body>(br#"{"name": "#).expect_err("must fail");
        assert!(matches!(error, ApiError::InvalidJson(_)), "{error:?}");
        let error = parse_json::<Body>(br#"{"name": "a", "port": 1} x"#).expect_err("must fail");
        assert!(matches!(error, ApiError::InvalidJson(_)), "{error:?}");
        let error = parse_json::<Body>(b"[1, 2").expect_err("must fail");
        assert!(matches!(error, ApiError::InvalidJson(_)), "{error:?}");
    }

    #[test]
    fn only_objects_are_bodies() {
        let error = parse_json::<Body>(br#"["a", 1]"#).expect_err("must fail");
        assert_eq!(field_and_message(error).0, "body");
    }

    #[test]
    fn integers_may_be_written_as_whole_floats() {
        #[derive(Debug, Deserialize)]
        struct Numbers {
            value: JsonInteger,
        }
        let read = |text: &str| parse_json::<Numbers>(text.as_bytes()).map(|numbers| numbers.value);
        assert_eq!(read(r#"{"value": 5}"#).expect("integer"), JsonInteger(5));
        assert_eq!(
            read(r#"{"value": -5.0}"#).expect("whole float"),
            JsonInteger(-5)
        );
        assert_eq!(
            read(r#"{"value": 1e3}"#).expect("exponent"),
            JsonInteger(1000)
        );
        for text in [
            r#"{"value": 5.5}"#,
            r#"{"value": "5"}"#,
            r#"{"value": 1e30}"#,
            r#"{"value": 18446744073709551615}"#,
        ] {
            let (field, _) = field_and_message(read(text).expect_err(text));
            assert_eq!(field, "value", "{text}");
        }
    }

    #[test]
    fn patch_fields_tell_null_from_absent() {
        let body: Body = parse_json(br#"{"name": "a", "port": 1}"#).expect("parses");
        assert_eq!(body.note, Patch::Absent);
        let body: Body = parse_json(br#"{"name": "a", "port": 1, "note": null}"#).expect("parses");
        assert_eq!(body.note, Patch::Null);
        let body: Body = parse_json(br#"{"name": "a", "port": 1, "note": "x"}"#).expect("parses");
        assert_eq!(body.note, Patch::Value("x".into()));
    }
}
