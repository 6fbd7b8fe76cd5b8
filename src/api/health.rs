//! `GET /health`: is the database reachable and is every running connection connected. Always
//! 200 so a load balancer does not pull the API (needed to fix a broker) when one broker is down;
//! the body says `degraded`. `GET /health/live` (the process runs) and `GET /health/ready` (the
//! database answers and the schema is migrated) are for orchestrators. None of them waits on
//! the database: they read what the background probe last found.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::foreign_schemas::JobStatusSchema;
use super::schema;

use axum::http::StatusCode;

use crate::connection::ConnectionStatus;
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
    /// This instance's id (several may share the database); `connections` are the ones it runs.
    pub instance: String,
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
    let database_ok = state.database.is_reachable();
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
        instance: state.supervisor.cluster().instance_id.to_string(),
    })
}

/// The body of `/health/live` and `/health/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Probe {
    /// `ok`, or `unavailable` when not ready.
    #[schema(pattern = "^(ok|unavailable)$")]
    pub status: &'static str,
    /// Why not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// 200 while the process runs and serves requests.
pub async fn live() -> Json<Probe> {
    Json(Probe {
        status: "ok",
        reason: None,
    })
}

/// 200 when the database answers (migrations are applied before the service listens); 503
/// while it does not. One broker being down does not make the service unready.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Probe>) {
    if state.database.is_reachable() {
        (
            StatusCode::OK,
            Json(Probe {
                status: "ok",
                reason: None,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Probe {
                status: "unavailable",
                reason: Some("the database does not answer"),
            }),
        )
    }
}
