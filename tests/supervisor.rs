//! The connection supervisor against real Mosquitto brokers: start and stop from the database
//! flag, restart on new settings, broker loss and return, refused logins, backoff, many
//! connections at once, and a clean shutdown.

mod common;

use std::time::Duration;

use common::{
    config_args, insert_site, insert_topic, publisher_on, row_status, set_active,
    wait_for_row_status, PrivateBroker, Service, ServiceOptions, TestDatabase,
};
use mqtt_supervisor::entity::{mqtt_connection, mqtt_connection_log, sensor_reading};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

/// Reconcile every second so edits made straight in the database show quickly.
fn fast_options(directory: &std::path::Path) -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        args: config_args(
            directory,
            "[supervisor]\nbackoff_initial_ms = 200\nbackoff_max_secs = 3\n",
        ),
        ..Default::default()
    }
}

async fn events_of(db: &sea_orm::DatabaseConnection, site_id: i32, event: &str) -> u64 {
    mqtt_connection_log::Entity::find()
        .filter(mqtt_connection_log::Column::SiteId.eq(site_id))
        .filter(mqtt_connection_log::Column::Event.eq(event))
        .count(db)
        .await
        .expect("count log rows")
}

#[tokio::test]
async fn the_database_flag_starts_and_stops_a_connection() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let (site_id, connection_id) = insert_site(&db, broker.port, true, None).await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    set_active(&db, connection_id, false).await;
    wait_for_row_status(&db, connection_id, "stopped", Duration::from_secs(10)).await;
    common::eventually(Duration::from_secs(10), "the stopped row", || async {
        (events_of(&db, site_id, "stopped").await >= 1).then_some(())
    })
    .await;
    assert_eq!(events_of(&db, site_id, "connected").await, 1);
    assert_eq!(events_of(&db, site_id, "stopped").await, 1);
    set_active(&db, connection_id, true).await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    // The log row is written just after the status: wait for it, then make sure it is the only
    // new one.
    common::eventually(
        Duration::from_secs(10),
        "the second connected row",
        || async { (events_of(&db, site_id, "connected").await >= 2).then_some(()) },
    )
    .await;
    assert_eq!(events_of(&db, site_id, "connected").await, 2);
}

#[tokio::test]
async fn changed_settings_restart_the_client() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let (site_id, connection_id) = insert_site(&db, broker.port, true, None).await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    mqtt_connection::Entity::update_many()
        .col_expr(
            mqtt_connection::Column::ClientId,
            Expr::value(common::unique_name("renamed")),
        )
        .filter(mqtt_connection::Column::Id.eq(connection_id))
        .exec(&db)
        .await
        .expect("change client id");
    common::eventually(Duration::from_secs(10), "a second connect", || async {
        (events_of(&db, site_id, "connected").await == 2).then_some(())
    })
    .await;
    assert_eq!(
        events_of(&db, site_id, "stopped").await,
        1,
        "the old client stopped once"
    );
    assert_eq!(row_status(&db, connection_id).await.0, "connected");
}

#[tokio::test]
async fn a_lost_broker_means_reconnecting_then_connected_and_ingestion_resumes() {
    let database = TestDatabase::new().await;
    let mut broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let (site_id, connection_id) = insert_site(&db, broker.port, true, None).await;
    insert_topic(
        &db,
        site_id,
        "plant/{gateway}/{datalogger}",
        "flat_telemetry",
    )
    .await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    // The broker granted the subscription: what is published now arrives.
    common::wait_for_granted(&db, connection_id).await;

    let publisher = publisher_on(broker.port).await;
    publisher
        .publish(
            "plant/gw/dl",
            r#"{"ts": "2026-01-01T00:00:00Z", "level": 1.0}"#,
        )
        .await;
    common::eventually(Duration::from_secs(10), "first reading", || async {
        (sensor_reading::Entity::find().count(&db).await.unwrap_or(0) == 1).then_some(())
    })
    .await;
    drop(publisher);

    broker.kill();
    let error =
        wait_for_row_status(&db, connection_id, "reconnecting", Duration::from_secs(10)).await;
    assert!(error.is_some(), "reconnecting carries last_error");
    broker.resume();
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(15)).await;

    // The restarted broker has forgotten every session: the service subscribes again right
    // after it reconnects, and a message published before that reaches no subscriber (MQTT's
    // rule, not a loss by the service). So fresh readings are published until one is stored.
    let publisher = publisher_on(broker.port).await;
    let mut attempt = 0u32;
    common::eventually(
        Duration::from_secs(10),
        "a reading after the broker returned",
        || {
            attempt += 1;
            let publish = (attempt % 5 == 1).then(|| {
                format!(
                    r#"{{"ts": "2026-01-01T00:00:{:02}Z", "level": 2.0}}"#,
                    (attempt / 5 + 1).min(59)
                )
            });
            let (publisher, db) = (&publisher, &db);
            async move {
                if let Some(payload) = publish {
                    publisher.publish("plant/gw/dl", payload).await;
                }
                (sensor_reading::Entity::find().count(db).await.unwrap_or(0) >= 2).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_refused_login_is_an_error_with_the_reason() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start_with(Some(("operator", "right-password")));
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let (_, wrong) =
        insert_site(&db, broker.port, true, Some(("operator", "wrong-password"))).await;
    let (_, right) =
        insert_site(&db, broker.port, true, Some(("operator", "right-password"))).await;
    let error = wait_for_row_status(&db, wrong, "error", Duration::from_secs(10))
        .await
        .expect("last_error is set");
    assert!(
        error.contains("bad user name or password") || error.contains("not authorised"),
        "{error}"
    );
    wait_for_row_status(&db, right, "connected", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_unreachable_broker_backs_off_longer_each_time() {
    let database = TestDatabase::new().await;
    let service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    // Nothing listens on this port.
    let (site_id, connection_id) = insert_site(&db, common::free_port(), true, None).await;
    wait_for_row_status(&db, connection_id, "reconnecting", Duration::from_secs(10)).await;
    // Follow the delays the client chooses: they grow until the 3 s cap of this test's config.
    let mut delays = Vec::new();
    let mut last_attempt = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while delays.len() < 4 && std::time::Instant::now() < deadline {
        let connection: serde_json::Value = service
            .client()
            .get(service.url(&format!("/api/mqtt/connection/{site_id}/")))
            .send()
            .await
            .expect("get connection")
            .json()
            .await
            .expect("json");
        let attempt = connection["reconnect_attempts"].as_u64().unwrap_or(0);
        if attempt > last_attempt {
            if let Some(delay) = connection["retry_in_ms"].as_u64() {
                delays.push((attempt, delay));
            }
            last_attempt = attempt;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delays.len() >= 3, "saw too few attempts: {delays:?}");
    // With jitter the delay lies in [base/2, base]; base doubles from 200 ms.
    for (attempt, delay) in &delays {
        let base = (200u64 << (attempt - 1).min(10)).min(3000);
        assert!(
            *delay >= base / 2 && *delay <= base,
            "attempt {attempt}: delay {delay} ms outside [{}, {base}]",
            base / 2
        );
    }
    let repeated_rows = events_of(&db, site_id, "reconnecting").await;
    assert_eq!(
        repeated_rows, 1,
        "identical failures are collapsed into one log row"
    );
}

#[tokio::test]
async fn two_hundred_connections_start_and_stop_together() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let mut connection_ids = Vec::new();
    for _ in 0..200 {
        let (_, connection_id) = insert_site(&db, broker.port, false, None).await;
        connection_ids.push(connection_id);
    }
    switch_all_and_wait(&db, true, "connected", 200).await;
    switch_all_and_wait(&db, false, "stopped", 200).await;
}

/// Sets every connection's flag in one statement and waits for `count` rows in `status`.
async fn switch_all_and_wait(
    db: &sea_orm::DatabaseConnection,
    active: bool,
    status: &str,
    count: u64,
) {
    mqtt_connection::Entity::update_many()
        .col_expr(mqtt_connection::Column::IsActive, Expr::value(active))
        .exec(db)
        .await
        .expect("switch all connections");
    common::eventually(
        Duration::from_secs(30),
        &format!("{count} {status}"),
        || async {
            let reached = mqtt_connection::Entity::find()
                .filter(mqtt_connection::Column::Status.eq(status))
                .count(db)
                .await
                .unwrap_or(0);
            (reached == count).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn shutdown_stops_every_client_and_exits() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let mut service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let mut connection_ids = Vec::new();
    for _ in 0..5 {
        connection_ids.push(insert_site(&db, broker.port, true, None).await.1);
    }
    for connection_id in &connection_ids {
        wait_for_row_status(&db, *connection_id, "connected", Duration::from_secs(10)).await;
    }
    let started = std::time::Instant::now();
    let status = service.terminate();
    assert!(status.success(), "{}", service.output());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    for connection_id in &connection_ids {
        assert_eq!(row_status(&db, *connection_id).await.0, "stopped");
    }
}

#[tokio::test]
async fn a_patch_shows_connected_on_the_websocket_within_two_seconds() {
    use futures_util::{SinkExt, StreamExt};
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    // The periodic pass is 30 s: only the wake-up can make it in time.
    let service = Service::start(&database);
    let db = database.connect().await;
    let (site_id, connection_id) = insert_site(&db, broker.port, false, None).await;
    let token = service.token.clone().unwrap_or_default();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(service.ws_url(&format!("/ws?token={token}")))
            .await
            .expect("websocket");
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            serde_json::json!({"subscribe": {"site_id": site_id}})
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");

    let started = std::time::Instant::now();
    let response = service
        .client()
        .patch(service.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&serde_json::json!({"is_active": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 202);
    let connected = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.into_text() else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if event["type"] == "connection_status"
                && event["site_id"] == site_id
                && event["status"] == "connected"
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(connected, Ok(true), "no connected event within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(row_status(&db, connection_id).await.0, "connected");

    let response = service
        .client()
        .patch(service.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&serde_json::json!({"is_active": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 202);
    wait_for_row_status(&db, connection_id, "stopped", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn tls_with_a_ca_file_connects_and_an_untrusted_certificate_is_refused() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start_tls();
    let _service = Service::start_with(&database, fast_options(database.directory.path()));
    let db = database.connect().await;
    let (_, trusted) = insert_site(&db, broker.port, false, None).await;
    let (_, untrusted) = insert_site(&db, broker.port, false, None).await;
    let ca_file = broker.ca_file().display().to_string();
    for (connection_id, ca) in [(trusted, Some(ca_file)), (untrusted, None)] {
        mqtt_connection::Entity::update_many()
            .col_expr(mqtt_connection::Column::Host, Expr::value("localhost"))
            .col_expr(mqtt_connection::Column::UseTls, Expr::value(true))
            .col_expr(mqtt_connection::Column::CaFile, Expr::value(ca))
            .col_expr(mqtt_connection::Column::IsActive, Expr::value(true))
            .filter(mqtt_connection::Column::Id.eq(connection_id))
            .exec(&db)
            .await
            .expect("enable tls");
    }
    wait_for_row_status(&db, trusted, "connected", Duration::from_secs(15)).await;
    // System roots do not know the test CA: the handshake fails and the client keeps retrying.
    let error = common::eventually(
        Duration::from_secs(15),
        "the untrusted connection to fail",
        || async {
            let (status, error) = row_status(&db, untrusted).await;
            (status == "reconnecting" || status == "error").then_some(error)
        },
    )
    .await
    .unwrap_or_default();
    assert!(!error.is_empty(), "the failure carries the TLS error");
    assert_ne!(row_status(&db, untrusted).await.0, "connected");
}
