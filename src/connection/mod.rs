//! One live MQTT client per active connection: connect, subscribe to the site's filters, hand
//! every message to the pipeline, reconnect with backoff, report every status change.

mod ack;
mod backoff;
mod outgoing_acks;
mod settings;
mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, NetworkOptions, Packet,
    Publish, QoS, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use ack::{Ack, AckRequest, Acknowledgement};
pub use backoff::reconnect_delay;
use outgoing_acks::OutgoingAcks;
pub use settings::{ConnectionSettings, SettingsError};
pub use status::{ConnectionStatus, StatusReporter};

use crate::pipeline::{prepare, Limits, RouteCache, SiteRoutes, TrySendError, WriterHandle};
use crate::state::AppState;
use crate::telemetry::CONNECTION_TARGET;

/// The supervisor's grip on a running client.
pub struct ClientHandle {
    pub cancel: CancellationToken,
    pub task: JoinHandle<()>,
    pub routes: watch::Sender<Arc<SiteRoutes>>,
}

pub fn spawn(
    state: AppState,
    writer: WriterHandle,
    site_id: i32,
    settings: ConnectionSettings,
    routes: Arc<SiteRoutes>,
    parent: &CancellationToken,
) -> ClientHandle {
    let cancel = parent.child_token();
    let (routes_sender, routes_receiver) = watch::channel(routes);
    let task = tokio::spawn(run(
        state,
        writer,
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

async fn run(
    state: AppState,
    writer: WriterHandle,
    site_id: i32,
    settings: ConnectionSettings,
    mut routes: watch::Receiver<Arc<SiteRoutes>>,
    cancel: CancellationToken,
) {
    let mut reporter = StatusReporter::new(state.clone(), site_id, settings.connection_id);
    reporter.report(ConnectionStatus::Connecting, None).await;
    let options = match settings.mqtt_options(state.config.supervisor.inflight) {
        Ok(options) => options,
        Err(error) => {
            reporter
                .report(ConnectionStatus::Error, Some(error.to_string()))
                .await;
            cancel.cancelled().await;
            reporter.report(ConnectionStatus::Stopped, None).await;
            return;
        }
    };
    let capacity = usize::from(state.config.supervisor.inflight).max(64) * 2;
    let (client, mut event_loop) = AsyncClient::new(options, capacity);
    let mut network_options = NetworkOptions::new();
    network_options.set_tcp_send_buffer_size(outgoing_acks::SEND_BUFFER_BYTES);
    event_loop.set_network_options(network_options);
    // A connection that neither reads nor takes our acknowledgements for this long is dead.
    let stuck_after = match event_loop.mqtt_options.keep_alive() {
        keep_alive if keep_alive.is_zero() => Duration::from_secs(60),
        keep_alive => keep_alive * 2,
    };
    let limits = Limits {
        max_payload_bytes: state.config.pipeline.max_payload_bytes,
        sample_bytes: state.config.pipeline.sample_bytes,
    };
    let initial_backoff = Duration::from_millis(state.config.supervisor.backoff_initial_ms);
    let max_backoff = Duration::from_secs(state.config.supervisor.backoff_max_secs);
    // Bumped on every new session so acks meant for an earlier session are dropped: the broker
    // redelivers those messages and they are acknowledged when their copy commits.
    let generation = Arc::new(AtomicU64::new(0));
    let (ack_sender, mut ack_receiver) = tokio::sync::mpsc::unbounded_channel::<AckRequest>();
    // Acknowledgements of committed messages, on their way to the broker.
    let mut acks = OutgoingAcks::new(state.metrics.acknowledgements_waiting_gauge(site_id));
    let mut attempt: u32 = 0;
    let mut connected = false;
    let mut subscribed: BTreeMap<String, u8> = BTreeMap::new();
    let mut current_routes = routes.borrow_and_update().clone();
    let mut route_cache = RouteCache::default();
    let received = state.metrics.received_counter(site_id);
    report_invalid_patterns(site_id, &current_routes);

    loop {
        if connected {
            if let Err(error) = acks.write(&mut event_loop).await {
                // The session is breaking; the next poll reports it and reconnects, and the
                // broker delivers the unacknowledged messages again.
                tracing::debug!(target: CONNECTION_TARGET, site_id, %error, "writing acknowledgements failed");
                acks.clear();
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some((ack_generation, acknowledgement)) = ack_receiver.recv() => {
                // An ack meant for an earlier session could name a packet id that now belongs
                // to another message; the broker redelivers the original instead.
                if ack_generation == generation.load(Ordering::SeqCst) {
                    acks.push(acknowledgement);
                }
                while let Ok((ack_generation, acknowledgement)) = ack_receiver.try_recv() {
                    if ack_generation == generation.load(Ordering::SeqCst) {
                        acks.push(acknowledgement);
                    }
                }
            }
            changed = routes.changed() => {
                if changed.is_err() {
                    break;
                }
                current_routes = routes.borrow_and_update().clone();
                route_cache.clear();
                report_invalid_patterns(site_id, &current_routes);
                if connected {
                    resubscribe(&client, site_id, &current_routes, &mut subscribed);
                }
            }
            event = acks.next_event(&mut event_loop, stuck_after) => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    attempt = 0;
                    connected = true;
                    generation.fetch_add(1, Ordering::SeqCst);
                    acks.clear();
                    reporter.report(ConnectionStatus::Connected, None).await;
                    // A persistent session may already hold the subscriptions, but the patterns
                    // may have changed while we were away: subscribe to the full set again.
                    subscribed.clear();
                    resubscribe(&client, site_id, &current_routes, &mut subscribed);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let mut next = Some(publish);
                    let mut stopping = false;
                    // Once per bunch: a reload of the parsers applies from the next one, and
                    // the bunch was read from the socket at one time.
                    let registry = state.parsers.current();
                    let received_at = Utc::now();
                    while let Some(publish) = next.take() {
                        received.inc();
                        let acknowledgement = Acknowledgement::of(&publish);
                        let Publish { topic, payload, .. } = publish;
                        let matched = route_cache.route(&current_routes.router, &topic);
                        let mut prepared = prepare(
                            site_id,
                            topic,
                            payload,
                            received_at,
                            matched.as_deref(),
                            &registry,
                            &limits,
                        );
                        prepared.ack = acknowledgement
                            .map(|acknowledgement| Ack::new(ack_sender.clone(), acknowledgement, &generation));
                        // A stop must not wait for a writer that is stuck on the database.
                        let sent = match writer.try_send(prepared) {
                            Ok(()) => true,
                            Err(TrySendError::Full(prepared)) => tokio::select! {
                                sent = writer.send(*prepared) => sent.is_ok(),
                                _ = cancel.cancelled() => false,
                            },
                            Err(TrySendError::Stopped) => false,
                        };
                        if !sent {
                            // Stopping, or the writer is gone (shutdown): unacknowledged
                            // messages stay with the broker.
                            stopping = true;
                            break;
                        }
                        next = next_read_publish(&mut event_loop);
                    }
                    if stopping {
                        break;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    let failures = suback
                        .return_codes
                        .iter()
                        .filter(|code| matches!(code, SubscribeReasonCode::Failure))
                        .count();
                    if failures > 0 {
                        tracing::warn!(target: CONNECTION_TARGET, site_id, failures, "the broker refused some subscriptions (check its ACL)");
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    connected = false;
                    // The session is gone: acknowledgements queued for it must not reach the next
                    // one, where their packet ids may name other messages.
                    generation.fetch_add(1, Ordering::SeqCst);
                    acks.clear();
                    let (status, message) = classify(&error);
                    // Made on the first loss, so a site that never lost its connection shows none.
                    state.metrics.reconnects_counter(site_id).inc();
                    let delay = if status == ConnectionStatus::Error {
                        reconnect_delay(u32::MAX, initial_backoff, max_backoff, rand::rng().random())
                    } else {
                        reconnect_delay(attempt, initial_backoff, max_backoff, rand::rng().random())
                    };
                    attempt = attempt.saturating_add(1);
                    reporter.report(status, Some(message)).await;
                    state.supervisor.set_retry(site_id, attempt, delay);
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    if connected {
        // Acknowledge what has been committed so far, so the broker does not deliver it again.
        while let Ok((ack_generation, acknowledgement)) = ack_receiver.try_recv() {
            if ack_generation == generation.load(Ordering::SeqCst) {
                acks.push(acknowledgement);
            }
        }
        acks.finish(&mut event_loop, Duration::from_secs(2)).await;
        // Best effort: tell the broker we leave on purpose, so it does not publish our will.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(event) = event_loop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    reporter.report(ConnectionStatus::Stopped, None).await;
}

/// The next `Publish` the client has already read, if that is what comes next. The client reads
/// packets in bunches and hands them out one `poll` at a time; taking the rest of a bunch here
/// spares a round through the connection task's `select!` per message.
fn next_read_publish(event_loop: &mut EventLoop) -> Option<Publish> {
    if !matches!(
        event_loop.state.events.front(),
        Some(Event::Incoming(Packet::Publish(_)))
    ) {
        return None;
    }
    match event_loop.state.events.pop_front() {
        Some(Event::Incoming(Packet::Publish(publish))) => Some(publish),
        _ => None,
    }
}

fn report_invalid_patterns(site_id: i32, routes: &SiteRoutes) {
    for (topic_id, problem) in &routes.invalid {
        tracing::warn!(target: CONNECTION_TARGET, site_id, topic_id, "skipping invalid topic pattern {problem}");
    }
}

/// Brings the broker's subscriptions in line with the site's filters.
fn resubscribe(
    client: &AsyncClient,
    site_id: i32,
    routes: &SiteRoutes,
    subscribed: &mut BTreeMap<String, u8>,
) {
    let wanted: BTreeMap<String, u8> = routes.filters.iter().cloned().collect();
    let added: Vec<SubscribeFilter> = wanted
        .iter()
        .filter(|(filter, qos)| subscribed.get(*filter) != Some(qos))
        .map(|(filter, qos)| SubscribeFilter::new(filter.clone(), to_qos(*qos)))
        .collect();
    let removed: Vec<String> = subscribed
        .keys()
        .filter(|filter| !wanted.contains_key(*filter))
        .cloned()
        .collect();
    if !added.is_empty() {
        if let Err(error) = client.try_subscribe_many(added) {
            tracing::warn!(target: CONNECTION_TARGET, site_id, %error, "cannot queue the subscription");
            return;
        }
    }
    for filter in removed {
        if let Err(error) = client.try_unsubscribe(filter.clone()) {
            tracing::warn!(target: CONNECTION_TARGET, site_id, %error, filter, "cannot queue the unsubscription");
        }
    }
    *subscribed = wanted;
}
