//! `POST /api/mqtt/connections/test` against real Mosquitto brokers: a broker that answers, one
//! that is not there, one that refuses the password (and the stored password used when the
//! form leaves it out), on both protocol versions, without disturbing the live session of the
//! same connection.

mod common;

use std::time::Duration;

use common::{
    free_port, seed_test_site, wait_for_granted, wait_for_row_status, PrivateBroker, Service,
    ServiceOptions, TestDatabase,
};
use serde_json::{json, Value};

async fn try_connection(service: &Service, body: Value) -> (u16, Value) {
    let response = service
        .client()
        .post(service.url("/api/mqtt/connections/test"))
        .json(&body)
        .send()
        .await
        .expect("test the connection");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_reports_the_brokers_answer_without_saving_or_disturbing_anything() {
    let database = TestDatabase::new().await;
    let open = PrivateBroker::start();
    let guarded = PrivateBroker::start_with(Some(("operator", "right-password")));
    let service = Service::start_with(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            ..Default::default()
        },
    );

    for protocol in ["3.1.1", "5"] {
        let (status, answer) = try_connection(
            &service,
            json!({"host": "127.0.0.1", "port": open.port, "protocol": protocol}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["error"], Value::Null);
        assert!(answer["latency_ms"].as_u64().is_some_and(|ms| ms < 5000));
        assert_eq!(
            answer["server"],
            format!("127.0.0.1:{} (MQTT {protocol}, plain TCP)", open.port)
        );

        // Nobody listens on this port.
        let (_, answer) = try_connection(
            &service,
            json!({"host": "127.0.0.1", "port": free_port(), "protocol": protocol}),
        )
        .await;
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(answer["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()));

        let (_, answer) = try_connection(
            &service,
            json!({"host": "127.0.0.1", "port": guarded.port, "protocol": protocol,
                   "username": "operator", "password": "wrong-password"}),
        )
        .await;
        assert_eq!(answer["ok"], false, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("broker refused the connection"),
            "{error}"
        );
        if protocol == "5" {
            assert!(error.contains("(reason code 0x8"), "{error}");
        }
    }

    // A stored connection: the form leaves the password out, the stored one is used, and the
    // live session under the same client id stays connected.
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        guarded.port,
        true,
        Some(("operator", "right-password")),
        &[("probe/#", "flat_telemetry")],
    )
    .await;
    wait_for_row_status(
        &db,
        seeded.connection_id,
        "connected",
        Duration::from_secs(10),
    )
    .await;
    wait_for_granted(&db, seeded.connection_id).await;
    let connection: Value = service
        .client()
        .get(service.url(&format!("/api/mqtt/connection/{}/", seeded.site_id)))
        .send()
        .await
        .expect("connection")
        .json()
        .await
        .expect("connection json");
    let (_, answer) = try_connection(
        &service,
        json!({"site_id": seeded.site_id, "host": "127.0.0.1", "port": guarded.port,
               "username": "operator", "client_id": connection["client_id"]}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Value = service
        .client()
        .get(service.url(&format!("/api/mqtt/connection/{}/", seeded.site_id)))
        .send()
        .await
        .expect("connection")
        .json()
        .await
        .expect("connection json");
    assert_eq!(after["status"], "connected", "{after}");
    assert_eq!(after["reconnect_attempts"], 0, "{after}");
    assert_eq!(
        after["connected_at"], connection["connected_at"],
        "no reconnect"
    );

    // Bad input is a 422 naming the field; nothing was saved anywhere.
    let (status, error) =
        try_connection(&service, json!({"host": "127.0.0.1", "port": 70_000})).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "port");
    let (status, error) = try_connection(
        &service,
        json!({"host": "127.0.0.1", "port": 1883, "protocol": "4"}),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "protocol");
    let connections: Value = service
        .client()
        .get(service.url("/api/mqtt/connections"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    assert_eq!(
        connections.as_array().map(Vec::len),
        Some(1),
        "{connections}"
    );
}
