//! Several `serve` processes on one PostgreSQL database (real processes, a real Mosquitto):
//! connections spread over them, move at once when one stops and within the lease when one is
//! killed, an instance cut from the database stops its clients before its lease runs out, any
//! instance's API and WebSocket cover every instance's connections, a sharded connection under a
//! flood loses nothing when an instance dies, and SQLite refuses a second instance.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    eventually, publisher_on, seed_test_site, PrivateBroker, Service, ServiceOptions, TcpProxy,
    TestDatabase,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const LEASE_SECS: u64 = 6;

fn instance(database: &TestDatabase, id: &str, database_url: Option<String>) -> Service {
    let mut options = ServiceOptions::default();
    options
        .extra_env
        .push(("SUPERVISOR_INSTANCE_ID".into(), id.into()));
    options
        .extra_env
        .push(("SUPERVISOR_LEASE_SECS".into(), LEASE_SECS.to_string()));
    if let Some(url) = database_url {
        options.extra_env.push(("DATABASE_URL".into(), url));
    }
    Service::start_with(database, options)
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

/// Instance id → the site ids it owns, from any instance's `GET /api/instances`.
async fn spread(service: &Service) -> BTreeMap<String, Vec<i64>> {
    get_json(service, "/api/instances")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|instance| instance["live"] == true)
        .map(|instance| {
            let sites = instance["connections"]
                .as_array()
                .map(|shards| {
                    shards
                        .iter()
                        .filter_map(|shard| shard["site_id"].as_i64())
                        .collect()
                })
                .unwrap_or_default();
            (
                instance["id"].as_str().unwrap_or_default().to_string(),
                sites,
            )
        })
        .collect()
}

async fn connections(service: &Service) -> Vec<Value> {
    get_json(service, "/api/mqtt/connections?limit=1000")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every connection connected, and owned by one of `owners`.
async fn all_connected_on(service: &Service, count: usize, owners: &[&str]) -> bool {
    let connections = connections(service).await;
    connections.len() == count
        && connections.iter().all(|connection| {
            connection["status"] == "connected"
                && owners
                    .iter()
                    .any(|owner| connection["owner"].as_str() == Some(owner))
        })
}

async fn readings(db: &sea_orm::DatabaseConnection) -> u64 {
    use mqtt_supervisor::entity::sensor_reading;
    use sea_orm::{EntityTrait, PaginatorTrait};
    sensor_reading::Entity::find().count(db).await.unwrap_or(0)
}

fn reading(sequence: u64) -> String {
    let ts = chrono::DateTime::from_timestamp(1_700_000_000 + sequence as i64, 0)
        .expect("time")
        .to_rfc3339();
    json!({"ts": ts, "sensors": [{"name": "level", "value": sequence as f64}]}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_sites_spread_over_three_instances_and_move_on_stop_and_kill_losing_nothing() {
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped on SQLite: several instances share PostgreSQL only; runs with TEST_DATABASE_URL=postgres://…");
        return;
    }
    let broker = PrivateBroker::start_logged();
    let mut a = instance(&database, "instance-a", None);
    let mut b = instance(&database, "instance-b", None);
    let c = instance(&database, "instance-c", None);
    let db = database.connect().await;
    let mut sites = Vec::new();
    for index in 0..12 {
        let pattern = format!("fleet{index}/{{gateway}}/{{datalogger}}");
        let seeded = seed_test_site(
            &db,
            broker.port,
            true,
            None,
            &[(pattern.as_str(), "datalogger_readings_v1")],
        )
        .await;
        sites.push(seeded);
    }
    eventually(
        Duration::from_secs(30),
        "a 4/4/4 spread, all connected",
        || async {
            let spread = spread(&c).await;
            let counts: Vec<usize> = spread.values().map(Vec::len).collect();
            (counts == vec![4, 4, 4]
                && all_connected_on(&c, 12, &["instance-a", "instance-b", "instance-c"]).await)
                .then_some(())
        },
    )
    .await;
    for seeded in &sites {
        common::wait_for_granted(&db, seeded.connection_id).await;
    }

    // A steady stream of QoS 1 readings to every site for the whole test.
    let published = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let stream = {
        let publisher = publisher_on(broker.port).await;
        let published = published.clone();
        let running = running.clone();
        tokio::spawn(async move {
            let mut sequence = 0u64;
            while running.load(Ordering::SeqCst) {
                for index in 0..12 {
                    publisher
                        .publish(&format!("fleet{index}/gw/dl"), reading(sequence))
                        .await;
                    published.fetch_add(1, Ordering::SeqCst);
                }
                sequence += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            publisher
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A graceful stop hands over at once.
    let stopped = Instant::now();
    a.terminate();
    eventually(Duration::from_secs(10), "a's sites on b and c", || async {
        all_connected_on(&c, 12, &["instance-b", "instance-c"])
            .await
            .then_some(())
    })
    .await;
    let handed_over = stopped.elapsed();
    assert!(
        handed_over < Duration::from_secs(LEASE_SECS),
        "a graceful stop took {handed_over:?}, as long as a lease"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A kill is noticed when the lease runs out.
    let killed = Instant::now();
    b.kill();
    eventually(
        Duration::from_secs(LEASE_SECS + 10),
        "every site on c",
        || async {
            all_connected_on(&c, 12, &["instance-c"])
                .await
                .then_some(())
        },
    )
    .await;
    let failover = killed.elapsed();
    assert!(
        failover < Duration::from_secs(LEASE_SECS + 5),
        "failover took {failover:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::SeqCst);
    let _publisher = stream.await.expect("publisher");
    let total = published.load(Ordering::SeqCst);
    eventually(Duration::from_secs(60), "every reading stored", || async {
        (readings(&db).await == total).then_some(())
    })
    .await;
    common::wait_until_settled(&c).await;
    assert_eq!(
        readings(&db).await,
        total,
        "every QoS 1 reading stored exactly once"
    );
    assert!(
        !broker.log().contains("already connected"),
        "the broker saw two clients with one client id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_from_the_database_stops_its_clients_before_its_lease_runs_out() {
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped on SQLite: several instances share PostgreSQL only");
        return;
    }
    let parsed = url::Url::parse(&database.url).expect("url");
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    );
    let proxy = TcpProxy::start(target).await;
    let broker = PrivateBroker::start_logged();
    let cut = instance(
        &database,
        "instance-cut",
        Some(common::through_proxy(&database.url, proxy.port)),
    );
    let db = database.connect().await;
    let first = seed_test_site(&db, broker.port, true, None, &[("cut/#", "flat_telemetry")]).await;
    eventually(
        Duration::from_secs(20),
        "the site on the cut instance",
        || async {
            all_connected_on(&cut, 1, &["instance-cut"])
                .await
                .then_some(())
        },
    )
    .await;
    let other = instance(&database, "instance-other", None);
    let site_id = first.site_id;

    proxy.pause();
    eventually(
        Duration::from_secs(LEASE_SECS + 15),
        "the site taken over by the other instance",
        || async {
            let connection = get_json(&other, &format!("/api/mqtt/connection/{site_id}/")).await;
            (connection["owner"] == "instance-other" && connection["status"] == "connected")
                .then_some(())
        },
    )
    .await;
    assert!(
        cut.output().contains("stopping every client"),
        "the cut instance did not fence itself:\n{}",
        cut.output()
    );
    let log = broker.log();
    assert!(
        !log.contains("already connected"),
        "the broker had to close one of two clients with one client id:\n{log}"
    );
    proxy.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_instance_changes_and_watches_every_instances_connections() {
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped on SQLite: several instances share PostgreSQL only");
        return;
    }
    let broker = PrivateBroker::start();
    let a = instance(&database, "instance-a", None);
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        true,
        None,
        &[("watch/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let site_id = seeded.site_id;
    eventually(Duration::from_secs(20), "the site on a", || async {
        all_connected_on(&a, 1, &["instance-a"]).await.then_some(())
    })
    .await;
    // b owns nothing of it (one connection, and a had it first).
    let b = instance(&database, "instance-b", None);
    eventually(
        Duration::from_secs(20),
        "b in the instance list",
        || async { (spread(&a).await.len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(
        get_json(&b, &format!("/api/mqtt/connection/{site_id}/")).await["owner"],
        "instance-a"
    );

    let (mut socket, _) =
        tokio_tungstenite::connect_async(b.ws_url("/ws?token=test-admin-token-0123456789"))
            .await
            .expect("websocket on b");
    socket
        .send(Message::text(
            json!({"subscribe": {"site_id": site_id}}).to_string(),
        ))
        .await
        .expect("subscribe");

    // A PATCH answered by b stops a's client within 2 s, and starts it again.
    let patched = Instant::now();
    let response = b
        .client()
        .patch(b.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&json!({"is_active": false}))
        .send()
        .await
        .expect("patch on b");
    assert_eq!(response.status(), 202);
    eventually(Duration::from_secs(5), "stopped", || async {
        (get_json(&b, &format!("/api/mqtt/connection/{site_id}/")).await["status"] == "stopped")
            .then_some(())
    })
    .await;
    assert!(
        patched.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        patched.elapsed()
    );
    let response = b
        .client()
        .patch(b.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&json!({"is_active": true}))
        .send()
        .await
        .expect("patch on b");
    assert_eq!(response.status(), 202);
    let restarted = Instant::now();
    let mut connected_seen = false;
    let mut update_seen = false;
    let publisher = publisher_on(broker.port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(connected_seen && update_seen) {
        assert!(
            Instant::now() < deadline,
            "events of a's site on b: connected {connected_seen}, update {update_seen}"
        );
        if connected_seen {
            publisher.publish("watch/gw/dl", r#"{"level": 7.5}"#).await;
        }
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(500), socket.next()).await
        else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str()).expect("event");
        match event["type"].as_str() {
            Some("connection_status") if event["status"] == "connected" => {
                connected_seen = true;
                assert!(
                    restarted.elapsed() < Duration::from_secs(2) || update_seen,
                    "start took {:?}",
                    restarted.elapsed()
                );
            }
            Some("datalogger_update") => update_seen = true,
            _ => {}
        }
    }
    assert_eq!(
        get_json(&b, &format!("/api/mqtt/connection/{site_id}/")).await["owner"],
        "instance-a",
        "the events came from a's client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_shard_site_under_a_flood_loses_nothing_when_an_instance_dies() {
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        eprintln!("skipped on SQLite: several instances share PostgreSQL only");
        return;
    }
    let broker = PrivateBroker::start_logged();
    let a = instance(&database, "instance-a", None);
    let mut b = instance(&database, "instance-b", None);
    let db = database.connect().await;
    let seeded = seed_test_site(
        &db,
        broker.port,
        false,
        None,
        &[("flood/{gateway}/{datalogger}", "datalogger_readings_v1")],
    )
    .await;
    {
        use mqtt_supervisor::entity::mqtt_connection;
        use sea_orm::{ActiveModelTrait, Set};
        mqtt_connection::ActiveModel {
            id: Set(seeded.connection_id),
            shards: Set(3),
            is_active: Set(true),
            ..Default::default()
        }
        .update(&db)
        .await
        .expect("three shards");
    }
    eventually(
        Duration::from_secs(30),
        "three shards connected on two instances",
        || async {
            let connection =
                get_json(&a, &format!("/api/mqtt/connection/{}/", seeded.site_id)).await;
            let shards = connection["shard_owners"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let owners: std::collections::BTreeSet<String> = shards
                .iter()
                .filter_map(|shard| shard["owner"].as_str().map(str::to_string))
                .collect();
            (shards.len() == 3
                && shards.iter().all(|shard| shard["status"] == "connected")
                && owners.len() == 2)
                .then_some(())
        },
    )
    .await;
    // Every shard granted its shared subscription.
    tokio::time::sleep(Duration::from_secs(1)).await;

    const MESSAGES: u64 = 6_000;
    let publisher = publisher_on(broker.port).await;
    for sequence in 0..MESSAGES {
        // Many dataloggers, so the shards' writers share gateway and datalogger rows.
        let topic = format!("flood/gw-{}/dl-{}", sequence % 3, sequence % 40);
        publisher.publish(&topic, reading(sequence)).await;
        if sequence == MESSAGES / 2 {
            b.kill();
        }
    }
    eventually(
        Duration::from_secs(90),
        "every reading of the flood",
        || async { (readings(&db).await == MESSAGES).then_some(()) },
    )
    .await;
    common::wait_until_settled(&a).await;
    assert_eq!(readings(&db).await, MESSAGES);
    let output = a.output();
    assert!(!output.contains("deadlock"), "a deadlock:\n{output}");
    assert!(!broker.log().contains("already connected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_one_sqlite_file_exits_2_naming_the_first() {
    let database = TestDatabase::new().await;
    if database.is_postgres() {
        eprintln!("SQLite only: PostgreSQL is shared by design");
        return;
    }
    let mut options = ServiceOptions::default();
    options
        .extra_env
        .push(("SUPERVISOR_INSTANCE_ID".into(), "first-instance".into()));
    let _first = Service::start_with(&database, options);
    let output = std::process::Command::new(common::BINARY)
        .arg("serve")
        .env("DATABASE_URL", &database.url)
        .env("SUPERVISOR_HTTP_ADDR", "127.0.0.1:0")
        .env("SUPERVISOR_ADMIN_TOKEN", "test-admin-token-0123456789")
        .env("SUPERVISOR_INSTANCE_ID", "second-instance")
        .env(
            "SUPERVISOR_LOG_DIR",
            database.directory.path().join("second-logs"),
        )
        .env(
            "SUPERVISOR_PARSERS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"),
        )
        .output()
        .expect("run a second serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("first-instance"), "{stderr}");
}
