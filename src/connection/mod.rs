//! One live MQTT client per active connection: connect, subscribe to the site's filters, hand
//! every message to the pipeline, reconnect with backoff, report every status change.

mod client;
mod downlink;
mod journal;
mod live;
mod probe;
mod session;
mod settings;
mod status;
mod subscriptions;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use live::{LiveConnection, LiveConnections};
pub use probe::{probe, ProbeOutcome};
pub use settings::{ConnectionSettings, Protocol, SettingsError, Will};
pub use status::{ConnectionStatus, StatusReporter};
pub use tls::{check_client_identity, TlsError};

use crate::backoff::Backoff;
use crate::downlink::{CommandBell, ReplyWatch};
use crate::events::Hub;
use crate::metrics::Metrics;
use crate::parsers::ParserStore;
use crate::pipeline::{Limits, WriterHandle};
use crate::routing::{SiteRoutes, TopicSpec};

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
    /// How long a broker may stay unreachable before Sentry hears of it.
    pub alert_after: Duration,
    /// This instance's id: a connection's rows are written only while no other instance has
    /// taken it over.
    pub instance_id: Arc<str>,
    /// Rung when a command for a site is stored.
    pub commands: CommandBell,
    /// Device replies awaited to confirm commands, checked against every live message.
    pub replies: ReplyWatch,
}

/// What a running session follows without reconnecting: the site's patterns and discovery
/// filter (what it subscribes to and routes) and its silence limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSettings {
    /// Sorted by id, so equal sets compare equal.
    pub topics: Vec<TopicSpec>,
    pub discovery_filter: Option<String>,
    pub max_silence_secs: Option<u32>,
    /// With several shards, every filter is subscribed as `$share/{group}/{filter}`, so the
    /// broker hands each message to one of them.
    pub share_group: Option<String>,
}

impl LiveSettings {
    pub fn routes(&self) -> SiteRoutes {
        let mut routes = SiteRoutes::build(&self.topics, self.discovery_filter.as_deref());
        if let Some(group) = &self.share_group {
            for (filter, _) in &mut routes.filters {
                // A pattern that names its own share group keeps it.
                if !filter.starts_with("$share/") {
                    *filter = format!("$share/{group}/{filter}");
                }
            }
        }
        routes
    }

    pub fn max_silence(&self) -> Option<Duration> {
        self.max_silence_secs
            .filter(|secs| *secs > 0)
            .map(|secs| Duration::from_secs(u64::from(secs)))
    }
}

/// The supervisor's grip on a running client.
pub struct ClientHandle {
    pub cancel: CancellationToken,
    pub task: JoinHandle<()>,
    pub live_settings: watch::Sender<Arc<LiveSettings>>,
}

/// Starts the connection's task; it runs until `parent` or the handle's token is cancelled.
pub fn spawn(
    context: ConnectionContext,
    site_id: i32,
    settings: ConnectionSettings,
    live_settings: LiveSettings,
    parent: &CancellationToken,
) -> ClientHandle {
    let cancel = parent.child_token();
    let (sender, receiver) = watch::channel(Arc::new(live_settings));
    let task = tokio::spawn(session::run(
        context,
        site_id,
        settings,
        receiver,
        cancel.clone(),
    ));
    ClientHandle {
        cancel,
        task,
        live_settings: sender,
    }
}
