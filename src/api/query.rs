//! Query strings read into typed structs (the same structs describe the parameters in the
//! OpenAPI document): each parameter at most once, every value checked, and any failure a 422
//! naming the parameter. Names an endpoint does not know are ignored.

use std::fmt;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::error::ApiError;

/// The query string of a request as `T`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Reads `query` (without the '?') into `T`, naming the parameter at fault on failure.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        query_error(&path, &message)
    })
}

fn query_error(path: &str, message: &str) -> ApiError {
    // serde reports a repeated parameter at the struct, with the name in backticks.
    if let Some(name) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ApiError::validation(name, "given more than once; send one value");
    }
    let field = if path == "." || path.is_empty() {
        "query"
    } else {
        path
    };
    ApiError::validation(field, message)
}

/// Reads the raw text of a parameter and turns it into a value, or says what was expected.
trait FromQueryText: Sized {
    fn from_query_text(text: &str) -> Result<Self, String>;
}

struct TextVisitor<T>(PhantomData<T>);

impl<T: FromQueryText> Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a query parameter value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::from_query_text(text).map_err(E::custom)
    }
}

fn deserialize_text<'de, D: Deserializer<'de>, T: FromQueryText>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_str(TextVisitor(PhantomData))
}

fn integer(text: &str) -> Result<i64, String> {
    // Strict on purpose: an empty value, spaces or a fraction are mistakes worth pointing out.
    if text.is_empty()
        || !text.bytes().enumerate().all(|(index, byte)| {
            byte.is_ascii_digit() || (index == 0 && byte == b'-' && text.len() > 1)
        })
    {
        return Err(format!("must be an integer (got '{text}')"));
    }
    text.parse::<i64>()
        .map_err(|_| format!("must be an integer (got '{text}')"))
}

/// A row id given as a query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryId(pub i32);

impl FromQueryText for QueryId {
    fn from_query_text(text: &str) -> Result<QueryId, String> {
        let value = integer(text)?;
        i32::try_from(value)
            .map(QueryId)
            .map_err(|_| format!("{value} is not a valid id"))
    }
}

impl<'de> Deserialize<'de> for QueryId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer)
    }
}

/// A whole number given as a query parameter (a count, a page size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryInteger(pub i64);

impl FromQueryText for QueryInteger {
    fn from_query_text(text: &str) -> Result<QueryInteger, String> {
        integer(text).map(QueryInteger)
    }
}

impl<'de> Deserialize<'de> for QueryInteger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer)
    }
}

/// `true` or `false` given as a query parameter; nothing else (not `1`, not `yes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBool(pub bool);

impl FromQueryText for QueryBool {
    fn from_query_text(text: &str) -> Result<QueryBool, String> {
        match text {
            "true" => Ok(QueryBool(true)),
            "false" => Ok(QueryBool(false)),
            _ => Err(format!("must be true or false (got '{text}')")),
        }
    }
}

impl<'de> Deserialize<'de> for QueryBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer)
    }
}

/// An RFC 3339 time given as a query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTime(pub DateTime<Utc>);

impl FromQueryText for QueryTime {
    /// A '+' of the offset arrives as a space when the caller did not percent-encode it, so a
    /// space is read back as '+'.
    fn from_query_text(text: &str) -> Result<QueryTime, String> {
        DateTime::parse_from_rfc3339(&text.replace(' ', "+"))
            .map(|time| QueryTime(time.with_timezone(&Utc)))
            .map_err(|error| {
                format!(
                    "must be an RFC 3339 time such as 2024-05-01T12:00:00Z (got '{text}': {error})"
                )
            })
    }
}

impl<'de> Deserialize<'de> for QueryTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer)
    }
}

/// The value of `name` in a raw query string, for the few places that read one parameter
/// before any handler runs (the WebSocket token). The last value wins; an empty one is none.
pub fn raw_parameter(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        site_id: Option<QueryId>,
        limit: Option<QueryInteger>,
        from: Option<QueryTime>,
        replayed: Option<QueryBool>,
    }

    fn parse(query: &str) -> Result<Sample, (String, String)> {
        parse_query::<Sample>(query).map_err(|error| match error {
            ApiError::Validation { field, message } => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        })
    }

    #[test]
    fn values_are_read_by_name_and_unknown_names_ignored() {
        let sample = parse("site_id=7&limit=-3&from=2024-05-01T12:00:00 02:00&other=x&other=y")
            .expect("parses");
        assert_eq!(sample.site_id, Some(QueryId(7)));
        assert_eq!(sample.limit, Some(QueryInteger(-3)));
        assert_eq!(
            sample.from.map(|time| time.0.to_rfc3339()),
            Some("2024-05-01T10:00:00+00:00".into())
        );
        let empty = parse("").expect("nothing given");
        assert_eq!(empty.site_id, None);
        assert_eq!(empty.limit, None);
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        for (query, field, message) in [
            ("limit=abc", "limit", "must be an integer (got 'abc')"),
            ("limit=", "limit", "must be an integer (got '')"),
            ("limit=1.5", "limit", "must be an integer (got '1.5')"),
            ("limit=%205", "limit", "must be an integer (got ' 5')"),
            ("limit=-", "limit", "must be an integer (got '-')"),
            ("site_id=", "site_id", "must be an integer (got '')"),
            (
                "site_id=3000000000",
                "site_id",
                "3000000000 is not a valid id",
            ),
            (
                "limit=99999999999999999999",
                "limit",
                "must be an integer (got '99999999999999999999')",
            ),
            (
                "site_id=1&site_id=2",
                "site_id",
                "given more than once; send one value",
            ),
        ] {
            let (got_field, got_message) = parse(query).expect_err(query);
            assert_eq!(got_field, field, "{query}");
            assert_eq!(got_message, message, "{query}");
        }
        let (field, message) = parse("replayed=1").expect_err("not a boolean");
        assert_eq!(field, "replayed");
        assert_eq!(message, "must be true or false (got '1')");
        assert_eq!(
            parse("replayed=false").expect("a boolean").replayed,
            Some(QueryBool(false))
        );
        let (field, message) = parse("from=yesterday").expect_err("not a time");
        assert_eq!(field, "from");
        assert!(message.starts_with("must be an RFC 3339 time"), "{message}");
    }

    /// Whatever the document's `date-time` format admits, the parameter reads.
    #[test]
    fn every_documented_date_time_is_read() {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&serde_json::json!({"type": "string", "format": "date-time"}))
            .expect("schema");
        for text in [
            "2024-05-01T12:00:00Z",
            "2024-05-01t12:00:00z",
            "2024-05-01T12:00:00.123456789123Z",
            "2024-05-01T12:00:00-00:00",
            "2024-05-01T12:00:00+23:59",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9Z",
            "2024-02-29T00:00:00Z",
        ] {
            let admitted = validator.is_valid(&serde_json::Value::String(text.into()));
            let read = QueryTime::from_query_text(text);
            assert!(!admitted || read.is_ok(), "{text}: {read:?}");
        }
    }

    #[test]
    fn the_socket_token_is_read_raw() {
        assert_eq!(
            raw_parameter("token=a%2Bb&x=1", "token"),
            Some("a+b".into())
        );
        assert_eq!(raw_parameter("token=", "token"), None);
        assert_eq!(raw_parameter("", "token"), None);
    }
}
