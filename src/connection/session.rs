//! One connection task: a [`Session`] owns the MQTT client and handles each kind of event in
//! its own method: the broker accepting us, a bunch of messages, a subscription answer, the
//! connection lost, acknowledgements of committed messages, and the site's patterns changing.

use std::sync::Arc;

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use rumqttc::{
    ConnectReturnCode, ConnectionError, Event, Packet, Publish, QoS, SubAck, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{acknowledgement_of, Client};
use super::subscriptions::{Filters, SubscriptionChange};
use super::{ConnectionContext, ConnectionSettings, ConnectionStatus, StatusReporter};
use crate::delivery::{ack_channel, AckReceiver, AckRequest, AckSender};
use crate::pipeline::{prepare, TrySendError};
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
    routes: watch::Receiver<Arc<SiteRoutes>>,
    current_routes: Arc<SiteRoutes>,
    route_cache: RouteCache,
    /// Filters asked of the broker in this session.
    subscribed: Filters,
    ack_sender: AckSender,
    acks: AckReceiver,
    /// Bumped on every new session, so acknowledgements meant for an earlier one are dropped:
    /// their packet ids may name other messages now. The broker redelivers those messages and
    /// they are acknowledged when their copies commit.
    generation: u64,
    /// Failed attempts since the last connect.
    attempt: u32,
    connected: bool,
    received: Counter,
    cancel: CancellationToken,
}

/// Runs one connection until it is cancelled (stop, restart, shutdown).
pub(super) async fn run(
    context: ConnectionContext,
    site_id: i32,
    settings: ConnectionSettings,
    mut routes: watch::Receiver<Arc<SiteRoutes>>,
    cancel: CancellationToken,
) {
    let mut reporter = StatusReporter::new(context.clone(), site_id, settings.connection_id);
    reporter.report(ConnectionStatus::Connecting, None).await;
    let options = match settings.mqtt_options(context.inflight) {
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
    let request_capacity = usize::from(context.inflight).max(64) * 2;
    let client = Client::new(
        options,
        request_capacity,
        context.metrics.acknowledgements_waiting_gauge(site_id),
    );
    let current_routes = routes.borrow_and_update().clone();
    report_invalid_patterns(site_id, &current_routes);
    let (ack_sender, acks) = ack_channel();
    let session = Session {
        received: context.metrics.received_counter(site_id),
        context,
        site_id,
        client,
        reporter,
        routes,
        current_routes,
        route_cache: RouteCache::default(),
        subscribed: Filters::new(),
        ack_sender,
        acks,
        generation: 0,
        attempt: 0,
        connected: false,
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
            let flow = tokio::select! {
                _ = self.cancel.cancelled() => Flow::Stop,
                Some(first) = self.acks.recv() => {
                    self.on_acknowledgements(first);
                    Flow::Continue
                }
                changed = self.routes.changed() => match changed {
                    Ok(()) => {
                        self.on_routes_changed();
                        Flow::Continue
                    }
                    // The supervisor dropped its end: it is gone.
                    Err(_) => Flow::Stop,
                },
                event = self.client.next_event() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        self.on_connected().await;
                        Flow::Continue
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => self.on_messages(publish).await,
                    Ok(Event::Incoming(Packet::SubAck(suback))) => {
                        self.on_subscription_answer(&suback);
                        Flow::Continue
                    }
                    Ok(_) => Flow::Continue,
                    Err(error) => self.on_connection_lost(error).await,
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

    fn on_routes_changed(&mut self) {
        self.current_routes = self.routes.borrow_and_update().clone();
        self.route_cache.clear();
        report_invalid_patterns(self.site_id, &self.current_routes);
        if self.connected {
            self.resubscribe();
        }
    }

    async fn on_connected(&mut self) {
        self.attempt = 0;
        self.connected = true;
        self.generation += 1;
        self.client.forget_acknowledgements();
        self.reporter
            .report(ConnectionStatus::Connected, None)
            .await;
        // A persistent session may already hold the subscriptions, but the patterns may have
        // changed while we were away: subscribe to the full set again.
        self.subscribed.clear();
        self.resubscribe();
    }

    /// Prepares a message and the rest of the bunch the client read with it, and queues them
    /// for the writer.
    async fn on_messages(&mut self, first: Publish) -> Flow {
        // Once per bunch: a reload of the parsers applies from the next one, and the bunch was
        // read from the socket at one time.
        let registry = self.context.parsers.current();
        let received_at = Utc::now();
        let mut next = Some(first);
        while let Some(publish) = next.take() {
            self.received.inc();
            let acknowledgement = acknowledgement_of(&publish);
            let Publish { topic, payload, .. } = publish;
            let matched = self.route_cache.route(&self.current_routes.router, &topic);
            let mut prepared = prepare(
                self.site_id,
                topic,
                payload,
                received_at,
                matched.as_deref(),
                &registry,
                &self.context.limits,
            );
            prepared.ack = acknowledgement
                .map(|acknowledgement| self.ack_sender.ack(acknowledgement, self.generation));
            // A stop must not wait for a writer that is stuck on the database.
            let queued = match self.context.writer.try_send(prepared) {
                Ok(()) => true,
                Err(TrySendError::Full(prepared)) => tokio::select! {
                    sent = self.context.writer.send(*prepared) => sent.is_ok(),
                    _ = self.cancel.cancelled() => false,
                },
                Err(TrySendError::Stopped) => false,
            };
            if !queued {
                // Stopping, or the writer is gone (shutdown): unacknowledged messages stay
                // with the broker.
                return Flow::Stop;
            }
            next = self.client.next_read_publish();
        }
        Flow::Continue
    }

    fn on_subscription_answer(&self, suback: &SubAck) {
        let failures = suback
            .return_codes
            .iter()
            .filter(|code| matches!(code, SubscribeReasonCode::Failure))
            .count();
        if failures > 0 {
            tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, failures, "the broker refused some subscriptions (check its ACL)");
        }
    }

    /// Reports the loss and waits before the client tries again.
    async fn on_connection_lost(&mut self, error: ConnectionError) -> Flow {
        self.connected = false;
        // The session is gone: acknowledgements queued for it must not reach the next one,
        // where their packet ids may name other messages.
        self.generation += 1;
        self.client.forget_acknowledgements();
        let (status, message) = classify(&error);
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
        tokio::select! {
            _ = self.cancel.cancelled() => Flow::Stop,
            _ = tokio::time::sleep(delay) => Flow::Continue,
        }
    }

    /// Brings the broker's subscriptions in line with the site's filters.
    fn resubscribe(&mut self) {
        let wanted: Filters = self.current_routes.filters.iter().cloned().collect();
        let change = SubscriptionChange::between(&self.subscribed, &wanted);
        if !change.subscribe.is_empty() {
            let filters = change
                .subscribe
                .into_iter()
                .map(|(filter, qos)| SubscribeFilter::new(filter, to_qos(qos)))
                .collect();
            if let Err(error) = self.client.subscribe(filters) {
                tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, "cannot queue the subscription");
                return;
            }
        }
        for filter in change.unsubscribe {
            if let Err(error) = self.client.unsubscribe(filter.clone()) {
                tracing::warn!(target: CONNECTION_TARGET, site_id = self.site_id, %error, filter, "cannot queue the unsubscription");
            }
        }
        self.subscribed = wanted;
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

fn to_qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// A refused login will not fix itself by retrying quickly; everything else might.
fn classify(error: &ConnectionError) -> (ConnectionStatus, String) {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            let reason = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorised",
                ConnectReturnCode::BadClientId => "client id rejected",
                ConnectReturnCode::RefusedProtocolVersion => "protocol version refused",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::Success => "refused",
            };
            (
                ConnectionStatus::Error,
                format!("broker refused the connection: {reason}"),
            )
        }
        other => (ConnectionStatus::Reconnecting, other.to_string()),
    }
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
    fn a_refused_login_is_an_error_and_a_lost_network_a_reconnect() {
        let (status, message) = classify(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword,
        ));
        assert_eq!(status, ConnectionStatus::Error);
        assert_eq!(
            message,
            "broker refused the connection: bad user name or password"
        );
        let (status, _) = classify(&ConnectionError::FlushTimeout);
        assert_eq!(status, ConnectionStatus::Reconnecting);
    }

    #[test]
    fn quality_of_service_levels_map_to_the_client_and_default_to_one() {
        assert_eq!(to_qos(0), QoS::AtMostOnce);
        assert_eq!(to_qos(1), QoS::AtLeastOnce);
        assert_eq!(to_qos(2), QoS::ExactlyOnce);
        assert_eq!(to_qos(9), QoS::AtLeastOnce);
    }
}
