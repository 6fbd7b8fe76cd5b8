//! What the edges people talk to (the HTTP API and browser sessions) share: config, database,
//! parsers, the event hub, the supervisor handle, metrics, the job board and the shutdown token.
//! Tasks below the edges (connections, writers, jobs) get only the handles they need.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::DatabaseProbe;
use crate::events::Hub;
use crate::jobs::JobBoard;
use crate::metrics::Metrics;
use crate::parsers::ParserStore;
use crate::secrets::Secrets;
use crate::supervisor::SupervisorHandle;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// Whether the database answers, as the background probe last found it.
    pub database: DatabaseProbe,
    pub parsers: ParserStore,
    pub hub: Hub,
    pub supervisor: SupervisorHandle,
    pub metrics: Arc<Metrics>,
    pub jobs: JobBoard,
    pub shutdown: CancellationToken,
    /// Seals broker passwords before they are stored.
    pub secrets: Secrets,
}
