//! The message pipeline against a real broker and database: hostile payloads are kept for replay
//! and never stop ingestion; a SIGKILL mid-stream and a database outage lose nothing.

mod common;

use std::time::Duration;

use common::{config_args, Service, ServiceOptions, TcpProxy, TestDatabase};
use mqtt_supervisor::entity::{discovered_topic, mqtt_parsing_log, sensor, sensor_reading};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

fn options(directory: &std::path::Path) -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        args: config_args(
            directory,
            "[supervisor]\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\n",
        ),
        ..Default::default()
    }
}

async fn readings(db: &sea_orm::DatabaseConnection) -> u64 {
    sensor_reading::Entity::find().count(db).await.unwrap_or(0)
}

/// A site ingesting the fleet's readings (`reading_payload`) with the default test options.
async fn fleet_site(database: &TestDatabase) -> common::IngestingSite {
    common::ingesting_site(
        database,
        options(database.directory.path()),
        &[(
            "fleet/gateway/{gateway}/datalogger/{datalogger}",
            "datalogger_readings_v1",
        )],
    )
    .await
}

/// One reading message: datalogger `index % 10`, its own timestamp, two sensors.
fn reading_payload(index: usize) -> (String, String) {
    let topic = format!(
        "fleet/gateway/gw-{}/datalogger/dl-{}",
        index % 2,
        index % 10
    );
    let ts = chrono::DateTime::from_timestamp(1_700_000_000 + index as i64, 0)
        .expect("timestamp")
        .to_rfc3339();
    let payload = serde_json::json!({
        "ts": ts,
        "sensors": [
            {"name": "temperature", "value": index as f64 / 10.0, "unit": "°C"},
            {"name": "humidity", "value": (index % 100) as f64},
        ]
    });
    (topic, payload.to_string())
}

#[tokio::test]
async fn hostile_payloads_are_logged_whole_and_ingestion_goes_on() {
    let database = TestDatabase::new().await;
    let site = common::ingesting_site(
        &database,
        options(database.directory.path()),
        &[
            (
                "fleet/gateway/{gateway}/datalogger/{datalogger}",
                "datalogger_readings_v1",
            ),
            ("flat/{gateway}/{datalogger}", "flat_telemetry"),
        ],
    )
    .await;
    let (db, site_id, publisher) = (site.db.clone(), site.site_id, &site.publisher);

    let mut deeply_nested = "[".repeat(100_000).into_bytes();
    deeply_nested.extend(std::iter::repeat_n(b']', 100_000));
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("fleet/gateway/g/datalogger/d", Vec::new()),
        (
            "fleet/gateway/g/datalogger/d",
            vec![0xff, 0xfe, 0x00, 0x80, 0x01],
        ),
        ("fleet/gateway/g/datalogger/d", vec![b' '; 300 * 1024]),
        ("fleet/gateway/g/datalogger/d", deeply_nested),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"sensors": [{"name": "t", "value": 1e400}]}"#.to_vec(),
        ),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"sensors": [{"name": "t", "value": NaN}]}"#.to_vec(),
        ),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"sensors": [{"name": "t", "value": "21.5"}]}"#.to_vec(),
        ),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"sensors": {"name": "t", "value": 1}}"#.to_vec(),
        ),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"sensors": [{"value": 1}]}"#.to_vec(),
        ),
        (
            "fleet/gateway/g/datalogger/d",
            br#"{"ts": "not a time", "sensors": []}"#.to_vec(),
        ),
        ("flat/g/d", br#"["not", "an", "object"]"#.to_vec()),
        ("flat/g/d", br#"{"only": "text"}"#.to_vec()),
    ];
    for (topic, payload) in &hostile {
        publisher.publish(topic, payload.clone()).await;
    }
    publisher
        .publish(
            "fleet/gateway/g/datalogger/d",
            r#"{"ts": "2026-01-01T00:00:00Z", "sensors": [{"name": "t", "value": 21.5, "unit": "°C"}]}"#,
        )
        .await;

    let logs = common::eventually(
        Duration::from_secs(20),
        "every hostile payload logged",
        || async {
            let logs = mqtt_parsing_log::Entity::find()
                .filter(mqtt_parsing_log::Column::SiteId.eq(site_id))
                .order_by_asc(mqtt_parsing_log::Column::Id)
                .all(&db)
                .await
                .unwrap_or_default();
            (logs.len() == hostile.len()).then_some(logs)
        },
    )
    .await;
    // Messages of one topic keep their order; different topics may be stored side by side.
    let mut expected = hostile.clone();
    expected.sort_by(|a, b| a.0.cmp(b.0));
    let mut logs = logs;
    logs.sort_by(|a, b| a.topic.cmp(&b.topic).then(a.id.cmp(&b.id)));
    for (log, (topic, payload)) in logs.iter().zip(&expected) {
        assert_eq!(log.topic, *topic);
        assert_eq!(
            &log.payload, payload,
            "the payload is kept byte for byte (error: {})",
            log.error
        );
        assert!(!log.error.is_empty());
    }
    common::eventually(
        Duration::from_secs(10),
        "the valid reading after them",
        || async { (readings(&db).await == 1).then_some(()) },
    )
    .await;
    let stored = sensor::Entity::find()
        .one(&db)
        .await
        .expect("read")
        .expect("sensor");
    assert_eq!(stored.last_value, Some(21.5));
    assert_eq!(stored.unit.as_deref(), Some("°C"));
}

#[tokio::test]
async fn a_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice() {
    const MESSAGES: usize = 3000;
    let database = TestDatabase::new().await;
    let mut site = fleet_site(&database).await;
    let (db, publisher) = (site.db.clone(), &site.publisher);

    for index in 0..MESSAGES {
        let (topic, payload) = reading_payload(index);
        publisher.publish(&topic, payload).await;
        if index == MESSAGES / 3 {
            site.service.kill();
        }
    }
    // The broker holds what the dead service did not acknowledge; a new process picks it up.
    let _restarted = Service::start_with(&database, options(database.directory.path()));
    common::eventually(Duration::from_secs(60), "every reading stored", || async {
        (readings(&db).await == 2 * MESSAGES as u64).then_some(())
    })
    .await;
    // And no more arrive later: once everything redelivered is committed, nothing is stored
    // twice.
    common::wait_until_settled(&_restarted).await;
    assert_eq!(readings(&db).await, 2 * MESSAGES as u64);
    // Topic counters are flushed about once a second, so a kill may lose the last second of
    // counts (never a reading); every topic is there.
    let topics = discovered_topic::Entity::find()
        .all(&db)
        .await
        .expect("read");
    assert_eq!(topics.len(), 10, "every datalogger topic is discovered");
}

// The proxy runs on the test's runtime while the harness blocks a thread waiting for the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_holds_messages_and_stores_them_when_it_returns() {
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
    let mut service_options = options(database.directory.path());
    service_options.extra_env.push((
        "DATABASE_URL".into(),
        common::through_proxy(&database.url, proxy.port),
    ));
    let site = common::ingesting_site(
        &database,
        service_options,
        &[(
            "fleet/gateway/{gateway}/datalogger/{datalogger}",
            "datalogger_readings_v1",
        )],
    )
    .await;
    let (db, publisher) = (site.db.clone(), &site.publisher);

    const MESSAGES: usize = 1500;
    for index in 0..MESSAGES {
        let (topic, payload) = reading_payload(index);
        publisher.publish(&topic, payload).await;
        if index == MESSAGES / 3 {
            proxy.pause();
        }
        if index % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if index == 2 * MESSAGES / 3 {
            // The database stays away for ten seconds while publishing goes on.
            tokio::time::sleep(Duration::from_secs(10)).await;
            proxy.resume();
        }
    }
    common::eventually(
        Duration::from_secs(90),
        "every reading stored after the outage",
        || async { (readings(&db).await == 2 * MESSAGES as u64).then_some(()) },
    )
    .await;
    assert!(
        site.service.output().contains("cannot store a batch"),
        "the outage must have reached the writer:\n{}",
        site.service.output()
    );
}

#[tokio::test]
async fn a_message_the_database_refuses_does_not_stall_the_connection() {
    let database = TestDatabase::new().await;
    let site = common::ingesting_site(
        &database,
        options(database.directory.path()),
        &[("flat/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let (db, site_id, publisher) = (site.db.clone(), site.site_id, &site.publisher);
    // Valid JSON whose sensor name holds a NUL: PostgreSQL text refuses it, SQLite stores it.
    publisher
        .publish(
            "flat/gw/dl",
            r#"{"bad\u0000name": 1, "ts": "2026-01-01T00:00:00Z"}"#,
        )
        .await;
    publisher
        .publish(
            "flat/gw/dl",
            r#"{"level": 2, "ts": "2026-01-01T00:00:01Z"}"#,
        )
        .await;
    common::eventually(
        Duration::from_secs(30),
        "the valid reading behind the refused one",
        || async {
            let levels = sensor::Entity::find()
                .filter(sensor::Column::Name.eq("level"))
                .count(&db)
                .await
                .unwrap_or(0);
            (levels == 1).then_some(())
        },
    )
    .await;
    if database.is_postgres() {
        let refused = mqtt_parsing_log::Entity::find()
            .filter(mqtt_parsing_log::Column::SiteId.eq(site_id))
            .one(&db)
            .await
            .expect("read")
            .expect("the refused message is kept in the parsing log");
        assert!(
            refused.error.contains("database refused"),
            "{}",
            refused.error
        );
        assert!(refused.payload.starts_with(br#"{"bad\u0000name""#));
    }
}

/// The value of one unlabelled counter in the service's /metrics.
async fn counter(service: &Service, name: &str) -> Option<f64> {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn a_reading_sent_again_is_stored_once_and_is_no_error() {
    let database = TestDatabase::new().await;
    let site = fleet_site(&database).await;
    let (db, publisher) = (site.db.clone(), &site.publisher);
    for index in 0..5 {
        let (topic, payload) = reading_payload(index);
        publisher.publish(&topic, payload).await;
    }
    common::eventually(Duration::from_secs(30), "the first readings", || async {
        (readings(&db).await == 10).then_some(())
    })
    .await;
    // The same five again (as a broker redelivers them, or a device repeats itself) with one
    // new message among them: the new one is stored, the repeats are skipped.
    for index in [0, 1, 2, 5, 3, 4] {
        let (topic, payload) = reading_payload(index);
        publisher.publish(&topic, payload).await;
    }
    common::eventually(Duration::from_secs(30), "the new reading", || async {
        (readings(&db).await == 12).then_some(())
    })
    .await;
    common::eventually(
        Duration::from_secs(30),
        "every message processed",
        || async {
            let health: serde_json::Value = reqwest::get(site.service.url("/health"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (health["messages_processed"] == 11).then_some(())
        },
    )
    .await;
    assert_eq!(readings(&db).await, 12);
    assert_eq!(
        mqtt_parsing_log::Entity::find()
            .count(&db)
            .await
            .expect("count"),
        0,
        "a repeated reading is not a parsing error"
    );
    assert_eq!(
        counter(&site.service, "mqtt_supervisor_commit_failures_total").await,
        Some(0.0),
        "a repeated reading is not a failed commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_every_queue_is_stored_completely() {
    // More messages than the broker's in-flight window, the client's request queue and the
    // writer's queue together: acknowledgements must keep flowing while the writer is busy.
    const MESSAGES: usize = 20_000;
    let database = TestDatabase::new().await;
    let site = fleet_site(&database).await;
    let (db, publisher) = (site.db.clone(), &site.publisher);
    for index in 0..MESSAGES {
        let (topic, payload) = reading_payload(index);
        publisher.publish(&topic, payload).await;
    }
    common::eventually(
        Duration::from_secs(120),
        "every reading of the burst",
        || async { (readings(&db).await == 2 * MESSAGES as u64).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_site_mid_stream_does_not_stop_another_sites_ingestion() {
    use mqtt_supervisor::entity::site;
    let database = TestDatabase::new().await;
    let doomed = common::ingesting_site(
        &database,
        options(database.directory.path()),
        &[("doomed/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let db = doomed.db.clone();
    let (kept_site, kept_connection) =
        common::insert_site(&db, doomed.broker.port, true, None).await;
    common::insert_topic(
        &db,
        kept_site,
        "kept/{gateway}/{datalogger}",
        "flat_telemetry",
    )
    .await;
    common::wait_for_row_status(&db, kept_connection, "connected", Duration::from_secs(10)).await;
    common::wait_for_granted(&db, kept_connection).await;

    let publish_round = |round: usize| {
        let publisher = &doomed.publisher;
        async move {
            for index in 0..50 {
                let ts = chrono::DateTime::from_timestamp(
                    1_700_000_000 + (round * 50 + index) as i64,
                    0,
                )
                .expect("time")
                .to_rfc3339();
                let payload = format!(r#"{{"ts": "{ts}", "level": {index}}}"#);
                publisher
                    .publish(&format!("doomed/gw/dl-{}", index % 5), payload.clone())
                    .await;
                publisher
                    .publish(&format!("kept/gw/dl-{}", index % 5), payload)
                    .await;
            }
        }
    };
    publish_round(0).await;
    // The first round stored, with its latest state still pending (it is written about once
    // a second).
    common::wait_until_settled(&doomed.service).await;
    site::Entity::delete_by_id(doomed.site_id)
        .exec(&db)
        .await
        .expect("delete the site");
    for round in 1..4 {
        publish_round(round).await;
    }
    // The kept site gets all 200 readings; the deleted site's data is simply gone.
    common::eventually(
        Duration::from_secs(60),
        "every reading of the kept site",
        || async {
            let stored = sensor_reading::Entity::find().count(&db).await.ok()?;
            (stored == 200).then_some(())
        },
    )
    .await;
    let sensors = sensor::Entity::find().all(&db).await.expect("read");
    assert!(sensors.iter().all(|row| row.name == "level"));
}

/// The latest state a flush writes for devices already stored follows the same rules as the
/// first write: the newest reading's value wins whatever order the messages come in, and a unit
/// is kept when a later message leaves it out.
#[tokio::test]
async fn latest_values_follow_the_newest_reading_through_later_flushes() {
    use mqtt_supervisor::entity::{datalogger, gateway};
    let database = TestDatabase::new().await;
    let site = fleet_site(&database).await;
    let (db, publisher) = (site.db.clone(), &site.publisher);
    let topic = "fleet/gateway/gw-0/datalogger/dl-late";
    let at = |seconds: i64| {
        chrono::DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("timestamp")
    };
    let send = |seconds: i64, value: f64, unit: Option<&str>| {
        let mut sensor = serde_json::json!({"name": "temperature", "value": value});
        if let Some(unit) = unit {
            sensor["unit"] = unit.into();
        }
        serde_json::json!({"ts": at(seconds).to_rfc3339(), "sensors": [sensor]}).to_string()
    };
    let latest = || async {
        let row = sensor::Entity::find()
            .filter(sensor::Column::Name.eq("temperature"))
            .one(&db)
            .await
            .ok()??;
        Some((row.last_value?, row.last_reading_at?, row.unit))
    };

    publisher.publish(topic, send(20, 2.0, Some("K"))).await;
    common::eventually(Duration::from_secs(30), "the first value", || async {
        (latest().await == Some((2.0, at(20), Some("K".to_owned())))).then_some(())
    })
    .await;
    let first_seen = datalogger::Entity::find()
        .one(&db)
        .await
        .expect("query")
        .and_then(|row| row.last_seen)
        .expect("the datalogger was seen");
    let gateway_first_seen = gateway::Entity::find()
        .one(&db)
        .await
        .expect("query")
        .and_then(|row| row.last_seen)
        .expect("the gateway was seen");

    // An older reading, arriving late and without a unit: stored, but the latest value stays.
    publisher.publish(topic, send(10, 1.0, None)).await;
    common::eventually(Duration::from_secs(30), "the late reading", || async {
        (readings(&db).await == 2).then_some(())
    })
    .await;
    // A newer one without a unit, after the late one: it must win, and the unit stay.
    publisher.publish(topic, send(30, 3.0, None)).await;
    common::eventually(Duration::from_secs(30), "the newest value", || async {
        (latest().await == Some((3.0, at(30), Some("K".to_owned())))).then_some(())
    })
    .await;
    common::eventually(
        Duration::from_secs(30),
        "the datalogger seen again",
        || async {
            let row = datalogger::Entity::find().one(&db).await.ok()??;
            (row.last_seen? > first_seen && row.is_online).then_some(())
        },
    )
    .await;
    common::eventually(
        Duration::from_secs(30),
        "the gateway seen again",
        || async {
            let row = gateway::Entity::find().one(&db).await.ok()??;
            (row.last_seen? > gateway_first_seen && row.is_online).then_some(())
        },
    )
    .await;
    assert_eq!(readings(&db).await, 3);

    // The late reading again, after everything was flushed: nothing moves back.
    // Its unit, which a message always sets, shows when the flush has happened.
    publisher.publish(topic, send(10, 1.0, Some("°C"))).await;
    common::eventually(Duration::from_secs(30), "the unit sent", || async {
        let (_, _, unit) = latest().await?;
        (unit.as_deref() == Some("°C")).then_some(())
    })
    .await;
    let (value, time, _) = latest().await.expect("a latest value");
    assert_eq!((value, time), (3.0, at(30)), "an older reading never wins");
    assert_eq!(
        readings(&db).await,
        3,
        "the repeated reading is stored once"
    );
}
