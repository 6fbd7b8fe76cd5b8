//! `/api/sensors/{id}/readings`: a sensor's reading history, newest first.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::error::ApiError;
use super::extract::{PathId, QueryParams};
use super::pagination::Page;
use crate::entity::{sensor, sensor_reading};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ReadingResponse {
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// `from` and `to` bound `ts` inclusively; either may be left out.
pub async fn list(
    State(state): State<AppState>,
    PathId(sensor_id): PathId,
    params: QueryParams,
) -> Result<Json<Vec<ReadingResponse>>, ApiError> {
    let page = Page::from_params(&params)?;
    let from = params.timestamp("from")?;
    let to = params.timestamp("to")?;
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
