//! Requests that need the database fail at once with 503 while the background probe finds it
//! unreachable, instead of each waiting for the pool to give up on it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::DbErr;

use super::ApiError;
use crate::state::AppState;

pub async fn require_database(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.database.is_reachable() {
        return ApiError::Unavailable(DbErr::Custom(
            "the background probe finds the database unreachable".into(),
        ))
        .into_response();
    }
    next.run(request).await
}
