//! `GET /health`: is the database reachable and is every running connection connected. Always
//! 200 so a load balancer does not pull the API (needed to fix a broker) when one broker is down;
//! the body says `degraded`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::connection::ConnectionStatus;
use crate::db;
use crate::jobs::JobStatus;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub connections: Vec<ConnectionHealth>,
    pub messages_processed: u64,
    pub errors_count: u64,
    pub last_message_time: Option<DateTime<Utc>>,
    /// Scheduled jobs with their schedule and last outcome.
    pub jobs: Vec<JobStatus>,
}

#[derive(Debug, Serialize)]
pub struct ConnectionHealth {
    pub site_id: i32,
    pub connection_id: i32,
    pub status: ConnectionStatus,
    pub last_error: Option<String>,
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let database_ok = db::ping(&state.db).await;
    let connections: Vec<ConnectionHealth> = state
        .supervisor
        .live()
        .into_iter()
        .map(|live| ConnectionHealth {
            site_id: live.site_id,
            connection_id: live.connection_id,
            status: live.status,
            last_error: live.last_error,
        })
        .collect();
    let all_connected = connections
        .iter()
        .all(|connection| connection.status == ConnectionStatus::Connected);
    Json(Health {
        status: if database_ok && all_connected {
            "ok"
        } else {
            "degraded"
        },
        database: if database_ok { "ok" } else { "error" },
        connections,
        messages_processed: state.metrics.messages_processed_total(),
        errors_count: state.metrics.errors_total(),
        last_message_time: state.metrics.last_message_time(),
        jobs: state.jobs.list(),
    })
}
