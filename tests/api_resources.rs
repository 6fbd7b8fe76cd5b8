//! The REST resources over real HTTP against the running binary: the happy path of every
//! endpoint, the exact response shapes the Devices page relies on, and each resource's own
//! validation and conflict rules.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    add_topic, create_site, eventually, wait_for_status, Publisher, Service, ServiceOptions,
    TestDatabase,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.to_utc())
        .unwrap_or_else(|| panic!("an RFC 3339 time, got {value}"))
}

fn key_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

async fn send(
    service: &Service,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = service.client().request(method, service.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text}"))
    };
    (status, value)
}

async fn get(service: &Service, path: &str) -> (StatusCode, Value) {
    send(service, reqwest::Method::GET, path, None).await
}

async fn post(service: &Service, path: &str, body: Value) -> (StatusCode, Value) {
    send(service, reqwest::Method::POST, path, Some(body)).await
}

async fn patch(service: &Service, path: &str, body: Value) -> (StatusCode, Value) {
    send(service, reqwest::Method::PATCH, path, Some(body)).await
}

async fn delete(service: &Service, path: &str) -> (StatusCode, Value) {
    send(service, reqwest::Method::DELETE, path, None).await
}

fn assert_field_error(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.starts_with(&format!("{field}: ")), "{message}");
}

async fn new_site(service: &Service, slug: &str) -> i64 {
    let (status, site) = post(service, "/api/sites", json!({"name": slug, "slug": slug})).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    site["id"].as_i64().expect("id")
}

#[tokio::test]
async fn sites_are_created_listed_changed_and_deleted() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);

    let (status, site) = post(
        &service,
        "/api/sites",
        json!({"name": "North plant", "slug": "north"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        keys(&site),
        key_set(&["id", "name", "slug", "is_active", "created_at"])
    );
    assert_eq!(site["name"], "North plant");
    assert_eq!(site["is_active"], true);
    let id = site["id"].as_i64().expect("id");

    let (status, body) = post(
        &service,
        "/api/sites",
        json!({"name": "Again", "slug": "north"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("north"));

    let (status, body) = post(
        &service,
        "/api/sites",
        json!({"name": "x", "slug": "North Plant"}),
    )
    .await;
    assert_field_error(status, &body, "slug");
    let (status, body) = post(
        &service,
        "/api/sites",
        json!({"name": "  ", "slug": "blank"}),
    )
    .await;
    assert_field_error(status, &body, "name");
    let (status, body) = post(
        &service,
        "/api/sites",
        json!({"name": "x", "slug": "a".repeat(65)}),
    )
    .await;
    assert_field_error(status, &body, "slug");

    let (status, created) = post(
        &service,
        "/api/sites",
        json!({"name": "South", "slug": "south", "is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["is_active"], false);
    new_site(&service, "east").await;

    let (status, list) = get(&service, "/api/sites").await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|site| site["slug"].as_str().expect("slug"))
        .collect();
    assert_eq!(slugs, ["north", "south", "east"]);
    let (_, page) = get(&service, "/api/sites?limit=2").await;
    assert_eq!(page.as_array().expect("array").len(), 2);
    let (_, page) = get(&service, "/api/sites?limit=2&offset=2").await;
    assert_eq!(page[0]["slug"], "east");
    let (_, page) = get(&service, "/api/sites?limit=5000").await;
    assert_eq!(page.as_array().expect("array").len(), 3);

    let (status, fetched) = get(&service, &format!("/api/sites/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, site);

    let (status, changed) = patch(
        &service,
        &format!("/api/sites/{id}"),
        json!({"name": "North works", "is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["name"], "North works");
    assert_eq!(changed["is_active"], false);
    assert_eq!(changed["slug"], "north");

    let (status, body) = patch(
        &service,
        &format!("/api/sites/{id}"),
        json!({"slug": "south"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = patch(&service, &format!("/api/sites/{id}"), json!({"name": null})).await;
    assert_field_error(status, &body, "name");
    let (status, body) = patch(
        &service,
        &format!("/api/sites/{id}"),
        json!({"is_active": "yes"}),
    )
    .await;
    assert_field_error(status, &body, "is_active");
    // Renaming to its own slug is not a conflict.
    let (status, _) = patch(
        &service,
        &format!("/api/sites/{id}"),
        json!({"slug": "north"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = delete(&service, &format!("/api/sites/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = get(&service, &format!("/api/sites/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = delete(&service, &format!("/api/sites/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_site_has_one_connection_whose_password_is_never_returned() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let site_id = new_site(&service, "plant-7").await;

    let (status, connection) = post(
        &service,
        "/api/mqtt/connections",
        json!({"site_id": site_id, "host": "127.0.0.1", "port": 1883, "password": "hunter2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    assert_eq!(
        keys(&connection),
        key_set(&[
            "id",
            "site_id",
            "host",
            "port",
            "username",
            "has_password",
            "client_id",
            "use_tls",
            "ca_file",
            "keepalive_secs",
            "clean_session",
            "is_active",
            "status",
            "last_error",
            "connected_at",
            "created_at",
            "updated_at",
            "reconnect_attempts",
            "retry_in_ms",
            "subscriptions",
            "last_message_at",
            "max_silence_secs",
            "silent",
            "discovery_filter",
            "owner",
            "shards",
            "shard_owners",
            "client_cert_file",
            "client_key_file",
            "last_will",
            "protocol",
            "session_expiry_secs",
        ])
    );
    assert_eq!(connection["protocol"], "3.1.1");
    assert_eq!(connection["session_expiry_secs"], Value::Null);
    assert_eq!(connection["shards"], 1);
    assert_eq!(connection["client_cert_file"], Value::Null);
    assert_eq!(connection["last_will"], Value::Null);
    assert_eq!(connection["subscriptions"], json!([]));
    assert_eq!(connection["silent"], false);
    assert_eq!(connection["max_silence_secs"], Value::Null);
    assert_eq!(connection["discovery_filter"], Value::Null);
    assert_eq!(connection["client_id"], "mqtt-supervisor-plant-7");
    assert_eq!(connection["keepalive_secs"], 30);
    assert_eq!(connection["clean_session"], false);
    assert_eq!(connection["is_active"], false);
    assert_eq!(connection["use_tls"], false);
    assert_eq!(connection["has_password"], true);
    assert_eq!(connection["status"], "stopped");
    assert_eq!(connection["reconnect_attempts"], 0);
    assert_eq!(connection["retry_in_ms"], Value::Null);
    assert!(!connection.to_string().contains("hunter2"));

    let (status, body) = post(
        &service,
        "/api/mqtt/connections",
        json!({"site_id": site_id, "host": "127.0.0.1", "port": 1883}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let other_site = new_site(&service, "plant-8").await;
    for (body, field) in [
        (
            json!({"site_id": 999_999, "host": "h", "port": 1883}),
            "site_id",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 70_000}),
            "port",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 0}),
            "port",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": "1883"}),
            "port",
        ),
        (json!({"site_id": other_site, "port": 1883}), "host"),
        (
            json!({"site_id": other_site, "host": "", "port": 1883}),
            "host",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "keepalive_secs": 2}),
            "keepalive_secs",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "use_tls": "no"}),
            "use_tls",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "client_id": ""}),
            "client_id",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "protocol": "5.0"}),
            "protocol",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "protocol": 5}),
            "protocol",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883,
                   "session_expiry_secs": 4_294_967_296_i64}),
            "session_expiry_secs",
        ),
        (
            json!({"site_id": other_site, "host": "h", "port": 1883, "session_expiry_secs": -1}),
            "session_expiry_secs",
        ),
    ] {
        let (status, error) = post(&service, "/api/mqtt/connections", body.clone()).await;
        assert_field_error(status, &error, field);
    }
    let (_, error) = post(
        &service,
        "/api/mqtt/connections",
        json!({"site_id": other_site, "host": "h", "port": 70_000}),
    )
    .await;
    assert_eq!(
        error["error"]["message"],
        "port: must be between 1 and 65535 (got 70000)"
    );

    let (_, error) = post(
        &service,
        "/api/mqtt/connections",
        json!({"site_id": other_site, "host": "h", "port": 1883, "protocol": "4"}),
    )
    .await;
    assert_eq!(
        error["error"]["message"],
        "protocol: must be \"3.1.1\" or \"5\" (got \"4\")"
    );

    let (status, created) = post(
        &service,
        "/api/mqtt/connections",
        json!({"site_id": other_site, "host": "broker", "port": 8883, "client_id": "mine",
               "use_tls": true, "keepalive_secs": 60, "clean_session": true, "username": "u",
               "protocol": "5", "session_expiry_secs": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["protocol"], "5");
    assert_eq!(created["session_expiry_secs"], 3600);
    let (status, changed) = patch(
        &service,
        &format!("/api/mqtt/connection/{other_site}/"),
        json!({"session_expiry_secs": null}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{changed}");
    assert_eq!(changed["session_expiry_secs"], Value::Null);
    assert_eq!(changed["protocol"], "5");
    let (status, error) = patch(
        &service,
        &format!("/api/mqtt/connection/{other_site}/"),
        json!({"protocol": null}),
    )
    .await;
    assert_field_error(status, &error, "protocol");
    assert_eq!(created["client_id"], "mine");
    assert_eq!(created["has_password"], false);
    assert_eq!(created["username"], "u");

    for path in [
        format!("/api/mqtt/connection/{site_id}/"),
        format!("/api/mqtt/connection/{site_id}"),
    ] {
        let (status, fetched) = get(&service, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(fetched["id"], connection["id"]);
        assert_eq!(fetched["has_password"], true);
        assert!(fetched.get("password").is_none());
    }
    let (_, list) = get(&service, "/api/mqtt/connections").await;
    assert_eq!(list.as_array().expect("array").len(), 2);
    let (_, list) = get(
        &service,
        &format!("/api/mqtt/connections?site_id={other_site}"),
    )
    .await;
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["site_id"], other_site);

    let path = format!("/api/mqtt/connection/{site_id}/");
    let (status, changed) = patch(
        &service,
        &path,
        json!({"password": null, "port": 1884, "username": "operator", "ca_file": "/etc/ca.pem"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{changed}");
    assert_eq!(changed["has_password"], false);
    assert_eq!(changed["port"], 1884);
    assert_eq!(changed["username"], "operator");
    assert_eq!(changed["ca_file"], "/etc/ca.pem");
    assert!(time(&changed["updated_at"]) >= time(&connection["updated_at"]));
    let (status, changed) =
        patch(&service, &path, json!({"password": "new", "ca_file": null})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(changed["has_password"], true);
    assert_eq!(changed["ca_file"], Value::Null);
    let (status, changed) = patch(
        &service,
        &format!("/api/mqtt/connection/{site_id}"),
        json!({"is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(changed["is_active"], false);

    let (status, body) = patch(&service, &path, json!({"port": "x"})).await;
    assert_field_error(status, &body, "port");
    let (status, body) = patch(&service, &path, json!({"host": null})).await;
    assert_field_error(status, &body, "host");
    let (status, body) = patch(&service, &path, json!({"keepalive_secs": 70_000})).await;
    assert_field_error(status, &body, "keepalive_secs");
    let (status, _) = patch(
        &service,
        "/api/mqtt/connection/999999/",
        json!({"is_active": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = delete(&service, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = get(&service, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = delete(&service, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting a site takes its connection with it.
    let (status, _) = delete(&service, &format!("/api/sites/{other_site}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = get(&service, "/api/mqtt/connections").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn topic_patterns_are_validated_and_managed() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let site_id = new_site(&service, "topics").await;
    let other_site = new_site(&service, "other").await;

    let (status, topic) = post(
        &service,
        "/api/mqtt/topics",
        json!({"site_id": site_id, "pattern": "plant/{gateway}/{datalogger}", "parser": "datalogger_readings_v1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{topic}");
    assert_eq!(
        keys(&topic),
        key_set(&[
            "id",
            "site_id",
            "pattern",
            "parser",
            "qos",
            "is_active",
            "priority",
            "subscription_filter",
            "created_at",
            "updated_at",
        ])
    );
    assert_eq!(topic["qos"], 1);
    assert_eq!(topic["is_active"], true);
    assert_eq!(topic["priority"], 0);
    assert_eq!(topic["subscription_filter"], "plant/+/+");
    let id = topic["id"].as_i64().expect("id");

    let (status, second) = post(
        &service,
        "/api/mqtt/topics",
        json!({"site_id": other_site, "pattern": "$share/g/x/#", "parser": "flat_telemetry",
               "qos": 0, "is_active": false, "priority": -3}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["qos"], 0);
    assert_eq!(second["priority"], -3);
    assert_eq!(second["subscription_filter"], "$share/g/x/#");

    let (status, body) = post(
        &service,
        "/api/mqtt/topics",
        json!({"site_id": site_id, "pattern": "a/b", "parser": "no_such_parser"}),
    )
    .await;
    assert_field_error(status, &body, "parser");
    let (status, body) = post(
        &service,
        "/api/mqtt/topics",
        json!({"site_id": site_id, "pattern": "a/#/b", "parser": "flat_telemetry"}),
    )
    .await;
    assert_field_error(status, &body, "pattern");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("'#' must be the last level"),
        "{body}"
    );
    for (body, field) in [
        (
            json!({"site_id": site_id, "pattern": "a/{x}/{x}", "parser": "flat_telemetry"}),
            "pattern",
        ),
        (
            json!({"site_id": site_id, "pattern": "", "parser": "flat_telemetry"}),
            "pattern",
        ),
        (
            json!({"site_id": site_id, "parser": "flat_telemetry"}),
            "pattern",
        ),
        (
            json!({"site_id": site_id, "pattern": "a", "parser": "flat_telemetry", "qos": 3}),
            "qos",
        ),
        (
            json!({"site_id": site_id, "pattern": "a", "parser": "flat_telemetry", "priority": 1.5}),
            "priority",
        ),
        (
            json!({"site_id": 999_999, "pattern": "a", "parser": "flat_telemetry"}),
            "site_id",
        ),
        (
            json!({"pattern": "a", "parser": "flat_telemetry"}),
            "site_id",
        ),
    ] {
        let (status, error) = post(&service, "/api/mqtt/topics", body.clone()).await;
        assert_field_error(status, &error, field);
    }

    let (_, list) = get(&service, "/api/mqtt/topics").await;
    assert_eq!(list.as_array().expect("array").len(), 2);
    let (_, list) = get(&service, &format!("/api/mqtt/topics?site_id={site_id}")).await;
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["id"], id);
    let (status, fetched) = get(&service, &format!("/api/mqtt/topics/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, topic);

    let (status, changed) = patch(
        &service,
        &format!("/api/mqtt/topics/{id}"),
        json!({"priority": 5, "is_active": false, "pattern": "plant/{gateway}/#", "qos": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["priority"], 5);
    assert_eq!(changed["is_active"], false);
    assert_eq!(changed["qos"], 2);
    assert_eq!(changed["subscription_filter"], "plant/+/#");
    let (status, body) = patch(
        &service,
        &format!("/api/mqtt/topics/{id}"),
        json!({"pattern": "x/+y"}),
    )
    .await;
    assert_field_error(status, &body, "pattern");
    let (status, body) = patch(
        &service,
        &format!("/api/mqtt/topics/{id}"),
        json!({"parser": "nope"}),
    )
    .await;
    assert_field_error(status, &body, "parser");
    let (status, _) = patch(&service, "/api/mqtt/topics/999999", json!({"priority": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = delete(&service, &format!("/api/mqtt/topics/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = delete(&service, &format!("/api/mqtt/topics/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&service, &format!("/api/mqtt/topics/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn parsers_are_listed_tried_and_reloaded() {
    let database = TestDatabase::new().await;
    let parsers_dir = database.directory.path().join("parsers");
    std::fs::create_dir_all(&parsers_dir).expect("parsers dir");
    let service = Service::start_with(
        &database,
        ServiceOptions {
            extra_env: vec![(
                "SUPERVISOR_PARSERS_DIR".into(),
                parsers_dir.display().to_string(),
            )],
            ..ServiceOptions::default()
        },
    );

    let (status, list) = get(&service, "/api/parsers").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|parser| parser["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "datalogger_readings_v1",
            "flat_telemetry",
            "gateway_status_v1"
        ]
    );
    assert_eq!(
        keys(&list[0]),
        key_set(&["name", "kind", "description", "schema", "commands"])
    );
    assert_eq!(list[0]["kind"], "builtin");

    let reading = json!({"ts": "2024-05-01T12:00:00Z", "sensors": [{"name": "temp", "value": 21.5, "unit": "C"}]});
    let (status, result) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "plant/gw-1/dl-1", "pattern": "plant/{gateway}/{datalogger}", "payload": reading}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["ok"], true);
    assert_eq!(result["output"]["dataloggers"][0]["gateway"], "gw-1");
    assert_eq!(result["output"]["dataloggers"][0]["identifier"], "dl-1");
    assert_eq!(
        result["output"]["dataloggers"][0]["sensors"][0]["value"],
        21.5
    );

    let (status, result) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "plant/gw-1/dl-1", "pattern": "plant/{gateway}/{datalogger}",
               "payload": {"sensors": "not a list"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["ok"], false);
    assert!(!result["errors"].as_array().expect("errors").is_empty());

    // A string is the raw payload: here, not JSON at all.
    let (_, result) = post(
        &service,
        "/api/parsers/flat_telemetry/test",
        json!({"topic": "a/b", "payload": "{not json"}),
    )
    .await;
    assert_eq!(result["ok"], false, "{result}");
    let (_, result) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "plant/gw-1/dl-1", "pattern": "plant/{gateway}/{datalogger}",
               "payload": reading.to_string()}),
    )
    .await;
    assert_eq!(result["ok"], true, "{result}");

    let (status, body) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "other/gw/dl", "pattern": "plant/{gateway}/{datalogger}", "payload": reading}),
    )
    .await;
    assert_field_error(status, &body, "pattern");
    let (status, body) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "plant/gw/dl", "payload": reading, "pattern": "a/#/b"}),
    )
    .await;
    assert_field_error(status, &body, "pattern");
    let (status, body) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "a"}),
    )
    .await;
    assert_field_error(status, &body, "payload");
    let (status, body) = post(
        &service,
        "/api/parsers/no_such_parser/test",
        json!({"topic": "a", "payload": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Without a pattern, the captures come from the site's stored pattern for this parser.
    let site_id = new_site(&service, "dry-run").await;
    add_topic(
        &service,
        site_id,
        "site/{gateway}/{datalogger}",
        "datalogger_readings_v1",
    )
    .await;
    let (_, result) = post(
        &service,
        "/api/parsers/datalogger_readings_v1/test",
        json!({"topic": "site/gw-9/dl-9", "payload": reading}),
    )
    .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["output"]["dataloggers"][0]["gateway"], "gw-9");
    // Nothing was written.
    let (_, devices) = get(&service, &format!("/api/sites/{site_id}/devices")).await;
    assert_eq!(devices, json!([]));

    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/parsers/relay_controller_v1.json"
        ),
        parsers_dir.join("relay_controller_v1.json"),
    )
    .expect("copy parser");
    let (status, list) = post(&service, "/api/parsers/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list
        .as_array()
        .expect("array")
        .iter()
        .any(|parser| parser["name"] == "relay_controller_v1" && parser["kind"] == "declarative"));

    // MQTT 5 user properties as a message would carry them: the relay parser takes its time
    // from "ts".
    let (_, result) = post(
        &service,
        "/api/parsers/relay_controller_v1/test",
        json!({"topic": "relayctl/ctl-1/relay/2", "pattern": "relayctl/{gateway}/relay/{channel}",
               "payload": {"state": "on"}, "user_properties": {"ts": "2026-01-02T03:04:05Z"}}),
    )
    .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(
        result["output"]["dataloggers"][0]["ts"], "2026-01-02T03:04:05Z",
        "{result}"
    );
    let (status, body) = post(
        &service,
        "/api/parsers/relay_controller_v1/test",
        json!({"topic": "relayctl/ctl-1/relay/2", "payload": {"state": "on"},
               "user_properties": {"ts": 5}}),
    )
    .await;
    assert_field_error(status, &body, "user_properties.ts");

    std::fs::write(parsers_dir.join("broken.json"), "{ not json").expect("write broken parser");
    let (status, body) = post(&service, "/api/parsers/reload", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "parser_load_failed");
    assert!(body["error"]["details"][0]
        .as_str()
        .expect("detail")
        .contains("broken.json"));
    let (_, still) = get(&service, "/api/parsers").await;
    assert_eq!(still, list, "the registry in force is unchanged");
}

/// Messages through the real broker: devices, readings, discovered topics, both logs, replay,
/// health and metrics, all as the API reports them.
#[tokio::test]
async fn ingested_data_is_served_and_failed_payloads_can_be_replayed() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let (site_id, prefix) = create_site(&service, true).await;
    let topic_id = add_topic(
        &service,
        site_id,
        &format!("{prefix}/{{gateway}}/{{datalogger}}"),
        "datalogger_readings_v1",
    )
    .await;
    wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;
    let publisher = Publisher::connect().await;
    // The client subscribes right after connecting; wait until the broker granted it.
    common::wait_for_granted_via_api(&service, site_id).await;

    let readings_topic = format!("{prefix}/gw-1/dl-1");
    for (ts, value) in [
        ("2024-05-01T12:00:00Z", 20.5),
        ("2024-05-01T12:01:00Z", 21.0),
    ] {
        publisher
            .publish(
                &readings_topic,
                json!({"ts": ts, "sensors": [{"name": "temp", "value": value, "unit": "C"}]})
                    .to_string(),
            )
            .await;
    }
    let devices = eventually(Duration::from_secs(20), "two readings stored", || async {
        let (_, devices) = get(&service, &format!("/api/sites/{site_id}/devices")).await;
        (devices[0]["dataloggers"][0]["sensors"][0]["last_value"] == 21.0).then_some(devices)
    })
    .await;
    let gateway = &devices[0];
    assert_eq!(
        keys(gateway),
        key_set(&[
            "id",
            "identifier",
            "name",
            "last_seen",
            "is_online",
            "metadata",
            "dataloggers"
        ])
    );
    assert_eq!(gateway["identifier"], "gw-1");
    let datalogger = &gateway["dataloggers"][0];
    assert_eq!(
        keys(datalogger),
        key_set(&[
            "id",
            "identifier",
            "last_seen",
            "is_online",
            "metadata",
            "sensors"
        ])
    );
    assert_eq!(datalogger["identifier"], "dl-1");
    let sensor = &datalogger["sensors"][0];
    assert_eq!(
        keys(sensor),
        key_set(&["id", "name", "unit", "last_value", "last_reading_at"])
    );
    assert_eq!(sensor["unit"], "C");
    let sensor_id = sensor["id"].as_i64().expect("sensor id");

    let (status, readings) = get(&service, &format!("/api/sensors/{sensor_id}/readings")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(readings.as_array().expect("array").len(), 2);
    assert_eq!(keys(&readings[0]), key_set(&["ts", "value"]));
    assert_eq!(readings[0]["value"], 21.0, "newest first");
    assert_eq!(readings[1]["value"], 20.5);
    let (_, later) = get(
        &service,
        &format!("/api/sensors/{sensor_id}/readings?from=2024-05-01T12:00:30Z"),
    )
    .await;
    assert_eq!(later.as_array().expect("array").len(), 1);
    assert_eq!(later[0]["value"], 21.0);
    let (_, earlier) = get(
        &service,
        &format!("/api/sensors/{sensor_id}/readings?to=2024-05-01T14:00:30%2B02:00"),
    )
    .await;
    assert_eq!(earlier.as_array().expect("array").len(), 1);
    assert_eq!(earlier[0]["value"], 20.5);
    let (_, one) = get(
        &service,
        &format!("/api/sensors/{sensor_id}/readings?limit=1"),
    )
    .await;
    assert_eq!(one.as_array().expect("array").len(), 1);
    let (status, body) = get(
        &service,
        &format!("/api/sensors/{sensor_id}/readings?from=yesterday"),
    )
    .await;
    assert_field_error(status, &body, "from");

    // A payload the parser rejects, one that is not even text, and one meant for another parser.
    publisher
        .publish(
            &format!("{prefix}/gw-1/dl-2"),
            json!({"sensors": "nope"}).to_string(),
        )
        .await;
    publisher
        .publish(
            &format!("{prefix}/gw-1/dl-3"),
            json!({"temp": 5.5}).to_string(),
        )
        .await;
    publisher
        .publish(&format!("{prefix}/gw-1/dl-4"), vec![0xff, 0xfe, 0xfd])
        .await;
    let logs = eventually(
        Duration::from_secs(20),
        "three parsing-log rows",
        || async {
            let (_, logs) = get(
                &service,
                &format!("/api/mqtt/parsing-logs?site_id={site_id}"),
            )
            .await;
            (logs.as_array().map(Vec::len) == Some(3)).then_some(logs)
        },
    )
    .await;
    assert_eq!(
        keys(&logs[0]),
        key_set(&[
            "id",
            "site_id",
            "topic",
            "parser",
            "error",
            "error_position",
            "payload",
            "payload_encoding",
            "created_at",
            "replayed_at",
            "received_at",
            "retained",
        ])
    );
    // Newest first by creation time (several writers may store rows side by side, so ids
    // alone need not follow the clock).
    let created: Vec<_> = logs
        .as_array()
        .expect("array")
        .iter()
        .map(|row| time(&row["created_at"]))
        .collect();
    assert!(
        created.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {created:?}"
    );
    let binary = logs
        .as_array()
        .expect("array")
        .iter()
        .find(|row| row["topic"] == format!("{prefix}/gw-1/dl-4"))
        .expect("binary row");
    assert_eq!(binary["payload_encoding"], "base64");
    assert_eq!(binary["payload"], "//79");
    let flat = logs
        .as_array()
        .expect("array")
        .iter()
        .find(|row| row["topic"] == format!("{prefix}/gw-1/dl-3"))
        .expect("flat row");
    assert_eq!(flat["payload_encoding"], "utf8");
    assert_eq!(flat["payload"], r#"{"temp":5.5}"#);
    assert_eq!(flat["parser"], "datalogger_readings_v1");
    let (_, limited) = get(
        &service,
        &format!("/api/mqtt/parsing-logs?site_id={site_id}&limit=1"),
    )
    .await;
    assert_eq!(limited.as_array().expect("array").len(), 1);

    // Replay fails while the pattern still names the wrong parser, and stores once it is fixed.
    let flat_id = flat["id"].as_i64().expect("id");
    let (status, outcome) = post(
        &service,
        &format!("/api/mqtt/parsing-logs/{flat_id}/replay"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(keys(&outcome), key_set(&["id", "ok", "error", "output"]));
    assert_eq!(outcome["ok"], false);
    assert!(outcome["error"].is_string());
    let (status, _) = patch(
        &service,
        &format!("/api/mqtt/topics/{topic_id}"),
        json!({"parser": "flat_telemetry"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, outcome) = post(
        &service,
        &format!("/api/mqtt/parsing-logs/{flat_id}/replay"),
        json!({}),
    )
    .await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(outcome["output"]["dataloggers"][0]["identifier"], "dl-3");
    let (_, logs) = get(
        &service,
        &format!("/api/mqtt/parsing-logs?site_id={site_id}"),
    )
    .await;
    let replayed = logs
        .as_array()
        .expect("array")
        .iter()
        .find(|row| row["id"] == flat_id)
        .expect("row");
    assert!(replayed["replayed_at"].is_string());
    let (_, devices) = get(&service, &format!("/api/sites/{site_id}/devices")).await;
    assert!(devices[0]["dataloggers"]
        .as_array()
        .expect("array")
        .iter()
        .any(|datalogger| datalogger["identifier"] == "dl-3"));
    let (status, _) = post(&service, "/api/mqtt/parsing-logs/999999/replay", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, discovered) = get(
        &service,
        &format!("/api/mqtt/discovered-topics?site_id={site_id}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&discovered[0]),
        key_set(&[
            "id",
            "site_id",
            "topic",
            "message_count",
            "first_seen",
            "last_seen",
            "is_processable",
            "mqtt_topic_id",
            "last_payload",
        ])
    );
    let last_seen: Vec<_> = discovered
        .as_array()
        .expect("array")
        .iter()
        .map(|row| time(&row["last_seen"]))
        .collect();
    assert!(
        last_seen.windows(2).all(|pair| pair[0] >= pair[1]),
        "{last_seen:?}"
    );
    let readings_row = discovered
        .as_array()
        .expect("array")
        .iter()
        .find(|row| row["topic"] == readings_topic)
        .expect("readings topic discovered");
    assert_eq!(readings_row["message_count"], 2);
    assert_eq!(readings_row["is_processable"], true);
    assert_eq!(readings_row["mqtt_topic_id"], topic_id);
    let (_, page) = get(
        &service,
        &format!("/api/mqtt/discovered-topics?site_id={site_id}&limit=2&offset=1"),
    )
    .await;
    assert_eq!(page.as_array().expect("array").len(), 2);
    let (_, none) = get(&service, "/api/mqtt/discovered-topics?site_id=999999").await;
    assert_eq!(none, json!([]));

    let (status, connection_logs) = get(
        &service,
        &format!("/api/mqtt/connection-logs?site_id={site_id}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = connection_logs.as_array().expect("array");
    assert!(!rows.is_empty());
    assert_eq!(
        keys(&rows[0]),
        key_set(&["id", "site_id", "event", "message", "created_at"])
    );
    let created: Vec<_> = rows.iter().map(|row| time(&row["created_at"])).collect();
    assert!(
        created.windows(2).all(|pair| pair[0] >= pair[1]),
        "{created:?}"
    );

    let (status, health) = get(&service, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&health),
        key_set(&[
            "status",
            "database",
            "connections",
            "messages_processed",
            "errors_count",
            "last_message_time",
            "jobs",
            "instance"
        ])
    );
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], "ok");
    assert_eq!(health["connections"][0]["site_id"], site_id);
    assert_eq!(health["connections"][0]["status"], "connected");
    assert!(health["connections"][0]["connection_id"].is_i64());
    assert!(health["messages_processed"].as_u64().expect("count") >= 2);
    assert!(health["errors_count"].as_u64().expect("count") >= 3);
    assert!(health["last_message_time"].is_string());

    // A stopped connection makes the service degraded until it is back.
    let (status, _) = patch(
        &service,
        &format!("/api/mqtt/connection/{site_id}/"),
        json!({"port": common::free_port()}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(Duration::from_secs(20), "health degraded", || async {
        let (_, health) = get(&service, "/health").await;
        (health["status"] == "degraded").then_some(())
    })
    .await;
}

#[tokio::test]
async fn health_metrics_and_the_page_are_served() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let client = reqwest::Client::new();

    let response = client
        .get(service.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status(), StatusCode::OK);
    let health: Value = response.json().await.expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], json!([]));
    assert_eq!(health["last_message_time"], Value::Null);

    let response = client
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("header")
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.expect("text");
    assert!(text.contains("mqtt_supervisor_websocket_clients"), "{text}");

    for (path, content_type, needle) in [
        ("/", "text/html", "<!doctype html>"),
        ("/app.js", "text/javascript", "WebSocket"),
        ("/style.css", "text/css", "{"),
    ] {
        let response = client.get(service.url(path)).send().await.expect("static");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .expect("header")
            .starts_with(content_type));
        assert!(
            response.text().await.expect("text").contains(needle),
            "{path}"
        );
    }
}

/// The parsing log as a worklist: each filter on its own and combined, where each error points
/// in its payload, and replaying every row a filter selects, bounded per call.
#[tokio::test]
async fn parsing_logs_are_filtered_and_replayed_in_bulk() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let (site_id, prefix) = create_site(&service, true).await;
    let readings_topic_id = add_topic(
        &service,
        site_id,
        &format!("{prefix}/{{gateway}}/{{datalogger}}"),
        "datalogger_readings_v1",
    )
    .await;
    add_topic(
        &service,
        site_id,
        &format!("{prefix}/flat/{{gateway}}/{{datalogger}}"),
        "flat_telemetry",
    )
    .await;
    wait_for_status(&service, site_id, "connected", Duration::from_secs(20)).await;
    common::wait_for_granted_via_api(&service, site_id).await;
    let publisher = Publisher::connect().await;
    let logs_of_site = format!("/api/mqtt/parsing-logs?site_id={site_id}");
    // One at a time, so that each row is newer than the one before.
    let published: [(&str, Vec<u8>); 4] = [
        (
            "gw-1/dl-1",
            json!({"sensors": "nope"}).to_string().into_bytes(),
        ),
        ("gw-2/dl-1", b"{truncated".to_vec()),
        ("gw-1/dl-2", json!({"temp": 5.5}).to_string().into_bytes()),
        (
            "flat/gw-3/dl-1",
            json!({"ts": "yesterday", "t": 1}).to_string().into_bytes(),
        ),
    ];
    for (count, (topic, payload)) in published.iter().enumerate() {
        publisher
            .publish(&format!("{prefix}/{topic}"), payload.clone())
            .await;
        eventually(Duration::from_secs(20), "the parsing-log row", || async {
            let (_, logs) = get(&service, &logs_of_site).await;
            (logs.as_array().map(Vec::len) == Some(count + 1)).then_some(())
        })
        .await;
    }
    let (_, all) = get(&service, &logs_of_site).await;
    let all = all.as_array().expect("rows").clone();
    let row = |topic: &str| {
        all.iter()
            .find(|row| row["topic"] == format!("{prefix}/{topic}"))
            .unwrap_or_else(|| panic!("a row for {topic}"))
            .clone()
    };
    let topics = |rows: &Value| -> Vec<String> {
        rows.as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                let topic = row["topic"].as_str().expect("topic");
                topic[prefix.len() + 1..].to_string()
            })
            .collect()
    };
    let list = |query: String| {
        let service = &service;
        let path = format!("{logs_of_site}&{query}");
        async move {
            let (status, rows) = get(service, &path).await;
            assert_eq!(status, StatusCode::OK, "{query}: {rows}");
            rows
        }
    };

    // Where each error points.
    assert_eq!(
        row("gw-2/dl-1")["error_position"],
        json!({"line": 1, "column": 2})
    );
    assert_eq!(
        row("gw-1/dl-1")["error_position"],
        json!({"pointer": "/sensors"})
    );
    assert_eq!(
        row("flat/gw-3/dl-1")["error_position"],
        json!({"pointer": "/ts"})
    );

    // Each filter.
    assert_eq!(
        topics(&list("parser=flat_telemetry".into()).await),
        ["flat/gw-3/dl-1"]
    );
    assert_eq!(
        topics(&list("parser=datalogger_readings_v1".into()).await),
        ["gw-1/dl-2", "gw-2/dl-1", "gw-1/dl-1"]
    );
    assert_eq!(
        topics(&list("topic=/gw-1/".into()).await),
        ["gw-1/dl-2", "gw-1/dl-1"]
    );
    assert_eq!(
        topics(&list(format!("topic={prefix}/gw-2/dl-1")).await),
        ["gw-2/dl-1"]
    );
    // Case-sensitive, and no character is a wildcard; NUL matches nothing (and is no error).
    for query in ["topic=/GW-1/", "topic=%25", "topic=_", "topic=a%00b"] {
        assert_eq!(
            topics(&list(query.into()).await),
            Vec::<String>::new(),
            "{query}"
        );
    }
    let created = |topic: &str| row(topic)["created_at"].as_str().expect("time").to_string();
    let encoded = |time: String| time.replace('+', "%2B");
    assert_eq!(
        topics(&list(format!("from={}", encoded(created("gw-1/dl-2")))).await),
        ["flat/gw-3/dl-1", "gw-1/dl-2"],
        "from is inclusive"
    );
    assert_eq!(
        topics(&list(format!("to={}", encoded(created("gw-2/dl-1")))).await),
        ["gw-2/dl-1", "gw-1/dl-1"],
        "to is inclusive"
    );
    assert_eq!(
        topics(&list("to=2000-01-01T00:00:00Z".into()).await),
        Vec::<String>::new()
    );
    assert_eq!(
        topics(&list("replayed=true".into()).await),
        Vec::<String>::new()
    );
    assert_eq!(
        list("replayed=false".into()).await.as_array().map(Vec::len),
        Some(4)
    );
    // Combined, and paged.
    assert_eq!(
        topics(
            &list(format!(
                "parser=datalogger_readings_v1&topic=/dl-1&to={}",
                encoded(created("gw-1/dl-2"))
            ))
            .await
        ),
        ["gw-2/dl-1", "gw-1/dl-1"]
    );
    assert_eq!(
        topics(&list("parser=datalogger_readings_v1&limit=1&offset=1".into()).await),
        ["gw-2/dl-1"]
    );
    for (query, field) in [
        ("parser=", "parser"),
        ("topic=", "topic"),
        ("replayed=yes", "replayed"),
        ("from=yesterday", "from"),
        ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
    ] {
        let (status, body) = get(&service, &format!("{logs_of_site}&{query}")).await;
        assert_field_error(status, &body, field);
        let (status, body) = post(
            &service,
            &format!("/api/mqtt/parsing-logs/replay?site_id={site_id}&{query}"),
            json!({}),
        )
        .await;
        assert_field_error(status, &body, field);
    }
    let (status, body) = post(
        &service,
        &format!("/api/mqtt/parsing-logs/replay?site_id={site_id}&limit=0"),
        json!({}),
    )
    .await;
    assert_field_error(status, &body, "limit");

    // Replay all, bounded: two rows of the parser, still failing, more to go.
    let replay_all = |query: String| {
        let service = &service;
        async move {
            let (status, body) = post(
                service,
                &format!("/api/mqtt/parsing-logs/replay?site_id={site_id}&{query}"),
                json!({}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let batch = replay_all("parser=datalogger_readings_v1&replayed=false&limit=2".into()).await;
    assert_eq!(
        keys(&batch),
        key_set(&[
            "site_id",
            "replayed",
            "parsed",
            "still_failing",
            "more",
            "outcomes"
        ])
    );
    assert_eq!(batch["site_id"], site_id);
    assert_eq!(
        (
            &batch["replayed"],
            &batch["parsed"],
            &batch["still_failing"],
            &batch["more"]
        ),
        (&json!(2), &json!(0), &json!(2), &json!(true)),
        "{batch}"
    );
    let ids: Vec<&Value> = batch["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|outcome| &outcome["id"])
        .collect();
    assert_eq!(ids, [&row("gw-1/dl-2")["id"], &row("gw-2/dl-1")["id"]]);
    assert!(batch["outcomes"][0]["error"].is_string(), "{batch}");
    assert_eq!(
        topics(&list("replayed=true".into()).await),
        Vec::<String>::new()
    );

    // Once the pattern names the right parser, the same filter stores what now parses.
    let (status, _) = patch(
        &service,
        &format!("/api/mqtt/topics/{readings_topic_id}"),
        json!({"parser": "flat_telemetry"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let batch = replay_all("topic=/gw-1/&replayed=false".into()).await;
    assert_eq!(
        (
            &batch["replayed"],
            &batch["parsed"],
            &batch["still_failing"],
            &batch["more"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(false)),
        "{batch}"
    );
    let parsed = &batch["outcomes"][0];
    assert_eq!(parsed["id"], row("gw-1/dl-2")["id"]);
    assert_eq!(parsed["ok"], true);
    assert_eq!(parsed["output"]["dataloggers"][0]["identifier"], "dl-2");
    assert_eq!(batch["outcomes"][1]["ok"], false);
    assert_eq!(topics(&list("replayed=true".into()).await), ["gw-1/dl-2"]);
    assert_eq!(
        topics(&list("replayed=false".into()).await),
        ["flat/gw-3/dl-1", "gw-2/dl-1", "gw-1/dl-1"]
    );
    let (_, devices) = get(&service, &format!("/api/sites/{site_id}/devices")).await;
    assert!(devices.as_array().expect("gateways").iter().any(|gateway| {
        gateway["dataloggers"]
            .as_array()
            .is_some_and(|dataloggers| dataloggers.iter().any(|d| d["identifier"] == "dl-2"))
    }));
    // Nothing selected: nothing replayed; no site given: every site's rows.
    let none = replay_all("topic=no-such-topic".into()).await;
    assert_eq!(
        (&none["replayed"], &none["more"]),
        (&json!(0), &json!(false))
    );
    let (status, everywhere) = post(
        &service,
        &format!("/api/mqtt/parsing-logs/replay?topic={prefix}/gw-1/dl-2"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{everywhere}");
    assert!(everywhere.get("site_id").is_none(), "{everywhere}");
    assert_eq!(
        everywhere["parsed"], 1,
        "a replayed row replays again: {everywhere}"
    );
}
