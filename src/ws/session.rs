//! One browser's WebSocket session: forwards hub events (all sites, or the one it subscribed to),
//! answers `subscribe` with a snapshot so a reconnecting page catches up, pings every 20 s, and
//! drops a client that falls behind instead of letting it hold anything up.
//!
//! Client → server messages (JSON text):
//! - `{"subscribe": {"site_id": N}}`: only events of site N from now on, and a snapshot of it;
//! - `{"subscribe": {"site_id": null}}`: events of every site again;
//! - `{"type": "ping"}`: answered with `{"type": "pong"}` (browsers cannot see protocol pings).
//!
//! Anything else is answered with `{"type": "error", "message": …}` and otherwise ignored.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::entity::site;
use crate::events::Published;
use crate::metrics::Metrics;
use crate::queries::connections::site_connection;
use crate::queries::devices::load_devices;
use crate::state::AppState;

/// "Try Again Later": the client may reconnect at once and will get a fresh snapshot.
const CLOSE_FELL_BEHIND: u16 = 1013;
const CLOSE_GOING_AWAY: u16 = 1001;
pub const FELL_BEHIND_REASON: &str = "client fell behind the event stream; reconnect to catch up";

#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// How often a protocol ping is sent; also keeps proxies from closing an idle socket.
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) this long is gone.
    pub idle_timeout: Duration,
    /// A send that cannot complete this long means the client stopped reading.
    pub send_timeout: Duration,
    /// How long the goodbye frame may take before the socket is dropped anyway.
    pub close_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(70),
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    FellBehind,
    Idle,
    Shutdown,
    SocketError,
}

/// Where subscribe snapshots come from: the database in the service, fixed text in unit tests.
/// `Ok(None)` means the site does not exist.
pub(crate) trait Snapshots {
    async fn snapshot(&self, site_id: i32) -> Result<Option<String>, String>;
}

struct DatabaseSnapshots<'a> {
    state: &'a AppState,
}

impl Snapshots for DatabaseSnapshots<'_> {
    async fn snapshot(&self, site_id: i32) -> Result<Option<String>, String> {
        let state = self.state;
        let exists = site::Entity::find_by_id(site_id)
            .one(&state.db)
            .await
            .map_err(|error| error.to_string())?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let connection = site_connection(&state.db, &state.supervisor, site_id)
            .await
            .map_err(|error| error.to_string())?;
        let devices = load_devices(&state.db, site_id)
            .await
            .map_err(|error| error.to_string())?;
        Ok(Some(
            json!({
                "type": "snapshot",
                "site_id": site_id,
                "connection": connection,
                "devices": devices,
            })
            .to_string(),
        ))
    }
}

/// Counts the client for as long as the session lives, however it ends.
struct ClientGauge<'a>(&'a Metrics);

impl<'a> ClientGauge<'a> {
    fn new(metrics: &'a Metrics) -> ClientGauge<'a> {
        metrics.websocket_clients.inc();
        ClientGauge(metrics)
    }
}

impl Drop for ClientGauge<'_> {
    fn drop(&mut self) {
        self.0.websocket_clients.dec();
    }
}

/// Serves one upgraded socket until the client leaves, falls behind or the service stops.
pub async fn handle_socket(socket: WebSocket, state: AppState) {
    // Subscribe before anything else so no event between upgrade and loop start is missed.
    let events = state.hub.subscribe();
    let _gauge = ClientGauge::new(&state.metrics);
    let snapshots = DatabaseSnapshots { state: &state };
    let end = run(
        socket,
        events,
        &snapshots,
        &SessionOptions::default(),
        &state.metrics,
        &state.shutdown,
    )
    .await;
    tracing::debug!(?end, "WebSocket session ended");
}

enum SendFailure {
    TimedOut,
    Closed,
}

async fn send<S, E>(socket: &mut S, message: Message, timeout: Duration) -> Result<(), SendFailure>
where
    S: Sink<Message, Error = E> + Unpin,
{
    match tokio::time::timeout(timeout, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Closed),
        Err(_) => Err(SendFailure::TimedOut),
    }
}

async fn close<S, E>(socket: &mut S, code: u16, reason: &str, options: &SessionOptions)
where
    S: Sink<Message, Error = E> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // Best effort: a client that cannot take the frame is dropped all the same.
    let _ = send(socket, Message::Close(Some(frame)), options.close_timeout).await;
}

async fn fell_behind<S, E>(
    socket: &mut S,
    metrics: &Metrics,
    options: &SessionOptions,
    why: &str,
) -> End
where
    S: Sink<Message, Error = E> + Unpin,
{
    metrics.websocket_dropped.inc();
    tracing::info!("dropping a WebSocket client: {why}");
    close(socket, CLOSE_FELL_BEHIND, FELL_BEHIND_REASON, options).await;
    End::FellBehind
}

/// The session loop, generic over the socket so it can be tested without a network.
pub(crate) async fn run<S, E>(
    mut socket: S,
    mut events: broadcast::Receiver<Arc<Published>>,
    snapshots: &impl Snapshots,
    options: &SessionOptions,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> End
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin,
    E: Display,
{
    let mut filter: Option<i32> = None;
    let mut ping = tokio::time::interval_at(
        Instant::now() + options.ping_interval,
        options.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, CLOSE_GOING_AWAY, "server shutting down", options).await;
                return End::Shutdown;
            }
            incoming = socket.next() => {
                last_heard = Instant::now();
                let reply = match incoming {
                    None | Some(Ok(Message::Close(_))) => return End::ClientClosed,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "WebSocket read failed");
                        return End::SocketError;
                    }
                    Some(Ok(Message::Text(text))) => answer(text.as_str(), &mut filter, snapshots).await,
                    Some(Ok(Message::Binary(_))) => {
                        Some(error_reply("binary messages are not understood; send JSON text"))
                    }
                    // Pongs only prove the client is alive; pings are answered by the library.
                    Some(Ok(_)) => None,
                };
                if let Some(reply) = reply {
                    match send(&mut socket, Message::Text(reply.into()), options.send_timeout).await {
                        Ok(()) => {}
                        Err(SendFailure::Closed) => return End::SocketError,
                        Err(SendFailure::TimedOut) => {
                            return fell_behind(&mut socket, metrics, options, "a reply timed out").await;
                        }
                    }
                }
            }
            event = events.recv() => match event {
                Ok(published) => {
                    if filter.is_some_and(|site_id| site_id != published.site_id) {
                        continue;
                    }
                    let message = Message::Text(published.json.clone().into());
                    match send(&mut socket, message, options.send_timeout).await {
                        Ok(()) => {}
                        Err(SendFailure::Closed) => return End::SocketError,
                        Err(SendFailure::TimedOut) => {
                            return fell_behind(&mut socket, metrics, options, "a send timed out").await;
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let why = format!("{missed} events behind");
                    return fell_behind(&mut socket, metrics, options, &why).await;
                }
                Err(RecvError::Closed) => {
                    close(&mut socket, CLOSE_GOING_AWAY, "server shutting down", options).await;
                    return End::Shutdown;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > options.idle_timeout {
                    close(&mut socket, CLOSE_GOING_AWAY, "no answer to pings", options).await;
                    return End::Idle;
                }
                match send(&mut socket, Message::Ping(Default::default()), options.send_timeout).await {
                    Ok(()) => {}
                    Err(SendFailure::Closed) => return End::SocketError,
                    Err(SendFailure::TimedOut) => {
                        return fell_behind(&mut socket, metrics, options, "a ping timed out").await;
                    }
                }
            }
        }
    }
}

fn error_reply(message: &str) -> String {
    json!({"type": "error", "message": message}).to_string()
}

/// Applies one client message and returns what to send back, if anything.
async fn answer(
    text: &str,
    filter: &mut Option<i32>,
    snapshots: &impl Snapshots,
) -> Option<String> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Some(error_reply(
            "messages must be JSON, e.g. {\"subscribe\": {\"site_id\": 1}}",
        ));
    };
    if value.get("type").and_then(Value::as_str) == Some("ping") {
        return Some(json!({"type": "pong"}).to_string());
    }
    let Some(subscribe) = value.get("subscribe") else {
        return Some(error_reply(
            "unknown message; send {\"subscribe\": {\"site_id\": N}} or {\"subscribe\": {\"site_id\": null}}",
        ));
    };
    let site_id = match subscribe.get("site_id") {
        None | Some(Value::Null) => {
            *filter = None;
            return Some(json!({"type": "subscribed", "site_id": null}).to_string());
        }
        Some(value) => value.as_i64().and_then(|id| i32::try_from(id).ok()),
    };
    let Some(site_id) = site_id else {
        return Some(error_reply("subscribe.site_id must be an integer or null"));
    };
    *filter = Some(site_id);
    match snapshots.snapshot(site_id).await {
        Ok(Some(snapshot)) => Some(snapshot),
        Ok(None) => Some(
            json!({
                "type": "error",
                "code": "not_found",
                "site_id": site_id,
                "message": format!("site {site_id} not found"),
            })
            .to_string(),
        ),
        Err(error) => {
            tracing::warn!(%error, site_id, "cannot build a WebSocket snapshot");
            Some(error_reply(
                "the snapshot could not be read; reload the page",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;
    use tokio_util::sync::{PollSendError, PollSender};

    use super::*;
    use crate::events::{Event, Hub};

    /// A socket made of two channels: what the "browser" sends, and what it is sent.
    struct ChannelSocket {
        incoming: mpsc::Receiver<Message>,
        outgoing: PollSender<Message>,
    }

    impl Stream for ChannelSocket {
        type Item = Result<Message, PollSendError<Message>>;

        fn poll_next(
            mut self: Pin<&mut Self>,
            context: &mut Context<'_>,
        ) -> Poll<Option<Self::Item>> {
            self.incoming
                .poll_recv(context)
                .map(|message| message.map(Ok))
        }
    }

    impl Sink<Message> for ChannelSocket {
        type Error = PollSendError<Message>;

        fn poll_ready(
            mut self: Pin<&mut Self>,
            context: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_ready(context)
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            Pin::new(&mut self.outgoing).start_send(item)
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            context: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_flush(context)
        }

        fn poll_close(
            mut self: Pin<&mut Self>,
            context: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_close(context)
        }
    }

    struct FixedSnapshots;

    impl Snapshots for FixedSnapshots {
        async fn snapshot(&self, site_id: i32) -> Result<Option<String>, String> {
            Ok((site_id != 404)
                .then(|| json!({"type": "snapshot", "site_id": site_id}).to_string()))
        }
    }

    fn socket(
        capacity: usize,
    ) -> (
        ChannelSocket,
        mpsc::Sender<Message>,
        mpsc::Receiver<Message>,
    ) {
        let (browser_sends, incoming) = mpsc::channel(16);
        let (outgoing, browser_receives) = mpsc::channel(capacity);
        (
            ChannelSocket {
                incoming,
                outgoing: PollSender::new(outgoing),
            },
            browser_sends,
            browser_receives,
        )
    }

    fn fast() -> SessionOptions {
        SessionOptions {
            ping_interval: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            send_timeout: Duration::from_millis(100),
            close_timeout: Duration::from_millis(100),
        }
    }

    fn discovered(site_id: i32, topic: &str) -> Event {
        Event::TopicDiscovered {
            site_id,
            topic: topic.into(),
        }
    }

    async fn next_json(receiver: &mut mpsc::Receiver<Message>) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
                .await
                .expect("a message in time")
                .expect("socket open");
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).expect("json");
            }
        }
    }

    #[tokio::test]
    async fn subscribe_sends_a_snapshot_and_filters_events() {
        let hub = Hub::new(64);
        let (socket, browser, mut received) = socket(64);
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let events = hub.subscribe();
        let session = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                run(
                    socket,
                    events,
                    &FixedSnapshots,
                    &fast(),
                    &metrics,
                    &shutdown,
                )
                .await
            })
        };
        browser
            .send(Message::Text(r#"{"subscribe": {"site_id": 2}}"#.into()))
            .await
            .expect("send");
        let snapshot = next_json(&mut received).await;
        assert_eq!(snapshot["type"], "snapshot");
        assert_eq!(snapshot["site_id"], 2);
        hub.send(&discovered(1, "other/site"));
        hub.send(&discovered(2, "this/site"));
        let event = next_json(&mut received).await;
        assert_eq!(event["topic"], "this/site");

        browser
            .send(Message::Text(r#"{"subscribe": {"site_id": 404}}"#.into()))
            .await
            .expect("send");
        assert_eq!(next_json(&mut received).await["code"], "not_found");
        browser
            .send(Message::Text("nonsense".into()))
            .await
            .expect("send");
        assert_eq!(next_json(&mut received).await["type"], "error");
        browser
            .send(Message::Text(r#"{"type": "ping"}"#.into()))
            .await
            .expect("send");
        assert_eq!(next_json(&mut received).await["type"], "pong");

        shutdown.cancel();
        assert_eq!(session.await.expect("session"), End::Shutdown);
    }

    #[tokio::test]
    async fn a_lagging_client_gets_a_close_frame_and_is_counted() {
        let hub = Hub::new(4);
        let (socket, _browser, mut received) = socket(64);
        let metrics = Metrics::new();
        let events = hub.subscribe();
        for index in 0..20 {
            hub.send(&discovered(1, &format!("t/{index}")));
        }
        let end = run(
            socket,
            events,
            &FixedSnapshots,
            &fast(),
            &metrics,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(end, End::FellBehind);
        assert_eq!(metrics.websocket_dropped.get(), 1);
        match received.recv().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CLOSE_FELL_BEHIND);
                assert!(frame.reason.as_str().contains("fell behind"));
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_without_blocking_the_hub() {
        let hub = Hub::new(1024);
        // Room for one message: the second send can never complete.
        let (socket, _browser, _received) = socket(1);
        let metrics = Metrics::new();
        let events = hub.subscribe();
        let started = Instant::now();
        let session = tokio::spawn(async move {
            let end = run(
                socket,
                events,
                &FixedSnapshots,
                &fast(),
                &metrics,
                &CancellationToken::new(),
            )
            .await;
            (end, metrics.websocket_dropped.get())
        });
        for index in 0..500 {
            hub.send(&discovered(1, &format!("t/{index}")));
        }
        // Sending never waited on the stuck client.
        assert!(started.elapsed() < Duration::from_millis(100));
        let (end, dropped) = session.await.expect("session");
        assert_eq!(end, End::FellBehind);
        assert_eq!(dropped, 1);
    }

    #[tokio::test]
    async fn pings_are_sent_and_a_silent_client_is_closed() {
        let hub = Hub::new(4);
        let (socket, _browser, mut received) = socket(64);
        let metrics = Metrics::new();
        let options = SessionOptions {
            ping_interval: Duration::from_millis(20),
            idle_timeout: Duration::from_millis(70),
            ..fast()
        };
        let end = run(
            socket,
            hub.subscribe(),
            &FixedSnapshots,
            &options,
            &metrics,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(end, End::Idle);
        let mut pings = 0;
        while let Ok(message) = received.try_recv() {
            if matches!(message, Message::Ping(_)) {
                pings += 1;
            }
        }
        assert!(pings >= 2, "{pings} pings");
    }
}
