//! `GET /health`: is the database reachable and is every running connection connected. Always
//! 200 so a load balancer does not pull the API (needed to fix a broker) when one broker is down;
//! the body says `degraded`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::foreign_schemas::JobStatusSchema;
use super::schema;

use crate::connection::ConnectionStatus;
use crate::db;
use crate::jobs::JobStatus;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers and every running connection is connected.
    #[schema(schema_with = status_schema)]
    pub status: &'static str,
    #[schema(schema_with = database_schema)]
    pub database: &'static str,
    /// Every connection the supervisor runs.
    pub connections: Vec<ConnectionHealth>,
    pub messages_processed: u64,
    pub errors_count: u64,
    #[schema(required)]
    pub last_message_time: Option<DateTime<Utc>>,
    /// Scheduled jobs with their schedule and last outcome.
    #[schema(value_type = Vec<JobStatusSchema>)]
    pub jobs: Vec<JobStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionHealth {
    pub site_id: i32,
    pub connection_id: i32,
    #[schema(schema_with = connection_status_schema)]
    pub status: ConnectionStatus,
    #[schema(required)]
    pub last_error: Option<String>,
}

fn status_schema() -> Object {
    schema::string()
        .enum_values(Some(["ok", "degraded"]))
        .build()
}

fn database_schema() -> Object {
    schema::string().enum_values(Some(["ok", "error"])).build()
}

fn connection_status_schema() -> Object {
    schema::string()
        .enum_values(Some(ConnectionStatus::ALL.map(ConnectionStatus::as_str)))
        .build()
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
