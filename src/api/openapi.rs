//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the whole HTTP interface, written by
//! hand (no derive macros to slow the build); a test keeps its paths and methods equal to the
//! router's.

use axum::Json;
use serde_json::{json, Map, Value};

use super::auth::Access;

pub async fn serve() -> Json<Value> {
    Json(document())
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": schema_ref(name)})
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "integer"}})
}

fn query_parameter(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

fn page_parameters() -> Vec<Value> {
    vec![
        query_parameter(
            "limit",
            json!({"type": "integer", "minimum": 1, "default": 100}),
            "Rows per page, at most 1000 (larger values are lowered to 1000).",
        ),
        query_parameter(
            "offset",
            json!({"type": "integer", "minimum": 0, "default": 0}),
            "Rows to skip.",
        ),
    ]
}

fn site_filter() -> Value {
    query_parameter(
        "site_id",
        json!({"type": "integer"}),
        "Only rows of this site.",
    )
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error_response(description: &str) -> Value {
    json_response(description, schema_ref("Error"))
}

/// One operation. Error responses are added from what the endpoint can fail with.
struct Operation {
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: String,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
}

impl Operation {
    fn new(
        method: &'static str,
        path: &'static str,
        access: Access,
        summary: impl Into<String>,
    ) -> Operation {
        Operation {
            method,
            path,
            access,
            summary: summary.into(),
            parameters: Vec::new(),
            body: None,
            responses: Vec::new(),
        }
    }

    fn parameters(mut self, parameters: Vec<Value>) -> Operation {
        self.parameters.extend(parameters);
        self
    }

    fn body(mut self, schema: Value) -> Operation {
        self.body = Some(schema);
        self
    }

    fn respond(mut self, status: &'static str, response: Value) -> Operation {
        self.responses.push((status, response));
        self
    }

    fn into_value(self) -> Value {
        let mut responses = Map::new();
        for (status, response) in self.responses {
            responses.insert(status.to_string(), response);
        }
        match self.access {
            Access::Public => {}
            Access::Read | Access::ReadSocket | Access::Admin => {
                responses.insert(
                    "401".into(),
                    error_response("Missing or wrong admin token."),
                );
            }
        }
        if self.body.is_some() {
            responses.insert(
                "400".into(),
                error_response("The body is not JSON (code invalid_json)."),
            );
            responses.insert(
                "413".into(),
                error_response("The body is larger than http.body_limit_bytes."),
            );
        }
        if self.body.is_some()
            || self
                .parameters
                .iter()
                .any(|parameter| parameter["in"] == "query")
        {
            responses.entry("422").or_insert_with(|| {
                error_response("A field is missing or invalid; error.field names it.")
            });
        }
        let mut operation = json!({
            "summary": self.summary,
            "responses": responses,
            "x-access": match self.access {
                Access::Public => "public",
                Access::Read => "read",
                Access::ReadSocket => "read (token may be sent as ?token=)",
                Access::Admin => "admin",
            },
        });
        operation["security"] = match self.access {
            Access::Public => json!([]),
            // Reads are open when api.public_read is true; the document describes the default.
            Access::Read | Access::Admin => json!([{"bearer": []}]),
            Access::ReadSocket => json!([{"bearer": []}, {"queryToken": []}]),
        };
        if !self.parameters.is_empty() {
            operation["parameters"] = Value::Array(self.parameters);
        }
        if let Some(schema) = self.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        operation
    }
}

fn operations() -> Vec<Operation> {
    use Access::{Admin, Public, Read, ReadSocket};
    let not_found = || error_response("No such resource.");
    let mut list = vec![
        Operation::new("get", "/", Public, "The Devices page (HTML).")
            .respond("200", json!({"description": "HTML page", "content": {"text/html": {}}})),
        Operation::new("get", "/app.js", Public, "Script of the Devices page.").respond(
            "200",
            json!({"description": "JavaScript", "content": {"text/javascript": {}}}),
        ),
        Operation::new("get", "/js/{file}", Public, "A module of the Devices page's script.")
            .parameters(vec![json!({"name": "file", "in": "path", "required": true,
                "description": "File name of the module, such as `state.js`.",
                "schema": {"type": "string"}})])
            .respond(
                "200",
                json!({"description": "JavaScript", "content": {"text/javascript": {}}}),
            )
            .respond("404", error_response("No module of that name.")),
        Operation::new("get", "/style.css", Public, "Style sheet of the Devices page.")
            .respond("200", json!({"description": "CSS", "content": {"text/css": {}}})),
        Operation::new("get", "/health", Public, "Database and connection health.")
            .respond("200", json_response("Health report", schema_ref("Health"))),
        Operation::new("get", "/metrics", Public, "Prometheus metrics.").respond(
            "200",
            json!({"description": "Prometheus text format 0.0.4", "content": {"text/plain": {}}}),
        ),
        Operation::new("get", "/api/openapi.json", Read, "This document.")
            .respond("200", json_response("OpenAPI document", json!({"type": "object"}))),
        Operation::new("get", "/ws", ReadSocket, "WebSocket of live events (see the API guide).")
            .parameters(vec![query_parameter(
                "token",
                json!({"type": "string"}),
                "Admin token, for clients that cannot send an Authorization header.",
            )])
            .respond("101", json!({"description": "Switching to the WebSocket protocol"}))
            .respond("400", error_response("Not a WebSocket upgrade request.")),
        Operation::new("get", "/api/sites", Read, "List sites, by id.")
            .parameters(page_parameters())
            .respond("200", json_response("Sites", array_of("Site"))),
        Operation::new("post", "/api/sites", Admin, "Create a site.")
            .body(schema_ref("SiteCreate"))
            .respond("201", json_response("Created", schema_ref("Site")))
            .respond("409", error_response("The slug is taken.")),
        Operation::new("get", "/api/sites/{id}", Read, "One site.")
            .parameters(vec![path_parameter("id", "Site id")])
            .respond("200", json_response("The site", schema_ref("Site")))
            .respond("404", not_found()),
        Operation::new("patch", "/api/sites/{id}", Admin, "Change a site.")
            .parameters(vec![path_parameter("id", "Site id")])
            .body(schema_ref("SitePatch"))
            .respond("200", json_response("The changed site", schema_ref("Site")))
            .respond("404", not_found())
            .respond("409", error_response("The slug is taken.")),
        Operation::new("delete", "/api/sites/{id}", Admin, "Delete a site and everything it owns.")
            .parameters(vec![path_parameter("id", "Site id")])
            .respond("204", json!({"description": "Deleted"}))
            .respond("404", not_found()),
        Operation::new("get", "/api/sites/{site_id}/devices", Read, "The device tree of a site.")
            .parameters(vec![path_parameter("site_id", "Site id")])
            .respond("200", json_response("Gateways with their dataloggers and sensors", array_of("Gateway")))
            .respond("404", not_found()),
        Operation::new("get", "/api/mqtt/connections", Read, "List connections, by site.")
            .parameters(page_parameters())
            .parameters(vec![site_filter()])
            .respond("200", json_response("Connections", array_of("Connection"))),
        Operation::new("post", "/api/mqtt/connections", Admin, "Create the connection of a site.")
            .body(schema_ref("ConnectionCreate"))
            .respond("201", json_response("Created", schema_ref("Connection")))
            .respond("409", error_response("The site already has a connection.")),
        Operation::new("get", "/api/mqtt/topics", Read, "List topic patterns.")
            .parameters(page_parameters())
            .parameters(vec![site_filter()])
            .respond("200", json_response("Topic patterns", array_of("Topic"))),
        Operation::new("post", "/api/mqtt/topics", Admin, "Create a topic pattern.")
            .body(schema_ref("TopicCreate"))
            .respond("201", json_response("Created", schema_ref("Topic"))),
        Operation::new("get", "/api/mqtt/topics/{id}", Read, "One topic pattern.")
            .parameters(vec![path_parameter("id", "Topic pattern id")])
            .respond("200", json_response("The pattern", schema_ref("Topic")))
            .respond("404", not_found()),
        Operation::new("patch", "/api/mqtt/topics/{id}", Admin, "Change a topic pattern.")
            .parameters(vec![path_parameter("id", "Topic pattern id")])
            .body(schema_ref("TopicPatch"))
            .respond("200", json_response("The changed pattern", schema_ref("Topic")))
            .respond("404", not_found()),
        Operation::new("delete", "/api/mqtt/topics/{id}", Admin, "Delete a topic pattern.")
            .parameters(vec![path_parameter("id", "Topic pattern id")])
            .respond("204", json!({"description": "Deleted"}))
            .respond("404", not_found()),
        Operation::new("get", "/api/mqtt/discovered-topics", Read, "Topics seen on the broker, most recently seen first.")
            .parameters(page_parameters())
            .parameters(vec![site_filter()])
            .respond("200", json_response("Discovered topics", array_of("DiscoveredTopic"))),
        Operation::new("get", "/api/parsers", Read, "The parser registry.")
            .respond("200", json_response("Parsers, by name", array_of("Parser"))),
        Operation::new("post", "/api/parsers/{name}/test", Read, "Dry-run a parser; nothing is written.")
            .parameters(vec![json!({"name": "name", "in": "path", "required": true,
                                    "schema": {"type": "string"}, "description": "Parser name"})])
            .body(schema_ref("ParserTestRequest"))
            .respond("200", json_response("What would be stored, or why not", schema_ref("ParserTestResult")))
            .respond("404", not_found()),
        Operation::new("post", "/api/parsers/reload", Admin, "Reload declarative parsers from the parsers folder.")
            .respond("200", json_response("The new registry", array_of("Parser")))
            .respond("422", error_response("Some files did not load (error.details lists them); the registry in force is unchanged.")),
        Operation::new("get", "/api/sensors/{id}/readings", Read, "Readings of a sensor, newest first.")
            .parameters(vec![
                path_parameter("id", "Sensor id"),
                query_parameter("from", json!({"type": "string", "format": "date-time"}), "Earliest ts (inclusive), RFC 3339."),
                query_parameter("to", json!({"type": "string", "format": "date-time"}), "Latest ts (inclusive), RFC 3339."),
            ])
            .parameters(page_parameters())
            .respond("200", json_response("Readings", array_of("Reading")))
            .respond("404", not_found()),
        Operation::new("get", "/api/mqtt/connection-logs", Read, "Connection events, newest first.")
            .parameters(page_parameters())
            .parameters(vec![site_filter()])
            .respond("200", json_response("Connection log", array_of("ConnectionLog"))),
        Operation::new("get", "/api/mqtt/parsing-logs", Read, "Payloads that could not be stored, newest first.")
            .parameters(page_parameters())
            .parameters(vec![site_filter()])
            .respond("200", json_response("Parsing log", array_of("ParsingLog"))),
        Operation::new("post", "/api/mqtt/parsing-logs/{id}/replay", Admin, "Parse a logged payload again with today's patterns and parsers; stored if it parses.")
            .parameters(vec![path_parameter("id", "Parsing-log row id")])
            .respond("200", json_response("Outcome", schema_ref("ReplayOutcome")))
            .respond("404", not_found()),
    ];
    for (path, note) in [
        ("/api/mqtt/connection/{site_id}/", ""),
        (
            "/api/mqtt/connection/{site_id}",
            " (same without the trailing slash)",
        ),
    ] {
        let parameters = || vec![path_parameter("site_id", "Site id")];
        let summary = |text: &str| format!("{text}{note}");
        list.push(
            Operation::new(
                "get",
                path,
                Read,
                summary("The connection of a site, with its live status."),
            )
            .parameters(parameters())
            .respond(
                "200",
                json_response("The connection", schema_ref("Connection")),
            )
            .respond("404", not_found()),
        );
        list.push(
            Operation::new(
                "patch",
                path,
                Admin,
                summary("Change the connection; the supervisor acts at once."),
            )
            .parameters(parameters())
            .body(schema_ref("ConnectionPatch"))
            .respond(
                "202",
                json_response("The stored row", schema_ref("Connection")),
            )
            .respond("404", not_found()),
        );
        list.push(
            Operation::new(
                "delete",
                path,
                Admin,
                summary("Delete the connection; its client stops."),
            )
            .parameters(parameters())
            .respond("204", json!({"description": "Deleted"}))
            .respond("404", not_found()),
        );
    }
    list
}

fn schemas() -> Value {
    let timestamp = json!({"type": "string", "format": "date-time"});
    let nullable_timestamp = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["unauthorized", "not_found", "validation_failed", "conflict", "payload_too_large", "invalid_json", "internal"]},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The body or query field at fault (422 only)."},
                    "details": {"type": "array", "items": {"type": "string"}}
                }
            }}
        },
        "Site": {
            "type": "object",
            "required": ["id", "name", "slug", "is_active", "created_at"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "slug": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
                "is_active": {"type": "boolean"},
                "created_at": timestamp
            }
        },
        "SiteCreate": {
            "type": "object",
            "required": ["name", "slug"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "slug": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
                "is_active": {"type": "boolean", "default": true}
            }
        },
        "SitePatch": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "slug": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
                "is_active": {"type": "boolean"}
            }
        },
        "Connection": {
            "type": "object",
            "required": ["id", "site_id", "host", "port", "username", "has_password", "client_id", "use_tls", "ca_file", "keepalive_secs", "clean_session", "is_active", "status", "last_error", "connected_at", "updated_at", "reconnect_attempts", "retry_in_ms"],
            "properties": {
                "id": {"type": "integer"},
                "site_id": {"type": "integer"},
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "username": {"type": ["string", "null"]},
                "has_password": {"type": "boolean", "description": "The password itself is never returned."},
                "client_id": {"type": "string"},
                "use_tls": {"type": "boolean"},
                "ca_file": {"type": ["string", "null"]},
                "keepalive_secs": {"type": "integer"},
                "clean_session": {"type": "boolean"},
                "is_active": {"type": "boolean"},
                "status": {"type": "string", "enum": ["stopped", "connecting", "connected", "reconnecting", "error"]},
                "last_error": {"type": ["string", "null"]},
                "connected_at": nullable_timestamp,
                "created_at": timestamp,
                "updated_at": timestamp,
                "reconnect_attempts": {"type": "integer"},
                "retry_in_ms": {"type": ["integer", "null"]}
            }
        },
        "ConnectionCreate": {
            "type": "object",
            "required": ["site_id", "host", "port"],
            "properties": {
                "site_id": {"type": "integer"},
                "host": {"type": "string"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "username": {"type": ["string", "null"]},
                "password": {"type": ["string", "null"], "writeOnly": true},
                "client_id": {"type": "string", "description": "Default mqtt-supervisor-<site slug>."},
                "use_tls": {"type": "boolean", "default": false},
                "ca_file": {"type": ["string", "null"]},
                "keepalive_secs": {"type": "integer", "minimum": 5, "maximum": 65535, "default": 30},
                "clean_session": {"type": "boolean", "default": false},
                "is_active": {"type": "boolean", "default": false}
            }
        },
        "ConnectionPatch": {
            "type": "object",
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "username": {"type": ["string", "null"], "description": "null clears"},
                "password": {"type": ["string", "null"], "writeOnly": true, "description": "null clears"},
                "client_id": {"type": "string"},
                "use_tls": {"type": "boolean"},
                "ca_file": {"type": ["string", "null"], "description": "null clears"},
                "keepalive_secs": {"type": "integer", "minimum": 5, "maximum": 65535},
                "clean_session": {"type": "boolean"},
                "is_active": {"type": "boolean"}
            }
        },
        "Topic": {
            "type": "object",
            "required": ["id", "site_id", "pattern", "parser", "qos", "is_active", "priority", "subscription_filter", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "integer"},
                "site_id": {"type": "integer"},
                "pattern": {"type": "string"},
                "parser": {"type": "string"},
                "qos": {"type": "integer", "enum": [0, 1, 2]},
                "is_active": {"type": "boolean"},
                "priority": {"type": "integer"},
                "subscription_filter": {"type": ["string", "null"]},
                "created_at": timestamp,
                "updated_at": timestamp
            }
        },
        "TopicCreate": {
            "type": "object",
            "required": ["site_id", "pattern", "parser"],
            "properties": {
                "site_id": {"type": "integer"},
                "pattern": {"type": "string", "description": "MQTT filter with optional {name} captures."},
                "parser": {"type": "string"},
                "qos": {"type": "integer", "enum": [0, 1, 2], "default": 1},
                "is_active": {"type": "boolean", "default": true},
                "priority": {"type": "integer", "default": 0}
            }
        },
        "TopicPatch": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "parser": {"type": "string"},
                "qos": {"type": "integer", "enum": [0, 1, 2]},
                "is_active": {"type": "boolean"},
                "priority": {"type": "integer"}
            }
        },
        "DiscoveredTopic": {
            "type": "object",
            "required": ["id", "site_id", "topic", "message_count", "first_seen", "last_seen", "is_processable", "mqtt_topic_id", "last_payload"],
            "properties": {
                "id": {"type": "integer"},
                "site_id": {"type": "integer"},
                "topic": {"type": "string"},
                "message_count": {"type": "integer"},
                "first_seen": timestamp,
                "last_seen": timestamp,
                "is_processable": {"type": "boolean"},
                "mqtt_topic_id": {"type": ["integer", "null"]},
                "last_payload": {"type": ["string", "null"], "description": "Start of the latest payload."}
            }
        },
        "Parser": {
            "type": "object",
            "required": ["name", "kind", "description", "schema"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": ["builtin", "declarative"]},
                "description": {"type": "string"},
                "schema": {"type": "object", "description": "JSON Schema every payload must satisfy."}
            }
        },
        "ParserTestRequest": {
            "type": "object",
            "required": ["topic", "payload"],
            "properties": {
                "topic": {"type": "string"},
                "payload": {"description": "Any JSON value; a string is the raw payload text."},
                "pattern": {"type": "string", "description": "Pattern whose captures to use; default: the first active stored pattern of this parser that matches."}
            }
        },
        "ParserTestResult": {
            "type": "object",
            "required": ["ok"],
            "properties": {
                "ok": {"type": "boolean"},
                "output": schema_ref("ParseOutput"),
                "errors": {"type": "array", "items": {"type": "string"}},
                "captures": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
        "ParseOutput": {
            "type": "object",
            "properties": {
                "gateways": {"type": "array", "items": {"type": "object"}},
                "dataloggers": {"type": "array", "items": {"type": "object"}}
            }
        },
        "Gateway": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "identifier": {"type": "string"},
                "name": {"type": ["string", "null"]},
                "last_seen": nullable_timestamp,
                "is_online": {"type": "boolean"},
                "metadata": {"type": ["object", "null"]},
                "dataloggers": array_of("Datalogger")
            }
        },
        "Datalogger": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "identifier": {"type": "string"},
                "last_seen": nullable_timestamp,
                "is_online": {"type": "boolean"},
                "metadata": {"type": ["object", "null"]},
                "sensors": array_of("Sensor")
            }
        },
        "Sensor": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "unit": {"type": ["string", "null"]},
                "last_value": {"type": ["number", "null"]},
                "last_reading_at": nullable_timestamp
            }
        },
        "Reading": {
            "type": "object",
            "required": ["ts", "value"],
            "properties": {"ts": timestamp, "value": {"type": "number"}}
        },
        "ConnectionLog": {
            "type": "object",
            "required": ["id", "site_id", "event", "message", "created_at"],
            "properties": {
                "id": {"type": "integer"},
                "site_id": {"type": "integer"},
                "event": {"type": "string"},
                "message": {"type": "string"},
                "created_at": timestamp
            }
        },
        "ParsingLog": {
            "type": "object",
            "required": ["id", "site_id", "topic", "parser", "error", "payload", "payload_encoding", "created_at", "replayed_at", "received_at"],
            "properties": {
                "id": {"type": "integer"},
                "site_id": {"type": "integer"},
                "topic": {"type": "string"},
                "parser": {"type": ["string", "null"]},
                "error": {"type": "string"},
                "payload": {"type": "string"},
                "payload_encoding": {"type": "string", "enum": ["utf8", "base64"]},
                "created_at": timestamp,
                "replayed_at": nullable_timestamp,
                "received_at": timestamp
            }
        },
        "ReplayOutcome": {
            "type": "object",
            "required": ["id", "ok", "error", "output"],
            "properties": {
                "id": {"type": "integer"},
                "ok": {"type": "boolean"},
                "error": {"type": ["string", "null"]},
                "output": {"oneOf": [schema_ref("ParseOutput"), {"type": "null"}]}
            }
        },
        "Health": {
            "type": "object",
            "required": ["status", "database", "connections", "messages_processed", "errors_count", "last_message_time"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "database": {"type": "string", "enum": ["ok", "error"]},
                "connections": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "site_id": {"type": "integer"},
                        "connection_id": {"type": "integer"},
                        "status": {"type": "string"},
                        "last_error": {"type": ["string", "null"]}
                    }
                }},
                "messages_processed": {"type": "integer"},
                "errors_count": {"type": "integer"},
                "last_message_time": nullable_timestamp
            }
        }
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in operations() {
        let path = operation.path;
        let method = operation.method;
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = operation.into_value();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mqtt-supervisor",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Admin REST API of mqtt-supervisor. Errors are {\"error\": {\"code\", \"message\"}}. Mutations need 'Authorization: Bearer <admin token>'; reads need it too unless api.public_read is true."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token"}
            },
            "schemas": schemas()
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn document_covers_exactly_the_router() {
        let from_router: BTreeSet<(String, String)> = crate::api::route_table()
            .into_iter()
            .map(|(method, path, _)| (method.as_str().to_ascii_lowercase(), path.to_string()))
            .collect();
        let document = document();
        let mut from_document = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                from_document.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(from_router, from_document);
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                document["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
    }
}
