//! `POST /api/mqtt/connections/test`: tries a connection's settings against its broker without
//! saving anything, for the page's Test connection button and for scripts.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::{
    client_id_schema, discovery_filter_schema, host_schema, optional_keepalive_schema,
    optional_protocol_schema, optional_session_expiry_schema, optional_shards_schema,
    optional_silence_schema, optional_text, optional_text_schema, password_schema,
    validate_client_id, validate_client_identity, validate_host, validate_keepalive, validate_port,
    validate_protocol,
};
use super::require_by_site;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, JsonInteger};
use crate::api::schema;
use crate::connection::{probe, ConnectionSettings, Will};
use crate::state::AppState;

/// How long a test waits for the broker.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of a connection (as for `POST /api/mqtt/connections`); only what reaching the broker
/// needs is used. With `site_id` and no `password`, the site's stored password is used, so an
/// edit form can test without asking for it again.
// The fields a test does not use are read (and checked for their type) only so that a
// connection form's body can be sent as it is.
#[allow(dead_code)]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectionTest)]
pub struct TestConnection {
    #[schema(schema_with = optional_id_schema)]
    site_id: Option<JsonInteger>,
    #[schema(schema_with = host_schema)]
    host: String,
    #[schema(schema_with = port_schema)]
    port: JsonInteger,
    #[schema(schema_with = optional_text_schema)]
    username: Option<String>,
    #[schema(schema_with = password_schema)]
    password: Option<String>,
    #[schema(schema_with = client_id_schema)]
    client_id: Option<String>,
    use_tls: Option<bool>,
    #[schema(schema_with = optional_text_schema)]
    ca_file: Option<String>,
    #[schema(schema_with = optional_keepalive_schema)]
    keepalive_secs: Option<JsonInteger>,
    #[schema(schema_with = optional_protocol_schema)]
    protocol: Option<String>,
    #[schema(schema_with = optional_text_schema)]
    client_cert_file: Option<String>,
    #[schema(schema_with = optional_text_schema)]
    client_key_file: Option<String>,
    /// Not used by a test (it always starts a clean session).
    clean_session: Option<bool>,
    /// Not used by a test.
    is_active: Option<bool>,
    /// Not used by a test.
    #[schema(schema_with = optional_silence_schema)]
    max_silence_secs: Option<JsonInteger>,
    /// Not used by a test.
    #[schema(schema_with = discovery_filter_schema)]
    discovery_filter: Option<String>,
    /// Not used by a test.
    #[schema(schema_with = optional_shards_schema)]
    shards: Option<JsonInteger>,
    /// Not used by a test (a test leaves no will).
    #[schema(value_type = Option<Will>)]
    last_will: Option<Will>,
    /// Not used by a test (its session is clean).
    #[schema(schema_with = optional_session_expiry_schema)]
    session_expiry_secs: Option<JsonInteger>,
}

fn optional_id_schema() -> utoipa::openapi::Object {
    schema::or_null(schema::integer(1, i64::from(i32::MAX)))
}

fn port_schema() -> utoipa::openapi::Object {
    schema::integer(1, 65_535).build()
}

/// The broker's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConnectionTestResult)]
pub struct TestResult {
    pub ok: bool,
    /// Why it failed: the broker's refusal (with its reason code on MQTT 5), a TLS or network
    /// error, or no answer within 5 s.
    #[schema(required)]
    pub error: Option<String>,
    /// From the start of the attempt to the broker's answer (or the failure).
    pub latency_ms: u64,
    /// The broker tried: `host:port`, the protocol and whether over TLS.
    pub server: String,
}

pub async fn test(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TestConnection>,
) -> Result<Json<TestResult>, ApiError> {
    let host = validate_host(&body.host)?;
    let port = validate_port(body.port)?;
    let keepalive_secs = body
        .keepalive_secs
        .map(validate_keepalive)
        .transpose()?
        .unwrap_or(30);
    let username = optional_text("username", body.username)?;
    let mut password = optional_text("password", body.password)?;
    let ca_file = optional_text("ca_file", body.ca_file)?;
    let client_id = body
        .client_id
        .as_deref()
        .map(validate_client_id)
        .transpose()?
        .unwrap_or_else(|| "mqtt-supervisor".to_string());
    let protocol = body
        .protocol
        .as_deref()
        .map(validate_protocol)
        .transpose()?
        .unwrap_or_default();
    let client_cert_file = optional_text("client_cert_file", body.client_cert_file)?;
    let client_key_file = optional_text("client_key_file", body.client_key_file)?;
    validate_client_identity(client_cert_file.as_deref(), client_key_file.as_deref())?;
    if let (None, Some(JsonInteger(site_id))) = (&password, body.site_id) {
        let site_id = i32::try_from(site_id)
            .map_err(|_| ApiError::not_found(format!("site {site_id} has no MQTT connection")))?;
        let stored = require_by_site(&state, site_id).await?;
        password = stored
            .password
            .as_deref()
            .map(|sealed| state.secrets.open(sealed))
            .transpose()
            .map_err(|error| ApiError::Internal(error.to_string()))?;
    }
    let use_tls = body.use_tls.unwrap_or(false);
    let settings = ConnectionSettings {
        connection_id: 0,
        host: host.clone(),
        port: port as u16,
        username,
        password,
        client_id,
        use_tls,
        ca_file,
        keepalive_secs: keepalive_secs as u16,
        clean_session: true,
        shard: 0,
        shards: 1,
        client_cert_file,
        client_key_file,
        last_will: None,
        protocol,
        session_expiry_secs: None,
    };
    let outcome = probe(&settings, TEST_TIMEOUT).await;
    Ok(Json(TestResult {
        ok: outcome.ok,
        error: outcome.error,
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        server: format!(
            "{host}:{port} (MQTT {}, {})",
            protocol.as_str(),
            if use_tls { "TLS" } else { "plain TCP" }
        ),
    }))
}
