//! Instances hear each other through PostgreSQL's LISTEN/NOTIFY: a change made through one
//! instance's API wakes every supervisor (the owner acts at once), a lease given back or taken
//! wakes every lease manager, and events for browsers reach the instances that have some. On
//! SQLite there is no one else to tell, and every call here is a no-op.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::relay;
use crate::downlink::{reload_replies, CommandBell, ReplyWatch};
use crate::events::Hub;

pub(super) const WAKE_CHANNEL: &str = "mqtt_supervisor_wake";
pub(super) const LEASES_CHANNEL: &str = "mqtt_supervisor_leases";
pub(super) const EVENTS_CHANNEL: &str = "mqtt_supervisor_events";
pub(super) const COMMANDS_CHANNEL: &str = "mqtt_supervisor_commands";

/// Sends notifications to the other instances.
#[derive(Clone)]
pub struct Notifier {
    db: Option<DatabaseConnection>,
    instance_id: Arc<str>,
}

impl Notifier {
    /// `db` is used only when it is PostgreSQL.
    pub fn new(db: &DatabaseConnection, instance_id: &str) -> Notifier {
        Notifier {
            db: (db.get_database_backend() == DbBackend::Postgres).then(|| db.clone()),
            instance_id: instance_id.into(),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    async fn notify(&self, channel: &str, payload: &str) {
        let Some(db) = &self.db else {
            return;
        };
        let sent = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [channel.into(), payload.into()],
            ))
            .await;
        if let Err(error) = sent {
            tracing::debug!(%error, channel, "cannot notify the other instances");
        }
    }

    /// Every supervisor reconciles now (a connection or its patterns changed).
    pub fn wake_everyone(&self) {
        if self.db.is_none() {
            return;
        }
        let notifier = self.clone();
        tokio::spawn(async move {
            notifier.notify(WAKE_CHANNEL, &notifier.instance_id).await;
        });
    }

    /// The owner of the site's connection sends its new command now.
    pub fn command_stored(&self, site_id: i32) {
        if self.db.is_none() {
            return;
        }
        let notifier = self.clone();
        tokio::spawn(async move {
            notifier
                .notify(COMMANDS_CHANNEL, &site_id.to_string())
                .await;
        });
    }

    /// Every lease manager runs a round now (leases were given back or taken).
    pub async fn leases_changed(&self) {
        self.notify(LEASES_CHANNEL, &self.instance_id).await;
    }

    pub(super) async fn events(&self, payload: &str) {
        self.notify(EVENTS_CHANNEL, payload).await;
    }

    pub(super) fn database(&self) -> Option<&DatabaseConnection> {
        self.db.as_ref()
    }
}

/// Listens until shutdown: wakes the local supervisor and lease manager when told, and hands
/// other instances' events to the local hub. The listener reconnects by itself after a lost
/// connection; a wake-up missed meanwhile is caught by the periodic passes.
pub async fn listen(
    notifier: Notifier,
    wake_supervisor: Arc<Notify>,
    wake_leases: Arc<Notify>,
    commands: CommandBell,
    replies: ReplyWatch,
    hub: Hub,
    shutdown: CancellationToken,
) {
    let Some(db) = notifier.database().cloned() else {
        return;
    };
    loop {
        let listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            listener = connect(&db) => listener,
        };
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for the other instances; retrying in 2 s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        loop {
            let notification = tokio::select! {
                _ = shutdown.cancelled() => return,
                notification = listener.recv() => notification,
            };
            let notification = match notification {
                Ok(notification) => notification,
                Err(error) => {
                    tracing::warn!(%error, "lost the notification connection; reconnecting");
                    break;
                }
            };
            match notification.channel() {
                WAKE_CHANNEL => {
                    // A connection switched on needs a lease before the supervisor may start
                    // it: without a round now it would wait for the next renewal.
                    wake_leases.notify_one();
                    wake_supervisor.notify_one();
                }
                LEASES_CHANNEL if notification.payload() != notifier.instance_id() => {
                    wake_leases.notify_one()
                }
                COMMANDS_CHANNEL => {
                    // Only a running connection listens; elsewhere the ring waits unheard.
                    if let Ok(site_id) = notification.payload().parse() {
                        commands.ring(site_id);
                        // Its device's reply may arrive at a shard of this instance.
                        if let Err(error) = reload_replies(&replies, &db, Some(site_id)).await {
                            tracing::warn!(%error, site_id, "cannot load the replies awaited for commands");
                        }
                    }
                }
                EVENTS_CHANNEL => {
                    relay::receive(&notifier, &db, &hub, notification.payload()).await;
                }
                _ => {}
            }
        }
    }
}

async fn connect(db: &DatabaseConnection) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(db.get_postgres_connection_pool()).await?;
    listener
        .listen_all([
            WAKE_CHANNEL,
            LEASES_CHANNEL,
            EVENTS_CHANNEL,
            COMMANDS_CHANNEL,
        ])
        .await?;
    Ok(listener)
}
