//! Who may call what, and how the API fails: the token on every route (read and write, with and
//! without `public_read`), error bodies for each error class, the body size limit, CORS, and the
//! OpenAPI document against the router.

mod common;

use std::collections::BTreeSet;

use common::{config_args, Service, ServiceOptions, TestDatabase};
use mqtt_supervisor::api::{route_table, Access};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A concrete path for a route template: ids that exist nowhere, a parser that does.
fn concrete(path: &str) -> String {
    path.replace("{name}", "flat_telemetry")
        .replace("{site_id}", "999999")
        .replace("{id}", "999999")
}

async fn error_code(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn bare_client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn every_route_but_the_public_ones_needs_the_token() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let anonymous = bare_client();
    for (method, path, access) in route_table() {
        let url = service.url(&concrete(path));
        let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let without = anonymous
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        let wrong = anonymous
            .request(method.clone(), &url)
            .bearer_auth("not-the-token")
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        let right = service
            .client()
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        if access == Access::Public {
            assert_ne!(
                without.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            continue;
        }
        assert!(
            without.headers().contains_key("www-authenticate"),
            "{method} {path}"
        );
        let (status, body) = error_code(without).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        let (status, body) = error_code(wrong).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
        assert_eq!(body["error"]["message"], "the token is not valid");
        assert_ne!(
            right.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with the token"
        );
    }

    // The socket takes the token from the query too, checked before any upgrade.
    let response = anonymous
        .get(service.url("/ws?token=wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = anonymous
        .get(service.url("/ws?token=test-admin-token-0123456789"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "authorised, but not an upgrade"
    );
    // A REST route does not take the token from the query.
    let response = anonymous
        .get(service.url("/api/sites?token=test-admin-token-0123456789"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The scheme is case-insensitive.
    let response = anonymous
        .get(service.url("/api/sites"))
        .header("Authorization", "bearer test-admin-token-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn public_read_opens_reads_but_not_mutations() {
    let database = TestDatabase::new().await;
    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(database.directory.path(), "[api]\npublic_read = true\n"),
            ..ServiceOptions::default()
        },
    );
    let anonymous = bare_client();
    for (method, path, access) in route_table() {
        let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let response = anonymous
            .request(method.clone(), service.url(&concrete(path)))
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        match access {
            Access::Admin => {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                )
            }
            Access::Public | Access::Read | Access::ReadSocket => {
                assert_ne!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                )
            }
        }
    }
}

const READ_TOKEN: &str = "test-read-token-0123456789";

#[tokio::test]
async fn the_read_token_reads_and_watches_but_changes_nothing() {
    let database = TestDatabase::new().await;
    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(
                database.directory.path(),
                &format!("[api]\nread_token = \"{READ_TOKEN}\"\n"),
            ),
            ..ServiceOptions::default()
        },
    );
    let reader = bare_client();
    for (method, path, access) in route_table() {
        let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let response = reader
            .request(method.clone(), service.url(&concrete(path)))
            .bearer_auth(READ_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        let (status, body) = error_code(response).await;
        match access {
            Access::Admin => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
                assert_eq!(body["error"]["code"], "forbidden", "{method} {path}");
            }
            Access::Public | Access::Read | Access::ReadSocket => {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path}");
            }
        }
    }
    // The page asks what its token may do.
    for (client, token, can_change) in [
        (
            reader.get(service.url("/api/me")).bearer_auth(READ_TOKEN),
            "read",
            false,
        ),
        (service.client().get(service.url("/api/me")), "admin", true),
    ] {
        let me: Value = client.send().await.expect("me").json().await.expect("json");
        assert_eq!(me, json!({"token": token, "can_change": can_change}));
    }
    // The socket opens with the read token and streams.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(service.ws_url(&format!("/ws?token={READ_TOKEN}")))
            .await
            .expect("the socket opens with the read token");
    use futures_util::{SinkExt, StreamExt};
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"type": "ping"}"#.into(),
        ))
        .await
        .expect("ping");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("an answer")
        .expect("open")
        .expect("a frame");
    assert!(
        answer.to_text().unwrap_or_default().contains("pong"),
        "{answer:?}"
    );
    // What the read token tried is in the audit log as refused, and nothing as a change.
    let admin_routes = route_table()
        .into_iter()
        .filter(|(_, _, access)| *access == Access::Admin)
        .count();
    let audit: Value = reader
        .get(service.url("/api/audit-log?limit=1000"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("audit log")
        .json()
        .await
        .expect("json");
    let entries = audit.as_array().expect("array");
    assert_eq!(entries.len(), admin_routes, "{audit}");
    for entry in entries {
        assert_eq!(entry["kind"], "refused", "{entry}");
        assert_eq!(entry["token"], "read", "{entry}");
        assert!(
            entry["summary"].as_str().unwrap_or("").contains("403"),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn every_accepted_change_is_in_the_audit_log_without_secrets() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let client = service.client();
    let site: Value = client
        .post(service.url("/api/sites"))
        .json(&json!({"name": "Audited", "slug": "audited"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("site");
    let site_id = site["id"].as_i64().expect("id");
    let response = client
        .post(service.url("/api/mqtt/connections"))
        .json(
            &json!({"site_id": site_id, "host": "127.0.0.1", "port": 1883,
                      "password": "hunter2-secret"}),
        )
        .send()
        .await
        .expect("create connection");
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = client
        .patch(service.url(&format!("/api/mqtt/connection/{site_id}/")))
        .json(&json!({"keepalive_secs": 20}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // Refused changes are not changes.
    let response = client
        .post(service.url("/api/sites"))
        .json(&json!({"name": "No slug"}))
        .send()
        .await
        .expect("bad create");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = client
        .get(service.url("/api/audit-log"))
        .send()
        .await
        .expect("audit log");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    assert!(
        !text.contains("hunter2-secret"),
        "a secret in the audit log"
    );
    assert!(
        !text.contains("test-admin-token-0123456789"),
        "a token in the audit log"
    );
    let entries: Value = serde_json::from_str(&text).expect("json");
    let lines: Vec<(String, String, Option<i64>, String)> = entries
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            assert_eq!(entry["token"], "admin", "{entry}");
            assert_eq!(entry["kind"], "change", "{entry}");
            (
                entry["method"].as_str().unwrap_or_default().to_string(),
                entry["path"].as_str().unwrap_or_default().to_string(),
                entry["site_id"].as_i64(),
                entry["summary"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "PATCH".into(),
                format!("/api/mqtt/connection/{site_id}/"),
                Some(site_id),
                "changed /api/mqtt/connection/{site_id}/: keepalive_secs".into()
            ),
            (
                "POST".into(),
                "/api/mqtt/connections".into(),
                Some(site_id),
                "posted to /api/mqtt/connections: host, password, port, site_id".into()
            ),
            (
                "POST".into(),
                "/api/sites".into(),
                Some(site_id),
                "posted to /api/sites: name, slug".into()
            ),
        ],
        "newest first"
    );
    // One site's changes.
    let other: Value = client
        .get(service.url(&format!("/api/audit-log?site_id={}", site_id + 1)))
        .send()
        .await
        .expect("audit log")
        .json()
        .await
        .expect("json");
    assert_eq!(other, json!([]));

    // An attempt without a valid token is kept too, as refused.
    let response = bare_client()
        .delete(service.url(&format!("/api/sites/{site_id}")))
        .bearer_auth("a-guess")
        .send()
        .await
        .expect("anonymous delete");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let newest: Value = client
        .get(service.url("/api/audit-log?limit=1"))
        .send()
        .await
        .expect("audit log")
        .json()
        .await
        .expect("json");
    assert_eq!(newest[0]["kind"], "refused", "{newest}");
    assert_eq!(newest[0]["token"], "none", "{newest}");
    assert_eq!(newest[0]["method"], "DELETE", "{newest}");
    assert!(!newest.to_string().contains("a-guess"), "{newest}");
}

#[tokio::test]
async fn each_error_class_has_its_status_and_code() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let client = service.client();

    // Not JSON at all: 400.
    let response = client
        .post(service.url("/api/sites"))
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("request");
    let (status, body) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_json");

    // JSON of the wrong shape: 422 naming the field.
    for (payload, field) in [
        (json!({"slug": "a"}), "name"),
        (json!({"name": 5, "slug": "a"}), "name"),
        (
            json!({"name": "a", "slug": "a", "is_active": "yes"}),
            "is_active",
        ),
        (json!(["name", "slug"]), "body"),
    ] {
        let response = client
            .post(service.url("/api/sites"))
            .json(&payload)
            .send()
            .await
            .expect("request");
        let (status, body) = error_code(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{payload}");
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["field"], field, "{payload}: {body}");
    }
    let response = client
        .post(service.url("/api/sites"))
        .send()
        .await
        .expect("request");
    let (status, body) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "body");

    // Not JSON by declaration.
    let response = client
        .post(service.url("/api/sites"))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("request");
    let (status, body) = error_code(response).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    // Unknown ids, ids that are not numbers, unknown paths: 404 with the JSON body.
    for path in [
        "/api/sites/999999",
        "/api/sites/abc",
        "/api/sites/999999/devices",
        "/api/mqtt/topics/999999",
        "/api/mqtt/connection/999999/",
        "/api/sensors/999999/readings",
        "/api/no/such/thing",
    ] {
        let response = client.get(service.url(path)).send().await.expect("request");
        let (status, body) = error_code(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let response = client
        .post(service.url("/api/mqtt/parsing-logs/999999/replay"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A method the path does not have.
    let response = client
        .put(service.url("/api/sites"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    let (status, body) = error_code(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");

    // Query values.
    for (path, field) in [
        ("/api/sites?limit=abc", "limit"),
        ("/api/sites?limit=0", "limit"),
        ("/api/mqtt/topics?offset=-1", "offset"),
        ("/api/mqtt/connections?site_id=north", "site_id"),
        ("/api/mqtt/connection-logs?limit=-5", "limit"),
        ("/api/mqtt/parsing-logs?site_id=1.5", "site_id"),
        ("/api/mqtt/discovered-topics?limit=x", "limit"),
        ("/api/sensors/1/readings?from=yesterday", "from"),
        ("/api/sensors/1/readings?to=2024-13-01T00:00:00Z", "to"),
    ] {
        let response = client.get(service.url(path)).send().await.expect("request");
        let (status, body) = error_code(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let database = TestDatabase::new().await;
    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(
                database.directory.path(),
                "[http]\nbody_limit_bytes = 1024\n",
            ),
            ..ServiceOptions::default()
        },
    );
    let client = service.client();
    let big = "x".repeat(4096);
    for (path, method) in [
        ("/api/sites", Method::POST),
        ("/api/mqtt/topics", Method::POST),
        ("/api/mqtt/connection/1/", Method::PATCH),
    ] {
        let response = client
            .request(method, service.url(path))
            .json(&json!({"name": big, "slug": "big"}))
            .send()
            .await
            .expect("request");
        let (status, body) = error_code(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
    let response = client
        .post(service.url("/api/sites"))
        .json(&json!({"name": "small", "slug": "small"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn preflight(service: &Service, origin: &str) -> reqwest::Response {
    bare_client()
        .request(Method::OPTIONS, service.url("/api/sites"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let response = preflight(&service, "https://ops.example").await;
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
    drop(service);

    let service = Service::start_with(
        &database,
        ServiceOptions {
            args: config_args(
                database.directory.path(),
                "[http]\ncors_origins = [\"https://ops.example\"]\n",
            ),
            ..ServiceOptions::default()
        },
    );
    let response = preflight(&service, "https://ops.example").await;
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://ops.example"
    );
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .expect("header")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let response = preflight(&service, "https://elsewhere.example").await;
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
    // Actual requests carry the header too (and still need the token).
    let response = service
        .client()
        .get(service.url("/api/sites"))
        .header("Origin", "https://ops.example")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://ops.example"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_router() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let response = service
        .client()
        .get(service.url("/api/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("json");
    assert!(document["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3."));

    let mut described = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            described.insert((method.to_ascii_uppercase(), path.clone()));
            let public = operation["security"] == json!([]);
            let (_, _, access) = route_table()
                .into_iter()
                .find(|(route_method, route_path, _)| {
                    route_method.as_str().eq_ignore_ascii_case(method) && route_path == path
                })
                .unwrap_or_else(|| panic!("{method} {path} is described but not routed"));
            assert_eq!(public, access == Access::Public, "{method} {path} security");
            // The document is generated from the route table: what the access check answers is
            // listed wherever it applies.
            assert_eq!(
                operation["responses"].get("401").is_some(),
                access != Access::Public,
                "{method} {path} lists 401"
            );
        }
    }
    let routed: BTreeSet<(String, String)> = route_table()
        .into_iter()
        .map(|(method, path, _)| (method.as_str().to_string(), path.to_string()))
        .collect();
    assert_eq!(described, routed);

    // And every described path is really served: no route-level 404 or 405.
    for (method, path) in &described {
        let response = service
            .client()
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                service.url(&concrete(path)),
            )
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status() == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no endpoint"),
                "{method} {path}: {message}"
            );
        }
    }
}
