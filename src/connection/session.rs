//! One connection task: a [`Session`] owns the MQTT client and handles each kind of event in
//! its own method: the broker accepting us, a bunch of messages, a subscription written and
//! answered, the connection lost, silence, acknowledgements of committed messages, and the
//! site's patterns changing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientEvent, Failure, FilterRequest, Grant, Message};
use super::downlink::Downlink;
use super::journal::{LastMessageWrites, Level};
use super::subscriptions::{Answer, Filters, SubscriptionBook};
use super::{
    ConnectionContext, ConnectionSettings, ConnectionStatus, LiveSettings, StatusReporter,
};
use crate::delivery::{ack_channel, AckReceiver, AckRequest, AckSender};
use crate::downlink::{self, CommandReport};
use crate::pipeline::{prepare, Arrival, TrySendError};
use crate::routing::{RouteCache, SiteRoutes};
use crate::telemetry::CONNECTION_TARGET;

/// Whether the task goes on after an event.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

pub(super) struct Session {
    context: ConnectionContext,
    site_id: i32,
    client: Client,
    reporter: StatusReporter,
    /// Whether the client asks the broker to keep its session between connections.
    persistent_session: bool,
    live_settings: watch::Receiver<Arc<LiveSettings>>,
    routes: SiteRoutes,
    max_silence: Option<Duration>,
    route_cache: RouteCache,
    /// The filters asked of the broker in this session and its answers.
    subscriptions: SubscriptionBook,
    /// Refused filters Sentry has heard of: once per filter until it is granted or dropped.
    refusals_told: BTreeSet<String>,
    ack_sender: AckSender,
    acks: AckReceiver,
    /// Bumped on every new session, so acknowledgements meant for an earlier one are dropped:
    /// their packet ids may name other messages now. The broker redelivers those messages and
    /// they are acknowledged when their copies commit.
    generation: u64,
    /// Failed attempts since the last connect.
    attempt: u32,
    connected: bool,
    /// A session was established before in this task, so one the broker does not remember
    /// was lost.
    had_session: bool,
    /// Since when the broker has been out of reach (from the start, or the loss).
    disconnected_since: Instant,
    /// Sentry has heard that the broker stays away, in this episode.
    absence_told: bool,
    connected_at: Instant,
    last_message: Option<Instant>,
    /// The start of the silence being reported, while it lasts.
    silent_since: Option<Instant>,
    last_message_writes: LastMessageWrites,
    received: Counter,
    /// Commands to the site's devices; only the first shard sends them.
    downlink: Option<Downlink>,
    /// Rung when a command for the site is stored (the first shard only).
    command_bell: Option<Arc<tokio::sync::Notify>>,
    cancel: CancellationToken,
}

/// Runs one connection until it is cancelled (stop, restart, shutdown).
pub(super) async fn run(
    context: ConnectionContext,
    site_id: i32,
    settings: ConnectionSettings,
    mut live_settings: watch::Receiver<Arc<LiveSettings>>,
    cancel: CancellationToken,
) {
    let mut reporter = StatusReporter::new(
        context.clone(),
        site_id,
        settings.connection_id,
        settings.shard,
    );
    reporter.report(ConnectionStatus::Connecting, None).await;
    let options = match settings.client_options(context.inflight) {
        Ok(options) => options,
        Err(error) => {
            // Settings that cannot work (an unreadable CA file) wait for the operator.
            reporter
                .report(ConnectionStatus::Error, Some(error.to_string()))
                .await;
            cancel.cancelled().await;
            reporter.report(ConnectionStatus::Stopped, None).await;
            return;
        }
    };
    let client = Client::new(
        options,
        context.metrics.acknowledgements_waiting_gauge(site_id),
    );
    let wanted = live_settings.borrow_and_update().clone();
    let routes = wanted.routes();
    report_invalid_patterns(site_id, &routes);
    let (ack_sender, acks) = ack_channel();
    let (downlink, command_bell) = if settings.shard == 0 {
        let report = CommandReport {
            hub: context.hub.clone(),
            metrics: context.metrics.clone(),
        };
        (
            Some(Downlink::new(site_id, context.db.clone(), report)),
            Some(context.commands.of_site(site_id)),
        )
    } else {
        (None, None)
    };
    let session = Session {
        downlink,
        command_bell,
        received: context.metrics.received_counter(site_id),
        context,
        site_id,
        client,
        reporter,
        persistent_session: !settings.clean_session,
        live_settings,
        routes,
        max_silence: wanted.max_silence(),
        route_cache: RouteCache::default(),
        subscriptions: SubscriptionBook::default(),
        refusals_told: BTreeSet::new(),
        ack_sender,
        acks,
        generation: 0,
        attempt: 0,
        connected: false,
        had_session: false,
        disconnected_since: Instant::now(),
        absence_told: false,
        connected_at: Instant::now(),
        last_message: None,
        silent_since: None,
        last_message_writes: LastMessageWrites::default(),
        cancel,
    };
    session.run().await;
}

impl Session {
    async fn run(mut self) {
        loop {
            if self.connected {
                if let Err(error) = self.client.write_acknowledgements().await {
                    // The session is breaking; the next poll reports it and reconnects, and the
                    // broker delivers the unacknowledged messages again.
                    tracing::debug!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "writing acknowledgements failed");
                    self.client.forget_acknowledgements();
                }
            }
            let silence_deadline = self.silence_deadline();
            let flow = tokio::select! {
                _ = self.cancel.cancelled() => Flow::Stop,
                Some(first) = self.acks.recv() => {
                    self.on_acknowledgements(first);
                    Flow::Continue
                }
                changed = self.live_settings.changed() => match changed {
                    Ok(()) => {
                        self.on_settings_changed().await;
                        Flow::Continue
                    }
                    // The supervisor dropped its end: it is gone.
                    Err(_) => Flow::Stop,
                },
                _ = sleep_until_or_never(silence_deadline) => {
                    self.on_silence().await;
                    Flow::Continue
                }
                _ = rung(self.command_bell.as_deref()) => {
                    if self.connected {
                        self.send_commands().await;
                    }
                    Flow::Continue
                }
                event = self.client.next_event() => match event {
                    Ok(ClientEvent::Connected { session_present }) => {
                        self.on_connected(session_present).await;
                        Flow::Continue
                    }
                    Ok(ClientEvent::Message(message)) => self.on_messages(message).await,
                    Ok(ClientEvent::SubscribeSent { packet_id }) => {
                        self.subscriptions.sent(packet_id);
                        Flow::Continue
                    }
                    Ok(ClientEvent::SubscriptionAnswer { packet_id, grants }) => {
                        self.on_subscription_answer(packet_id, grants).await;
                        Flow::Continue
                    }
                    Ok(ClientEvent::PublishWritten { packet_id }) => {
                        self.on_command_written(packet_id).await;
                        Flow::Continue
                    }
                    Ok(ClientEvent::PublishAcknowledged { packet_id, refusal }) => {
                        self.on_command_acknowledged(packet_id, refusal).await;
                        Flow::Continue
                    }
                    Ok(ClientEvent::Other) => Flow::Continue,
                    Err(failure) => self.on_connection_lost(failure).await,
                },
            };
            if flow == Flow::Stop {
                break;
            }
        }
        self.close().await;
    }

    /// Takes every acknowledgement that has arrived, keeping those of this session.
    fn on_acknowledgements(&mut self, first: AckRequest) {
        let mut next = Some(first);
        while let Some((generation, acknowledgement)) = next {
            // An ack meant for an earlier session could name a packet id that now belongs
            // to another message; the broker redelivers the original instead.
            if generation == self.generation {
                self.client.push_acknowledgement(acknowledgement);
            }
            next = self.acks.try_recv().ok();
        }
    }

    async fn on_settings_changed(&mut self) {
        let wanted = self.live_settings.borrow_and_update().clone();
        self.routes = wanted.routes();
        self.max_silence = wanted.max_silence();
        self.route_cache.clear();
        report_invalid_patterns(self.site_id, &self.routes);
        if self.connected {
            self.resubscribe().await;
        }
    }

    async fn on_connected(&mut self, session_present: bool) {
        self.attempt = 0;
        self.connected = true;
        self.connected_at = Instant::now();
        self.silent_since = None;
        self.generation += 1;
        self.client.forget_acknowledgements();
        self.reporter
            .report(ConnectionStatus::Connected, None)
            .await;
        if self.absence_told {
            self.absence_told = false;
            tracing::info!(target: CONNECTION_TARGET, site_id = self.site_id, away_secs = self.disconnected_since.elapsed().as_secs(), "the broker is reachable again");
        }
        if self.persistent_session && self.had_session && !session_present {
            self.reporter
                .note(
                    Level::Warning,
                    "session_lost",
                    "the broker kept no session for this client although a persistent one was \
                     asked for: messages queued for it while it was away may be lost; \
                     subscribing again",
                )
                .await;
        }
        self.had_session = true;
        // A persistent session may already hold the subscriptions, but the patterns may have
        // changed while we were away (or the broker forgot them): subscribe to the full set.
        self.subscriptions.start_over();
        self.resubscribe().await;
        self.send_commands().await;
    }

    /// Hands the site's open commands to the client.
    async fn send_commands(&mut self) {
        let Some(downlink) = &mut self.downlink else {
            return;
        };
        match downlink.ready_to_send().await {
            Ok(commands) => downlink.hand_to(commands, &mut self.client),
            // The outbox keeps them; the next ring or reconnect tries again.
            Err(error) => {
                tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "cannot read the command outbox")
            }
        }
    }

    async fn on_command_written(&mut self, packet_id: u16) {
        let Some(downlink) = &mut self.downlink else {
            return;
        };
        match downlink.on_written(packet_id).await {
            Ok(true) => self.send_commands().await,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "cannot record a command as sent")
            }
        }
    }

    async fn on_command_acknowledged(&mut self, packet_id: u16, refusal: Option<String>) {
        let Some(downlink) = &mut self.downlink else {
            return;
        };
        match downlink.on_acknowledged(packet_id, refusal).await {
            Ok(Some(failure)) => {
                self.reporter
                    .note(Level::Warning, "command_failed", &failure)
                    .await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "cannot record a command as delivered");
            }
        }
        if self
            .downlink
            .as_ref()
            .is_some_and(|downlink| downlink.has_backlog())
        {
            self.send_commands().await;
        }
    }

    /// Prepares a message and the rest of the bunch the client read with it, and queues them
    /// for the writer.
    async fn on_messages(&mut self, first: Message) -> Flow {
        // Once per bunch: a reload of the parsers applies from the next one, and the bunch was
        // read from the socket at one time.
        let registry = self.context.parsers.current();
        let received_at = Utc::now();
        let now = Instant::now();
        self.last_message = Some(now);
        if let Some(since) = self.silent_since.take() {
            self.reporter
                .silence_ended(now.duration_since(since), received_at)
                .await;
        }
        self.reporter
            .messages_received(received_at, &mut self.last_message_writes);
        let mut next = Some(first);
        while let Some(message) = next.take() {
            self.received.inc();
            let acknowledgement = message.acknowledgement();
            let Message {
                topic,
                payload,
                user_properties,
                retain,
                ..
            } = message;
            let confirmed =
                self.context
                    .replies
                    .confirmed_by(self.site_id, &topic, &payload, retain);
            if !confirmed.is_empty() {
                self.confirm_commands(confirmed);
            }
            let matched = self.route_cache.route(&self.routes.router, &topic);
            let mut prepared = prepare(
                Arrival {
                    site_id: self.site_id,
                    topic,
                    payload,
                    user_properties,
                    received_at,
                    retained: retain,
                },
                matched.as_deref(),
                &registry,
                &self.context.limits,
            );
            prepared.ack = acknowledgement
                .map(|acknowledgement| self.ack_sender.ack(acknowledgement, self.generation));
            let queued = match self.context.writer.try_send(prepared) {
                Ok(()) => true,
                Err(TrySendError::Full(prepared)) => self.wait_for_the_writer(*prepared).await,
                Err(TrySendError::Stopped) => false,
            };
            if !queued {
                // Stopping, or the writer is gone (shutdown): unacknowledged messages stay
                // with the broker.
                return Flow::Stop;
            }
            next = self.client.next_read_message();
        }
        Flow::Continue
    }

    /// Waits for room in the writer's queue (the database is behind). Commands stored meanwhile
    /// go out at once: a flood of messages to store must not hold up what we send to devices.
    /// Returns false when stopping or when the writer is gone.
    async fn wait_for_the_writer(&mut self, prepared: crate::pipeline::Prepared) -> bool {
        let writer = self.context.writer.clone();
        let send = writer.send(prepared);
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => return sent.is_ok(),
                // A stop must not wait for a writer that is stuck on the database.
                _ = self.cancel.cancelled() => return false,
                _ = rung(self.command_bell.as_deref()) => {
                    self.send_commands().await;
                    if let Err(error) = self.client.write_publishes_now().await {
                        tracing::debug!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "writing a command failed");
                    }
                }
            }
        }
    }

    /// Device replies confirmed these commands: recorded beside the stream of messages, so the
    /// database write does not hold up the messages behind the reply.
    fn confirm_commands(&self, command_ids: Vec<i32>) {
        let db = self.context.db.clone();
        let replies = self.context.replies.clone();
        let report = CommandReport {
            hub: self.context.hub.clone(),
            metrics: self.context.metrics.clone(),
        };
        let site_id = self.site_id;
        tokio::spawn(async move {
            for command_id in command_ids {
                if let Err(error) =
                    downlink::confirm(&db, &replies, &report, site_id, command_id).await
                {
                    // The supervisor's pass finds it unconfirmed and reports it failed.
                    tracing::warn!(target: CONNECTION_TARGET, site_id, command_id, %error, "cannot record a command's confirmation");
                }
            }
        });
    }

    async fn on_subscription_answer(&mut self, packet_id: u16, grants: Vec<Grant>) {
        let answers = self.subscriptions.answered(packet_id, &grants);
        if answers.is_empty() {
            return;
        }
        for answer in answers {
            match answer {
                Answer::Refused { filter, reason } => {
                    // Told to Sentry once per filter until it is granted or dropped; the
                    // connection log hears of every refusal.
                    let level = if self.refusals_told.insert(filter.clone()) {
                        Level::Error
                    } else {
                        Level::Warning
                    };
                    let reason = reason
                        .map(|reason| format!(": {reason}"))
                        .unwrap_or_default();
                    self.reporter
                        .note(
                            level,
                            "subscription_refused",
                            &format!(
                                "the broker refused the subscription to '{filter}'{reason} \
                                 (check its ACL): nothing arrives on it"
                            ),
                        )
                        .await;
                }
                Answer::Granted {
                    filter,
                    asked,
                    granted,
                } => {
                    self.refusals_told.remove(&filter);
                    if granted < asked {
                        self.reporter
                            .note(
                                Level::Warning,
                                "subscription_downgraded",
                                &format!(
                                    "the broker granted QoS {granted} for '{filter}' where {asked} \
                                     was asked: messages on it may be lost"
                                ),
                            )
                            .await;
                    }
                }
            }
        }
        self.reporter
            .subscriptions_changed(self.subscriptions.list())
            .await;
    }

    /// A connected connection had no message for its silence limit: say so and subscribe again,
    /// once per episode, in case the broker forgot us without telling.
    async fn on_silence(&mut self) {
        let last_activity = self.last_activity();
        self.silent_since = Some(last_activity);
        self.reporter.silence_began(last_activity.elapsed()).await;
        self.subscriptions.start_over();
        self.resubscribe().await;
    }

    /// When the current silence limit runs out; none while not connected or already silent.
    fn silence_deadline(&self) -> Option<Instant> {
        if !self.connected || self.silent_since.is_some() {
            return None;
        }
        self.max_silence.map(|limit| self.last_activity() + limit)
    }

    fn last_activity(&self) -> Instant {
        self.last_message
            .map_or(self.connected_at, |last| last.max(self.connected_at))
    }

    /// Reports the loss and waits before the client tries again.
    async fn on_connection_lost(&mut self, failure: Failure) -> Flow {
        if self.connected {
            self.disconnected_since = Instant::now();
        }
        self.connected = false;
        self.silent_since = None;
        self.subscriptions.start_over();
        if let Some(downlink) = &mut self.downlink {
            downlink.on_session_lost();
        }
        // The session is gone: acknowledgements queued for it must not reach the next one,
        // where their packet ids may name other messages.
        self.generation += 1;
        self.client.forget_acknowledgements();
        let (status, message) = classify(failure);
        let message_for_alert = message.clone();
        // Made on the first loss, so a site that never lost its connection shows none.
        self.context.metrics.reconnects_counter(self.site_id).inc();
        let delay = match status {
            ConnectionStatus::Error => self.context.reconnect.longest(rand::random()),
            _ => self
                .context
                .reconnect
                .delay_with_random_jitter(self.attempt),
        };
        self.attempt = self.attempt.saturating_add(1);
        self.reporter.report(status, Some(message)).await;
        self.context
            .live
            .set_retry(self.site_id, self.attempt, delay);
        let retry_at = Instant::now() + delay;
        if !self.absence_told {
            // Sentry hears of the broker staying away when it has for `alert_after`, even if
            // that moment falls inside this wait.
            let alert_at = self.disconnected_since + self.context.alert_after;
            if alert_at <= retry_at {
                tokio::select! {
                    _ = self.cancel.cancelled() => return Flow::Stop,
                    _ = tokio::time::sleep_until(alert_at.into()) => {}
                }
                self.absence_told = true;
                self.reporter
                    .note(
                        Level::Error,
                        "unreachable",
                        &format!(
                            "no connection to the broker for {} s: {message_for_alert}",
                            self.disconnected_since.elapsed().as_secs()
                        ),
                    )
                    .await;
            }
        }
        tokio::select! {
            _ = self.cancel.cancelled() => Flow::Stop,
            _ = tokio::time::sleep_until(retry_at.into()) => Flow::Continue,
        }
    }

    /// Brings the broker's subscriptions in line with the site's filters.
    async fn resubscribe(&mut self) {
        let wanted: Filters = self.routes.filters.iter().cloned().collect();
        let change = self.subscriptions.change_to(&wanted);
        if change.subscribe.is_empty() && change.unsubscribe.is_empty() {
            return;
        }
        if !change.subscribe.is_empty() {
            let filters = change
                .subscribe
                .iter()
                .map(|(filter, qos)| FilterRequest {
                    filter: filter.clone(),
                    qos: *qos,
                })
                .collect();
            match self.client.subscribe(filters) {
                Ok(()) => self.subscriptions.requested(&change.subscribe),
                // Not asked: the next change or reconnect asks again.
                Err(error) => {
                    tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "cannot queue the subscription")
                }
            }
        }
        for filter in change.unsubscribe {
            match self.client.unsubscribe(filter.clone()) {
                Ok(()) => {
                    self.subscriptions.removed(&filter);
                    self.refusals_told.remove(&filter);
                }
                Err(error) => {
                    tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, filter, "cannot queue the unsubscription")
                }
            }
        }
        self.reporter
            .subscriptions_changed(self.subscriptions.list())
            .await;
    }

    async fn close(mut self) {
        if self.connected {
            // Acknowledge what has been committed so far, so the broker does not deliver it
            // again.
            while let Ok((generation, acknowledgement)) = self.acks.try_recv() {
                if generation == self.generation {
                    self.client.push_acknowledgement(acknowledgement);
                }
            }
            self.client.close().await;
        }
        self.reporter.report(ConnectionStatus::Stopped, None).await;
    }
}

async fn rung(bell: Option<&tokio::sync::Notify>) {
    match bell {
        Some(bell) => bell.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// A refused login will not fix itself by retrying quickly; everything else might.
fn classify(failure: Failure) -> (ConnectionStatus, String) {
    let status = if failure.refused {
        ConnectionStatus::Error
    } else {
        ConnectionStatus::Reconnecting
    };
    (status, failure.message)
}

fn report_invalid_patterns(site_id: i32, routes: &SiteRoutes) {
    for (topic_id, problem) in &routes.invalid {
        tracing::warn!(target: CONNECTION_TARGET, site_id, topic_id, "skipping invalid topic pattern {problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_an_error_and_a_lost_network_a_reconnect() {
        let refused = Failure {
            refused: true,
            message: "broker refused the connection: bad user name or password".into(),
        };
        assert_eq!(
            classify(refused),
            (
                ConnectionStatus::Error,
                "broker refused the connection: bad user name or password".to_string()
            )
        );
        let lost = Failure {
            refused: false,
            message: "I/O: connection reset".into(),
        };
        assert_eq!(classify(lost).0, ConnectionStatus::Reconnecting);
    }
}
