//! Each field of a connection body: its OpenAPI schema and its validation, which names the field
//! in a 422 when it is wrong.

use utoipa::openapi::Object;

use crate::api::error::ApiError;
use crate::api::extract::JsonInteger;
use crate::api::schema::{self, MAX_MQTT_STRING_BYTES};
use crate::api::topics::pattern_schema;
use crate::connection::{check_client_identity, Protocol, TlsError, Will};
use crate::routing::{publish_topic_problem, TopicPattern};

const MAX_HOST_CHARS: usize = 255;
const MIN_KEEPALIVE_SECS: i64 = 5;
const MAX_KEEPALIVE_SECS: i64 = 65_535;
/// A week: longer silences are what the offline job is for.
const MAX_SILENCE_SECS: i64 = 604_800;
/// Clients one connection may be split into.
const MAX_SHARDS: i64 = 64;
/// The largest session expiry interval MQTT 5 can carry (a four-byte integer).
const MAX_SESSION_EXPIRY_SECS: i64 = u32::MAX as i64;

/// The largest will payload accepted.
const MAX_WILL_PAYLOAD_BYTES: usize = 65_536;

pub(super) fn validate_will(will: Will) -> Result<Will, ApiError> {
    if let Some(problem) = publish_topic_problem(&will.topic) {
        return Err(ApiError::validation("last_will.topic", problem));
    }
    if will.qos > 2 {
        return Err(ApiError::validation(
            "last_will.qos",
            format!("must be 0, 1 or 2 (got {})", will.qos),
        ));
    }
    if will.payload.len() > MAX_WILL_PAYLOAD_BYTES {
        return Err(ApiError::validation(
            "last_will.payload",
            format!("must be at most {MAX_WILL_PAYLOAD_BYTES} bytes"),
        ));
    }
    Ok(will)
}

/// Reads the certificate and key the connection will present, naming the field at fault.
pub(super) fn validate_client_identity(
    certificate: Option<&str>,
    key: Option<&str>,
) -> Result<(), ApiError> {
    check_client_identity(certificate, key).map_err(|error| {
        let field = match &error {
            TlsError::CertFile { .. } | TlsError::CertEmpty { .. } | TlsError::KeyWithoutCert => {
                "client_cert_file"
            }
            _ => "client_key_file",
        };
        ApiError::validation(field, error.to_string())
    })
}

pub(super) fn protocol_schema() -> Object {
    schema::string()
        .enum_values(Some(Protocol::NAMES))
        .description(Some("The MQTT version spoken to the broker."))
        .build()
}

pub(super) fn optional_protocol_schema() -> Object {
    schema::or_null(
        schema::string()
            .enum_values(Some(Protocol::NAMES))
            .description(Some("The MQTT version spoken to the broker.")),
    )
}

pub(super) fn validate_protocol(protocol: &str) -> Result<Protocol, ApiError> {
    Protocol::parse(protocol).ok_or_else(|| {
        ApiError::validation(
            "protocol",
            format!("must be \"3.1.1\" or \"5\" (got \"{protocol}\")"),
        )
    })
}

pub(super) fn optional_session_expiry_schema() -> Object {
    schema::or_null(schema::integer(0, MAX_SESSION_EXPIRY_SECS))
}

pub(super) fn validate_session_expiry(JsonInteger(seconds): JsonInteger) -> Result<i64, ApiError> {
    if !(0..=MAX_SESSION_EXPIRY_SECS).contains(&seconds) {
        return Err(ApiError::validation(
            "session_expiry_secs",
            format!(
                "must be between 0 and {MAX_SESSION_EXPIRY_SECS} seconds, or null for as long \
                 as the broker can (got {seconds})"
            ),
        ));
    }
    Ok(seconds)
}

pub(super) fn shards_schema() -> Object {
    schema::integer(1, MAX_SHARDS).build()
}

pub(super) fn optional_shards_schema() -> Object {
    schema::or_null(schema::integer(1, MAX_SHARDS))
}

pub(super) fn validate_shards(JsonInteger(shards): JsonInteger) -> Result<i32, ApiError> {
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(ApiError::validation(
            "shards",
            format!("must be between 1 and {MAX_SHARDS} (got {shards})"),
        ));
    }
    Ok(shards as i32)
}

pub(super) fn optional_silence_schema() -> Object {
    schema::or_null(schema::integer(1, MAX_SILENCE_SECS))
}

pub(super) fn discovery_filter_schema() -> Object {
    let mut object = pattern_schema();
    object.schema_type = utoipa::openapi::schema::SchemaType::Array(vec![
        utoipa::openapi::Type::String,
        utoipa::openapi::Type::Null,
    ]);
    object.description = Some(
        "An MQTT filter subscribed besides the patterns' (e.g. plant-b/#); topics it brings \
         that no pattern matches are discovered as not processable. Captures count as '+'."
            .into(),
    );
    object
}

pub(super) fn validate_max_silence(JsonInteger(seconds): JsonInteger) -> Result<i32, ApiError> {
    if !(1..=MAX_SILENCE_SECS).contains(&seconds) {
        return Err(ApiError::validation(
            "max_silence_secs",
            format!("must be between 1 and {MAX_SILENCE_SECS} seconds, or null for never (got {seconds})"),
        ));
    }
    Ok(seconds as i32)
}

pub(super) fn validate_discovery_filter(filter: String) -> Result<String, ApiError> {
    TopicPattern::parse(&filter)
        .map(|_| filter)
        .map_err(|error| ApiError::validation("discovery_filter", error.to_string()))
}

/// Surrounding whitespace is dropped; what remains is 1 to 255 characters without whitespace.
pub(super) fn host_schema() -> Object {
    let space = schema::WHITESPACE_CLASS;
    schema::string()
        .pattern(Some(format!(
            "^[{space}]*[^{space}]{{1,{MAX_HOST_CHARS}}}[{space}]*$"
        )))
        .description(Some(
            "A host name or IP address, 1 to 255 characters without whitespace.",
        ))
        .build()
}

pub(super) fn port_schema() -> Object {
    schema::integer(1, 65_535).build()
}

pub(super) fn keepalive_schema() -> Object {
    schema::integer(MIN_KEEPALIVE_SECS, MAX_KEEPALIVE_SECS).build()
}

pub(super) fn optional_keepalive_schema() -> Object {
    schema::or_null(schema::integer(MIN_KEEPALIVE_SECS, MAX_KEEPALIVE_SECS))
}

/// Texts that may be left out: `null` or an empty string means none.
pub(super) fn optional_text_schema() -> Object {
    schema::or_null(schema::mqtt_string())
}

pub(super) fn password_schema() -> Object {
    let mut object = optional_text_schema();
    object.write_only = Some(true);
    object.description = Some(
        "Never returned (the connection shows has_password). At most 65535 bytes as UTF-8.".into(),
    );
    object
}

pub(super) fn required_client_id_schema() -> Object {
    schema::mqtt_string()
        .pattern(Some(schema::not_blank_pattern()))
        .description(Some(
            "Not blank, at most 65535 bytes as UTF-8; stored without surrounding whitespace.",
        ))
        .build()
}

pub(super) fn client_id_schema() -> Object {
    let mut object = required_client_id_schema();
    object.schema_type = utoipa::openapi::schema::SchemaType::Array(vec![
        utoipa::openapi::Type::String,
        utoipa::openapi::Type::Null,
    ]);
    object
}

pub(super) fn validate_host(host: &str) -> Result<String, ApiError> {
    let host = host.trim();
    if host.is_empty() {
        return Err(ApiError::validation("host", "must not be empty"));
    }
    if host.chars().count() > MAX_HOST_CHARS || host.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(
            "host",
            format!("must be a host name or IP address without spaces, at most {MAX_HOST_CHARS} characters"),
        ));
    }
    Ok(host.to_string())
}

pub(super) fn validate_port(JsonInteger(port): JsonInteger) -> Result<i32, ApiError> {
    if !(1..=65_535).contains(&port) {
        return Err(ApiError::validation(
            "port",
            format!("must be between 1 and 65535 (got {port})"),
        ));
    }
    Ok(port as i32)
}

pub(super) fn validate_keepalive(JsonInteger(seconds): JsonInteger) -> Result<i32, ApiError> {
    if !(MIN_KEEPALIVE_SECS..=MAX_KEEPALIVE_SECS).contains(&seconds) {
        return Err(ApiError::validation(
            "keepalive_secs",
            format!(
                "must be between {MIN_KEEPALIVE_SECS} and {MAX_KEEPALIVE_SECS} (got {seconds})"
            ),
        ));
    }
    Ok(seconds as i32)
}

/// The length counts what the caller sent, as the document's `maxLength` does.
pub(super) fn validate_client_id(client_id: &str) -> Result<String, ApiError> {
    if client_id.len() > MAX_MQTT_STRING_BYTES {
        return Err(ApiError::validation(
            "client_id",
            format!("must be at most {MAX_MQTT_STRING_BYTES} bytes"),
        ));
    }
    let client_id = client_id.trim();
    if client_id.is_empty() {
        return Err(ApiError::validation("client_id", "must not be empty"));
    }
    Ok(client_id.to_string())
}

/// Optional texts: an empty string means "none", as an HTML form sends it.
pub(super) fn optional_text(
    field: &str,
    value: Option<String>,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) if text.len() > MAX_MQTT_STRING_BYTES => Err(ApiError::validation(
            field,
            format!("must be at most {MAX_MQTT_STRING_BYTES} bytes"),
        )),
        Some(text) => Ok(Some(text)),
    }
}
