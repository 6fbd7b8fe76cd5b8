//! `/api/sites/{site_id}/commands` and `/api/commands/{id}`: commands to a site's devices, stored
//! in the outbox and sent by the site's connection, followed from `queued` to `delivered`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::Object;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{ApiJson, JsonInteger, PathId};
use super::logs::encode_payload;
use super::pagination::Page;
use super::query::{ApiQuery, QueryInteger};
use super::schema;
use crate::downlink::{self, check_idempotency_key, CommandStatus, InvalidCommand, NewCommand};
use crate::entity::{device_command, mqtt_connection, site};
use crate::state::AppState;

/// A command: a topic and a payload, or a template of a parser and its arguments.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CommandCreate)]
pub struct CreateCommand {
    /// A topic name: no `+` or `#`, not empty, not starting with `$`.
    #[schema(schema_with = topic_schema)]
    topic: Option<String>,
    /// A JSON value, sent as its JSON text; a string is sent as it is.
    #[schema(value_type = Option<Value>)]
    payload: Option<Value>,
    /// 0, 1 or 2; default 1.
    #[schema(schema_with = qos_schema)]
    qos: Option<JsonInteger>,
    /// Default false.
    retain: Option<bool>,
    /// Default 300: a command not sent by then ends `expired` and is never sent.
    #[schema(schema_with = expires_schema)]
    expires_in_secs: Option<JsonInteger>,
    /// A command template declared by a parser definition, instead of `topic` and `payload`.
    #[schema(schema_with = optional_text_schema)]
    template: Option<String>,
    /// The template's arguments, checked against the JSON Schema the template declares (see
    /// `GET /api/parsers`).
    #[schema(value_type = Option<Object>)]
    args: Option<Value>,
}

fn topic_schema() -> Object {
    schema::or_null(schema::mqtt_string())
}

fn optional_text_schema() -> Object {
    schema::or_null(schema::mqtt_string())
}

fn qos_schema() -> Object {
    schema::or_null(schema::integer(0, 2))
}

fn expires_schema() -> Object {
    schema::or_null(schema::integer(1, downlink::MAX_EXPIRES_IN_SECS))
}

fn status_schema() -> Object {
    schema::string()
        .enum_values(Some(CommandStatus::ALL.map(CommandStatus::as_str)))
        .build()
}

/// A command and where it stands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Command)]
pub struct CommandResponse {
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    /// The payload as text when it is UTF-8, otherwise base64.
    pub payload: String,
    #[schema(minimum = 0, maximum = 2)]
    pub qos: i16,
    pub retain: bool,
    #[schema(schema_with = status_schema)]
    pub status: String,
    /// The template it was made from.
    #[schema(required)]
    pub template: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[schema(required)]
    pub sent_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[schema(required)]
    pub error: Option<String>,
    /// The device reply that confirms it (`topic`, `fields`: JSON pointer → value,
    /// `within_secs`), for a command made from a template that declares one.
    #[schema(required, value_type = Option<Object>)]
    pub confirm: Option<Value>,
}

impl From<device_command::Model> for CommandResponse {
    fn from(model: device_command::Model) -> CommandResponse {
        let (payload, _) = encode_payload(model.payload);
        CommandResponse {
            id: model.id,
            site_id: model.site_id,
            topic: model.topic,
            payload,
            qos: model.qos,
            retain: model.retain,
            status: model.status,
            template: model.template,
            created_at: model.created_at,
            expires_at: model.expires_at,
            sent_at: model.sent_at,
            delivered_at: model.delivered_at,
            confirmed_at: model.confirmed_at,
            error: model.error,
            confirm: model
                .confirm_rule
                .as_deref()
                .and_then(|rule| serde_json::from_str(rule).ok()),
        }
    }
}

impl From<InvalidCommand> for ApiError {
    fn from(invalid: InvalidCommand) -> ApiError {
        ApiError::validation(invalid.field, invalid.message)
    }
}

fn checked(site_id: i32, body: CreateCommand, state: &AppState) -> Result<NewCommand, ApiError> {
    let max_payload_bytes = state.config.pipeline.max_payload_bytes;
    let expires_in_secs = body.expires_in_secs.map(|JsonInteger(secs)| secs);
    if let Some(name) = body.template {
        for (field, given) in [
            ("topic", body.topic.is_some()),
            ("payload", body.payload.is_some()),
            ("qos", body.qos.is_some()),
            ("retain", body.retain.is_some()),
        ] {
            if given {
                return Err(ApiError::validation(
                    field,
                    format!("comes from the template '{name}'; leave it out or send no template"),
                ));
            }
        }
        let registry = state.parsers.current();
        let Some(template) = registry.command(&name) else {
            let known = registry.command_names();
            let known = if known.is_empty() {
                "no parser declares one".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            };
            return Err(ApiError::validation(
                "template",
                format!("no parser declares a command template named '{name}' ({known})"),
            ));
        };
        let args = body.args.unwrap_or(Value::Object(Default::default()));
        return Ok(NewCommand::from_template(
            site_id,
            &template,
            &args,
            expires_in_secs,
            max_payload_bytes,
        )?);
    }
    if body.args.is_some() {
        return Err(ApiError::validation(
            "args",
            "is for a template; a command with a topic sends its payload as it is",
        ));
    }
    let Some(topic) = body.topic else {
        return Err(ApiError::validation(
            "topic",
            "is required: give a topic and a payload (or a template and its args)",
        ));
    };
    let Some(payload) = body.payload else {
        return Err(ApiError::validation(
            "payload",
            "is required: a JSON value, or a string sent as it is",
        ));
    };
    Ok(NewCommand::direct(
        site_id,
        &topic,
        &payload,
        body.qos.map(|JsonInteger(qos)| qos),
        body.retain,
        expires_in_secs,
        max_payload_bytes,
    )?)
}

/// `POST /api/sites/{site_id}/commands` → 202: stored as `queued`, the connection woken.
pub async fn create(
    State(state): State<AppState>,
    PathId(site_id): PathId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateCommand>,
) -> Result<(StatusCode, Json<CommandResponse>), ApiError> {
    if site::Entity::find_by_id(site_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("site {site_id} not found")));
    }
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(check_idempotency_key(value.to_str().map_err(|_| {
            ApiError::validation("Idempotency-Key", "must be visible ASCII characters")
        })?)?),
    };
    let mut command = checked(site_id, body, &state)?;
    command.idempotency_key = idempotency_key;
    let has_connection = mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::SiteId.eq(site_id))
        .one(&state.db)
        .await?
        .is_some();
    if !has_connection {
        return Err(ApiError::conflict(format!(
            "site {site_id} has no MQTT connection to send commands over; create one with POST \
             /api/mqtt/connections"
        )));
    }
    let confirm = command.confirm.clone();
    let enqueued = downlink::enqueue(&state.db, command, Utc::now()).await?;
    if enqueued.created {
        downlink::CommandReport {
            hub: state.hub.clone(),
            metrics: state.metrics.clone(),
        }
        .told(&enqueued.command);
        if let Some(rule) = confirm {
            state
                .supervisor
                .reply_watch()
                .expect(site_id, enqueued.command.id, rule);
        }
        state.supervisor.command_stored(site_id);
    }
    Ok((StatusCode::ACCEPTED, Json(enqueued.command.into())))
}

/// `GET /api/commands/{id}`.
pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<CommandResponse>, ApiError> {
    device_command::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .map(|command| Json(command.into()))
        .ok_or_else(|| ApiError::not_found(format!("command {id} not found")))
}

/// The filters of a site's command list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommandQuery {
    /// Only commands in this status.
    #[param(value_type = Option<String>, pattern = "^(queued|sent|delivered|confirmed|failed|expired)$")]
    #[serde(default)]
    pub status: Option<String>,
    /// Rows per page, 100 unless given; values above 1000 are lowered to 1000.
    #[param(value_type = i64, minimum = 1, default = 100)]
    #[serde(default)]
    pub limit: Option<QueryInteger>,
    /// Rows to skip.
    #[param(value_type = i64, minimum = 0, default = 0)]
    #[serde(default)]
    pub offset: Option<QueryInteger>,
}

/// `GET /api/sites/{site_id}/commands?status=&limit=&offset=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    PathId(site_id): PathId,
    ApiQuery(query): ApiQuery<CommandQuery>,
) -> Result<Json<Vec<CommandResponse>>, ApiError> {
    let page = Page::new(query.limit, query.offset)?;
    let status = query
        .status
        .map(|name| {
            CommandStatus::parse(&name).ok_or_else(|| {
                ApiError::validation(
                    "status",
                    format!(
                        "must be one of queued, sent, delivered, confirmed, failed or expired \
                         (got '{name}')"
                    ),
                )
            })
        })
        .transpose()?;
    if site::Entity::find_by_id(site_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("site {site_id} not found")));
    }
    let mut select = device_command::Entity::find()
        .filter(device_command::Column::SiteId.eq(site_id))
        .order_by_desc(device_command::Column::Id)
        .limit(page.limit)
        .offset(page.offset);
    if let Some(status) = status {
        select = select.filter(device_command::Column::Status.eq(status.as_str()));
    }
    let rows = select.all(&state.db).await?;
    Ok(Json(rows.into_iter().map(CommandResponse::from).collect()))
}
