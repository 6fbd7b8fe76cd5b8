//! `/api/mqtt/connections` and `/api/mqtt/connection/{site_id}/`: the one broker connection of a
//! site. Every change wakes the supervisor so it takes effect at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiJson, Patch, PathId, QueryParams};
use super::pagination::Page;
use crate::entity::{mqtt_connection, site};
use crate::state::AppState;
use crate::supervisor::SupervisorHandle;

const MAX_HOST_CHARS: usize = 255;
/// MQTT strings carry a 16-bit length.
const MAX_MQTT_STRING_BYTES: usize = 65_535;
const MIN_KEEPALIVE_SECS: i64 = 5;
const MAX_KEEPALIVE_SECS: i64 = 65_535;
const DEFAULT_KEEPALIVE_SECS: i32 = 30;

/// A connection as the API shows it: the password never leaves the service, only whether one
/// is set.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionResponse {
    pub id: i32,
    pub site_id: i32,
    pub host: String,
    pub port: i32,
    pub username: Option<String>,
    pub has_password: bool,
    pub client_id: String,
    pub use_tls: bool,
    pub ca_file: Option<String>,
    pub keepalive_secs: i32,
    pub clean_session: bool,
    pub is_active: bool,
    pub status: String,
    pub last_error: Option<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reconnect_attempts: u32,
    pub retry_in_ms: Option<u64>,
}

impl ConnectionResponse {
    /// Status and error come from the row (what the connection task last wrote); retry details
    /// only exist in the supervisor's memory.
    pub fn new(model: mqtt_connection::Model, supervisor: &SupervisorHandle) -> ConnectionResponse {
        let live = supervisor.live_status(model.site_id);
        ConnectionResponse {
            id: model.id,
            site_id: model.site_id,
            host: model.host,
            port: model.port,
            username: model.username,
            has_password: model.password.is_some(),
            client_id: model.client_id,
            use_tls: model.use_tls,
            ca_file: model.ca_file,
            keepalive_secs: model.keepalive_secs,
            clean_session: model.clean_session,
            is_active: model.is_active,
            status: model.status,
            last_error: model.last_error,
            connected_at: model.connected_at,
            created_at: model.created_at,
            updated_at: model.updated_at,
            reconnect_attempts: live.as_ref().map_or(0, |live| live.reconnect_attempts),
            retry_in_ms: live.and_then(|live| live.retry_in_ms),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateConnection {
    site_id: i64,
    host: String,
    port: i64,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    use_tls: Option<bool>,
    ca_file: Option<String>,
    keepalive_secs: Option<i64>,
    clean_session: Option<bool>,
    is_active: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateConnection {
    #[serde(default)]
    host: Patch<String>,
    #[serde(default)]
    port: Patch<i64>,
    #[serde(default)]
    username: Patch<String>,
    #[serde(default)]
    password: Patch<String>,
    #[serde(default)]
    client_id: Patch<String>,
    #[serde(default)]
    use_tls: Patch<bool>,
    #[serde(default)]
    ca_file: Patch<String>,
    #[serde(default)]
    keepalive_secs: Patch<i64>,
    #[serde(default)]
    clean_session: Patch<bool>,
    #[serde(default)]
    is_active: Patch<bool>,
}

fn validate_host(host: &str) -> Result<String, ApiError> {
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

fn validate_port(port: i64) -> Result<i32, ApiError> {
    if !(1..=65_535).contains(&port) {
        return Err(ApiError::validation(
            "port",
            format!("must be between 1 and 65535 (got {port})"),
        ));
    }
    Ok(port as i32)
}

fn validate_keepalive(seconds: i64) -> Result<i32, ApiError> {
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

fn validate_client_id(client_id: &str) -> Result<String, ApiError> {
    let client_id = client_id.trim();
    if client_id.is_empty() {
        return Err(ApiError::validation("client_id", "must not be empty"));
    }
    if client_id.len() > MAX_MQTT_STRING_BYTES {
        return Err(ApiError::validation(
            "client_id",
            format!("must be at most {MAX_MQTT_STRING_BYTES} bytes"),
        ));
    }
    Ok(client_id.to_string())
}

/// Optional texts: an empty string means "none", as an HTML form sends it.
fn optional_text(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
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

pub async fn find_by_site(
    state: &AppState,
    site_id: i32,
) -> Result<Option<mqtt_connection::Model>, ApiError> {
    Ok(mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::SiteId.eq(site_id))
        .one(&state.db)
        .await?)
}

async fn require_by_site(
    state: &AppState,
    site_id: i32,
) -> Result<mqtt_connection::Model, ApiError> {
    find_by_site(state, site_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("site {site_id} has no MQTT connection")))
}

fn already_connected(site_id: i32) -> String {
    format!(
        "site {site_id} already has an MQTT connection; change it with PATCH /api/mqtt/connection/{site_id}/"
    )
}

pub async fn list(
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<Vec<ConnectionResponse>>, ApiError> {
    let page = Page::from_params(&params)?;
    let mut query = mqtt_connection::Entity::find();
    if let Some(site_id) = params.id("site_id")? {
        query = query.filter(mqtt_connection::Column::SiteId.eq(site_id));
    }
    let rows = query
        .order_by_asc(mqtt_connection::Column::SiteId)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| ConnectionResponse::new(row, &state.supervisor))
            .collect(),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionResponse>), ApiError> {
    let site_id = i32::try_from(body.site_id).map_err(|_| {
        ApiError::validation("site_id", format!("site {} does not exist", body.site_id))
    })?;
    let host = validate_host(&body.host)?;
    let port = validate_port(body.port)?;
    let keepalive_secs = body
        .keepalive_secs
        .map(validate_keepalive)
        .transpose()?
        .unwrap_or(DEFAULT_KEEPALIVE_SECS);
    let username = optional_text("username", body.username)?;
    let password = optional_text("password", body.password)?;
    let ca_file = optional_text("ca_file", body.ca_file)?;
    let client_id = body
        .client_id
        .as_deref()
        .map(validate_client_id)
        .transpose()?;
    let Some(site) = site::Entity::find_by_id(site_id).one(&state.db).await? else {
        return Err(ApiError::validation(
            "site_id",
            format!("site {site_id} does not exist"),
        ));
    };
    if find_by_site(&state, site_id).await?.is_some() {
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
        .transpose()?;
    let ca_file = body
        .ca_file
        .nullable()
        .map(|value| optional_text("ca_file", value))
        .transpose()?;

    let mut row = require_by_site(&state, site_id).await?.into_active_model();
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
