//! Broker passwords at rest: sealed under SUPERVISOR_SECRET_KEY, opened to log in to a broker
//! that checks them (Mosquitto's dynamic security), sealed at start when stored before the key,
//! `serve` refusing to start (exit 2) when the key is missing or another one, and the rotation
//! of every stored password to a new key.

mod common;

use std::time::Duration;

use common::{PrivateBroker, Service, ServiceOptions, TestDatabase};
use mqtt_supervisor::entity::mqtt_connection;
use sea_orm::EntityTrait;
use serde_json::{json, Value};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const PASSWORD: &str = "broker-password";

fn with_key(key: Option<&str>) -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        extra_env: key
            .map(|key| vec![("SUPERVISOR_SECRET_KEY".to_string(), key.to_string())])
            .unwrap_or_default(),
        ..Default::default()
    }
}

async fn create_site_and_connection(service: &Service, slug: &str, port: u16) -> i64 {
    let site: Value = service
        .client()
        .post(service.url("/api/sites"))
        .json(&json!({"name": slug, "slug": slug}))
        .send()
        .await
        .expect("site")
        .json()
        .await
        .expect("site json");
    let site_id = site["id"].as_i64().expect("id");
    let response = service
        .client()
        .post(service.url("/api/mqtt/connections"))
        .json(
            &json!({"site_id": site_id, "host": "127.0.0.1", "port": port,
                      "username": "supervisor", "password": PASSWORD, "is_active": true}),
        )
        .send()
        .await
        .expect("connection");
    assert_eq!(response.status(), 201);
    site_id
}

async fn stored_passwords(database: &TestDatabase) -> Vec<String> {
    let db = database.connect().await;
    mqtt_connection::Entity::find()
        .all(&db)
        .await
        .expect("rows")
        .into_iter()
        .filter_map(|row| row.password)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_sealed_opened_to_log_in_and_missing_keys_are_named() {
    let database = TestDatabase::new().await;
    let broker = PrivateBroker::start_refusing("nothing/#", "supervisor", PASSWORD);

    // Stored before there was a key: in the clear, and it logs in.
    let mut service = Service::start_with(&database, with_key(None));
    let early = create_site_and_connection(&service, "sealed-early", broker.port).await;
    common::wait_for_status(&service, early, "connected", Duration::from_secs(20)).await;
    assert_eq!(
        stored_passwords(&database).await,
        vec![PASSWORD.to_string()]
    );
    service.terminate();

    // With the key: the old password is sealed at start, a new one is stored sealed, both log in.
    let mut service = Service::start_with(&database, with_key(Some(KEY)));
    let late = create_site_and_connection(&service, "sealed-late", broker.port).await;
    common::wait_for_status(&service, early, "connected", Duration::from_secs(20)).await;
    common::wait_for_status(&service, late, "connected", Duration::from_secs(20)).await;
    let stored = stored_passwords(&database).await;
    assert_eq!(stored.len(), 2);
    for value in &stored {
        assert!(value.starts_with("enc:v1:"), "{value}");
        assert!(!value.contains(PASSWORD), "{value}");
    }
    // Nor does it reach the service's console or log files.
    let console = service.output.lock().expect("output").join("\n");
    assert!(!console.contains(PASSWORD), "the password on the console");
    for entry in std::fs::read_dir(&service.log_dir)
        .expect("log dir")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(PASSWORD),
            "the password in {}",
            entry.path().display()
        );
    }
    service.terminate();

    // Without the key, or with another one, the sealed passwords cannot be opened: `serve`
    // stops at once with exit code 2 naming the variable.
    for key in [None, Some(OTHER_KEY)] {
        let mut command = std::process::Command::new(common::BINARY);
        command
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("SUPERVISOR_HTTP_ADDR", "127.0.0.1:0")
            .env("SUPERVISOR_ADMIN_TOKEN", "test-admin-token-0123456789")
            .env(
                "SUPERVISOR_LOG_DIR",
                database.directory.path().join("no-key-logs"),
            )
            .env_remove("SUPERVISOR_SECRET_KEY");
        if let Some(key) = key {
            command.env("SUPERVISOR_SECRET_KEY", key);
        }
        let output = command.output().expect("run serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key:?}: {stderr}");
        assert!(
            stderr.contains("SUPERVISOR_SECRET_KEY"),
            "{key:?}: {stderr}"
        );
    }

    // Rotation: every password moves to the new key, and the service runs on it.
    let output = std::process::Command::new(common::BINARY)
        .args(["migrate", "--rotate-secret-key"])
        .env("DATABASE_URL", &database.url)
        .env("SUPERVISOR_SECRET_KEY", KEY)
        .env("SUPERVISOR_NEW_SECRET_KEY", OTHER_KEY)
        .output()
        .expect("run migrate --rotate-secret-key");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("sealed 2 password(s)"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let rotated = stored_passwords(&database).await;
    assert!(
        rotated.iter().all(|value| !stored.contains(value)),
        "{rotated:?}"
    );
    let service = Service::start_with(&database, with_key(Some(OTHER_KEY)));
    common::wait_for_status(&service, early, "connected", Duration::from_secs(20)).await;
    common::wait_for_status(&service, late, "connected", Duration::from_secs(20)).await;
}
