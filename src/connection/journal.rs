//! What a connection tells besides its status: its subscriptions as the broker answered them,
//! silence and its end, a session the broker lost, a broker that stays away. Each goes to the
//! connection log, `mqtt_conn.log`, the live registry, the connection's row, the WebSocket and
//! metrics as it concerns them; errors (a refused filter, silence, a broker away too long) reach
//! Sentry as events with the site's tags, never with secrets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::StatusReporter;
use crate::entity::{mqtt_connection, mqtt_connection_log};
use crate::events::{Event, Subscription};
use crate::telemetry::CONNECTION_TARGET;

/// How often, at most, a connection's `last_message_at` is written while messages flow.
pub const LAST_MESSAGE_WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// How loud a journal entry is: errors reach Sentry as events, the rest as breadcrumbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// When `last_message_at` was last written, and whether a write is on its way.
#[derive(Debug, Default)]
pub struct LastMessageWrites {
    written: Option<Instant>,
    in_flight: Arc<AtomicBool>,
}

impl StatusReporter {
    /// A connection-log row and a log line; at `Level::Error` also a Sentry event.
    pub async fn note(&self, level: Level, event: &str, message: &str) {
        let site_id = self.site_id;
        let connection_id = self.connection_id;
        match level {
            Level::Error => sentry::with_scope(
                |scope| {
                    scope.set_tag("site_id", site_id);
                    scope.set_tag("connection_id", connection_id);
                    scope.set_tag("event", event);
                },
                || tracing::error!(target: CONNECTION_TARGET, site_id, connection_id, event, "{message}"),
            ),
            Level::Warning => {
                tracing::warn!(target: CONNECTION_TARGET, site_id, connection_id, event, "{message}")
            }
            Level::Info => {
                tracing::info!(target: CONNECTION_TARGET, site_id, connection_id, event, "{message}")
            }
        }
        let row = mqtt_connection_log::ActiveModel {
            site_id: Set(site_id),
            event: Set(event.to_string()),
            message: Set(message.to_string()),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        if let Err(db_error) = row.insert(&self.context.db).await {
            tracing::warn!(target: CONNECTION_TARGET, site_id, %db_error, "cannot store the connection log row");
        }
    }

    /// The session's filters changed state (asked for, granted, refused): shown everywhere the
    /// connection is.
    pub async fn subscriptions_changed(&mut self, subscriptions: Vec<Subscription>) {
        if !self.speaks_for_connection() {
            return;
        }
        let refused: Vec<String> = subscriptions
            .iter()
            .filter(|subscription| subscription.state == crate::events::SubscriptionState::Refused)
            .map(|subscription| subscription.filter.clone())
            .collect();
        self.context
            .metrics
            .refused_subscriptions_gauge(self.site_id)
            .set(i64::try_from(refused.len()).unwrap_or(i64::MAX));
        self.context.live.update(self.site_id, |live| {
            live.subscriptions = subscriptions.clone();
        });
        self.store_subscriptions(&subscriptions).await;
        self.context.hub.send(&Event::ConnectionStatus {
            site_id: self.site_id,
            status: self
                .current()
                .map(|status| status.as_str())
                .unwrap_or("connecting")
                .to_string(),
            last_error: self.last_error(),
            subscriptions: Some(subscriptions),
            refused_subscriptions: Some(refused),
        });
    }

    pub(super) async fn store_subscriptions(&self, subscriptions: &[Subscription]) {
        let value = serde_json::to_value(subscriptions).unwrap_or_default();
        let update = mqtt_connection::Entity::update_many()
            .col_expr(mqtt_connection::Column::Subscriptions, Expr::value(value))
            .filter(mqtt_connection::Column::Id.eq(self.connection_id))
            .filter(self.not_taken_over())
            .exec(&self.context.db)
            .await;
        if let Err(db_error) = update {
            tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %db_error, "cannot store the subscriptions");
        }
    }

    /// A connected connection had no message for `silent_for`.
    pub async fn silence_began(&mut self, silent_for: Duration) {
        let secs = silent_for.as_secs();
        self.context.metrics.silent_gauge(self.site_id).set(1);
        self.context
            .live
            .update(self.site_id, |live| live.silent = true);
        self.store_silent(true, None).await;
        self.note(
            Level::Error,
            "silent",
            &format!(
                "no message for {secs} s although connected (max_silence_secs); subscribing again"
            ),
        )
        .await;
        self.context.hub.send(&Event::ConnectionSilent {
            site_id: self.site_id,
            silent_secs: secs,
        });
    }

    /// The first message after a silence.
    pub async fn silence_ended(&mut self, silent_for: Duration, at: DateTime<Utc>) {
        self.context.metrics.silent_gauge(self.site_id).set(0);
        self.context.live.update(self.site_id, |live| {
            live.silent = false;
            live.last_message_at = Some(at);
        });
        self.store_silent(false, Some(at)).await;
        self.note(
            Level::Info,
            "receiving",
            &format!("messages again after {} s of silence", silent_for.as_secs()),
        )
        .await;
    }

    async fn store_silent(&self, silent: bool, last_message_at: Option<DateTime<Utc>>) {
        if !self.speaks_for_connection() {
            return;
        }
        let mut update = mqtt_connection::Entity::update_many()
            .col_expr(mqtt_connection::Column::Silent, Expr::value(silent))
            .filter(mqtt_connection::Column::Id.eq(self.connection_id));
        if let Some(at) = last_message_at {
            update = update.col_expr(mqtt_connection::Column::LastMessageAt, Expr::value(at));
        }
        if let Err(db_error) = update.exec(&self.context.db).await {
            tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %db_error, "cannot store the silence flag");
        }
    }

    /// A bunch of messages arrived at `at`: shown at once, written at most every
    /// [`LAST_MESSAGE_WRITE_INTERVAL`] and never holding up the connection (a write that waits
    /// for the database happens beside it, one at a time).
    pub fn messages_received(&self, at: DateTime<Utc>, writes: &mut LastMessageWrites) {
        if !self.speaks_for_connection() {
            return;
        }
        self.context
            .live
            .update(self.site_id, |live| live.last_message_at = Some(at));
        if writes
            .written
            .is_some_and(|written| written.elapsed() < LAST_MESSAGE_WRITE_INTERVAL)
            || writes.in_flight.swap(true, Ordering::AcqRel)
        {
            return;
        }
        writes.written = Some(Instant::now());
        let in_flight = writes.in_flight.clone();
        let db = self.context.db.clone();
        let connection_id = self.connection_id;
        tokio::spawn(async move {
            let _ = mqtt_connection::Entity::update_many()
                .col_expr(mqtt_connection::Column::LastMessageAt, Expr::value(at))
                .filter(mqtt_connection::Column::Id.eq(connection_id))
                .exec(&db)
                .await;
            in_flight.store(false, Ordering::Release);
        });
    }
}
