//! The foundation on a real database: migrations up and down on an empty database, every entity
//! round-tripped, the unique keys that make writes idempotent, and the binary's command line,
//! configuration errors, log files and graceful shutdown.

mod common;

use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{Service, ServiceOptions, TestDatabase, BINARY};
use mqtt_supervisor::db;
use mqtt_supervisor::entity::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + seconds, 0)
        .single()
        .expect("valid time")
}

#[tokio::test]
async fn migrations_create_the_schema_and_every_entity_round_trips() {
    let database = TestDatabase::new().await;
    // One connection, as `mqtt-supervisor migrate` uses: schema changes see one session.
    let connection = db::connect(&database.url, 1).await.expect("connect");
    db::migrate_up(&connection).await.expect("migrate up");
    // Applying again is a no-op.
    db::migrate_up(&connection).await.expect("migrate up twice");

    let site = site::ActiveModel {
        name: Set("North plant".into()),
        slug: Set("north".into()),
        is_active: Set(true),
        created_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert site");
    let connection_row = mqtt_connection::ActiveModel {
        site_id: Set(site.id),
        host: Set("broker.local".into()),
        port: Set(8883),
        username: Set(Some("user".into())),
        password: Set(Some("secret".into())),
        client_id: Set("north-1".into()),
        use_tls: Set(true),
        ca_file: Set(Some("/etc/ca.pem".into())),
        keepalive_secs: Set(45),
        clean_session: Set(false),
        is_active: Set(true),
        status: Set("stopped".into()),
        last_error: Set(None),
        connected_at: Set(Some(at(1))),
        created_at: Set(at(0)),
        updated_at: Set(at(2)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert connection");
    let topic = mqtt_topic::ActiveModel {
        site_id: Set(site.id),
        pattern: Set("bfg/gateway/{gateway}/datalogger/{datalogger}".into()),
        parser: Set("datalogger_readings_v1".into()),
        qos: Set(1),
        is_active: Set(true),
        priority: Set(5),
        created_at: Set(at(0)),
        updated_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert topic");
    let discovered = discovered_topic::ActiveModel {
        site_id: Set(site.id),
        topic: Set("bfg/gateway/g1/datalogger/d1".into()),
        first_seen: Set(at(3)),
        last_seen: Set(at(4)),
        message_count: Set(7),
        last_payload: Set(Some("{}".into())),
        is_processable: Set(true),
        mqtt_topic_id: Set(Some(topic.id)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert discovered");
    let gateway_row = gateway::ActiveModel {
        site_id: Set(site.id),
        identifier: Set("g1".into()),
        name: Set(Some("Gateway one".into())),
        last_seen: Set(Some(at(5))),
        is_online: Set(true),
        metadata: Set(Some(
            serde_json::json!({"firmware": "1.2", "ip": "10.0.0.1"}),
        )),
        created_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert gateway");
    let datalogger_row = datalogger::ActiveModel {
        gateway_id: Set(gateway_row.id),
        identifier: Set("d1".into()),
        last_seen: Set(Some(at(5))),
        is_online: Set(true),
        metadata: Set(None),
        created_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert datalogger");
    let sensor_row = sensor::ActiveModel {
        datalogger_id: Set(datalogger_row.id),
        name: Set("temperature".into()),
        unit: Set(Some("°C".into())),
        last_value: Set(Some(21.25)),
        last_reading_at: Set(Some(at(5))),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert sensor");
    let reading = sensor_reading::ActiveModel {
        sensor_id: Set(sensor_row.id),
        ts: Set(at(5)),
        value: Set(21.25),
    }
    .insert(&connection)
    .await
    .expect("insert reading");
    let connection_log = mqtt_connection_log::ActiveModel {
        site_id: Set(site.id),
        event: Set("connected".into()),
        message: Set("connected".into()),
        created_at: Set(at(6)),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert connection log");
    let parsing_log = mqtt_parsing_log::ActiveModel {
        site_id: Set(site.id),
        topic: Set("bfg/x".into()),
        parser: Set(Some("flat_telemetry".into())),
        error: Set("payload is not valid JSON".into()),
        payload: Set(vec![0xff, 0x00, b'{']),
        received_at: Set(at(7)),
        created_at: Set(at(7)),
        replayed_at: Set(None),
        ..Default::default()
    }
    .insert(&connection)
    .await
    .expect("insert parsing log");

    // Read every row back and compare with what was written.
    assert_eq!(
        site::Entity::find_by_id(site.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(site.clone())
    );
    assert_eq!(
        mqtt_connection::Entity::find_by_id(connection_row.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(connection_row)
    );
    assert_eq!(
        mqtt_topic::Entity::find_by_id(topic.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(topic)
    );
    assert_eq!(
        discovered_topic::Entity::find_by_id(discovered.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(discovered)
    );
    assert_eq!(
        gateway::Entity::find_by_id(gateway_row.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(gateway_row.clone())
    );
    assert_eq!(
        datalogger::Entity::find_by_id(datalogger_row.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(datalogger_row)
    );
    assert_eq!(
        sensor::Entity::find_by_id(sensor_row.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(sensor_row.clone())
    );
    assert_eq!(
        sensor_reading::Entity::find_by_id((sensor_row.id, at(5)))
            .one(&connection)
            .await
            .expect("read"),
        Some(reading)
    );
    assert_eq!(
        mqtt_connection_log::Entity::find_by_id(connection_log.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(connection_log)
    );
    assert_eq!(
        mqtt_parsing_log::Entity::find_by_id(parsing_log.id)
            .one(&connection)
            .await
            .expect("read"),
        Some(parsing_log)
    );

    // The unique keys that make redelivery harmless.
    let duplicate_reading = sensor_reading::ActiveModel {
        sensor_id: Set(sensor_row.id),
        ts: Set(at(5)),
        value: Set(99.0),
    }
    .insert(&connection)
    .await;
    assert!(duplicate_reading.is_err(), "(sensor_id, ts) must be unique");
    let duplicate_slug = site::ActiveModel {
        name: Set("Again".into()),
        slug: Set("north".into()),
        is_active: Set(true),
        created_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await;
    assert!(duplicate_slug.is_err(), "site.slug must be unique");
    let duplicate_gateway = gateway::ActiveModel {
        site_id: Set(site.id),
        identifier: Set("g1".into()),
        name: Set(None),
        last_seen: Set(None),
        is_online: Set(false),
        metadata: Set(None),
        created_at: Set(at(0)),
        ..Default::default()
    }
    .insert(&connection)
    .await;
    assert!(
        duplicate_gateway.is_err(),
        "gateway(site_id, identifier) must be unique"
    );

    // Deleting a site removes everything below it.
    site::Entity::delete_by_id(site.id)
        .exec(&connection)
        .await
        .expect("delete site");
    let readings_left = sensor_reading::Entity::find()
        .filter(sensor_reading::Column::SensorId.eq(sensor_row.id))
        .all(&connection)
        .await
        .expect("read");
    assert!(readings_left.is_empty(), "cascade must reach readings");

    // Down and up again on the same database.
    // Every migration, newest first.
    let every_migration =
        u32::try_from(<migration::Migrator as migration::MigratorTrait>::migrations().len())
            .expect("a few migrations");
    db::migrate_down(&connection, every_migration)
        .await
        .expect("migrate down");
    assert!(
        site::Entity::find().all(&connection).await.is_err(),
        "tables are gone after down"
    );
    db::migrate_up(&connection)
        .await
        .expect("migrate up after down");
    assert!(site::Entity::find()
        .all(&connection)
        .await
        .expect("read")
        .is_empty());
}

#[tokio::test]
async fn migrate_command_applies_lists_and_rolls_back() {
    let database = TestDatabase::new().await;
    let run = |args: &[&str]| {
        Command::new(BINARY)
            .args(args)
            .env("DATABASE_URL", &database.url)
            .output()
            .expect("run migrate")
    };
    let up = run(&["migrate"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status = run(&["migrate", "--status"]);
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(
        listing.contains("applied m20261124_000001_initial_schema"),
        "{listing}"
    );
    assert!(
        listing.contains("applied m20261124_000002_lean_readings"),
        "{listing}"
    );
    assert!(
        listing.contains("applied m20261125_000003_readings_without_time_index"),
        "{listing}"
    );
    // One step at a time, newest first.
    for (step, pending) in [
        "m20261203_000013_command_confirm",
        "m20261203_000012_retained_messages",
        "m20261202_000011_device_command",
        "m20261202_000010_protocol",
        "m20261201_000009_audit_log",
        "m20261201_000008_client_certificate_and_will",
        "m20261201_000007_cluster",
        "m20261130_000004_connection_truth",
        "m20261125_000003_readings_without_time_index",
        "m20261124_000002_lean_readings",
        "m20261124_000001_initial_schema",
    ]
    .into_iter()
    .enumerate()
    {
        let down = run(&["migrate", "--down", "1"]);
        assert!(
            down.status.success(),
            "step {step}: {}",
            String::from_utf8_lossy(&down.stderr)
        );
        let status = run(&["migrate", "--status"]);
        let listing = String::from_utf8_lossy(&status.stdout);
        assert!(listing.contains(&format!("pending {pending}")), "{listing}");
    }
    let up = run(&["migrate"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
}

#[test]
fn help_documents_every_subcommand() {
    let output = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["serve", "migrate", "demo", "check-parsers"] {
        assert!(
            help.contains(subcommand),
            "--help lacks {subcommand}:\n{help}"
        );
    }
}

#[test]
fn a_wrong_setting_exits_2_and_names_the_key() {
    for (variable, value, key) in [
        (
            "SUPERVISOR_RECONCILE_SECS",
            "soon",
            "supervisor.reconcile_secs",
        ),
        ("SUPERVISOR_HTTP_ADDR", "not an address", "http.addr"),
        ("DATABASE_URL", "mysql://localhost/x", "database.url"),
    ] {
        let output = Command::new(BINARY)
            .arg("migrate")
            .env(variable, value)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{variable}={value}: {stderr}");
    }
}

#[test]
fn an_unknown_key_in_the_config_file_exits_2() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("bad.toml");
    std::fs::write(&path, "[supervisor]\nreconcile_seconds = 5\n").expect("write");
    let output = Command::new(BINARY)
        .args(["--config", path.to_str().expect("utf-8 path"), "migrate"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("reconcile_seconds"));
}

#[test]
fn serve_refuses_to_start_without_a_token() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BINARY)
        .arg("serve")
        .env_remove("SUPERVISOR_ADMIN_TOKEN")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/x.db?mode=rwc", directory.path().display()),
        )
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--insecure-no-auth"));
}

#[test]
fn check_parsers_accepts_the_shipped_folder_and_rejects_a_broken_one() {
    let output = Command::new(BINARY)
        .args([
            "check-parsers",
            "--dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"),
        ])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    for name in [
        "datalogger_readings_v1",
        "gateway_status_v1",
        "flat_telemetry",
        "relay_controller_v1",
    ] {
        assert!(listing.contains(name), "{listing}");
    }
    let directory = tempfile::tempdir().expect("tempdir");
    std::fs::write(directory.path().join("broken.json"), "{\"name\": \"x\"").expect("write");
    let output = Command::new(BINARY)
        .args([
            "check-parsers",
            "--dir",
            directory.path().to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.json"));
}

#[tokio::test]
async fn serve_writes_its_log_files_and_stops_cleanly_on_sigterm() {
    let database = TestDatabase::new().await;
    let mut service = Service::start_with(&database, ServiceOptions::default());
    let log_dir = service.log_dir.clone();
    common::eventually(Duration::from_secs(10), "log files", || {
        let log_dir = log_dir.clone();
        async move {
            (log_dir.join("mqtt_conn.log").exists() && log_dir.join("mqtt_parsing.log").exists())
                .then_some(())
        }
    })
    .await;
    let status = service.terminate();
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}\n{}",
        service.output()
    );
    assert!(service.output().contains("SIGTERM received"));
}
