//! `/api/mqtt/connection-logs` and `/api/mqtt/parsing-logs` (newest first), and replaying a
//! parsing-log row through today's patterns and parsers.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, Order};
use serde::Serialize;
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::PathId;
use super::foreign_schemas::ErrorPositionSchema;
use super::list::Listing;
use super::schema;
use crate::entity::{mqtt_connection_log, mqtt_parsing_log};
use crate::parsers::{error_position, ErrorPosition};
use crate::pipeline::replay::{replay as replay_row, ReplayOutcome};
use crate::pipeline::Limits;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConnectionLog)]
pub struct ConnectionLogResponse {
    pub id: i32,
    pub site_id: i32,
    pub event: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ParsingLog)]
pub struct ParsingLogResponse {
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    /// The parser the pattern named, if a pattern matched.
    #[schema(required)]
    pub parser: Option<String>,
    pub error: String,
    /// Where `error` points in the payload, when it names a place: `{"line", "column"}` (1-based,
    /// the column in characters of the payload text) for a payload that is not JSON,
    /// `{"pointer"}` (a JSON pointer; "" is the whole payload) for a value a rule refused.
    #[schema(value_type = Option<ErrorPositionSchema>, required)]
    pub error_position: Option<ErrorPosition>,
    /// The payload as text when it is UTF-8, otherwise base64; `payload_encoding` says which.
    pub payload: String,
    #[schema(schema_with = payload_encoding_schema)]
    pub payload_encoding: &'static str,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub replayed_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// The broker delivered it from its retained store (old news): a replay stores its
    /// readings but changes no device's `last_seen` or `is_online`.
    pub retained: bool,
}

fn payload_encoding_schema() -> Object {
    schema::string()
        .enum_values(Some(["utf8", "base64"]))
        .build()
}

/// Payloads are kept as bytes (a device may send anything); JSON can only carry text.
pub fn encode_payload(payload: Vec<u8>) -> (String, &'static str) {
    match String::from_utf8(payload) {
        Ok(text) => (text, "utf8"),
        Err(error) => (
            base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
            "base64",
        ),
    }
}

impl From<mqtt_parsing_log::Model> for ParsingLogResponse {
    fn from(model: mqtt_parsing_log::Model) -> ParsingLogResponse {
        let error_position = error_position(&model.error, &model.payload);
        let (payload, payload_encoding) = encode_payload(model.payload);
        ParsingLogResponse {
            id: model.id,
            site_id: model.site_id,
            topic: model.topic,
            parser: model.parser,
            error: model.error,
            error_position,
            payload,
            payload_encoding,
            created_at: model.created_at,
            replayed_at: model.replayed_at,
            received_at: model.received_at,
            retained: model.retained,
        }
    }
}

/// `GET /api/mqtt/connection-logs`: newest first; rows written in the same instant keep their
/// insertion order through the id.
pub struct ConnectionLogList;

impl Listing for ConnectionLogList {
    type Entity = mqtt_connection_log::Entity;
    type Item = ConnectionLogResponse;
    const SITE_COLUMN: Option<mqtt_connection_log::Column> =
        Some(mqtt_connection_log::Column::SiteId);
    fn order() -> Vec<(mqtt_connection_log::Column, Order)> {
        vec![
            (mqtt_connection_log::Column::CreatedAt, Order::Desc),
            (mqtt_connection_log::Column::Id, Order::Desc),
        ]
    }
    fn item(row: mqtt_connection_log::Model, _: &AppState) -> ConnectionLogResponse {
        ConnectionLogResponse {
            id: row.id,
            site_id: row.site_id,
            event: row.event,
            message: row.message,
            created_at: row.created_at,
        }
    }
}

/// The parsing log's table and order; `parsing_logs` lists it with its filters.
pub struct ParsingLogList;

impl Listing for ParsingLogList {
    type Entity = mqtt_parsing_log::Entity;
    type Item = ParsingLogResponse;
    const SITE_COLUMN: Option<mqtt_parsing_log::Column> = Some(mqtt_parsing_log::Column::SiteId);
    fn order() -> Vec<(mqtt_parsing_log::Column, Order)> {
        vec![
            (mqtt_parsing_log::Column::CreatedAt, Order::Desc),
            (mqtt_parsing_log::Column::Id, Order::Desc),
        ]
    }
    fn item(row: mqtt_parsing_log::Model, _: &AppState) -> ParsingLogResponse {
        row.into()
    }
}

/// 200 whether or not the payload parses now: the outcome is in `ok` and `error`.
pub async fn replay(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<ReplayOutcome>, ApiError> {
    let Some(row) = mqtt_parsing_log::Entity::find_by_id(id)
        .one(&state.db)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "parsing-log row {id} not found"
        )));
    };
    let limits = Limits {
        max_payload_bytes: state.config.pipeline.max_payload_bytes,
        sample_bytes: state.config.pipeline.sample_bytes,
    };
    let registry = state.parsers.current();
    Ok(Json(
        replay_row(&state.db, &state.hub, &registry, &limits, row).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_text_or_base64() {
        assert_eq!(
            encode_payload(b"{\"a\":1}".to_vec()),
            ("{\"a\":1}".into(), "utf8")
        );
        assert_eq!(encode_payload(vec![0xff, 0x00]), ("/wA=".into(), "base64"));
    }
}
