//! Real responses against the served OpenAPI document: every read endpoint, a representative set
//! of mutations and each class of error, called on the running binary with data ingested
//! through the real broker, and each reply checked against what the document states for its
//! path, method and status (the status must be documented; a JSON body must satisfy the schema,
//! formats included; an empty reply must be empty).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{broker, eventually, unique_name, Publisher, Service, TestDatabase};
use jsonschema::Draft;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The served document and the operations a test has called.
struct Contract {
    document: Value,
    called: BTreeSet<(String, String)>,
}

impl Contract {
    async fn fetch(service: &Service) -> Contract {
        let response = service
            .client()
            .get(service.url("/api/openapi.json"))
            .send()
            .await
            .expect("fetch the document");
        assert_eq!(response.status(), StatusCode::OK);
        Contract {
            document: response.json().await.expect("the document is JSON"),
            called: BTreeSet::new(),
        }
    }

    /// Sends the request, checks the reply against the document and returns it.
    async fn call(
        &mut self,
        request: reqwest::RequestBuilder,
        method: Method,
        template: &str,
    ) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.expect("body");
        let operation = &self.document["paths"][template][method.as_str().to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not in the document"
        );
        self.called
            .insert((method.as_str().to_string(), template.to_string()));
        let reply = &operation["responses"][status.as_str()];
        assert!(
            reply.is_object(),
            "{method} {template} answered {status}, which the document does not list: {text}"
        );
        let Some(content) = reply.get("content").and_then(Value::as_object) else {
            assert!(
                text.is_empty(),
                "{method} {template} {status}: documented without a body, got {text}"
            );
            return (status, Value::Null);
        };
        let (media_type, media) = content.iter().next().expect("one media type");
        assert!(
            content_type.starts_with(media_type.as_str()),
            "{method} {template} {status}: documented as {media_type}, sent as {content_type}"
        );
        if media_type != "application/json" {
            return (status, Value::String(text));
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {template} {status}: not JSON: {text}"));
        if let Some(schema) = media.get("schema") {
            self.validate(schema, &body, &format!("{method} {template} {status}"));
        }
        (status, body)
    }

    /// Validates `body` against `schema` with the document's components beside it, so that
    /// references resolve, as JSON Schema 2020-12 (OpenAPI 3.1's dialect) with formats checked.
    fn validate(&self, schema: &Value, body: &Value, what: &str) {
        let mut root = schema.clone();
        if let Some(object) = root.as_object_mut() {
            object.insert("components".into(), self.document["components"].clone());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|error| {
                panic!("{what}: the documented schema does not compile: {error}")
            });
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the document:\n{}\n{body:#}",
            errors.join("\n")
        );
    }

    /// Every operation of the document with `method`, less those listed.
    fn operations(&self, method: &str, except: &[&str]) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in self.document["paths"].as_object().expect("paths") {
            if item.get(method.to_ascii_lowercase()).is_some() && !except.contains(&path.as_str()) {
                found.insert((method.to_string(), path.clone()));
            }
        }
        found
    }
}

struct Client<'a> {
    service: &'a Service,
    contract: Contract,
}

impl Client<'_> {
    async fn send(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .service
            .client()
            .request(method.clone(), self.service.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.contract.call(request, method, template).await
    }

    async fn get(&mut self, template: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, template, path, None).await
    }

    async fn expect(
        &mut self,
        status: StatusCode,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, value) = self.send(method.clone(), template, path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }
}

/// Ingests through the real broker, then calls every read endpoint, the mutations of every
/// resource and each class of error, checking every reply against the document.
#[tokio::test]
async fn every_reply_matches_the_document() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    let contract = Contract::fetch(&service).await;
    let mut api = Client {
        service: &service,
        contract,
    };
    let created = StatusCode::CREATED;
    let ok = StatusCode::OK;

    // Sites, a connection to the test broker and patterns.
    let slug = unique_name("contract").replace('_', "-");
    let prefix = format!("test/{slug}");
    let site = api
        .expect(
            created,
            Method::POST,
            "/api/sites",
            "/api/sites",
            Some(json!({"name": " Contract plant ", "slug": slug})),
        )
        .await;
    assert_eq!(site["name"], "Contract plant", "stored trimmed");
    let site_id = site["id"].as_i64().expect("id");
    let spare = api
        .expect(
            created,
            Method::POST,
            "/api/sites",
            "/api/sites",
            Some(json!({"name": "Spare", "slug": format!("{slug}-spare"), "is_active": false})),
        )
        .await;
    let spare_id = spare["id"].as_i64().expect("id");
    let topic = api
        .expect(
            created,
            Method::POST,
            "/api/mqtt/topics",
            "/api/mqtt/topics",
            Some(json!({"site_id": site_id, "pattern": format!("{prefix}/{{gateway}}/{{datalogger}}"),
                        "parser": "datalogger_readings_v1"})),
        )
        .await;
    let topic_id = topic["id"].as_i64().expect("id");
    api.expect(
        created,
        Method::POST,
        "/api/mqtt/topics",
        "/api/mqtt/topics",
        Some(
            json!({"site_id": site_id, "pattern": format!("{prefix}/status/{{gateway}}"),
                    "parser": "gateway_status_v1", "qos": 0, "priority": 5, "is_active": true}),
        ),
    )
    .await;
    let (host, port) = broker();
    api.expect(
        created,
        Method::POST,
        "/api/mqtt/connections",
        "/api/mqtt/connections",
        Some(json!({"site_id": site_id, "host": host, "port": port,
                    "client_id": unique_name("contract"), "password": "secret", "is_active": true})),
    )
    .await;
    let connection_template = "/api/mqtt/connection/{site_id}/";
    let connection_path = format!("/api/mqtt/connection/{site_id}/");
    eventually(Duration::from_secs(20), "the connection to connect", || {
        let service = &service;
        let path = connection_path.clone();
        async move {
            let connection: Value = service
                .client()
                .get(service.url(&path))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (connection["status"] == "connected").then_some(())
        }
    })
    .await;
    common::wait_for_granted_via_api(&service, site_id).await;

    // Data through the broker: readings, a gateway status, payloads that fail.
    let publisher = Publisher::connect().await;
    for (ts, value) in [
        ("2024-05-01T12:00:00Z", 20.5),
        ("2024-05-01T12:01:00Z", 21.0),
    ] {
        publisher
            .publish(
                &format!("{prefix}/gw-1/dl-1"),
                json!({"ts": ts, "sensors": [{"name": "temp", "value": value, "unit": "C"}]})
                    .to_string(),
            )
            .await;
    }
    publisher
        .publish(
            &format!("{prefix}/status/gw-1"),
            json!({"status": "online", "ip": "10.0.0.7", "firmware": "1.2"}).to_string(),
        )
        .await;
    publisher
        .publish(
            &format!("{prefix}/gw-1/dl-2"),
            json!({"sensors": "nope"}).to_string(),
        )
        .await;
    publisher
        .publish(&format!("{prefix}/gw-1/dl-3"), vec![0xff, 0xfe])
        .await;
    let devices_path = format!("/api/sites/{site_id}/devices");
    eventually(
        Duration::from_secs(20),
        "readings and parsing errors",
        || {
            let service = &service;
            let devices_path = devices_path.clone();
            async move {
                let devices: Value = service
                    .client()
                    .get(service.url(&devices_path))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let logs: Value = service
                    .client()
                    .get(service.url(&format!("/api/mqtt/parsing-logs?site_id={site_id}")))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let stored = devices[0]["dataloggers"][0]["sensors"][0]["last_value"] == 21.0
                    && devices[0]["metadata"]["firmware"] == "1.2";
                (stored && logs.as_array().map(Vec::len) == Some(2)).then_some(())
            }
        },
    )
    .await;

    // Every read endpoint.
    for (template, path) in [
        ("/health", "/health".to_string()),
        ("/health/live", "/health/live".to_string()),
        ("/health/ready", "/health/ready".to_string()),
        ("/metrics", "/metrics".to_string()),
        ("/", "/".to_string()),
        ("/app.js", "/app.js".to_string()),
        ("/js/{file}", "/js/state.js".to_string()),
        ("/style.css", "/style.css".to_string()),
        ("/api/openapi.json", "/api/openapi.json".to_string()),
        ("/api/sites", "/api/sites".to_string()),
        ("/api/sites", "/api/sites?limit=1&offset=1".to_string()),
        ("/api/sites/{id}", format!("/api/sites/{site_id}")),
        ("/api/sites/{site_id}/devices", devices_path.clone()),
        (
            "/api/sites/{site_id}/device-events",
            format!("/api/sites/{site_id}/device-events"),
        ),
        (
            "/api/sites/{site_id}/device-events",
            format!("/api/sites/{site_id}/device-events?limit=1&offset=0"),
        ),
        (
            "/api/sites/{site_id}/devices",
            format!("/api/sites/{spare_id}/devices"),
        ),
        ("/api/mqtt/connections", "/api/mqtt/connections".to_string()),
        (
            "/api/mqtt/connections",
            format!("/api/mqtt/connections?site_id={site_id}"),
        ),
        (connection_template, connection_path.clone()),
        (
            "/api/mqtt/connection/{site_id}",
            format!("/api/mqtt/connection/{site_id}"),
        ),
        (
            "/api/mqtt/topics",
            format!("/api/mqtt/topics?site_id={site_id}"),
        ),
        (
            "/api/mqtt/topics/{id}",
            format!("/api/mqtt/topics/{topic_id}"),
        ),
        (
            "/api/mqtt/discovered-topics",
            format!("/api/mqtt/discovered-topics?site_id={site_id}&limit=50"),
        ),
        (
            "/api/mqtt/connection-logs",
            format!("/api/mqtt/connection-logs?site_id={site_id}"),
        ),
        (
            "/api/mqtt/parsing-logs",
            format!("/api/mqtt/parsing-logs?site_id={site_id}&limit=5"),
        ),
        (
            "/api/mqtt/parsing-logs",
            format!(
                "/api/mqtt/parsing-logs?site_id={site_id}&parser=datalogger_readings_v1\
                 &topic=gw-1&from=2024-05-01T12:00:00Z&to=2999-01-01T00:00:00%2B02:00\
                 &replayed=false&limit=5&offset=0"
            ),
        ),
        ("/api/parsers", "/api/parsers".to_string()),
        ("/api/instances", "/api/instances".to_string()),
        ("/api/me", "/api/me".to_string()),
        ("/api/audit-log", "/api/audit-log".to_string()),
        (
            "/api/audit-log",
            format!("/api/audit-log?site_id={site_id}&limit=2"),
        ),
    ] {
        let (status, body) = api.get(template, &path).await;
        assert_eq!(status, ok, "{path}: {body}");
    }
    let tried = api
        .expect(
            ok,
            Method::POST,
            "/api/mqtt/connections/test",
            "/api/mqtt/connections/test",
            Some(json!({"host": "127.0.0.1", "port": 1883})),
        )
        .await;
    assert!(tried["ok"].is_boolean(), "{tried}");
    let command = api
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            "/api/sites/{site_id}/commands",
            &format!("/api/sites/{site_id}/commands"),
            Some(json!({"topic": "contract/relay/set", "payload": {"state": "on"}, "qos": 0})),
        )
        .await;
    let (status, body) = api
        .get(
            "/api/commands/{id}",
            &format!("/api/commands/{}", command["id"]),
        )
        .await;
    assert_eq!(status, ok, "{body}");
    let (status, body) = api
        .get(
            "/api/sites/{site_id}/commands",
            &format!("/api/sites/{site_id}/commands?status=queued&limit=5"),
        )
        .await;
    assert_eq!(status, ok, "{body}");
    let (_, devices) = api.get("/api/sites/{site_id}/devices", &devices_path).await;
    let sensor_id = devices[0]["dataloggers"][0]["sensors"][0]["id"]
        .as_i64()
        .expect("sensor id");
    let readings = api
        .expect(
            ok,
            Method::GET,
            "/api/sensors/{id}/readings",
            &format!(
                "/api/sensors/{sensor_id}/readings?from=2024-05-01T11:00:00Z&to=2024-05-01T14:01:30%2B02:00&limit=10"
            ),
            None,
        )
        .await;
    assert_eq!(readings.as_array().map(Vec::len), Some(2), "{readings}");

    // Mutations of every kind.
    api.expect(
        ok,
        Method::PATCH,
        "/api/sites/{id}",
        &format!("/api/sites/{spare_id}"),
        Some(json!({"name": "Spare works", "is_active": true})),
    )
    .await;
    api.expect(
        ok,
        Method::PATCH,
        "/api/mqtt/topics/{id}",
        &format!("/api/mqtt/topics/{topic_id}"),
        Some(json!({"priority": 2, "qos": 1})),
    )
    .await;
    let changed = api
        .expect(
            StatusCode::ACCEPTED,
            Method::PATCH,
            connection_template,
            &connection_path,
            Some(json!({"username": "operator", "password": null, "keepalive_secs": 20})),
        )
        .await;
    assert_eq!(changed["has_password"], false);
    let result = api
        .expect(
            ok,
            Method::POST,
            "/api/parsers/{name}/test",
            "/api/parsers/datalogger_readings_v1/test",
            Some(
                json!({"topic": "plant/gw-1/dl-1", "pattern": "plant/{gateway}/{datalogger}",
                        "payload": {"sensors": [{"name": "t", "value": 1.5}]}}),
            ),
        )
        .await;
    assert_eq!(result["ok"], true, "{result}");
    let result = api
        .expect(
            ok,
            Method::POST,
            "/api/parsers/{name}/test",
            "/api/parsers/gateway_status_v1/test",
            Some(json!({"topic": "x", "payload": "{not json"})),
        )
        .await;
    assert_eq!(result["ok"], false, "{result}");
    api.expect(
        ok,
        Method::POST,
        "/api/parsers/reload",
        "/api/parsers/reload",
        None,
    )
    .await;
    let (_, logs) = api
        .get(
            "/api/mqtt/parsing-logs",
            &format!("/api/mqtt/parsing-logs?site_id={site_id}"),
        )
        .await;
    for row in logs.as_array().expect("rows") {
        let outcome = api
            .expect(
                ok,
                Method::POST,
                "/api/mqtt/parsing-logs/{id}/replay",
                &format!("/api/mqtt/parsing-logs/{}/replay", row["id"]),
                None,
            )
            .await;
        assert_eq!(outcome["ok"], false, "still fails: {outcome}");
    }
    for row in logs.as_array().expect("rows") {
        assert!(
            row["error_position"].is_object() || row["payload_encoding"] == "base64",
            "a JSON or text payload's error has a position: {row}"
        );
    }
    let replayed = api
        .expect(
            ok,
            Method::POST,
            "/api/mqtt/parsing-logs/replay",
            &format!("/api/mqtt/parsing-logs/replay?site_id={site_id}&replayed=false&limit=10"),
            None,
        )
        .await;
    assert_eq!(replayed["replayed"], 2, "{replayed}");
    assert_eq!(replayed["still_failing"], 2, "{replayed}");
    let request = reqwest::Client::new().post(service.url("/api/mqtt/parsing-logs/replay"));
    let (status, _) = api
        .contract
        .call(request, Method::POST, "/api/mqtt/parsing-logs/replay")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Each class of error, in its documented shape.
    let anonymous = reqwest::Client::new();
    let request = anonymous.get(service.url("/api/sites"));
    let (status, _) = api.contract.call(request, Method::GET, "/api/sites").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let not_found = StatusCode::NOT_FOUND;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    api.expect(
        not_found,
        Method::GET,
        "/api/sites/{id}",
        "/api/sites/999999",
        None,
    )
    .await;
    api.expect(
        not_found,
        Method::GET,
        "/api/sites/{id}",
        "/api/sites/abc",
        None,
    )
    .await;
    api.expect(
        not_found,
        Method::GET,
        "/api/sensors/{id}/readings",
        "/api/sensors/999999/readings",
        None,
    )
    .await;
    api.expect(
        not_found,
        Method::POST,
        "/api/parsers/{name}/test",
        "/api/parsers/no_such_parser/test",
        Some(json!({"topic": "a", "payload": {}})),
    )
    .await;
    api.expect(
        not_found,
        Method::DELETE,
        "/api/mqtt/topics/{id}",
        "/api/mqtt/topics/999999",
        None,
    )
    .await;
    for (method, template, path, body, field) in [
        (
            Method::POST,
            "/api/sites",
            "/api/sites".to_string(),
            json!({"name": "x", "slug": "x", "colour": "red"}),
            "colour",
        ),
        (
            Method::POST,
            "/api/mqtt/topics",
            "/api/mqtt/topics".to_string(),
            json!({"site_id": site_id, "pattern": "a/#/b", "parser": "flat_telemetry"}),
            "pattern",
        ),
        (
            Method::PATCH,
            connection_template,
            connection_path.clone(),
            json!({"port": 0}),
            "port",
        ),
        (
            Method::PATCH,
            "/api/sites/{id}",
            format!("/api/sites/{site_id}"),
            json!({"slug": null}),
            "slug",
        ),
    ] {
        let error = api
            .expect(unprocessable, method, template, &path, Some(body))
            .await;
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    for (template, path, field) in [
        ("/api/sites", "/api/sites?limit=1&limit=2", "limit"),
        (
            "/api/mqtt/parsing-logs",
            "/api/mqtt/parsing-logs?site_id=",
            "site_id",
        ),
        (
            "/api/mqtt/parsing-logs",
            "/api/mqtt/parsing-logs?parser=",
            "parser",
        ),
        (
            "/api/sensors/{id}/readings",
            "/api/sensors/1/readings?from=yesterday",
            "from",
        ),
    ] {
        let error = api
            .expect(unprocessable, Method::GET, template, path, None)
            .await;
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let error = api
        .expect(
            unprocessable,
            Method::POST,
            "/api/mqtt/parsing-logs/replay",
            "/api/mqtt/parsing-logs/replay?replayed=maybe",
            None,
        )
        .await;
    assert_eq!(error["error"]["field"], "replayed", "{error}");
    let error = api
        .expect(
            StatusCode::CONFLICT,
            Method::POST,
            "/api/sites",
            "/api/sites",
            Some(json!({"name": "Again", "slug": slug})),
        )
        .await;
    assert_eq!(error["error"]["code"], "conflict");
    api.expect(
        StatusCode::CONFLICT,
        Method::POST,
        "/api/mqtt/connections",
        "/api/mqtt/connections",
        Some(json!({"site_id": site_id, "host": "127.0.0.1", "port": 1883})),
    )
    .await;
    let request = service
        .client()
        .post(service.url("/api/sites"))
        .header("Content-Type", "application/json")
        .body("{\"name\": ");
    let (status, error) = api.contract.call(request, Method::POST, "/api/sites").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "invalid_json");
    let request = service
        .client()
        .post(service.url("/api/sites"))
        .header("Content-Type", "text/plain")
        .body("{}");
    let (status, _) = api.contract.call(request, Method::POST, "/api/sites").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Deleting, last.
    let no_content = StatusCode::NO_CONTENT;
    api.expect(
        no_content,
        Method::DELETE,
        "/api/mqtt/topics/{id}",
        &format!("/api/mqtt/topics/{topic_id}"),
        None,
    )
    .await;
    api.expect(
        no_content,
        Method::DELETE,
        "/api/mqtt/connection/{site_id}",
        &format!("/api/mqtt/connection/{site_id}"),
        None,
    )
    .await;
    api.expect(
        no_content,
        Method::DELETE,
        "/api/sites/{id}",
        &format!("/api/sites/{spare_id}"),
        None,
    )
    .await;

    // Every read endpoint was called (the socket has tests of its own).
    let reads = api.contract.operations("GET", &["/ws"]);
    let missing: Vec<_> = reads.difference(&api.contract.called).collect();
    assert!(missing.is_empty(), "never called: {missing:?}");
}
