//! Mutual TLS against a Mosquitto that requires client certificates from a CA made by the test
//! (RSA and EC keys, clear errors for missing, unreadable or mismatched files), and the last
//! will a killed service leaves with its broker.

mod common;

use std::time::Duration;

use common::{eventually, PrivateBroker, Service, ServiceOptions, TestDatabase};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

async fn create_site(service: &Service, slug: &str) -> i64 {
    let site: Value = service
        .client()
        .post(service.url("/api/sites"))
        .json(&json!({"name": slug, "slug": slug}))
        .send()
        .await
        .expect("create site")
        .json()
        .await
        .expect("site");
    site["id"].as_i64().expect("site id")
}

async fn create_connection(service: &Service, body: Value) -> (u16, Value) {
    let response = service
        .client()
        .post(service.url("/api/mqtt/connections"))
        .json(&body)
        .send()
        .await
        .expect("create connection");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_with_rsa_and_ec_keys_connect_and_bad_ones_are_named() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start_mutual_tls();
    let service = Service::start_with(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            ..Default::default()
        },
    );
    let file = |name: &str| broker.directory().join(name).display().to_string();
    let base = |site_id: i64| {
        json!({"site_id": site_id, "host": "localhost", "port": broker.port, "use_tls": true,
               "ca_file": file("ca.crt"), "is_active": true, "keepalive_secs": 10})
    };

    for key in ["rsa", "ec"] {
        let site_id = create_site(
            &service,
            &common::unique_name(&format!("mtls-{key}")).replace('_', "-"),
        )
        .await;
        let mut body = base(site_id);
        body["client_cert_file"] = json!(file(&format!("client-{key}.crt")));
        body["client_key_file"] = json!(file(&format!("client-{key}.key")));
        let (status, connection) = create_connection(&service, body).await;
        assert_eq!(status, 201, "{connection}");
        assert_eq!(
            connection["client_cert_file"],
            file(&format!("client-{key}.crt"))
        );
        common::wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;
    }

    // Without a certificate the broker refuses the handshake; the connection says so.
    let site_id = create_site(
        &service,
        &common::unique_name("mtls-none").replace('_', "-"),
    )
    .await;
    let (status, _) = create_connection(&service, base(site_id)).await;
    assert_eq!(status, 201);
    let (status, error) = eventually(Duration::from_secs(20), "the refused handshake", || async {
        let connection = common::connection(&service, site_id).await;
        let status = connection["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let error = connection["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (status == "reconnecting" || status == "error").then_some((status, error))
    })
    .await;
    assert!(!error.is_empty(), "{status} without a reason");

    // Bad input: a certificate without its key, an unreadable file, a key of another pair.
    let site_id = create_site(&service, &common::unique_name("mtls-bad").replace('_', "-")).await;
    for (changes, field, message) in [
        (
            json!({"client_cert_file": file("client-rsa.crt")}),
            "client_key_file",
            "needs its key",
        ),
        (
            json!({"client_cert_file": "/nonexistent/client.crt", "client_key_file": file("client-rsa.key")}),
            "client_cert_file",
            "/nonexistent/client.crt",
        ),
        (
            json!({"client_cert_file": file("client-rsa.crt"), "client_key_file": file("client-ec.key")}),
            "client_key_file",
            "does not belong",
        ),
        (
            json!({"last_will": {"topic": "wills/#", "payload": "gone"}}),
            "last_will.topic",
            "wildcards",
        ),
        (
            json!({"last_will": {"topic": "wills/a", "payload": "gone", "qos": 3}}),
            "last_will.qos",
            "0, 1 or 2",
        ),
    ] {
        let mut body = base(site_id);
        for (key, value) in changes.as_object().expect("object") {
            body[key] = value.clone();
        }
        let (status, error) = create_connection(&service, body).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{error}"
        );
    }
}

async fn will_listener(port: u16, topic: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let mut options = MqttOptions::new(common::unique_name("will-listener"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = AsyncClient::new(options, 10);
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let _ = sender.send(String::from_utf8_lossy(&publish.payload).to_string());
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sender.send(String::new());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_leaves_its_last_will_and_a_stopped_one_does_not() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let mut wills = will_listener(broker.port, "wills/#").await;
    assert_eq!(
        wills.recv().await.as_deref(),
        Some(""),
        "the listener subscribed"
    );
    let options = || ServiceOptions {
        reconcile_secs: 1,
        ..Default::default()
    };
    let mut service = Service::start_with(&database, options());
    let site_id = create_site(&service, "will-site").await;
    let (status, connection) = create_connection(
        &service,
        json!({"site_id": site_id, "host": "127.0.0.1", "port": broker.port, "is_active": true,
               "keepalive_secs": 5,
               "last_will": {"topic": "wills/supervisor", "payload": "supervisor gone", "qos": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{connection}");
    assert_eq!(connection["last_will"]["topic"], "wills/supervisor");
    common::wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;

    // A graceful stop says goodbye: no will.
    service.terminate();
    let mut service = Service::start_with(&database, options());
    common::wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;
    assert!(
        wills.try_recv().is_err(),
        "a graceful stop must not publish the will"
    );

    // A kill leaves the session to die: the broker publishes the will.
    service.kill();
    let will = tokio::time::timeout(Duration::from_secs(20), wills.recv())
        .await
        .expect("the will within the keep-alive")
        .expect("listener alive");
    assert_eq!(will, "supervisor gone");
}
