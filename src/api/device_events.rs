//! `/api/sites/{site_id}/device-events`: the online/offline history of a site's gateways and
//! dataloggers, newest first, with what caused each change.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::PathId;
use super::pagination::PageQuery;
use super::query::ApiQuery;
use crate::entity::{datalogger, device_event, gateway, site};
use crate::state::AppState;

/// One change of a device's `is_online`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeviceEvent)]
pub struct DeviceEventResponse {
    pub at: DateTime<Utc>,
    /// The gateway's identifier (the gateway itself, or the datalogger's gateway).
    pub gateway: String,
    /// The datalogger's identifier; absent for a gateway's own change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datalogger: Option<String>,
    pub is_online: bool,
    /// `status_message` (the device said so), `offline_timeout` (silent longer than
    /// `jobs.offline_after_secs`) or `message` (a message came from a device that was offline).
    #[schema(pattern = "^(status_message|offline_timeout|message)$")]
    pub cause: String,
}

pub async fn list(
    State(state): State<AppState>,
    PathId(site_id): PathId,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Vec<DeviceEventResponse>>, ApiError> {
    let page = query.page()?;
    if site::Entity::find_by_id(site_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("site {site_id} not found")));
    }
    let rows = device_event::Entity::find()
        .filter(device_event::Column::SiteId.eq(site_id))
        .order_by_desc(device_event::Column::At)
        .order_by_desc(device_event::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    let gateways: HashMap<i32, String> = gateway::Entity::find()
        .filter(gateway::Column::Id.is_in(rows.iter().map(|row| row.gateway_id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|row| (row.id, row.identifier))
        .collect();
    let dataloggers: HashMap<i32, String> = datalogger::Entity::find()
        .filter(datalogger::Column::Id.is_in(rows.iter().filter_map(|row| row.datalogger_id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|row| (row.id, row.identifier))
        .collect();
    Ok(Json(
        rows.into_iter()
            .map(|row| DeviceEventResponse {
                at: row.at,
                gateway: gateways.get(&row.gateway_id).cloned().unwrap_or_default(),
                datalogger: row
                    .datalogger_id
                    .and_then(|id| dataloggers.get(&id).cloned()),
                is_online: row.is_online,
                cause: row.cause,
            })
            .collect(),
    ))
}
