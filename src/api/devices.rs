//! `/api/sites/{site_id}/devices`: the live device tree of a site, gateway → datalogger → sensor.

use axum::extract::State;
use axum::Json;
use sea_orm::EntityTrait;

use super::error::ApiError;
use super::extract::PathId;
use crate::entity::site;
use crate::queries::devices::{load_devices, GatewayNode};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    PathId(site_id): PathId,
) -> Result<Json<Vec<GatewayNode>>, ApiError> {
    let devices = load_devices(&state.db, site_id).await?;
    // Only an empty answer needs the extra query that tells "no devices" from "no such site".
    if devices.is_empty()
        && site::Entity::find_by_id(site_id)
            .one(&state.db)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found(format!("site {site_id} not found")));
    }
    Ok(Json(devices))
}
