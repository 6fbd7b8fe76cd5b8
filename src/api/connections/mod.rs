//! `/api/mqtt/connections` and `/api/mqtt/connection/{site_id}/`: the one broker connection of a
//! site. Every change wakes the supervisor so it takes effect at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, Order, QueryFilter, Set,
};
use serde::Deserialize;
use utoipa::ToSchema;

mod fields;
mod test;

pub use test::{test, TestConnection, TestResult};

use self::fields::{
    client_id_schema, discovery_filter_schema, host_schema, keepalive_schema,
    optional_keepalive_schema, optional_protocol_schema, optional_session_expiry_schema,
    optional_shards_schema, optional_silence_schema, optional_text, optional_text_schema,
    password_schema, port_schema, protocol_schema, required_client_id_schema, shards_schema,
    validate_client_id, validate_client_identity, validate_discovery_filter, validate_host,
    validate_keepalive, validate_max_silence, validate_port, validate_protocol,
    validate_session_expiry, validate_shards, validate_will,
};
use super::error::ApiError;
use super::extract::{ApiJson, JsonInteger, Patch, PathId};
use super::list::Listing;
use super::schema;
use crate::connection::Will;
use crate::entity::{mqtt_connection, site};
use crate::queries::connections::{find_by_site, ConnectionResponse};
use crate::state::AppState;

const DEFAULT_KEEPALIVE_SECS: i32 = 30;

/// A new connection; it starts stopped unless `is_active` is true.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectionCreate)]
pub struct CreateConnection {
    /// An existing site without a connection.
    #[schema(schema_with = schema::id)]
    site_id: JsonInteger,
    #[schema(schema_with = host_schema)]
    host: String,
    #[schema(schema_with = port_schema)]
    port: JsonInteger,
    #[schema(schema_with = optional_text_schema)]
    username: Option<String>,
    #[schema(schema_with = password_schema)]
    password: Option<String>,
    /// Default `mqtt-supervisor-<site slug>`.
    #[schema(schema_with = client_id_schema)]
    client_id: Option<String>,
    /// Default false.
    use_tls: Option<bool>,
    #[schema(schema_with = optional_text_schema)]
    ca_file: Option<String>,
    /// Default 30.
    #[schema(schema_with = optional_keepalive_schema)]
    keepalive_secs: Option<JsonInteger>,
    /// Default false: a persistent session, so the broker keeps messages while disconnected.
    clean_session: Option<bool>,
    /// Default false.
    is_active: Option<bool>,
    /// Default null (never silent).
    #[schema(schema_with = optional_silence_schema)]
    max_silence_secs: Option<JsonInteger>,
    /// Default null (only the patterns' filters).
    #[schema(schema_with = discovery_filter_schema)]
    discovery_filter: Option<String>,
    /// Default 1. With N > 1 the connection runs N clients `{client_id}-{k}` sharing every
    /// filter as `$share/{client_id}/{filter}`, each leased on its own (several instances).
    #[schema(schema_with = optional_shards_schema)]
    shards: Option<JsonInteger>,
    /// Mutual TLS: PEM files of the client certificate and of its key (RSA or EC), both or
    /// neither; read and checked to belong together when stored.
    #[schema(schema_with = optional_text_schema)]
    client_cert_file: Option<String>,
    #[schema(schema_with = optional_text_schema)]
    client_key_file: Option<String>,
    /// What the broker publishes for the service when its session dies; null for none.
    #[schema(value_type = Option<Will>)]
    last_will: Option<Will>,
    /// Default "3.1.1".
    #[schema(schema_with = optional_protocol_schema)]
    protocol: Option<String>,
    /// MQTT 5 only: how long the broker keeps the persistent session after the service leaves.
    /// Default null: as long as the broker can (the protocol's "never expires").
    #[schema(schema_with = optional_session_expiry_schema)]
    session_expiry_secs: Option<JsonInteger>,
}

/// Only the fields given change; `username`, `password` and `ca_file` may be `null` (cleared),
/// the others may not.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectionPatch)]
pub struct UpdateConnection {
    #[serde(default)]
    #[schema(schema_with = host_schema)]
    host: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = port_schema)]
    port: Patch<JsonInteger>,
    #[serde(default)]
    #[schema(schema_with = optional_text_schema)]
    username: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = password_schema)]
    password: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = required_client_id_schema)]
    client_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    use_tls: Patch<bool>,
    #[serde(default)]
    #[schema(schema_with = optional_text_schema)]
    ca_file: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = keepalive_schema)]
    keepalive_secs: Patch<JsonInteger>,
    #[serde(default)]
    #[schema(value_type = bool)]
    clean_session: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = bool)]
    is_active: Patch<bool>,
    /// `null` switches silence detection off.
    #[serde(default)]
    #[schema(schema_with = optional_silence_schema)]
    max_silence_secs: Patch<JsonInteger>,
    /// `null` drops the discovery filter.
    #[serde(default)]
    #[schema(schema_with = discovery_filter_schema)]
    discovery_filter: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = shards_schema)]
    shards: Patch<JsonInteger>,
    #[serde(default)]
    #[schema(schema_with = optional_text_schema)]
    client_cert_file: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = optional_text_schema)]
    client_key_file: Patch<String>,
    /// `null` removes the will.
    #[serde(default)]
    #[schema(value_type = Option<Will>)]
    last_will: Patch<Will>,
    #[serde(default)]
    #[schema(schema_with = protocol_schema)]
    protocol: Patch<String>,
    /// `null`: as long as the broker can.
    #[serde(default)]
    #[schema(schema_with = optional_session_expiry_schema)]
    session_expiry_secs: Patch<JsonInteger>,
}

/// What to store for a password: sealed when the service has a secret key.
fn seal(state: &AppState, password: &str) -> Result<String, ApiError> {
    state
        .secrets
        .seal(password)
        .map_err(|error| ApiError::Internal(error.to_string()))
}

pub(super) async fn require_by_site(
    state: &AppState,
    site_id: i32,
) -> Result<mqtt_connection::Model, ApiError> {
    find_by_site(&state.db, site_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("site {site_id} has no MQTT connection")))
}

fn already_connected(site_id: i32) -> String {
    format!(
        "site {site_id} already has an MQTT connection; change it with PATCH /api/mqtt/connection/{site_id}/"
    )
}

/// `GET /api/mqtt/connections`: by site (one connection per site).
pub struct ConnectionList;

impl Listing for ConnectionList {
    type Entity = mqtt_connection::Entity;
    type Item = ConnectionResponse;
    const SITE_COLUMN: Option<mqtt_connection::Column> = Some(mqtt_connection::Column::SiteId);
    fn order() -> Vec<(mqtt_connection::Column, Order)> {
        vec![(mqtt_connection::Column::SiteId, Order::Asc)]
    }
    fn item(row: mqtt_connection::Model, state: &AppState) -> ConnectionResponse {
        ConnectionResponse::new(row, &state.supervisor)
    }
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionResponse>), ApiError> {
    let site_id = i32::try_from(body.site_id.0).map_err(|_| {
        ApiError::validation("site_id", format!("site {} does not exist", body.site_id.0))
    })?;
    let host = validate_host(&body.host)?;
    let port = validate_port(body.port)?;
    let keepalive_secs = body
        .keepalive_secs
        .map(validate_keepalive)
        .transpose()?
        .unwrap_or(DEFAULT_KEEPALIVE_SECS);
    let username = optional_text("username", body.username)?;
    let password = optional_text("password", body.password)?
        .map(|password| seal(&state, &password))
        .transpose()?;
    let ca_file = optional_text("ca_file", body.ca_file)?;
    let client_id = body
        .client_id
        .as_deref()
        .map(validate_client_id)
        .transpose()?;
    let max_silence_secs = body
        .max_silence_secs
        .map(validate_max_silence)
        .transpose()?;
    let discovery_filter = body
        .discovery_filter
        .map(validate_discovery_filter)
        .transpose()?;
    let shards = body.shards.map(validate_shards).transpose()?.unwrap_or(1);
    let client_cert_file = optional_text("client_cert_file", body.client_cert_file)?;
    let client_key_file = optional_text("client_key_file", body.client_key_file)?;
    validate_client_identity(client_cert_file.as_deref(), client_key_file.as_deref())?;
    let last_will = body.last_will.map(validate_will).transpose()?;
    let protocol = body
        .protocol
        .as_deref()
        .map(validate_protocol)
        .transpose()?
        .unwrap_or_default();
    let session_expiry_secs = body
        .session_expiry_secs
        .map(validate_session_expiry)
        .transpose()?;
    let Some(site) = site::Entity::find_by_id(site_id).one(&state.db).await? else {
        return Err(ApiError::validation(
            "site_id",
            format!("site {site_id} does not exist"),
        ));
    };
    if find_by_site(&state.db, site_id).await?.is_some() {
        return Err(ApiError::conflict(already_connected(site_id)));
    }
    let now = Utc::now();
    let row = mqtt_connection::ActiveModel {
        site_id: Set(site_id),
        host: Set(host),
        port: Set(port),
        username: Set(username),
        password: Set(password),
        client_id: Set(client_id.unwrap_or_else(|| format!("mqtt-supervisor-{}", site.slug))),
        use_tls: Set(body.use_tls.unwrap_or(false)),
        ca_file: Set(ca_file),
        keepalive_secs: Set(keepalive_secs),
        clean_session: Set(body.clean_session.unwrap_or(false)),
        is_active: Set(body.is_active.unwrap_or(false)),
        status: Set("stopped".to_string()),
        last_error: Set(None),
        connected_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        subscriptions: Set(None),
        last_message_at: Set(None),
        max_silence_secs: Set(max_silence_secs),
        silent: Set(false),
        discovery_filter: Set(discovery_filter),
        shards: Set(shards),
        client_cert_file: Set(client_cert_file),
        client_key_file: Set(client_key_file),
        last_will: Set(last_will.map(|will| serde_json::to_value(will).unwrap_or_default())),
        protocol: Set(protocol.as_str().to_string()),
        session_expiry_secs: Set(session_expiry_secs),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(|error| ApiError::database(error, || already_connected(site_id)))?;
    state.supervisor.wake();
    Ok((
        StatusCode::CREATED,
        Json(ConnectionResponse::new(row, &state.supervisor)),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    PathId(site_id): PathId,
) -> Result<Json<ConnectionResponse>, ApiError> {
    let row = require_by_site(&state, site_id).await?;
    Ok(Json(ConnectionResponse::new(row, &state.supervisor)))
}

pub async fn update(
    State(state): State<AppState>,
    PathId(site_id): PathId,
    ApiJson(body): ApiJson<UpdateConnection>,
) -> Result<(StatusCode, Json<ConnectionResponse>), ApiError> {
    // Validate everything before touching the row, so a bad field changes nothing.
    let host = body
        .host
        .required("host")?
        .map(|host| validate_host(&host))
        .transpose()?;
    let port = body.port.required("port")?.map(validate_port).transpose()?;
    let keepalive_secs = body
        .keepalive_secs
        .required("keepalive_secs")?
        .map(validate_keepalive)
        .transpose()?;
    let client_id = body
        .client_id
        .required("client_id")?
        .map(|client_id| validate_client_id(&client_id))
        .transpose()?;
    let use_tls = body.use_tls.required("use_tls")?;
    let clean_session = body.clean_session.required("clean_session")?;
    let is_active = body.is_active.required("is_active")?;
    let username = body
        .username
        .nullable()
        .map(|value| optional_text("username", value))
        .transpose()?;
    let password = body
        .password
        .nullable()
        .map(|value| optional_text("password", value))
        .transpose()?
        .map(|value| value.map(|password| seal(&state, &password)).transpose())
        .transpose()?;
    let ca_file = body
        .ca_file
        .nullable()
        .map(|value| optional_text("ca_file", value))
        .transpose()?;
    let max_silence_secs = body
        .max_silence_secs
        .nullable()
        .map(|value| value.map(validate_max_silence).transpose())
        .transpose()?;
    let discovery_filter = body
        .discovery_filter
        .nullable()
        .map(|value| value.map(validate_discovery_filter).transpose())
        .transpose()?;
    let shards = body
        .shards
        .required("shards")?
        .map(validate_shards)
        .transpose()?;
    let client_cert_file = body
        .client_cert_file
        .nullable()
        .map(|value| optional_text("client_cert_file", value))
        .transpose()?;
    let client_key_file = body
        .client_key_file
        .nullable()
        .map(|value| optional_text("client_key_file", value))
        .transpose()?;
    let last_will = body
        .last_will
        .nullable()
        .map(|value| value.map(validate_will).transpose())
        .transpose()?;
    let protocol = body
        .protocol
        .required("protocol")?
        .map(|protocol| validate_protocol(&protocol))
        .transpose()?;
    let session_expiry_secs = body
        .session_expiry_secs
        .nullable()
        .map(|value| value.map(validate_session_expiry).transpose())
        .transpose()?;

    let current = require_by_site(&state, site_id).await?;
    // The pair as it will be stored: a change to one is checked with the other.
    validate_client_identity(
        client_cert_file
            .clone()
            .unwrap_or_else(|| current.client_cert_file.clone())
            .as_deref()
            .filter(|path| !path.is_empty()),
        client_key_file
            .clone()
            .unwrap_or_else(|| current.client_key_file.clone())
            .as_deref()
            .filter(|path| !path.is_empty()),
    )?;
    let mut row = current.into_active_model();
    if let Some(host) = host {
        row.host = Set(host);
    }
    if let Some(port) = port {
        row.port = Set(port);
    }
    if let Some(keepalive_secs) = keepalive_secs {
        row.keepalive_secs = Set(keepalive_secs);
    }
    if let Some(client_id) = client_id {
        row.client_id = Set(client_id);
    }
    if let Some(use_tls) = use_tls {
        row.use_tls = Set(use_tls);
    }
    if let Some(clean_session) = clean_session {
        row.clean_session = Set(clean_session);
    }
    if let Some(is_active) = is_active {
        row.is_active = Set(is_active);
    }
    if let Some(username) = username {
        row.username = Set(username);
    }
    if let Some(password) = password {
        row.password = Set(password);
    }
    if let Some(ca_file) = ca_file {
        row.ca_file = Set(ca_file);
    }
    if let Some(max_silence_secs) = max_silence_secs {
        row.max_silence_secs = Set(max_silence_secs);
    }
    if let Some(discovery_filter) = discovery_filter {
        row.discovery_filter = Set(discovery_filter);
    }
    if let Some(shards) = shards {
        row.shards = Set(shards);
    }
    if let Some(client_cert_file) = client_cert_file {
        row.client_cert_file = Set(client_cert_file);
    }
    if let Some(client_key_file) = client_key_file {
        row.client_key_file = Set(client_key_file);
    }
    if let Some(last_will) = last_will {
        row.last_will = Set(last_will.map(|will| serde_json::to_value(will).unwrap_or_default()));
    }
    if let Some(protocol) = protocol {
        row.protocol = Set(protocol.as_str().to_string());
    }
    if let Some(session_expiry_secs) = session_expiry_secs {
        row.session_expiry_secs = Set(session_expiry_secs);
    }
    row.updated_at = Set(Utc::now());
    let updated = row.update(&state.db).await?;
    // 202: the row is stored; the supervisor starts, stops or restarts the client right after.
    state.supervisor.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(ConnectionResponse::new(updated, &state.supervisor)),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    PathId(site_id): PathId,
) -> Result<StatusCode, ApiError> {
    let result = mqtt_connection::Entity::delete_many()
        .filter(mqtt_connection::Column::SiteId.eq(site_id))
        .exec(&state.db)
        .await?;
    if result.rows_affected == 0 {
        return Err(ApiError::not_found(format!(
            "site {site_id} has no MQTT connection"
        )));
    }
    state.supervisor.wake();
    Ok(StatusCode::NO_CONTENT)
}
