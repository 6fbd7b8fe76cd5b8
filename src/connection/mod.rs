//! One live MQTT client per active connection: connect, subscribe to the site's filters, hand
//! every message to the pipeline, reconnect with backoff, report every status change.

mod client;
mod live;
mod session;
mod settings;
mod status;
mod subscriptions;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use live::{LiveConnection, LiveConnections};
pub use settings::{ConnectionSettings, SettingsError};
pub use status::{ConnectionStatus, StatusReporter};

use crate::backoff::Backoff;
use crate::events::Hub;
use crate::metrics::Metrics;
use crate::parsers::ParserStore;
use crate::pipeline::{Limits, WriterHandle};
use crate::routing::SiteRoutes;

/// What every connection task needs from the rest of the service.
#[derive(Clone)]
pub struct ConnectionContext {
    pub db: DatabaseConnection,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub parsers: ParserStore,
    pub live: LiveConnections,
    pub writer: WriterHandle,
    pub limits: Limits,
    /// Delays between attempts to reach a broker.
    pub reconnect: Backoff,
    /// The broker's window of unacknowledged messages to us; sizes the client's request queue.
    pub inflight: u16,
}

/// The supervisor's grip on a running client.
pub struct ClientHandle {
    pub cancel: CancellationToken,
    pub task: JoinHandle<()>,
    pub routes: watch::Sender<Arc<SiteRoutes>>,
}

/// Starts the connection's task; it runs until `parent` or the handle's token is cancelled.
pub fn spawn(
    context: ConnectionContext,
    site_id: i32,
    settings: ConnectionSettings,
    routes: Arc<SiteRoutes>,
    parent: &CancellationToken,
) -> ClientHandle {
    let cancel = parent.child_token();
    let (routes_sender, routes_receiver) = watch::channel(routes);
    let task = tokio::spawn(session::run(
        context,
        site_id,
        settings,
        routes_receiver,
        cancel.clone(),
    ));
    ClientHandle {
        cancel,
        task,
        routes: routes_sender,
    }
}
