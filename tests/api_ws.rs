//! The WebSocket hub over real connections: the token before the upgrade, per-site `subscribe`
//! with its snapshot, events from real MQTT traffic, the client gauge, and a client that stops
//! reading being dropped with a close frame while ingestion and other clients carry on.

mod common;

use std::time::Duration;

use common::{
    add_topic, config_args, create_site, eventually, publisher_on, wait_for_status, PrivateBroker,
    Publisher, Service, ServiceOptions, TestDatabase,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(service: &Service) -> Socket {
    let url = service.ws_url("/ws?token=test-admin-token-0123456789");
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connects");
    socket
}

async fn send_json(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message that satisfies `wanted`; protocol frames and other messages are skipped.
async fn next_where(socket: &mut Socket, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("socket ended while waiting for {what}"))
            .expect("read");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON message");
            if wanted(&value) {
                return value;
            }
        }
    }
}

/// Every JSON message received within `window`.
async fn collect_for(socket: &mut Socket, window: Duration) -> Vec<Value> {
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Text(text) = message {
            messages.push(serde_json::from_str(text.as_str()).expect("JSON message"));
        }
    }
    messages
}

async fn subscribe(socket: &mut Socket, site_id: i64) -> Value {
    send_json(socket, json!({"subscribe": {"site_id": site_id}})).await;
    next_where(socket, "the snapshot", |message| {
        message["type"] == "snapshot"
    })
    .await
}

async fn metric(service: &Service, name: &str) -> f64 {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} in:\n{text}"))
}

async fn get_json(service: &Service, path: &str) -> Value {
    service
        .client()
        .get(service.url(path))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_socket_needs_the_token_before_the_upgrade() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    for path in ["/ws", "/ws?token=wrong"] {
        match tokio_tungstenite::connect_async(service.ws_url(path)).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401, "{path}"),
            Err(other) => panic!("{path}: expected HTTP 401, got {other}"),
            Ok(_) => panic!("{path}: connected without a valid token"),
        }
    }
    let mut socket = connect(&service).await;
    send_json(&mut socket, json!({"type": "ping"})).await;
    next_where(&mut socket, "pong", |message| message["type"] == "pong").await;

    let mut request = service
        .ws_url("/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        "Bearer test-admin-token-0123456789"
            .parse()
            .expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the header works too");
    send_json(&mut socket, json!({"hello": 1})).await;
    let error = next_where(&mut socket, "an error reply", |message| {
        message["type"] == "error"
    })
    .await;
    assert!(error["message"]
        .as_str()
        .expect("message")
        .contains("subscribe"));
}

#[tokio::test]
async fn subscribers_get_a_snapshot_and_only_their_site() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let (site_a, prefix_a) = create_site(&service, false).await;
    let (site_b, _) = create_site(&service, false).await;
    add_topic(
        &service,
        site_a,
        &format!("{prefix_a}/{{gateway}}/{{datalogger}}"),
        "datalogger_readings_v1",
    )
    .await;

    let mut everything = connect(&service).await;
    let mut only_a = connect(&service).await;
    let mut only_b = connect(&service).await;
    let snapshot = subscribe(&mut only_a, site_a).await;
    assert_eq!(snapshot["site_id"], site_a);
    assert_eq!(snapshot["devices"], json!([]));
    assert_eq!(snapshot["connection"]["site_id"], site_a);
    assert_eq!(snapshot["connection"]["is_active"], false);
    assert_eq!(snapshot["connection"]["has_password"], false);
    assert!(snapshot["connection"].get("password").is_none());
    let snapshot = subscribe(&mut only_b, site_b).await;
    assert_eq!(snapshot["site_id"], site_b);
    eventually(Duration::from_secs(10), "three clients counted", || async {
        (metric(&service, "mqtt_supervisor_websocket_clients").await == 3.0).then_some(())
    })
    .await;

    // Switching site A on produces its status events, live.
    let response = service
        .client()
        .patch(service.url(&format!("/api/mqtt/connection/{site_a}/")))
        .json(&json!({"is_active": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 202);
    let is_connected_a = |message: &Value| {
        message["type"] == "connection_status"
            && message["site_id"] == site_a
            && message["status"] == "connected"
    };
    next_where(&mut only_a, "site A connected", is_connected_a).await;
    next_where(
        &mut everything,
        "site A connected (unfiltered)",
        is_connected_a,
    )
    .await;
    wait_for_status(&service, site_a, "connected", Duration::from_secs(10)).await;
    common::wait_for_granted_via_api(&service, site_a).await;

    let publisher = Publisher::connect().await;
    publisher
        .publish(
            &format!("{prefix_a}/gw-1/dl-1"),
            json!({"sensors": [{"name": "temp", "value": 19.5, "unit": "C"}]}).to_string(),
        )
        .await;
    let update = next_where(&mut only_a, "a datalogger update", |message| {
        message["type"] == "datalogger_update"
    })
    .await;
    assert_eq!(update["site_id"], site_a);
    assert_eq!(update["gateway"], "gw-1");
    assert_eq!(update["datalogger"], "dl-1");
    assert_eq!(update["sensors"][0]["value"], 19.5);
    next_where(&mut everything, "the update (unfiltered)", |message| {
        message["type"] == "datalogger_update" && message["site_id"] == site_a
    })
    .await;

    for message in collect_for(&mut only_b, Duration::from_secs(1)).await {
        assert_ne!(
            message["site_id"], site_a,
            "site B's subscriber got {message}"
        );
    }

    // A page that reconnects catches up from the snapshot: the same as the REST answers.
    let mut late = connect(&service).await;
    let snapshot = subscribe(&mut late, site_a).await;
    let devices = get_json(&service, &format!("/api/sites/{site_a}/devices")).await;
    assert_eq!(snapshot["devices"], devices);
    assert_eq!(
        snapshot["devices"][0]["dataloggers"][0]["sensors"][0]["last_value"],
        19.5
    );
    let connection = get_json(&service, &format!("/api/mqtt/connection/{site_a}/")).await;
    assert_eq!(snapshot["connection"]["id"], connection["id"]);
    assert_eq!(snapshot["connection"]["status"], "connected");

    // Subscribing to null widens the stream to every site again.
    send_json(&mut only_b, json!({"subscribe": {"site_id": null}})).await;
    next_where(&mut only_b, "the acknowledgement", |message| {
        message["type"] == "subscribed"
    })
    .await;
    publisher
        .publish(
            &format!("{prefix_a}/gw-1/dl-2"),
            json!({"sensors": [{"name": "temp", "value": 7.0}]}).to_string(),
        )
        .await;
    next_where(&mut only_b, "site A's update after widening", |message| {
        message["type"] == "datalogger_update" && message["site_id"] == site_a
    })
    .await;

    for socket in [&mut everything, &mut only_a, &mut only_b, &mut late] {
        socket.close(None).await.ok();
    }
    drop((everything, only_a, only_b, late));
    eventually(Duration::from_secs(10), "clients uncounted", || async {
        (metric(&service, "mqtt_supervisor_websocket_clients").await == 0.0).then_some(())
    })
    .await;
}

/// A client with a tiny receive window that stops reading: the server must drop it with a close
/// frame saying why, count it, and keep ingesting and serving the client that does read.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_nothing_else_slows_down() {
    let database = TestDatabase::new().await;
    let service = Service::start_with(
        &database,
        ServiceOptions {
            // Small batches keep each burst of events well under the hub's buffer, so only the
            // stalled client can fall behind.
            args: config_args(
                database.directory.path(),
                "[pipeline]\nbatch_max_messages = 50\n",
            ),
            ..ServiceOptions::default()
        },
    );
    // A broker of its own with deep queues: the shared one drops messages for a subscriber more
    // than 1000 behind, and this test must be able to count every message stored.
    let broker = PrivateBroker::start();
    let client = service.client();
    let site: Value = client
        .post(service.url("/api/sites"))
        .json(&json!({"name": "Burst", "slug": "burst"}))
        .send()
        .await
        .expect("create site")
        .json()
        .await
        .expect("site");
    let site_id = site["id"].as_i64().expect("site id");
    let response = client
        .post(service.url("/api/mqtt/connections"))
        .json(&json!({"site_id": site_id, "host": "127.0.0.1", "port": broker.port, "is_active": true}))
        .send()
        .await
        .expect("create connection");
    assert_eq!(response.status(), 201);
    let prefix = "burst";
    add_topic(
        &service,
        site_id,
        "burst/{gateway}/{datalogger}",
        "flat_telemetry",
    )
    .await;
    wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;

    let address = service.base_url.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let stream = tcp
        .connect(address.parse().expect("address"))
        .await
        .expect("tcp connect");
    let (mut slow, _) = tokio_tungstenite::client_async(
        service.ws_url("/ws?token=test-admin-token-0123456789"),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("slow client connects");
    subscribe(&mut slow, site_id).await;

    let fast = connect(&service).await;
    let (mut fast_sender, mut fast_receiver) = fast.split();
    let reader = tokio::spawn(async move {
        let mut updates = 0usize;
        while let Some(Ok(message)) = fast_receiver.next().await {
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(text.as_str()).expect("json");
                match value["type"].as_str() {
                    Some("datalogger_update") => updates += 1,
                    Some("pong") => return (updates, true),
                    _ => {}
                }
            }
        }
        (updates, false)
    });

    common::wait_for_granted_via_api(&service, site_id).await;
    let publisher = publisher_on(broker.port).await;
    let fields: serde_json::Map<String, Value> = (0..100)
        .map(|index| (format!("field_{index}"), json!(index as f64 + 0.5)))
        .collect();
    let payload = Value::Object(fields).to_string();
    const MESSAGES: usize = 2000;
    for index in 0..MESSAGES {
        publisher
            .publish(
                &format!("{prefix}/gw-{}/dl-{index}", index % 10),
                payload.clone(),
            )
            .await;
    }

    eventually(
        Duration::from_secs(60),
        "the slow client dropped",
        || async {
            (metric(&service, "mqtt_supervisor_websocket_dropped_total").await >= 1.0).then_some(())
        },
    )
    .await;
    // Reading again drains what was buffered, then the goodbye.
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = slow.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(error) => panic!("the socket failed before a close frame: {error}"),
            }
        }
        panic!("the socket ended without a close frame");
    })
    .await
    .expect("a close frame in time")
    .expect("the close frame has a reason");
    assert!(
        close.reason.as_str().contains("fell behind"),
        "{}",
        close.reason
    );

    eventually(Duration::from_secs(60), "every message stored", || async {
        let health = reqwest::get(service.url("/health"))
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?;
        (health["messages_processed"].as_u64()? >= MESSAGES as u64).then_some(())
    })
    .await;

    fast_sender
        .send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .expect("the reading client is still connected");
    let (updates, answered) = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("pong in time")
        .expect("reader");
    assert!(answered, "the reading client was dropped");
    assert!(updates > 0, "the reading client got events");
    assert_eq!(
        metric(&service, "mqtt_supervisor_websocket_dropped_total").await,
        1.0,
        "only the stalled client was dropped"
    );
}
