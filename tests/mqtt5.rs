//! What only MQTT 5 has, against a real Mosquitto: user properties reaching a parser (a device's
//! own clock as the reading's time), a session expiry interval that keeps (or, at 0, drops) the
//! session across a stop, the broker's reason codes in `last_error` and the connection log, and
//! shared subscriptions over several shards. The connection scenarios common to both versions
//! run again on MQTT 5 with `TEST_MQTT_PROTOCOL=5` (see `scripts/test`).

mod common;

use std::time::Duration;

use common::{
    eventually, seed_test_site, set_active, unique_name, wait_for_granted, wait_for_row_status,
    PrivateBroker, Service, ServiceOptions, TestDatabase,
};
use mqtt_supervisor::entity::{mqtt_connection, sensor, sensor_reading};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{json, Value};

fn fast_options() -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        ..Default::default()
    }
}

/// A device speaking MQTT 5 to the broker at `port`.
struct Device {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    async fn connect(port: u16) -> Device {
        let mut options = MqttOptions::new(unique_name("device"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut event_loop) = AsyncClient::new(options, 1000);
        let task = tokio::spawn(async move {
            loop {
                if event_loop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Device { client, task }
    }

    async fn publish(&self, topic: &str, payload: Value, user_properties: &[(&str, &str)]) {
        let properties = PublishProperties {
            user_properties: user_properties
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            ..PublishProperties::default()
        };
        self.client
            .publish_with_properties(
                topic,
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
                properties,
            )
            .await
            .expect("queue the publish");
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A site on `broker` whose connection speaks MQTT 5, with one pattern.
async fn mqtt5_site(
    db: &sea_orm::DatabaseConnection,
    port: u16,
    pattern: &str,
    parser: &str,
) -> (i32, i32) {
    let seeded = seed_test_site(db, port, false, None, &[(pattern, parser)]).await;
    mqtt_connection::ActiveModel {
        id: Set(seeded.connection_id),
        protocol: Set("5".into()),
        is_active: Set(true),
        ..Default::default()
    }
    .update(db)
    .await
    .expect("switch the connection to MQTT 5");
    (seeded.site_id, seeded.connection_id)
}

async fn readings_of(
    db: &sea_orm::DatabaseConnection,
    sensor_name: &str,
) -> Vec<sensor_reading::Model> {
    let Some(sensor) = sensor::Entity::find()
        .filter(sensor::Column::Name.eq(sensor_name))
        .one(db)
        .await
        .expect("read sensors")
    else {
        return Vec::new();
    };
    sensor_reading::Entity::find()
        .filter(sensor_reading::Column::SensorId.eq(sensor.id))
        .all(db)
        .await
        .expect("read readings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_property_gives_the_reading_the_devices_own_time() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options());
    let db = database.connect().await;
    let prefix = unique_name("relays");
    let (_, connection_id) = mqtt5_site(
        &db,
        broker.port,
        &format!("{prefix}/{{gateway}}/relay/{{channel}}"),
        "relay_controller_v1",
    )
    .await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    wait_for_granted(&db, connection_id).await;

    let device = Device::connect(broker.port).await;
    // Buffered while offline: the device's clock says when it happened.
    device
        .publish(
            &format!("{prefix}/ctl-1/relay/7"),
            json!({"state": "on"}),
            &[("ts", "2026-01-02T03:04:05Z")],
        )
        .await;
    // Without the property the payload's own time counts, as on 3.1.1.
    device
        .publish(
            &format!("{prefix}/ctl-1/relay/8"),
            json!({"state": "off", "time": 1767323045}),
            &[("other", "x")],
        )
        .await;
    let relay_7 = eventually(Duration::from_secs(10), "the relay 7 reading", || async {
        readings_of(&db, "relay_7").await.into_iter().next()
    })
    .await;
    assert_eq!(relay_7.ts.to_rfc3339(), "2026-01-02T03:04:05+00:00");
    assert_eq!(relay_7.value, 1.0);
    let relay_8 = eventually(Duration::from_secs(10), "the relay 8 reading", || async {
        readings_of(&db, "relay_8").await.into_iter().next()
    })
    .await;
    assert_eq!(relay_8.ts.timestamp(), 1_767_323_045);

    // A property that is not a time is a parsing error that names it, kept for replay.
    device
        .publish(
            &format!("{prefix}/ctl-1/relay/9"),
            json!({"state": "on"}),
            &[("ts", "yesterday")],
        )
        .await;
    let error = eventually(Duration::from_secs(10), "the parsing-log row", || async {
        use mqtt_supervisor::entity::mqtt_parsing_log;
        mqtt_parsing_log::Entity::find()
            .filter(mqtt_parsing_log::Column::Topic.eq(format!("{prefix}/ctl-1/relay/9")))
            .one(&db)
            .await
            .expect("read the parsing log")
    })
    .await;
    assert!(
        error.error.contains("user property \"ts\""),
        "{}",
        error.error
    );
    assert_eq!(error.payload, br#"{"state":"on"}"#.to_vec());
}

/// Publishes `count` readings while a new MQTT 5 connection is stopped, starts it again and
/// returns how many of them were stored.
async fn stored_after_a_stop(
    db: &sea_orm::DatabaseConnection,
    broker_port: u16,
    session_expiry_secs: Option<i64>,
    count: usize,
) -> usize {
    let prefix = unique_name("away");
    let (_, connection_id) = mqtt5_site(
        db,
        broker_port,
        &format!("{prefix}/{{gateway}}/{{datalogger}}"),
        "flat_telemetry",
    )
    .await;
    mqtt_connection::ActiveModel {
        id: Set(connection_id),
        session_expiry_secs: Set(session_expiry_secs),
        ..Default::default()
    }
    .update(db)
    .await
    .expect("set the session expiry");
    wait_for_row_status(db, connection_id, "connected", Duration::from_secs(10)).await;
    wait_for_granted(db, connection_id).await;
    set_active(db, connection_id, false).await;
    wait_for_row_status(db, connection_id, "stopped", Duration::from_secs(10)).await;

    let device = Device::connect(broker_port).await;
    let sensor_name = unique_name("level");
    for index in 0..count {
        device
            .publish(
                &format!("{prefix}/gw/dl"),
                json!({sensor_name.clone(): index, "ts": 1_767_323_000 + index}),
                &[],
            )
            .await;
    }
    // Give the broker the messages before the session comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_active(db, connection_id, true).await;
    wait_for_row_status(db, connection_id, "connected", Duration::from_secs(10)).await;
    wait_for_granted(db, connection_id).await;
    // What the broker kept arrives right after the CONNACK; allow for the writer's flush.
    tokio::time::sleep(Duration::from_secs(2)).await;
    readings_of(db, &sensor_name).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_expiry_keeps_messages_across_a_stop_and_zero_drops_them() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options());
    let db = database.connect().await;

    // The default: the broker keeps the session (and the messages) as long as it can.
    let kept = stored_after_a_stop(&db, broker.port, None, 20).await;
    assert_eq!(kept, 20, "every message sent while stopped arrives");

    // Zero: the session ends with the connection; what was sent meanwhile is gone.
    let kept = stored_after_a_stop(&db, broker.port, Some(0), 20).await;
    assert_eq!(kept, 0, "no session, no messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_shows_the_brokers_reason_code() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start_with(Some(("operator", "right-password")));
    let service = Service::start_with(&database, fast_options());
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        false,
        Some(("operator", "wrong-password")),
        &[("refused/#", "flat_telemetry")],
    )
    .await;
    mqtt_connection::ActiveModel {
        id: Set(seeded.connection_id),
        protocol: Set("5".into()),
        is_active: Set(true),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("switch on");
    let error = wait_for_row_status(&db, seeded.connection_id, "error", Duration::from_secs(10))
        .await
        .expect("last_error is set");
    assert!(
        error.starts_with("broker refused the connection: ") && error.contains("(reason code 0x8"),
        "{error}"
    );
    let log: Value = service
        .client()
        .get(service.url(&format!(
            "/api/mqtt/connection-logs?site_id={}&limit=20",
            seeded.site_id
        )))
        .send()
        .await
        .expect("connection log")
        .json()
        .await
        .expect("log json");
    assert!(
        log.as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["message"]
                .as_str()
                .is_some_and(|message| message.contains("reason code 0x8")))),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_share_a_subscription_and_store_every_message_once() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options());
    let db = database.connect().await;
    let prefix = unique_name("shared");
    let seeded = seed_test_site(
        &db,
        broker.port,
        false,
        None,
        &[(
            &format!("{prefix}/{{gateway}}/{{datalogger}}"),
            "flat_telemetry",
        )],
    )
    .await;
    mqtt_connection::ActiveModel {
        id: Set(seeded.connection_id),
        protocol: Set("5".into()),
        shards: Set(2),
        is_active: Set(true),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("two shards on MQTT 5");
    wait_for_row_status(
        &db,
        seeded.connection_id,
        "connected",
        Duration::from_secs(10),
    )
    .await;
    wait_for_granted(&db, seeded.connection_id).await;
    // Both shards are subscribed once each has its lease and its answer; give the second one
    // a moment after the first.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let device = Device::connect(broker.port).await;
    let sensor_name = unique_name("flow");
    for index in 0..200 {
        device
            .publish(
                &format!("{prefix}/gw/dl"),
                json!({sensor_name.clone(): index, "ts": 1_767_323_000 + index}),
                &[],
            )
            .await;
    }
    eventually(
        Duration::from_secs(15),
        "200 readings, once each",
        || async { (readings_of(&db, &sensor_name).await.len() == 200).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(readings_of(&db, &sensor_name).await.len(), 200);
}
