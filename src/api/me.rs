//! `GET /api/me`: what the caller's token may do, so the page can leave out the controls a read
//! token cannot use instead of offering them and failing with 403.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{check, Access};
use super::error::ApiError;
use crate::state::AppState;

/// The caller as the tokens see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `admin`, `read`, or `none` (reads are public and no valid token was sent).
    #[schema(pattern = "^(admin|read|none)$")]
    pub token: &'static str,
    /// Whether changes (POST, PATCH, DELETE) would be accepted.
    pub can_change: bool,
}

pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Json<Me> {
    let token = match check(&state, Access::Admin, &headers, None) {
        Ok(_) => "admin",
        Err(ApiError::Forbidden(_)) => "read",
        Err(_) => "none",
    };
    Json(Me {
        token,
        can_change: token == "admin",
    })
}
