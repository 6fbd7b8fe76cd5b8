//! Commands made from a parser's template through a real Mosquitto, with a simulated relay
//! controller that obeys `set_relay` and reports its relay: the command is rendered from its
//! arguments, confirmed by the relay's report, and ends `failed` when no report comes in time;
//! arguments that break the template's schema are refused with the argument named.

mod common;

use std::time::Duration;

use common::{
    eventually, post_command, seed_test_site, unique_name, wait_for_command, wait_for_granted,
    wait_for_row_status, PrivateBroker, Service, ServiceOptions, TestDatabase,
};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

/// How long a command may take to reach a status here (a failure waits for its 2 s window and
/// the supervisor's pass).
const COMMAND_WAIT: Duration = Duration::from_secs(20);

/// The shipped parsers, with the relay's confirmation window cut to 2 s so a silent relay
/// fails quickly.
fn parsers_with_a_short_confirm_window() -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("parsers folder");
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/parsers/relay_controller_v1.json"
    );
    let mut definition: Value =
        serde_json::from_slice(&std::fs::read(shipped).expect("shipped relay parser"))
            .expect("relay parser JSON");
    definition["commands"]["set_relay"]["confirm"]["within_secs"] = json!(2);
    std::fs::write(
        directory.path().join("relay_controller_v1.json"),
        definition.to_string(),
    )
    .expect("write the relay parser");
    directory
}

/// A relay controller: obeys `{"state": ...}` on `relayctl/{gateway}/relay/{channel}/set` by
/// reporting the relay in that state, except on channels listed in `silent`.
async fn relay_controller(
    port: u16,
    silent: &'static [&'static str],
) -> tokio::task::JoinHandle<()> {
    let mut options = MqttOptions::new(unique_name("relay"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut event_loop) = AsyncClient::new(options, 100);
    client
        .subscribe("relayctl/+/relay/+/set", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (subscribed_sender, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_sender = Some(subscribed_sender);
    let task = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(sender) = subscribed_sender.take() {
                        let _ = sender.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Some(relay) = publish.topic.strip_suffix("/set") else {
                        continue;
                    };
                    if silent
                        .iter()
                        .any(|channel| relay.ends_with(&format!("/{channel}")))
                    {
                        continue;
                    }
                    let command: Value =
                        serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                    let report = json!({"state": command["state"]}).to_string();
                    let _ = client.try_publish(relay, QoS::AtLeastOnce, false, report);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .expect("the relay subscribed")
        .expect("subscription answer");
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_switched_by_template_is_confirmed_by_its_report_or_fails_when_silent() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let parsers = parsers_with_a_short_confirm_window();
    let service = Service::start_with(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            extra_env: vec![(
                "SUPERVISOR_PARSERS_DIR".into(),
                parsers.path().display().to_string(),
            )],
            ..Default::default()
        },
    );
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        true,
        None,
        &[("relayctl/{gateway}/relay/{channel}", "relay_controller_v1")],
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
    let site_id = i64::from(seeded.site_id);
    let _relay = relay_controller(broker.port, &["4"]).await;

    // The parser lists its template with the schema of its arguments and its switch.
    let parsers_list: Value = service
        .client()
        .get(service.url("/api/parsers"))
        .send()
        .await
        .expect("parsers")
        .json()
        .await
        .expect("parsers JSON");
    let relay_parser = parsers_list
        .as_array()
        .and_then(|parsers| parsers.iter().find(|p| p["name"] == "relay_controller_v1"))
        .expect("the relay parser is listed");
    assert_eq!(relay_parser["commands"][0]["name"], "set_relay");
    assert_eq!(
        relay_parser["commands"][0]["switch"]["sensor"],
        "relay_{channel}"
    );
    assert!(relay_parser["commands"][0]["args"]["required"].is_array());

    let (status, created) = post_command(
        &service,
        site_id,
        json!({"template": "set_relay", "args": {"gateway": "ctl-9", "channel": "3", "state": "on"}}), None)
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["template"], "set_relay");
    assert_eq!(created["topic"], "relayctl/ctl-9/relay/3/set");
    assert_eq!(created["payload"], r#"{"state":"on"}"#);
    assert_eq!(created["qos"], 1);
    assert_eq!(created["confirm"]["topic"], "relayctl/ctl-9/relay/3");
    assert_eq!(created["confirm"]["fields"]["/state"], "on");
    let id = created["id"].as_i64().expect("id");
    let confirmed = wait_for_command(&service, id, "confirmed", COMMAND_WAIT).await;
    assert!(confirmed["delivered_at"].is_string(), "{confirmed}");
    assert!(confirmed["confirmed_at"].is_string(), "{confirmed}");
    assert_eq!(confirmed["error"], Value::Null);
    // The report that confirmed it is stored like any other message: relay_3 is on.
    eventually(Duration::from_secs(10), "relay_3 stored as on", || async {
        let devices: Value = service
            .client()
            .get(service.url(&format!("/api/sites/{site_id}/devices")))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        devices.to_string().contains("relay_3").then_some(())
    })
    .await;

    // A relay that never reports: delivered by the broker, then failed when the window closes.
    let (status, silent) = post_command(
        &service,
        site_id,
        json!({"template": "set_relay", "args": {"gateway": "ctl-9", "channel": 4, "state": "off"}}), None)
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{silent}");
    let failed = wait_for_command(
        &service,
        silent["id"].as_i64().expect("id"),
        "failed",
        COMMAND_WAIT,
    )
    .await;
    assert!(failed["delivered_at"].is_string(), "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not confirm within 2 s"), "{error}");
    assert!(error.contains("relayctl/ctl-9/relay/4"), "{error}");
    let log: Value = service
        .client()
        .get(service.url(&format!("/api/mqtt/connection-logs?site_id={site_id}")))
        .send()
        .await
        .expect("connection log")
        .json()
        .await
        .expect("connection log JSON");
    assert!(
        log.as_array().is_some_and(
            |rows| rows.iter().any(|row| row["event"] == "command_failed"
                && row["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("did not confirm"))
        ),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_arguments_are_checked_against_its_schema_and_nothing_is_sent() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start();
    let service = Service::start(&database);
    let db = database.connect().await;
    let seeded = seed_test_site(&db, broker.port, false, None, &[]).await;
    let site_id = i64::from(seeded.site_id);
    for (body, field) in [
        (
            json!({"template": "no_such_command", "args": {}}),
            "template",
        ),
        (
            json!({"template": "set_relay", "args": {"gateway": "g", "channel": "1", "state": "dim"}}),
            "args/state",
        ),
        (
            json!({"template": "set_relay", "args": {"gateway": "g", "state": "on"}}),
            "args/channel",
        ),
        (
            json!({"template": "set_relay", "args": {"gateway": "a/b", "channel": "1", "state": "on"}}),
            "args/gateway",
        ),
        (
            json!({"template": "set_relay", "args": {"gateway": "g", "channel": "1", "state": "on", "colour": 1}}),
            "args",
        ),
        (json!({"template": "set_relay", "args": [1]}), "args"),
        (
            json!({"template": "set_relay", "topic": "a", "args": {"gateway": "g", "channel": "1", "state": "on"}}),
            "topic",
        ),
        (
            json!({"template": "set_relay", "qos": 2, "args": {"gateway": "g", "channel": "1", "state": "on"}}),
            "qos",
        ),
        (json!({"topic": "a", "payload": 1, "args": {}}), "args"),
    ] {
        let (status, error) = post_command(&service, site_id, body.clone(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (_, error) = post_command(
        &service,
        site_id,
        json!({"template": "no_such_command", "args": {}}),
        None,
    )
    .await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("set_relay"),
        "the known templates are listed: {message}"
    );
    let list: Value = service
        .client()
        .get(service.url(&format!("/api/sites/{site_id}/commands")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    assert_eq!(list, json!([]));
}
