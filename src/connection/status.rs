//! Connection status transitions and where they are told: the database row, the connection log,
//! `mqtt_conn.log`, the WebSocket, metrics and (through error-level events) Sentry.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;

use super::{ConnectionContext, LiveConnection};
use crate::entity::{connection_lease, mqtt_connection, mqtt_connection_log};
use crate::events::Event;
use crate::metrics::StatusLabels;
use crate::telemetry::CONNECTION_TARGET;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    Stopped,
    Connecting,
    Connected,
    Reconnecting,
    Error,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Stopped => "stopped",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Reconnecting => "reconnecting",
            ConnectionStatus::Error => "error",
        }
    }

    pub const ALL: [ConnectionStatus; 5] = [
        ConnectionStatus::Stopped,
        ConnectionStatus::Connecting,
        ConnectionStatus::Connected,
        ConnectionStatus::Reconnecting,
        ConnectionStatus::Error,
    ];
}

/// What to write for a new report, given the previous one: identical reports are collapsed so a
/// broker that refuses us every minute for a week leaves a handful of rows, not ten thousand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportDecision {
    /// Same status and error as last time: count it, write nothing.
    Repeat,
    /// A real transition; `repeated` is how often the previous state repeated unseen.
    Write { repeated: u32 },
}

pub fn decide(
    previous: Option<&(ConnectionStatus, Option<String>)>,
    next: &(ConnectionStatus, Option<String>),
    repeats_so_far: u32,
) -> ReportDecision {
    match previous {
        Some(previous) if previous == next => ReportDecision::Repeat,
        _ => ReportDecision::Write {
            repeated: repeats_so_far,
        },
    }
}

/// One per connection task.
pub struct StatusReporter {
    pub(super) context: ConnectionContext,
    pub(super) site_id: i32,
    pub(super) connection_id: i32,
    /// Shard 0 speaks for the connection (its row, the live registry); the others keep their
    /// status on their lease row.
    pub(super) shard: i32,
    last: Option<(ConnectionStatus, Option<String>)>,
    repeats: u32,
}

impl StatusReporter {
    pub fn new(
        context: ConnectionContext,
        site_id: i32,
        connection_id: i32,
        shard: i32,
    ) -> StatusReporter {
        StatusReporter {
            context,
            site_id,
            connection_id,
            shard,
            last: None,
            repeats: 0,
        }
    }

    /// Whether this reporter writes the connection's own row.
    pub(super) fn speaks_for_connection(&self) -> bool {
        self.shard == 0
    }

    /// Rows of this connection that no other instance has taken over: a client stopped late
    /// (its instance cut off from the database meanwhile) must not overwrite what the new
    /// owner wrote.
    pub(super) fn not_taken_over(&self) -> sea_orm::sea_query::SimpleExpr {
        use sea_orm::sea_query::{ExprTrait, Query};
        let taken = Query::select()
            .expr(Expr::val(1))
            .from(connection_lease::Entity)
            .and_where(connection_lease::Column::ConnectionId.eq(self.connection_id))
            .and_where(connection_lease::Column::Shard.eq(self.shard))
            .and_where(connection_lease::Column::Owner.is_not_null())
            .and_where(connection_lease::Column::Owner.ne(self.context.instance_id.to_string()))
            .to_owned();
        Expr::exists(taken).not()
    }

    pub fn current(&self) -> Option<ConnectionStatus> {
        self.last.as_ref().map(|(status, _)| *status)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last.as_ref().and_then(|(_, error)| error.clone())
    }

    pub async fn report(&mut self, status: ConnectionStatus, error: Option<String>) {
        let next = (status, error);
        match decide(self.last.as_ref(), &next, self.repeats) {
            ReportDecision::Repeat => self.repeats += 1,
            ReportDecision::Write { repeated } => {
                self.repeats = 0;
                let previous = self.last.replace(next.clone());
                self.write(previous.map(|(status, _)| status), next, repeated)
                    .await;
            }
        }
    }

    async fn write(
        &self,
        previous: Option<ConnectionStatus>,
        (status, error): (ConnectionStatus, Option<String>),
        repeated: u32,
    ) {
        let site_id = self.site_id;
        let connection_id = self.connection_id;
        let mut message = match &error {
            Some(error) => format!("{}: {error}", status.as_str()),
            None => status.as_str().to_string(),
        };
        if repeated > 0 {
            message.push_str(&format!(" (previous state repeated {repeated} more times)"));
        }
        match status {
            ConnectionStatus::Error => {
                // The scope's tags travel with the Sentry event the error creates.
                sentry::with_scope(
                    |scope| {
                        scope.set_tag("site_id", site_id);
                        scope.set_tag("connection_id", connection_id);
                    },
                    || tracing::error!(target: CONNECTION_TARGET, site_id, connection_id, status = status.as_str(), "{message}"),
                )
            }
            ConnectionStatus::Reconnecting => {
                tracing::warn!(target: CONNECTION_TARGET, site_id, connection_id, status = status.as_str(), "{message}")
            }
            _ => {
                tracing::info!(target: CONNECTION_TARGET, site_id, connection_id, status = status.as_str(), "{message}")
            }
        }

        let metrics = &self.context.metrics;
        if let Some(previous) = previous {
            metrics
                .connections
                .get_or_create(&StatusLabels {
                    status: previous.as_str().into(),
                })
                .dec();
        }
        if status != ConnectionStatus::Stopped {
            metrics
                .connections
                .get_or_create(&StatusLabels {
                    status: status.as_str().into(),
                })
                .inc();
        }
        let now = Utc::now();
        if !self.speaks_for_connection() {
            self.write_shard_status(status, error.clone(), now).await;
            self.write_log_row(status, message, now).await;
            return;
        }
        // A status change starts or ends a session: its subscriptions and silence go with it.
        metrics.silent_gauge(site_id).set(0);
        metrics.refused_subscriptions_gauge(site_id).set(0);
        if status == ConnectionStatus::Stopped {
            self.context.live.forget(site_id);
        } else {
            let last_message_at = self
                .context
                .live
                .get(site_id)
                .and_then(|live| live.last_message_at);
            self.context.live.set(LiveConnection {
                site_id,
                connection_id,
                status,
                last_error: error.clone(),
                since: Utc::now(),
                reconnect_attempts: 0,
                retry_in_ms: None,
                subscriptions: Vec::new(),
                last_message_at,
                silent: false,
            });
        }

        let mut update = mqtt_connection::Entity::update_many()
            .col_expr(
                mqtt_connection::Column::Status,
                Expr::value(status.as_str()),
            )
            .col_expr(
                mqtt_connection::Column::LastError,
                Expr::value(error.clone()),
            )
            .col_expr(mqtt_connection::Column::UpdatedAt, Expr::value(now))
            .col_expr(mqtt_connection::Column::Silent, Expr::value(false))
            .col_expr(
                mqtt_connection::Column::Subscriptions,
                Expr::value(serde_json::json!([])),
            )
            .filter(mqtt_connection::Column::Id.eq(connection_id))
            .filter(self.not_taken_over());
        if status == ConnectionStatus::Connected {
            update = update.col_expr(mqtt_connection::Column::ConnectedAt, Expr::value(now));
        }
        if let Err(db_error) = update.exec(&self.context.db).await {
            tracing::warn!(target: CONNECTION_TARGET, site_id, %db_error, "cannot store the connection status");
        }
        self.write_log_row(status, message, now).await;
        self.context.hub.send(&Event::ConnectionStatus {
            site_id,
            status: status.as_str().to_string(),
            last_error: error,
            subscriptions: None,
            refused_subscriptions: None,
        });
    }

    async fn write_log_row(&self, status: ConnectionStatus, message: String, now: DateTime<Utc>) {
        let message = if self.speaks_for_connection() {
            message
        } else {
            format!("shard {}: {message}", self.shard)
        };
        let log = mqtt_connection_log::ActiveModel {
            site_id: Set(self.site_id),
            event: Set(status.as_str().to_string()),
            message: Set(message),
            created_at: Set(now),
            ..Default::default()
        };
        if let Err(db_error) = log.insert(&self.context.db).await {
            tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %db_error, "cannot store the connection log row");
        }
    }

    /// A shard other than the first keeps its status on its lease row.
    async fn write_shard_status(
        &self,
        status: ConnectionStatus,
        error: Option<String>,
        now: DateTime<Utc>,
    ) {
        let update = connection_lease::Entity::update_many()
            .col_expr(
                connection_lease::Column::Status,
                Expr::value(status.as_str()),
            )
            .col_expr(connection_lease::Column::LastError, Expr::value(error))
            .col_expr(connection_lease::Column::UpdatedAt, Expr::value(now))
            .filter(connection_lease::Column::ConnectionId.eq(self.connection_id))
            .filter(connection_lease::Column::Shard.eq(self.shard))
            .filter(connection_lease::Column::Owner.eq(&*self.context.instance_id))
            .exec(&self.context.db)
            .await;
        if let Err(db_error) = update {
            tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, shard = self.shard, %db_error, "cannot store the shard's status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_reports_collapse() {
        let refused = (ConnectionStatus::Error, Some("bad password".to_string()));
        assert_eq!(decide(Some(&refused), &refused, 3), ReportDecision::Repeat);
    }

    #[test]
    fn a_transition_carries_the_repeat_count() {
        let refused = (ConnectionStatus::Error, Some("bad password".to_string()));
        let connected = (ConnectionStatus::Connected, None);
        assert_eq!(
            decide(Some(&refused), &connected, 41),
            ReportDecision::Write { repeated: 41 }
        );
        assert_eq!(
            decide(None, &connected, 0),
            ReportDecision::Write { repeated: 0 }
        );
    }

    #[test]
    fn a_different_error_is_a_transition() {
        let first = (ConnectionStatus::Reconnecting, Some("refused".to_string()));
        let second = (ConnectionStatus::Reconnecting, Some("timeout".to_string()));
        assert!(matches!(
            decide(Some(&first), &second, 0),
            ReportDecision::Write { .. }
        ));
    }
}
