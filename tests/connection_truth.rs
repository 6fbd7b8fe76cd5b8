//! A connection that says "connected" must be receiving: subscriptions as the broker answered
//! them (a real Mosquitto with its dynamic-security plugin refusing one filter), silence, a
//! session the broker lost, a discovery filter, readiness while the database is away, Sentry for
//! a broker that stays away, and the online/offline history of devices.

mod common;

use std::time::{Duration, Instant};

use common::{
    config_args, eventually, ingesting_site, publisher_logged_in, publisher_on, seed_test_site,
    unique_name, PrivateBroker, Service, ServiceOptions, TcpProxy, TestDatabase,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn patch_connection(service: &Service, site_id: i32, body: Value) -> Value {
    let response = service
        .client()
        .patch(service.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&body)
        .send()
        .await
        .expect("patch connection");
    assert_eq!(response.status(), 202, "PATCH {body}");
    response.json().await.expect("patched json")
}

async fn connection_log(service: &Service, site_id: i32) -> Vec<Value> {
    service
        .client()
        .get(service.url(&format!(
            "/api/mqtt/connection-logs?site_id={site_id}&limit=1000"
        )))
        .send()
        .await
        .expect("connection log")
        .json()
        .await
        .expect("log json")
}

async fn has_log_row(service: &Service, site_id: i32, event: &str, containing: &str) -> bool {
    connection_log(service, site_id).await.iter().any(|row| {
        row["event"] == event && row["message"].as_str().unwrap_or("").contains(containing)
    })
}

fn subscription_state(connection: &Value, filter: &str) -> Option<String> {
    connection["subscriptions"]
        .as_array()?
        .iter()
        .find(|subscription| subscription["filter"] == filter)
        .and_then(|subscription| subscription["state"].as_str().map(str::to_string))
}

/// Sentry events (not their breadcrumbs, which repeat earlier log lines) that mention `text`.
fn count_containing(envelopes: &std::sync::Mutex<Vec<String>>, text: &str) -> usize {
    let mentions = |body: &String| {
        body.lines()
            .any(|line| match serde_json::from_str::<Value>(line) {
                Ok(mut item) => {
                    if let Some(object) = item.as_object_mut() {
                        object.remove("breadcrumbs");
                    }
                    item.to_string().contains(text)
                }
                Err(_) => line.contains(text),
            })
    };
    envelopes
        .lock()
        .map(|bodies| bodies.iter().filter(|body| mentions(body)).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_shows_in_the_api_the_log_the_socket_and_sentry_while_others_work() {
    let database = TestDatabase::new().await;
    let (sink_port, envelopes) = common::envelope_sink().await;
    let mut broker = PrivateBroker::start_refusing("secret/#", "supervisor", "broker-password");
    let mut options = ServiceOptions {
        reconcile_secs: 1,
        ..Default::default()
    };
    options.extra_env.push((
        "SENTRY_DSN".into(),
        format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{sink_port}/42"),
    ));
    let service = Service::start_with(&database, options);
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        false,
        Some(("supervisor", "broker-password")),
        &[
            ("plant/{gateway}/{datalogger}", "flat_telemetry"),
            ("secret/{gateway}/{datalogger}", "flat_telemetry"),
        ],
    )
    .await;
    let site_id = seeded.site_id;

    // A browser watching the site before the connection starts.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(service.ws_url("/ws?token=test-admin-token-0123456789"))
            .await
            .expect("websocket");
    socket
        .send(Message::text(
            json!({"subscribe": {"site_id": site_id}}).to_string(),
        ))
        .await
        .expect("subscribe");
    patch_connection(&service, site_id, json!({"is_active": true})).await;

    eventually(
        Duration::from_secs(15),
        "one filter granted, one refused",
        || async {
            let connection = common::connection(&service, site_id.into()).await;
            (subscription_state(&connection, "plant/+/+").as_deref() == Some("granted")
                && subscription_state(&connection, "secret/+/+").as_deref() == Some("refused"))
            .then_some(())
        },
    )
    .await;
    let refused_on_socket = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let event: Value = serde_json::from_str(text.as_str()).expect("event json");
            if event["type"] == "connection_status"
                && event["refused_subscriptions"]
                    .as_array()
                    .is_some_and(|refused| refused.iter().any(|filter| filter == "secret/+/+"))
            {
                return event;
            }
        }
        panic!("the socket closed");
    })
    .await
    .expect("a connection_status event with the refused filter");
    assert_eq!(refused_on_socket["site_id"], site_id);
    assert!(has_log_row(&service, site_id, "subscription_refused", "secret/+/+").await);

    // The granted filter delivers.
    let publisher = publisher_logged_in(
        "127.0.0.1",
        broker.port,
        Some(("supervisor", "broker-password")),
    )
    .await;
    publisher
        .publish("plant/gw-1/dl-1", r#"{"level": 4.5}"#)
        .await;
    eventually(
        Duration::from_secs(15),
        "the granted filter's reading",
        || async {
            let devices: Value = service
                .client()
                .get(service.url(&format!("/api/sites/{site_id}/devices")))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (devices[0]["dataloggers"][0]["sensors"][0]["last_value"] == 4.5).then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(15), "the refusal in Sentry", || async {
        (count_containing(&envelopes, "subscription_refused") >= 1).then_some(())
    })
    .await;

    // The same refusal on a new session is logged again, but Sentry heard of it already.
    drop(publisher);
    broker.kill();
    broker.resume();
    eventually(
        Duration::from_secs(20),
        "the second refusal logged",
        || async {
            let rows = connection_log(&service, site_id).await;
            let refusals = rows
                .iter()
                .filter(|row| row["event"] == "subscription_refused")
                .count();
            (refusals >= 2).then_some(())
        },
    )
    .await;
    // A later Sentry event (a parsing error) as a fence: events leave in order.
    let publisher = publisher_logged_in(
        "127.0.0.1",
        broker.port,
        Some(("supervisor", "broker-password")),
    )
    .await;
    common::wait_for_granted_via_api_filter(&service, site_id as i64, "plant/+/+").await;
    publisher.publish("plant/gw-1/dl-1", "not json").await;
    eventually(
        Duration::from_secs(15),
        "the parsing error in Sentry",
        || async { (count_containing(&envelopes, "parsing failed") >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        count_containing(&envelopes, "subscription_refused"),
        1,
        "one Sentry event per refused filter and episode"
    );
    for body in envelopes.lock().expect("envelopes").iter() {
        assert!(
            !body.contains("broker-password"),
            "a password reached Sentry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_noticed_within_a_second_of_the_limit_and_ended_by_the_next_message() {
    let database = TestDatabase::new().await;
    let site = ingesting_site(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            ..Default::default()
        },
        &[("quiet/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let service = &site.service;
    let site_id = site.site_id;
    let patched = patch_connection(service, site_id, json!({"max_silence_secs": 2})).await;
    assert_eq!(patched["max_silence_secs"], 2);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(service.ws_url("/ws?token=test-admin-token-0123456789"))
            .await
            .expect("websocket");
    socket
        .send(Message::text(
            json!({"subscribe": {"site_id": site_id}}).to_string(),
        ))
        .await
        .expect("subscribe");
    // Let the limit reach the session, then measure from a message.
    eventually(Duration::from_secs(10), "the limit in force", || async {
        (common::connection(service, site_id.into()).await["max_silence_secs"] == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    site.publisher.publish("quiet/gw/dl", r#"{"v": 1}"#).await;
    let last_message = Instant::now();
    eventually(Duration::from_secs(10), "the message seen", || async {
        (!common::connection(service, site_id.into()).await["last_message_at"].is_null())
            .then_some(())
    })
    .await;
    let silent_event = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let event: Value = serde_json::from_str(text.as_str()).expect("event json");
            if event["type"] == "connection_silent" {
                return event;
            }
        }
        panic!("the socket closed");
    })
    .await
    .expect("a connection_silent event");
    let noticed_after = last_message.elapsed();
    assert!(
        noticed_after >= Duration::from_secs(2) && noticed_after <= Duration::from_secs(3),
        "silence noticed {noticed_after:?} after the last message (limit 2 s)"
    );
    assert_eq!(silent_event["site_id"], site_id);
    assert!(silent_event["silent_secs"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(
        common::connection(service, site_id.into()).await["silent"],
        true
    );
    assert!(has_log_row(service, site_id, "silent", "no message for").await);
    // Subscribed again once for the episode, and granted again.
    common::wait_for_granted(&site.db, site.connection_id).await;

    site.publisher.publish("quiet/gw/dl", r#"{"v": 2}"#).await;
    eventually(Duration::from_secs(10), "the silence to end", || async {
        (common::connection(service, site_id.into()).await["silent"] == false).then_some(())
    })
    .await;
    // The row is written beside the flag, not before it.
    eventually(Duration::from_secs(5), "the receiving log row", || async {
        has_log_row(service, site_id, "receiving", "after")
            .await
            .then_some(())
    })
    .await;
    assert_eq!(
        common::metric(
            service,
            "mqtt_supervisor_connection_silent",
            &[("site", &site_id.to_string())]
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_broker_forgot_is_noticed_and_ingest_goes_on() {
    let database = TestDatabase::new().await;
    let mut broker = PrivateBroker::start_forgetful();
    let service = Service::start_with(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            args: config_args(
                database.directory.path(),
                "[supervisor]\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\n",
            ),
            ..Default::default()
        },
    );
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        true,
        None,
        &[("forget/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    common::wait_for_granted(&db, seeded.connection_id).await;
    // `publish` only queues: the publisher lives until its message is stored.
    let first_publisher = publisher_on(broker.port).await;
    first_publisher
        .publish("forget/gw/dl", r#"{"ts": "2026-01-01T00:00:00Z", "v": 1}"#)
        .await;
    let readings = || async {
        use mqtt_supervisor::entity::sensor_reading;
        use sea_orm::{EntityTrait, PaginatorTrait};
        sensor_reading::Entity::find().count(&db).await.unwrap_or(0)
    };
    eventually(Duration::from_secs(15), "the first reading", || async {
        (readings().await == 1).then_some(())
    })
    .await;
    drop(first_publisher);

    // Restarted without persistence: the broker has no session for the client any more.
    broker.kill();
    broker.resume();
    eventually(
        Duration::from_secs(20),
        "the lost session in the log",
        || async {
            has_log_row(&service, seeded.site_id, "session_lost", "kept no session")
                .await
                .then_some(())
        },
    )
    .await;
    common::wait_for_granted(&db, seeded.connection_id).await;
    let publisher = publisher_on(broker.port).await;
    publisher
        .publish("forget/gw/dl", r#"{"ts": "2026-01-01T00:01:00Z", "v": 2}"#)
        .await;
    eventually(
        Duration::from_secs(15),
        "ingest after the lost session",
        || async { (readings().await == 2).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_filter_finds_topics_no_pattern_matches() {
    let database = TestDatabase::new().await;
    let site = ingesting_site(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            ..Default::default()
        },
        &[("plant-a/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let service = &site.service;
    let bad = service
        .client()
        .patch(service.url(&format!("/api/mqtt/connection/{}/", site.site_id)))
        .json(&json!({"discovery_filter": "plant-b/#/x"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(bad.status(), 422);
    let error: Value = bad.json().await.expect("error json");
    assert_eq!(error["error"]["field"], "discovery_filter");

    patch_connection(
        service,
        site.site_id,
        json!({"discovery_filter": "plant-b/#"}),
    )
    .await;
    common::wait_for_granted_via_api_filter(service, site.site_id as i64, "plant-b/#").await;
    site.publisher
        .publish("plant-b/north/pump-7", r#"{"rpm": 1400}"#)
        .await;
    site.publisher
        .publish("plant-a/gw/dl", r#"{"level": 3}"#)
        .await;
    let discovered = eventually(
        Duration::from_secs(15),
        "both topics discovered",
        || async {
            let topics: Vec<Value> = service
                .client()
                .get(service.url(&format!(
                    "/api/mqtt/discovered-topics?site_id={}",
                    site.site_id
                )))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (topics.len() == 2).then_some(topics)
        },
    )
    .await;
    let by_topic = |topic: &str| {
        discovered
            .iter()
            .find(|row| row["topic"] == topic)
            .unwrap_or_else(|| panic!("{topic} discovered: {discovered:?}"))
            .clone()
    };
    assert_eq!(by_topic("plant-b/north/pump-7")["is_processable"], false);
    assert!(by_topic("plant-b/north/pump-7")["mqtt_topic_id"].is_null());
    assert_eq!(by_topic("plant-a/gw/dl")["is_processable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_within_a_second_while_the_database_is_away() {
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped on SQLite: an embedded database cannot go away; runs with TEST_DATABASE_URL=postgres://…");
        return;
    }
    let parsed = url::Url::parse(&database.url).expect("url");
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    );
    let proxy = TcpProxy::start(target).await;
    let mut options = ServiceOptions {
        reconcile_secs: 1,
        ..Default::default()
    };
    options.extra_env.push((
        "DATABASE_URL".into(),
        common::through_proxy(&database.url, proxy.port),
    ));
    let service = Service::start_with(&database, options);
    let client = service.client();
    let timed_get = |path: &'static str| {
        let client = client.clone();
        let url = service.url(path);
        async move {
            let started = Instant::now();
            let response = client.get(url).send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        }
    };
    let (status, body, _) = timed_get("/health/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _, _) = timed_get("/health/live").await;
    assert_eq!(status, 200);

    proxy.pause();
    let cut = Instant::now();
    eventually(Duration::from_secs(5), "not ready", || async {
        let (status, _, took) = timed_get("/health/ready").await;
        assert!(took < Duration::from_secs(1), "/health/ready took {took:?}");
        (status == 503).then_some(())
    })
    .await;
    assert!(
        cut.elapsed() < Duration::from_secs(3),
        "the outage was noticed after {:?}",
        cut.elapsed()
    );
    let (status, body, took) = timed_get("/health").await;
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "error");
    let (status, _, took) = timed_get("/health/live").await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1));
    let (status, body, took) = timed_get("/api/sites").await;
    assert!(took < Duration::from_secs(1), "an API read took {took:?}");
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "database_unavailable");

    proxy.resume();
    eventually(Duration::from_secs(10), "ready again", || async {
        (timed_get("/health/ready").await.0 == 200).then_some(())
    })
    .await;
    let (status, _, _) = timed_get("/api/sites").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stays_away_reaches_sentry_once() {
    let database = TestDatabase::new().await;
    let (sink_port, envelopes) = common::envelope_sink().await;
    let mut options = ServiceOptions {
        reconcile_secs: 1,
        args: config_args(
            database.directory.path(),
            "[sentry]\nalert_after_secs = 2\n[supervisor]\nbackoff_initial_ms = 100\nbackoff_max_secs = 1\n",
        ),
        ..Default::default()
    };
    options.extra_env.push((
        "SENTRY_DSN".into(),
        format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{sink_port}/42"),
    ));
    let service = Service::start_with(&database, options);
    let db = database.connect().await;
    // Nothing listens on this port.
    let away_port = common::free_port();
    let away = seed_test_site(&db, away_port, true, None, &[("a/#", "flat_telemetry")]).await;
    eventually(Duration::from_secs(20), "the absence in Sentry", || async {
        (count_containing(&envelopes, "no connection to the broker") >= 1).then_some(())
    })
    .await;
    assert!(
        has_log_row(
            &service,
            away.site_id,
            "unreachable",
            "no connection to the broker"
        )
        .await
    );
    // Several more failed attempts (one a second at most), then a fence: a different error on
    // a second site. Events leave in order, so a repeated alert would have arrived before it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refusing = PrivateBroker::start_with(Some(("operator", "right-password")));
    seed_test_site(
        &db,
        refusing.port,
        true,
        Some(("operator", "wrong-password")),
        &[("b/#", "flat_telemetry")],
    )
    .await;
    eventually(Duration::from_secs(20), "the fence event", || async {
        (count_containing(&envelopes, "broker refused the connection") >= 1).then_some(())
    })
    .await;
    assert_eq!(
        count_containing(&envelopes, "no connection to the broker"),
        1,
        "one event per episode"
    );
    let event = envelopes
        .lock()
        .expect("envelopes")
        .iter()
        .find(|body| body.contains("no connection to the broker"))
        .cloned()
        .unwrap_or_default();
    assert!(
        event.contains(&format!("\"site_id\":\"{}\"", away.site_id)),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_events_list_a_gateway_going_offline_and_coming_back() {
    let database = TestDatabase::new().await;
    let site = ingesting_site(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            args: config_args(
                database.directory.path(),
                "[jobs]\noffline_after_secs = 2\noffline_check_cron = \"* * * * * *\"\n",
            ),
            ..Default::default()
        },
        &[
            ("events/{gateway}/status", "gateway_status_v1"),
            ("events/{gateway}/{datalogger}/data", "flat_telemetry"),
        ],
    )
    .await;
    let service = &site.service;
    let events = || async {
        let events: Vec<Value> = service
            .client()
            .get(service.url(&format!("/api/sites/{}/device-events", site.site_id)))
            .send()
            .await
            .expect("device events")
            .json()
            .await
            .expect("events json");
        events
    };
    let gateway = unique_name("gw").replace('_', "-");
    let status = |online: &str| json!({"status": online}).to_string();
    site.publisher
        .publish(&format!("events/{gateway}/status"), status("online"))
        .await;
    common::wait_until_settled(service).await;
    let status_events = || async {
        events()
            .await
            .into_iter()
            .filter(|event| event["cause"] == "status_message")
            .collect::<Vec<Value>>()
    };
    assert!(
        status_events().await.is_empty(),
        "a first sighting is no transition"
    );
    site.publisher
        .publish(&format!("events/{gateway}/status"), status("offline"))
        .await;
    eventually(
        Duration::from_secs(15),
        "the offline transition",
        || async { (status_events().await.len() == 1).then_some(()) },
    )
    .await;
    site.publisher
        .publish(&format!("events/{gateway}/status"), status("online"))
        .await;
    let listed = eventually(Duration::from_secs(15), "the online transition", || async {
        let events = status_events().await;
        (events.len() == 2).then_some(events)
    })
    .await;
    // Newest first.
    assert_eq!(listed[0]["gateway"], gateway.as_str());
    assert_eq!(listed[0]["is_online"], true);
    assert_eq!(listed[0]["cause"], "status_message");
    assert_eq!(listed[1]["is_online"], false);
    assert_eq!(listed[1]["cause"], "status_message");
    assert!(listed[0].get("datalogger").is_none());

    // A datalogger that falls silent is marked offline by the job, and comes back with data.
    site.publisher
        .publish(&format!("events/{gateway}/dl-1/data"), r#"{"v": 1}"#)
        .await;
    let timed_out = eventually(
        Duration::from_secs(20),
        "the offline job's transitions",
        || async {
            let events = events().await;
            let datalogger = events
                .iter()
                .find(|event| event["datalogger"] == "dl-1" && event["cause"] == "offline_timeout")
                .cloned();
            datalogger
        },
    )
    .await;
    assert_eq!(timed_out["is_online"], false);
    site.publisher
        .publish(&format!("events/{gateway}/dl-1/data"), r#"{"v": 2}"#)
        .await;
    eventually(
        Duration::from_secs(15),
        "the datalogger back online",
        || async {
            events()
                .await
                .iter()
                .any(|event| {
                    event["datalogger"] == "dl-1"
                        && event["is_online"] == true
                        && event["cause"] == "message"
                })
                .then_some(())
        },
    )
    .await;
    let paged: Vec<Value> = service
        .client()
        .get(service.url(&format!(
            "/api/sites/{}/device-events?limit=1&offset=1",
            site.site_id
        )))
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("page json");
    assert_eq!(paged.len(), 1);
    let missing = service
        .client()
        .get(service.url("/api/sites/987654/device-events"))
        .send()
        .await
        .expect("unknown site");
    assert_eq!(missing.status(), 404);
}
