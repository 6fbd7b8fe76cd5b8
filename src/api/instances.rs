//! `GET /api/instances`: the instances sharing the database, with the connection shards each
//! owns (any instance answers for all of them).

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use crate::cluster::{list_instances, InstanceInfo};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<InstanceInfo>>, ApiError> {
    let lease = state.supervisor.cluster().lease;
    Ok(Json(list_instances(&state.db, lease).await?))
}
