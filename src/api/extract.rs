//! Request extractors whose failures are [`ApiError`]s: axum's own extractors answer in plain
//! text, and callers of this API always get the JSON error body naming what to fix.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
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

/// The query string as name/value pairs; each endpoint reads the ones it knows and names any it
/// cannot use in a 422. Unknown names are ignored.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        QueryParams::parse(parts.uri.query().unwrap_or_default())
    }
}

impl QueryParams {
    pub fn parse(query: &str) -> Result<QueryParams, ApiError> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(QueryParams)
            .map_err(|error| ApiError::validation("query", error.to_string()))
    }

    /// The last value given for `name`, treating an empty value as absent (`?site_id=`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::validation(name, format!("must be an integer (got '{text}')"))
            }),
        }
    }

    pub fn id(&self, name: &str) -> Result<Option<i32>, ApiError> {
        match self.integer(name)? {
            None => Ok(None),
            Some(value) => i32::try_from(value)
                .map(Some)
                .map_err(|_| ApiError::validation(name, format!("{value} is not a valid id"))),
        }
    }

    /// An RFC 3339 time. A '+' of the offset arrives as a space when the caller did not
    /// percent-encode it, so a space is read back as '+'.
    pub fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(&text.trim().replace(' ', "+"))
                .map(|time| Some(time.with_timezone(&Utc)))
                .map_err(|error| {
                    ApiError::validation(
                        name,
                        format!(
                            "must be an RFC 3339 time such as 2024-05-01T12:00:00Z (got '{text}': {error})"
                        ),
                    )
                }),
        }
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
    fn patch_fields_tell_null_from_absent() {
        let body: Body = parse_json(br#"{"name": "a", "port": 1}"#).expect("parses");
        assert_eq!(body.note, Patch::Absent);
        let body: Body = parse_json(br#"{"name": "a", "port": 1, "note": null}"#).expect("parses");
        assert_eq!(body.note, Patch::Null);
        let body: Body = parse_json(br#"{"name": "a", "port": 1, "note": "x"}"#).expect("parses");
        assert_eq!(body.note, Patch::Value("x".into()));
    }

    #[test]
    fn query_values_are_checked_by_name() {
        let params = QueryParams::parse("limit=abc&site_id=&from=2024-05-01T12:00:00 02:00")
            .expect("parses");
        assert_eq!(params.id("site_id").expect("empty is absent"), None);
        let (field, _) = field_and_message(params.integer("limit").expect_err("not a number"));
        assert_eq!(field, "limit");
        let from = params.timestamp("from").expect("space read as plus");
        assert_eq!(
            from.map(|time| time.to_rfc3339()),
            Some("2024-05-01T10:00:00+00:00".into())
        );
    }
}
