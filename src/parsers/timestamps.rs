//! Reading a message's time from a payload value: RFC 3339 text or Unix seconds/milliseconds.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::errors::ParseError;
use super::payload_schema::truncate;

/// Unix timestamps at or above this are taken as milliseconds: as seconds they would lie in the
/// year 5138, as milliseconds they lie after March 1973.
const MILLIS_THRESHOLD: f64 = 1e11;

/// How a timestamp field is to be read; the names are those of a declarative parser's
/// `timestamp.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub(crate) enum TimestampFormat {
    /// A string is RFC 3339; a number is Unix seconds, or milliseconds from 1e11 on.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "rfc3339")]
    Rfc3339,
    #[serde(rename = "unix_s")]
    UnixSeconds,
    #[serde(rename = "unix_ms")]
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

#[cfg(test)]
mod tests {
    use super::super::test_support::received_at;
    use super::*;
    use serde_json::json;

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
}
