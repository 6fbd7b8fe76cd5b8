//! The HTTP interface: axum routers, one file per resource, every route listed once in
//! [`endpoints`] with who may call it and what it reads and answers (the OpenAPI document is
//! generated from that list).

pub mod audit;
pub mod auth;
pub mod availability;
pub mod commands;
pub mod connections;
pub mod device_events;
pub mod devices;
pub mod discovered_topics;
pub mod error;
pub mod extract;
pub mod foreign_schemas;
pub mod health;
pub mod instances;
pub mod list;
pub mod logs;
pub mod me;
pub mod metrics;
pub mod openapi;
pub mod operation;
pub mod pagination;
pub mod parsers;
pub mod parsing_logs;
pub mod query;
pub mod readings;
pub mod schema;
pub mod sites;
pub mod static_files;
pub mod topics;
pub mod ws;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;

pub use auth::Access;
pub use error::ApiError;

use crate::queries::connections::ConnectionResponse;
use crate::queries::devices::GatewayNode;
use crate::state::AppState;
use foreign_schemas::{ParserInfoSchema, ReplayOutcomeSchema};
use list::{Listing, SiteQuery};
use operation::Operation;
use pagination::PageQuery;

/// One method on one path: who may call it, its handler, and what the document says of it.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub operation: Operation,
    handler: MethodRouter<AppState>,
}

fn endpoint(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        operation: Operation::default(),
        handler,
    }
}

impl Endpoint {
    fn describe(mut self, operation: Operation) -> Endpoint {
        self.operation = operation;
        self
    }
}

/// `GET` of a list endpoint, described from its `Listing`.
fn list_endpoint<L: Listing + 'static>(path: &'static str, summary: &'static str) -> Endpoint
where
    L::Item: Send,
{
    let mut operation = Operation::new(summary).query::<PageQuery>();
    if L::SITE_COLUMN.is_some() {
        operation = operation.query::<SiteQuery>();
    }
    endpoint(Method::GET, path, Access::Read, get(list::list::<L>))
        .describe(operation.json_list::<L::Item>(StatusCode::OK, "One page of rows"))
}

/// Every route of the service. The connection routes exist with and without the trailing slash:
/// the contract has the slash, and clients that drop it should not get a 404.
pub fn endpoints() -> Vec<Endpoint> {
    use Access::{Admin, Public, Read, ReadSocket};
    const OK: StatusCode = StatusCode::OK;
    let mut list =
        vec![
            // The page's files are described from their names (see `openapi`).
            endpoint(Method::GET, "/", Public, get(static_files::index)),
            endpoint(Method::GET, "/app.js", Public, get(static_files::app_js)),
            endpoint(Method::GET, "/js/{file}", Public, get(static_files::module)).describe(
                Operation::new("A script module of the Devices page.").media(
                    OK,
                    "text/javascript",
                    "The module",
                ),
            ),
            endpoint(
                Method::GET,
                "/style.css",
                Public,
                get(static_files::style_css),
            ),
            endpoint(Method::GET, "/health", Public, get(health::health)).describe(
                Operation::new("Database and connection health; always 200.")
                    .json::<health::Health>(OK, "Health report"),
            ),
            endpoint(Method::GET, "/health/live", Public, get(health::live)).describe(
                Operation::new("200 while the process runs.").json::<health::Probe>(OK, "Alive"),
            ),
            endpoint(Method::GET, "/health/ready", Public, get(health::ready)).describe(
                Operation::new("200 when the database answers and migrations are applied.")
                    .json::<health::Probe>(OK, "Ready")
                    .json::<health::Probe>(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: the database does not answer",
                    ),
            ),
            endpoint(Method::GET, "/metrics", Public, get(metrics::metrics)).describe(
                Operation::new("Prometheus metrics.").media(
                    OK,
                    "text/plain",
                    "Prometheus text format 0.0.4",
                ),
            ),
            endpoint(Method::GET, "/api/openapi.json", Read, get(openapi::serve)).describe(
                Operation::new("This document, generated from the route table and its types.")
                    .media(OK, "application/json", "OpenAPI 3.1 document"),
            ),
            endpoint(Method::GET, "/ws", ReadSocket, get(ws::upgrade)).describe(
                // The `?token=` it also takes is the `queryToken` security scheme.
                Operation::new("WebSocket of live events (see the API guide).")
                    .empty(
                        StatusCode::SWITCHING_PROTOCOLS,
                        "Switching to the WebSocket protocol",
                    )
                    .error(StatusCode::BAD_REQUEST, "Not a WebSocket upgrade request."),
            ),
            list_endpoint::<sites::SiteList>("/api/sites", "List sites, by id."),
            endpoint(Method::POST, "/api/sites", Admin, post(sites::create)).describe(
                Operation::new("Create a site.")
                    .body::<sites::CreateSite>()
                    .json::<sites::SiteResponse>(StatusCode::CREATED, "Created")
                    .error(StatusCode::CONFLICT, "The slug is taken."),
            ),
            endpoint(Method::GET, "/api/sites/{id}", Read, get(sites::get))
                .describe(Operation::new("One site.").json::<sites::SiteResponse>(OK, "The site")),
            endpoint(
                Method::PATCH,
                "/api/sites/{id}",
                Admin,
                patch(sites::update),
            )
            .describe(
                Operation::new("Change a site.")
                    .body::<sites::UpdateSite>()
                    .json::<sites::SiteResponse>(OK, "The changed site")
                    .error(StatusCode::CONFLICT, "The slug is taken."),
            ),
            endpoint(
                Method::DELETE,
                "/api/sites/{id}",
                Admin,
                delete(sites::delete),
            )
            .describe(
                Operation::new("Delete a site and everything it owns.")
                    .empty(StatusCode::NO_CONTENT, "Deleted"),
            ),
            endpoint(
                Method::GET,
                "/api/sites/{site_id}/devices",
                Read,
                get(devices::list),
            )
            .describe(
                Operation::new("The device tree of a site.").json_list::<GatewayNode>(
                    OK,
                    "Gateways with their dataloggers and sensors, by identifier",
                ),
            ),
            endpoint(Method::GET, "/api/me", Read, get(me::me)).describe(
                Operation::new("What the caller's token may do (admin, or read only).")
                    .json::<me::Me>(OK, "The caller"),
            ),
            endpoint(Method::GET, "/api/instances", Read, get(instances::list)).describe(
                Operation::new("The instances sharing the database and the shards each owns.")
                    .json_list::<crate::cluster::InstanceInfo>(OK, "Instances, by id"),
            ),
            endpoint(
                Method::POST,
                "/api/sites/{site_id}/commands",
                Admin,
                post(commands::create),
            )
            .describe(
                Operation::new(
                    "Send a command to the site's devices: stored as queued and sent by the \
                     site's connection. An Idempotency-Key header makes a retry return the \
                     first command.",
                )
                .body::<commands::CreateCommand>()
                .json::<commands::CommandResponse>(StatusCode::ACCEPTED, "Stored and queued")
                .error(StatusCode::CONFLICT, "The site has no MQTT connection."),
            ),
            endpoint(
                Method::GET,
                "/api/sites/{site_id}/commands",
                Read,
                get(commands::list),
            )
            .describe(
                Operation::new("A site's commands, newest first.")
                    .query::<commands::CommandQuery>()
                    .json_list::<commands::CommandResponse>(OK, "Newest first"),
            ),
            endpoint(Method::GET, "/api/commands/{id}", Read, get(commands::get)).describe(
                Operation::new("One command and where it stands.")
                    .json::<commands::CommandResponse>(OK, "The command"),
            ),
            endpoint(
                Method::GET,
                "/api/sites/{site_id}/device-events",
                Read,
                get(device_events::list),
            )
            .describe(
                Operation::new("Online/offline changes of a site's gateways and dataloggers.")
                    .query::<PageQuery>()
                    .json_list::<device_events::DeviceEventResponse>(OK, "Newest first"),
            ),
            endpoint(
                Method::POST,
                "/api/mqtt/connections/test",
                Admin,
                post(connections::test),
            )
            .describe(
                Operation::new(
                    "Try a connection's settings against its broker (a clean session under a \
                     client id of its own, at most 5 s) without saving anything.",
                )
                .body::<connections::TestConnection>()
                .json::<connections::TestResult>(OK, "The broker's answer")
                .error(
                    StatusCode::NOT_FOUND,
                    "`site_id` (given without a password) names a site without a connection.",
                ),
            ),
            list_endpoint::<connections::ConnectionList>(
                "/api/mqtt/connections",
                "List connections, by site.",
            ),
            endpoint(
                Method::POST,
                "/api/mqtt/connections",
                Admin,
                post(connections::create),
            )
            .describe(
                Operation::new("Create the connection of a site.")
                    .body::<connections::CreateConnection>()
                    .json::<ConnectionResponse>(StatusCode::CREATED, "Created")
                    .error(StatusCode::CONFLICT, "The site already has a connection."),
            ),
            list_endpoint::<topics::TopicList>("/api/mqtt/topics", "List topic patterns."),
            endpoint(
                Method::POST,
                "/api/mqtt/topics",
                Admin,
                post(topics::create),
            )
            .describe(
                Operation::new("Create a topic pattern.")
                    .body::<topics::CreateTopic>()
                    .json::<topics::TopicResponse>(StatusCode::CREATED, "Created"),
            ),
            endpoint(Method::GET, "/api/mqtt/topics/{id}", Read, get(topics::get)).describe(
                Operation::new("One topic pattern.")
                    .json::<topics::TopicResponse>(OK, "The pattern"),
            ),
            endpoint(
                Method::PATCH,
                "/api/mqtt/topics/{id}",
                Admin,
                patch(topics::update),
            )
            .describe(
                Operation::new("Change a topic pattern.")
                    .body::<topics::UpdateTopic>()
                    .json::<topics::TopicResponse>(OK, "The changed pattern"),
            ),
            endpoint(
                Method::DELETE,
                "/api/mqtt/topics/{id}",
                Admin,
                delete(topics::delete),
            )
            .describe(
                Operation::new("Delete a topic pattern.").empty(StatusCode::NO_CONTENT, "Deleted"),
            ),
            list_endpoint::<discovered_topics::DiscoveredTopicList>(
                "/api/mqtt/discovered-topics",
                "Topics seen on the broker, most recently seen first.",
            ),
            endpoint(Method::GET, "/api/parsers", Read, get(parsers::list)).describe(
                Operation::new("The parser registry.")
                    .json_list::<ParserInfoSchema>(OK, "Parsers, by name"),
            ),
            // A dry run writes nothing, so it needs only read access.
            endpoint(
                Method::POST,
                "/api/parsers/{name}/test",
                Read,
                post(parsers::test),
            )
            .describe(
                Operation::new("Dry-run a parser on a sample message; nothing is written.")
                    .body::<parsers::TestRequest>()
                    .json::<parsers::TestResult>(OK, "What would be stored, or why not"),
            ),
            endpoint(
                Method::POST,
                "/api/parsers/reload",
                Admin,
                post(parsers::reload),
            )
            .describe(
                Operation::new("Reload the declarative parsers from the parsers folder.")
                    .json_list::<ParserInfoSchema>(OK, "The new registry")
                    .error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Some files did not load (error.details lists them); the registry in \
                     force is unchanged.",
                    ),
            ),
            endpoint(
                Method::GET,
                "/api/sensors/{id}/readings",
                Read,
                get(readings::list),
            )
            .describe(
                Operation::new("Readings of a sensor, newest first.")
                    .query::<readings::ReadingsQuery>()
                    .query::<PageQuery>()
                    .json_list::<readings::ReadingResponse>(OK, "Readings"),
            ),
            list_endpoint::<logs::ConnectionLogList>(
                "/api/mqtt/connection-logs",
                "Connection events, newest first.",
            ),
            endpoint(
                Method::GET,
                "/api/mqtt/parsing-logs",
                Read,
                get(parsing_logs::list),
            )
            .describe(
                Operation::new("Payloads that could not be stored, newest first.")
                    .query::<PageQuery>()
                    .query::<SiteQuery>()
                    .query::<parsing_logs::ParsingLogQuery>()
                    .json_list::<logs::ParsingLogResponse>(OK, "One page of rows"),
            ),
            list_endpoint::<audit::AuditLogList>(
                "/api/audit-log",
                "Every accepted change made through the API, newest first.",
            ),
            endpoint(
                Method::POST,
                "/api/mqtt/parsing-logs/{id}/replay",
                Admin,
                post(logs::replay),
            )
            .describe(
                Operation::new(
                    "Parse a logged payload again with today's patterns and parsers; stored if it \
                 parses.",
                )
                .json::<ReplayOutcomeSchema>(OK, "The outcome, parsed or not"),
            ),
            endpoint(
                Method::POST,
                "/api/mqtt/parsing-logs/replay",
                Admin,
                post(parsing_logs::replay),
            )
            .describe(
                Operation::new(
                    "Replay the rows the list shows for the same filters (at most 200 a call), \
                     each as the single replay does.",
                )
                .query::<parsing_logs::ReplayBatchQuery>()
                .query::<SiteQuery>()
                .query::<parsing_logs::ParsingLogQuery>()
                .json::<parsing_logs::ReplayAllResponse>(OK, "Replayed, parsed, still failing"),
            ),
        ];
    for (path, summaries) in [
        (
            "/api/mqtt/connection/{site_id}/",
            [
                "The connection of a site, with its live status.",
                "Change the connection; the supervisor acts at once.",
                "Delete the connection; its client stops.",
            ],
        ),
        (
            "/api/mqtt/connection/{site_id}",
            [
                "The connection of a site (same without the trailing slash).",
                "Change the connection (same without the trailing slash).",
                "Delete the connection (same without the trailing slash).",
            ],
        ),
    ] {
        list.push(
            endpoint(Method::GET, path, Read, get(connections::get)).describe(
                Operation::new(summaries[0]).json::<ConnectionResponse>(OK, "The connection"),
            ),
        );
        list.push(
            endpoint(Method::PATCH, path, Admin, patch(connections::update)).describe(
                Operation::new(summaries[1])
                    .body::<connections::UpdateConnection>()
                    .json::<ConnectionResponse>(
                        StatusCode::ACCEPTED,
                        "The stored row; the supervisor starts, stops or restarts the client \
                         right after",
                    ),
            ),
        );
        list.push(
            endpoint(Method::DELETE, path, Admin, delete(connections::delete))
                .describe(Operation::new(summaries[2]).empty(StatusCode::NO_CONTENT, "Deleted")),
        );
    }
    list
}

/// Method, path and access of every route, without the handlers.
pub fn route_table() -> Vec<(Method, &'static str, Access)> {
    endpoints()
        .into_iter()
        .map(|endpoint| (endpoint.method, endpoint.path, endpoint.access))
        .collect()
}

/// Routes that read or change rows; the page, health, metrics and the document do not.
fn needs_database(endpoint: &Endpoint) -> bool {
    endpoint.path.starts_with("/api/")
        && endpoint.path != "/api/openapi.json"
        && endpoint.path != "/api/me"
        && !(endpoint.method == Method::GET && endpoint.path == "/api/parsers")
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints() {
        let handler = if needs_database(&endpoint) {
            endpoint.handler.route_layer(from_fn_with_state(
                state.clone(),
                availability::require_database,
            ))
        } else {
            endpoint.handler
        };
        let endpoint = Endpoint {
            handler,
            ..endpoint
        };
        let handler = match endpoint.access {
            Access::Public => endpoint.handler,
            Access::Read => endpoint
                .handler
                .route_layer(from_fn_with_state(state.clone(), auth::require_read)),
            Access::ReadSocket => endpoint
                .handler
                .route_layer(from_fn_with_state(state.clone(), auth::require_read_socket)),
            // The token is checked first (the outer layer), then the change is recorded.
            Access::Admin => endpoint
                .handler
                .route_layer(from_fn_with_state(state.clone(), audit::record))
                .route_layer(from_fn_with_state(state.clone(), auth::require_admin)),
        };
        // Routes on the same path merge into one method router.
        router = router.route(endpoint.path, handler);
    }
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.http.body_limit_bytes));
    if let Some(cors) = cors_layer(&state.config.http.cors_origins) {
        router = router.layer(cors);
    }
    router.layer(TraceLayer::new_for_http()).with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not supported on {}", uri.path()))
}

/// Off unless origins are configured; `"*"` allows any origin (the token still applies).
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|origin| origin == "*") {
        return Some(layer.allow_origin(Any));
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(
            |origin| match HeaderValue::from_str(origin.trim_end_matches('/')) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!(%origin, "http.cors_origins: not a valid origin, ignored");
                    None
                }
            },
        )
        .collect();
    Some(layer.allow_origin(AllowOrigin::list(allowed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        let table = route_table();
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, _) in &table {
            assert!(
                seen.insert((method.to_string(), *path)),
                "{method} {path} twice"
            );
        }
    }

    #[test]
    fn mutations_need_the_admin_token() {
        for (method, path, access) in route_table() {
            if method != Method::GET && path != "/api/parsers/{name}/test" {
                assert_eq!(access, Access::Admin, "{method} {path}");
            }
        }
    }
}
