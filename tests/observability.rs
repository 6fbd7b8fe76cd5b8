//! Observability against real parts: Sentry envelopes received by an HTTP endpoint on loopback,
//! offline detection by the scheduled job, and the health and metrics endpoints.

mod common;

use std::time::Duration;

use common::{
    config_args, insert_site, insert_topic, publisher_on, wait_for_row_status, PrivateBroker,
    Service, ServiceOptions, TestDatabase,
};
use mqtt_supervisor::entity::{datalogger, gateway};
use sea_orm::EntityTrait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_sentry_with_tags_and_without_secrets_and_parsing_errors_are_rate_limited() {
    let database = TestDatabase::new().await;
    let (sink_port, envelopes) = common::envelope_sink().await;
    let refusing = PrivateBroker::start_with(Some(("operator", "right-password")));
    let open = PrivateBroker::start();
    let mut options = ServiceOptions {
        reconcile_secs: 1,
        args: config_args(
            database.directory.path(),
            "[sentry]\nparsing_error_events_per_minute = 3\n",
        ),
        ..Default::default()
    };
    options.extra_env.push((
        "SENTRY_DSN".into(),
        format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{sink_port}/42"),
    ));
    let service = Service::start_with(&database, options);
    let db = database.connect().await;

    let (refused_site, refused) = insert_site(
        &db,
        refusing.port,
        true,
        Some(("operator", "wrong-password-42")),
    )
    .await;
    wait_for_row_status(&db, refused, "error", Duration::from_secs(10)).await;
    let refused_event = common::eventually(
        Duration::from_secs(15),
        "the connection error envelope",
        || {
            let envelopes = envelopes.clone();
            async move {
                envelopes
                    .lock()
                    .ok()?
                    .iter()
                    .find(|body| body.contains("broker refused the connection"))
                    .cloned()
            }
        },
    )
    .await;
    assert!(
        refused_event.contains(&format!("\"site_id\":\"{refused_site}\"")),
        "site tag missing: {refused_event}"
    );

    let (site_id, connection_id) = insert_site(&db, open.port, true, None).await;
    insert_topic(
        &db,
        site_id,
        "sensors/{gateway}/{datalogger}",
        "flat_telemetry",
    )
    .await;
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    common::wait_for_granted(&db, connection_id).await;
    let publisher = publisher_on(open.port).await;
    for index in 0..20 {
        publisher
            .publish("sensors/gw/dl", format!("not json {index}"))
            .await;
    }
    common::eventually(Duration::from_secs(15), "parsing error envelopes", || {
        let envelopes = envelopes.clone();
        async move {
            let count = envelopes
                .lock()
                .ok()?
                .iter()
                .filter(|body| body.contains("parsing failed"))
                .count();
            (count >= 3).then_some(())
        }
    })
    .await;
    // Every message committed; then one more error event, made after all of them: Sentry's
    // transport sends in order, so once it arrives every earlier event has too.
    common::wait_until_settled(&service).await;
    {
        use mqtt_supervisor::entity::mqtt_connection;
        use sea_orm::{ActiveModelTrait, Set};
        mqtt_connection::ActiveModel {
            id: Set(refused),
            keepalive_secs: Set(11),
            ..Default::default()
        }
        .update(&db)
        .await
        .expect("change the refused connection so it starts again");
    }
    common::eventually(Duration::from_secs(15), "the later error envelope", || {
        let envelopes = envelopes.clone();
        async move {
            let count = envelopes
                .lock()
                .ok()?
                .iter()
                .filter(|body| body.contains("broker refused the connection"))
                .count();
            (count >= 2).then_some(())
        }
    })
    .await;
    let all = envelopes
        .lock()
        .map(|bodies| bodies.clone())
        .unwrap_or_default();
    let parsing = all
        .iter()
        .filter(|body| body.contains("parsing failed"))
        .count();
    assert_eq!(
        parsing, 3,
        "parsing errors beyond the limit are only counted"
    );
    let tagged = all
        .iter()
        .find(|body| body.contains("parsing failed"))
        .cloned()
        .unwrap_or_default();
    assert!(tagged.contains("\"parser\":\"flat_telemetry\""), "{tagged}");
    assert!(tagged.contains("\"topic\":\"sensors/gw/dl\""), "{tagged}");
    for body in &all {
        assert!(
            !body.contains("wrong-password-42"),
            "a password reached Sentry: {body}"
        );
        assert!(
            !body.contains("test-admin-token-0123456789"),
            "the admin token reached Sentry"
        );
    }
}

#[tokio::test]
async fn silent_devices_go_offline_and_the_job_shows_in_health() {
    let database = TestDatabase::new().await;
    let site = common::ingesting_site(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            args: config_args(
                database.directory.path(),
                "[jobs]\noffline_after_secs = 2\noffline_check_cron = \"* * * * * *\"\n",
            ),
            ..Default::default()
        },
        &[("sensors/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    let (db, publisher, service) = (site.db.clone(), &site.publisher, &site.service);
    publisher
        .publish("sensors/gw-1/dl-1", r#"{"level": 3.5}"#)
        .await;
    common::eventually(Duration::from_secs(10), "the datalogger online", || async {
        let row = datalogger::Entity::find().one(&db).await.ok()??;
        row.is_online.then_some(())
    })
    .await;
    common::eventually(
        Duration::from_secs(15),
        "the datalogger and gateway offline",
        || async {
            let logger = datalogger::Entity::find().one(&db).await.ok()??;
            let owner = gateway::Entity::find().one(&db).await.ok()??;
            (!logger.is_online && !owner.is_online).then_some(())
        },
    )
    .await;
    let health: serde_json::Value = reqwest::get(service.url("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let jobs = health["jobs"].as_array().cloned().unwrap_or_default();
    let offline = jobs
        .iter()
        .find(|job| job["name"] == "offline_detection")
        .unwrap_or_else(|| panic!("offline_detection missing from /health: {health}"));
    assert!(offline["last_run"].is_string(), "{offline}");
    assert!(jobs.iter().any(|job| job["name"] == "retention_purge"));
}

#[tokio::test]
async fn the_retention_job_deletes_old_rows_and_keeps_recent_ones() {
    use chrono::{Duration as Age, Utc};
    use mqtt_supervisor::entity::{
        discovered_topic, mqtt_connection_log, mqtt_parsing_log, sensor, sensor_reading,
    };
    use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
    let database = TestDatabase::new().await;
    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(
                database.directory.path(),
                "[jobs]\nreading_retention_days = 10\nlog_retention_days = 5\nretention_cron = \"*/2 * * * * *\"\n",
            ),
            ..Default::default()
        },
    );
    let db = database.connect().await;
    let (site_id, _) = insert_site(&db, common::free_port(), false, None).await;
    let now = Utc::now();
    let owner = gateway::ActiveModel {
        site_id: Set(site_id),
        identifier: Set("gw".into()),
        name: Set(None),
        last_seen: Set(Some(now)),
        is_online: Set(true),
        metadata: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("gateway");
    let logger = datalogger::ActiveModel {
        gateway_id: Set(owner.id),
        identifier: Set("dl".into()),
        last_seen: Set(Some(now)),
        is_online: Set(true),
        metadata: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("datalogger");
    let probe = sensor::ActiveModel {
        datalogger_id: Set(logger.id),
        name: Set("t".into()),
        unit: Set(None),
        last_value: Set(Some(1.0)),
        last_reading_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("sensor");
    for days in [30, 1] {
        sensor_reading::ActiveModel {
            sensor_id: Set(probe.id),
            ts: Set(now - Age::days(days)),
            value: Set(days as f64),
        }
        .insert(&db)
        .await
        .expect("reading");
        mqtt_connection_log::ActiveModel {
            site_id: Set(site_id),
            event: Set("connected".into()),
            message: Set(format!("{days} days ago")),
            created_at: Set(now - Age::days(days)),
            ..Default::default()
        }
        .insert(&db)
        .await
        .expect("connection log");
        discovered_topic::ActiveModel {
            site_id: Set(site_id),
            topic: Set(format!("silent/{days}")),
            first_seen: Set(now - Age::days(days)),
            last_seen: Set(now - Age::days(days)),
            message_count: Set(1),
            last_payload: Set(Some("{\"sample\": 1}".into())),
            is_processable: Set(false),
            mqtt_topic_id: Set(None),
            ..Default::default()
        }
        .insert(&db)
        .await
        .expect("discovered topic");
        mqtt_parsing_log::ActiveModel {
            site_id: Set(site_id),
            topic: Set("t".into()),
            parser: Set(None),
            error: Set("bad".into()),
            payload: Set(b"x".to_vec()),
            received_at: Set(now - Age::days(days)),
            created_at: Set(now - Age::days(days)),
            replayed_at: Set(None),
            ..Default::default()
        }
        .insert(&db)
        .await
        .expect("parsing log");
    }
    common::eventually(Duration::from_secs(15), "old rows purged", || async {
        let readings = sensor_reading::Entity::find().count(&db).await.ok()?;
        let parsing = mqtt_parsing_log::Entity::find().count(&db).await.ok()?;
        (readings == 1 && parsing == 1).then_some(())
    })
    .await;
    let kept = sensor_reading::Entity::find()
        .one(&db)
        .await
        .expect("read")
        .expect("recent reading kept");
    assert_eq!(kept.value, 1.0);
    let logs = mqtt_connection_log::Entity::find()
        .all(&db)
        .await
        .expect("read");
    assert!(
        logs.iter().all(|log| log.message != "30 days ago"),
        "old connection log purged"
    );
    assert!(
        logs.iter().any(|log| log.message == "1 days ago"),
        "recent connection log kept"
    );
    let topics = discovered_topic::Entity::find()
        .all(&db)
        .await
        .expect("read");
    assert_eq!(topics.len(), 2);
    for topic in &topics {
        let stale = topic.topic == "silent/30";
        assert_eq!(
            topic.last_payload.is_none(),
            stale,
            "{}: sample compaction",
            topic.topic
        );
    }
    drop(service);
}
