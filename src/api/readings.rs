//! `/api/sensors/{id}/readings`: a sensor's reading history, newest first.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::PathId;
use super::pagination::PageQuery;
use super::query::{parse_query, QueryTime};
use crate::entity::{sensor, sensor_reading};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reading)]
pub struct ReadingResponse {
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// `from` and `to` bound `ts` inclusively; either may be left out.
/// The time range of the readings endpoint (its page parameters are the lists' own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Earliest `ts` (inclusive), RFC 3339; a space stands for an unencoded '+' of the offset.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub from: Option<QueryTime>,
    /// Latest `ts` (inclusive), RFC 3339; not earlier than `from`.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub to: Option<QueryTime>,
}

pub async fn list(
    State(state): State<AppState>,
    PathId(sensor_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ReadingResponse>>, ApiError> {
    let query = query.unwrap_or_default();
    let page = parse_query::<PageQuery>(&query)?.page()?;
    let range = parse_query::<ReadingsQuery>(&query)?;
    let from = range.from.map(|time| time.0);
    let to = range.to.map(|time| time.0);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::validation("from", "must not be later than 'to'"));
        }
    }
    if sensor::Entity::find_by_id(sensor_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("sensor {sensor_id} not found")));
    }
    let mut query =
        sensor_reading::Entity::find().filter(sensor_reading::Column::SensorId.eq(sensor_id));
    if let Some(from) = from {
        query = query.filter(sensor_reading::Column::Ts.gte(from));
    }
    if let Some(to) = to {
        query = query.filter(sensor_reading::Column::Ts.lte(to));
    }
    let rows = query
        .order_by_desc(sensor_reading::Column::Ts)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| ReadingResponse {
                ts: row.ts,
                value: row.value,
            })
            .collect(),
    ))
}
