//! `GET /ws`: upgrades to the WebSocket session (auth has already been checked, before the
//! upgrade, by the route's guard).

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::state::AppState;

/// Clients only send small control messages; anything larger is not one of ours.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

pub async fn upgrade(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
            .on_upgrade(move |socket| crate::ws::handle_socket(socket, state)),
        Err(rejection) => ApiError::BadRequest(format!(
            "this endpoint speaks WebSocket only: {}",
            rejection.body_text()
        ))
        .into_response(),
    }
}
