//! Commands to devices through a real Mosquitto, with a simulated device that subscribes and
//! counts every copy it receives: QoS 0, 1 and 2 delivered exactly as asked, a command stored
//! while the connection is stopped goes out after the start (unless it expired first), one stored
//! before a SIGKILL goes out after the restart, an idempotent retry sends one copy, every bad
//! request is refused with the field named, the WebSocket follows each command, and a command goes
//! out while a flood of messages waits for a database that is held up.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    command, config_args, eventually, metric, post_command, publisher_on, seed_test_site,
    unique_name, wait_for_command, wait_for_granted, wait_for_row_status, PrivateBroker, Service,
    ServiceOptions, TestDatabase,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

/// How long a command may take to reach a status here.
const COMMAND_WAIT: Duration = Duration::from_secs(15);

fn fast_options() -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        ..Default::default()
    }
}

/// What the device received: (topic, payload, QoS, retain).
type Received = Arc<Mutex<Vec<(String, Vec<u8>, u8, bool)>>>;

/// A device subscribed to `filter` at QoS 2, keeping every message it receives.
struct Device {
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    async fn subscribe(port: u16, filter: &str) -> Device {
        let mut options = MqttOptions::new(unique_name("device"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut event_loop) = AsyncClient::new(options, 100);
        client
            .subscribe(filter, QoS::ExactlyOnce)
            .await
            .expect("subscribe");
        let received: Received = Arc::default();
        let (subscribed_sender, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_sender = Some(subscribed_sender);
        let kept = received.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(sender) = subscribed_sender.take() {
                            let _ = sender.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Ok(mut kept) = kept.lock() {
                            kept.push((
                                publish.topic.clone(),
                                publish.payload.to_vec(),
                                publish.qos as u8,
                                publish.retain,
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("the device subscribed")
            .expect("subscription answer");
        Device { received, task }
    }

    fn copies(&self, topic: &str) -> Vec<(Vec<u8>, u8, bool)> {
        self.received
            .lock()
            .map(|received| {
                received
                    .iter()
                    .filter(|(received_topic, ..)| received_topic == topic)
                    .map(|(_, payload, qos, retain)| (payload.clone(), *qos, *retain))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A site whose connection (switched on when `active`) reaches `broker`.
async fn site_on(database: &TestDatabase, broker: &PrivateBroker, active: bool) -> (i64, i32) {
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        active,
        None,
        &[("uplink/#", "flat_telemetry")],
    )
    .await;
    if active {
        wait_for_row_status(
            &db,
            seeded.connection_id,
            "connected",
            Duration::from_secs(10),
        )
        .await;
        wait_for_granted(&db, seeded.connection_id).await;
    }
    (i64::from(seeded.site_id), seeded.connection_id)
}

async fn switch(database: &TestDatabase, connection_id: i32, active: bool) {
    let db = database.connect().await;
    common::set_active(&db, connection_id, active).await;
    if active {
        wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quality_of_service_is_delivered_as_asked_and_followed_live() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start_with(&database, fast_options());
    let (site_id, _) = site_on(&database, &broker, true).await;
    let prefix = unique_name("relays");
    let device = Device::subscribe(broker.port, &format!("{prefix}/#")).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(service.ws_url("/ws?token=test-admin-token-0123456789"))
            .await
            .expect("WebSocket connects");

    let mut ids = Vec::new();
    for qos in 0..=2 {
        let (status, created) = post_command(
            &service,
            site_id,
            json!({"topic": format!("{prefix}/q{qos}"), "payload": {"state": "on", "qos": qos},
                   "qos": qos}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        assert_eq!(created["status"], "queued");
        assert_eq!(created["qos"], qos);
        assert_eq!(created["retain"], false);
        assert_eq!(created["sent_at"], Value::Null);
        ids.push(created["id"].as_i64().expect("id"));
    }
    for (qos, id) in ids.iter().enumerate() {
        let delivered = wait_for_command(&service, *id, "delivered", COMMAND_WAIT).await;
        assert!(delivered["sent_at"].is_string(), "{delivered}");
        assert!(delivered["delivered_at"].is_string(), "{delivered}");
        assert_eq!(delivered["error"], Value::Null);
        let topic = format!("{prefix}/q{qos}");
        eventually(Duration::from_secs(5), "the device's copy", || async {
            (!device.copies(&topic).is_empty()).then_some(())
        })
        .await;
    }
    // Time for a duplicate to show, if one were sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for qos in 0..=2u8 {
        let copies = device.copies(&format!("{prefix}/q{qos}"));
        assert_eq!(copies.len(), 1, "QoS {qos}: one copy");
        let (payload, received_qos, retain) = &copies[0];
        assert_eq!(received_qos, &qos, "delivered at the QoS asked");
        assert!(!retain);
        let payload: Value = serde_json::from_slice(payload).expect("JSON payload");
        assert_eq!(payload, json!({"state": "on", "qos": qos}));
    }

    // The WebSocket told each step of the QoS 2 command.
    let wanted = ids[2];
    let mut steps = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while steps.last().map(String::as_str) != Some("delivered") {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("command_status events")
            .expect("socket open")
            .expect("message");
        let Ok(text) = message.into_text() else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if event["type"] == "command_status" && event["id"] == wanted {
            assert_eq!(event["site_id"], site_id);
            steps.push(event["status"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(steps, ["queued", "sent", "delivered"]);

    let metrics = service
        .client()
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("mqtt_supervisor_commands_total{status=\"delivered\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_stored_while_stopped_goes_out_after_the_start_unless_it_expired() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start_with(&database, fast_options());
    let (site_id, connection_id) = site_on(&database, &broker, false).await;
    let prefix = unique_name("later");
    let device = Device::subscribe(broker.port, &format!("{prefix}/#")).await;

    let (_, waiting) = post_command(
        &service,
        site_id,
        json!({"topic": format!("{prefix}/waits"), "payload": "ON"}),
        None,
    )
    .await;
    let (_, hurried) = post_command(
        &service,
        site_id,
        json!({"topic": format!("{prefix}/hurried"), "payload": "ON", "expires_in_secs": 1}),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        command(&service, waiting["id"].as_i64().expect("id")).await["status"],
        "queued"
    );
    switch(&database, connection_id, true).await;

    wait_for_command(
        &service,
        waiting["id"].as_i64().expect("id"),
        "delivered",
        COMMAND_WAIT,
    )
    .await;
    let expired = wait_for_command(
        &service,
        hurried["id"].as_i64().expect("id"),
        "expired",
        COMMAND_WAIT,
    )
    .await;
    assert_eq!(expired["sent_at"], Value::Null, "never sent");
    eventually(Duration::from_secs(5), "the waiting command", || async {
        (device.copies(&format!("{prefix}/waits")).len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(device.copies(&format!("{prefix}/hurried")).is_empty());
    assert_eq!(
        device.copies(&format!("{prefix}/waits"))[0].0,
        b"ON".to_vec()
    );

    // The list shows both, newest first, and filters by status.
    let list: Value = service
        .client()
        .get(service.url(&format!("/api/sites/{site_id}/commands?status=expired")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], hurried["id"]);
    let list: Value = service
        .client()
        .get(service.url(&format!("/api/sites/{site_id}/commands")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    assert_eq!(list[0]["id"], hurried["id"]);
    assert_eq!(list[1]["id"], waiting["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_queued_before_a_sigkill_goes_out_after_the_restart() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    // On PostgreSQL the restarted process is another instance: the dead one's place is given
    // up after its lease, kept short here.
    let options = || ServiceOptions {
        extra_env: vec![("SUPERVISOR_LEASE_SECS".into(), "3".into())],
        ..fast_options()
    };
    let mut service = Service::start_with(&database, options());
    let (site_id, connection_id) = site_on(&database, &broker, false).await;
    let prefix = unique_name("survivor");
    let device = Device::subscribe(broker.port, &format!("{prefix}/#")).await;
    let (_, queued) = post_command(
        &service,
        site_id,
        json!({"topic": format!("{prefix}/relay"), "payload": {"state": "off"}, "qos": 2}),
        None,
    )
    .await;
    service.kill();

    let service = Service::start_with(&database, options());
    switch(&database, connection_id, true).await;
    wait_for_command(
        &service,
        queued["id"].as_i64().expect("id"),
        "delivered",
        COMMAND_WAIT,
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "the command after the restart",
        || async { (device.copies(&format!("{prefix}/relay")).len() == 1).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_command_and_sends_once() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start_with(&database, fast_options());
    let (site_id, _) = site_on(&database, &broker, true).await;
    let prefix = unique_name("once");
    let device = Device::subscribe(broker.port, &format!("{prefix}/#")).await;
    let body = json!({"topic": format!("{prefix}/relay"), "payload": "ON"});
    let (first_status, first) =
        post_command(&service, site_id, body.clone(), Some("retry-1")).await;
    let (again_status, again) =
        post_command(&service, site_id, body.clone(), Some("retry-1")).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(again_status, StatusCode::ACCEPTED);
    assert_eq!(first["id"], again["id"]);
    wait_for_command(
        &service,
        first["id"].as_i64().expect("id"),
        "delivered",
        COMMAND_WAIT,
    )
    .await;
    // Another key is another command.
    let (_, other) = post_command(&service, site_id, body, Some("retry-2")).await;
    assert_ne!(other["id"], first["id"]);
    wait_for_command(
        &service,
        other["id"].as_i64().expect("id"),
        "delivered",
        COMMAND_WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(device.copies(&format!("{prefix}/relay")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_are_refused_with_the_field_named_and_nothing_is_sent() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start_with(&database, fast_options());
    let (site_id, _) = site_on(&database, &broker, true).await;

    for (body, field) in [
        (json!({"topic": "relays/+/set", "payload": 1}), "topic"),
        (json!({"topic": "relays/#", "payload": 1}), "topic"),
        (json!({"topic": "", "payload": 1}), "topic"),
        (json!({"topic": "$SYS/broker", "payload": 1}), "topic"),
        (json!({"payload": 1}), "topic"),
        (json!({"topic": "relays/1"}), "payload"),
        (json!({"topic": "relays/1", "payload": 1, "qos": 3}), "qos"),
        (
            json!({"topic": "relays/1", "payload": 1, "qos": "1"}),
            "qos",
        ),
        (
            json!({"topic": "relays/1", "payload": "x".repeat(300_000)}),
            "payload",
        ),
        (
            json!({"topic": "relays/1", "payload": 1, "expires_in_secs": 0}),
            "expires_in_secs",
        ),
        (
            json!({"template": "no_such_template", "args": {"channel": 1, "state": "on"}}),
            "template",
        ),
        (
            json!({"topic": "relays/1", "payload": 1, "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, error) = post_command(&service, site_id, body.clone(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
        assert!(error["error"]["message"].is_string());
    }
    let (status, error) = post_command(
        &service,
        site_id,
        json!({"topic": "relays/1", "payload": 1}),
        Some("has space"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["field"], "Idempotency-Key");

    let (status, _) =
        post_command(&service, 999_999, json!({"topic": "a", "payload": 1}), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let bare: Value = service
        .client()
        .post(service.url("/api/sites"))
        .json(&json!({"name": "bare", "slug": unique_name("bare").replace('_', "-")}))
        .send()
        .await
        .expect("create site")
        .json()
        .await
        .expect("site");
    let (status, error) = post_command(
        &service,
        bare["id"].as_i64().expect("site id"),
        json!({"topic": "a", "payload": 1}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let unauthorised = reqwest::Client::new()
        .post(service.url(&format!("/api/sites/{site_id}/commands")))
        .json(&json!({"topic": "a", "payload": 1}))
        .send()
        .await
        .expect("post without a token");
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = service
        .client()
        .get(service.url("/api/commands/999999"))
        .send()
        .await
        .map(|response| (response.status(), ()))
        .expect("get");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = service
        .client()
        .get(service.url(&format!("/api/sites/{site_id}/commands?status=done")))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing was stored.
    let list: Value = service
        .client()
        .get(service.url(&format!("/api/sites/{site_id}/commands")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    assert_eq!(list, json!([]));
}

/// Of one QoS: a broker orders each QoS's messages on its own (Mosquitto hands a QoS 2 message
/// on when its sender releases it, so it may pass a QoS 1 one sent earlier).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commands_goes_out_in_order() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start_with(&database, fast_options());
    let (site_id, _) = site_on(&database, &broker, true).await;
    let prefix = unique_name("burst");
    let device = Device::subscribe(broker.port, &format!("{prefix}/#")).await;
    let mut ids = Vec::new();
    for index in 0..25 {
        let (status, created) = post_command(
            &service,
            site_id,
            json!({"topic": format!("{prefix}/relay"), "payload": index, "qos": 1}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        ids.push(created["id"].as_i64().expect("id"));
    }
    for id in &ids {
        wait_for_command(&service, *id, "delivered", COMMAND_WAIT).await;
    }
    eventually(Duration::from_secs(5), "25 copies", || async {
        (device.copies(&format!("{prefix}/relay")).len() == 25).then_some(())
    })
    .await;
    let order: Vec<Vec<u8>> = device
        .copies(&format!("{prefix}/relay"))
        .into_iter()
        .map(|(payload, ..)| payload)
        .collect();
    let expected: Vec<Vec<u8>> = (0..25)
        .map(|index| index.to_string().into_bytes())
        .collect();
    assert_eq!(
        order, expected,
        "one copy each, in the order they were stored"
    );
}

/// Uplink must not starve downlink. Another session locks the tables the writer inserts into, so
/// a flood on the site's own connection fills the writer's queue and the connection task waits
/// for room (the back-pressure that slows a flood to what the database takes); a command posted
/// then must still reach the device while the lock is held. PostgreSQL only: SQLite's single
/// write lock would hold up the command's own row too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_goes_out_while_a_flood_waits_for_the_database() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped: needs a database where one table can be locked alone");
        return;
    }
    // batch_max_messages × 4 ÷ writers; one more is counted while it waits for room.
    const QUEUE: f64 = 64.0;
    let broker = PrivateBroker::start();
    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(
                database.directory.path(),
                "[pipeline]\nbatch_max_messages = 16\nwriters = 1\n",
            ),
            ..fast_options()
        },
    );
    let (site_id, _) = site_on(&database, &broker, true).await;
    let device = Device::subscribe(broker.port, "downlink/#").await;

    let locker = database.connect().await;
    let lock = locker.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE sensor_reading, mqtt_parsing_log IN EXCLUSIVE MODE")
        .await
        .expect("lock the tables the writer inserts into");
    let publisher = publisher_on(broker.port).await;
    for index in 0..2_000 {
        publisher
            .publish(
                &format!("uplink/gw/dl-{}", index % 5),
                format!(r#"{{"temperature": {index}}}"#),
            )
            .await;
    }
    eventually(
        Duration::from_secs(30),
        "the writer's queue full",
        || async {
            let depth = metric(&service, "mqtt_supervisor_pipeline_queue_depth", &[]).await;
            (depth > QUEUE).then_some(())
        },
    )
    .await;

    let (status, created) = post_command(
        &service,
        site_id,
        json!({"topic": "downlink/relay", "payload": "on", "qos": 1}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    eventually(
        Duration::from_secs(10),
        "the command at the device while the flood waits",
        || async { (device.copies("downlink/relay").len() == 1).then_some(()) },
    )
    .await;
    assert!(
        metric(&service, "mqtt_supervisor_pipeline_queue_depth", &[]).await > QUEUE,
        "the flood was still waiting for the database"
    );

    lock.rollback().await.expect("unlock");
    let id = created["id"].as_i64().expect("id");
    wait_for_command(&service, id, "delivered", Duration::from_secs(60)).await;
    assert_eq!(device.copies("downlink/relay").len(), 1, "one copy");
}

/// A device can answer before the connection task reads the broker's PUBACK: the command is
/// confirmed first, and the acknowledgement read afterwards still stamps its delivered time
/// without moving it back.
#[tokio::test]
async fn a_command_confirmed_before_its_acknowledgement_still_gets_its_delivered_time() {
    use chrono::{Duration as TimeSpan, Utc};
    use mqtt_supervisor::downlink::{transition, CommandStatus};
    use mqtt_supervisor::entity::device_command;
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let database = TestDatabase::new().await;
    // The service migrates the database; its connection stays switched off.
    let _service = Service::start(&database);
    let db = database.connect().await;
    let site = seed_test_site(&db, 1, false, None, &[]).await;
    let sent_at = Utc::now();
    let command = device_command::ActiveModel {
        site_id: Set(site.site_id),
        topic: Set("relayctl/gw-1/relay/1/set".into()),
        payload: Set(b"on".to_vec()),
        qos: Set(1),
        retain: Set(false),
        status: Set(CommandStatus::Sent.as_str().into()),
        error: Set(None),
        template: Set(None),
        idempotency_key: Set(None),
        created_at: Set(sent_at),
        expires_at: Set(sent_at + TimeSpan::minutes(5)),
        sent_at: Set(Some(sent_at)),
        delivered_at: Set(None),
        confirmed_at: Set(None),
        confirm_rule: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("store a sent command");

    let confirmed_at = sent_at + TimeSpan::milliseconds(5);
    let confirmed = transition(
        &db,
        command.id,
        CommandStatus::Confirmed,
        None,
        confirmed_at,
    )
    .await
    .expect("confirm");
    assert!(confirmed.is_some(), "sent → confirmed");
    let acknowledged_at = sent_at + TimeSpan::milliseconds(9);
    let moved = transition(
        &db,
        command.id,
        CommandStatus::Delivered,
        None,
        acknowledged_at,
    )
    .await
    .expect("acknowledge");
    assert!(moved.is_none(), "confirmed is further on than delivered");
    let again = sent_at + TimeSpan::milliseconds(20);
    transition(&db, command.id, CommandStatus::Delivered, None, again)
        .await
        .expect("a second acknowledgement");

    let stored = device_command::Entity::find_by_id(command.id)
        .one(&db)
        .await
        .expect("read")
        .expect("the command");
    assert_eq!(stored.status, "confirmed");
    let delivered = stored.delivered_at.expect("a delivered time");
    assert!(
        (delivered - acknowledged_at).num_milliseconds().abs() <= 1,
        "the first acknowledgement's time: {delivered} against {acknowledged_at}"
    );
    assert!(stored.confirmed_at.is_some());
}
