//! The HTTP interface: axum routers, one file per resource, every route listed once in
//! [`endpoints`] with who may call it (the OpenAPI document is checked against that list).

pub mod auth;
pub mod connections;
pub mod devices;
pub mod discovered_topics;
pub mod error;
pub mod extract;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod parsers;
pub mod readings;
pub mod sites;
pub mod static_files;
pub mod topics;
pub mod ws;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;

pub use auth::Access;
pub use error::ApiError;

use crate::state::AppState;

/// One method on one path.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
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
        handler,
    }
}

/// Every route of the service. The connection routes exist with and without the trailing slash:
/// the contract has the slash, and clients that drop it should not get a 404.
pub fn endpoints() -> Vec<Endpoint> {
    use Access::{Admin, Public, Read, ReadSocket};
    let connection_paths = [
        "/api/mqtt/connection/{site_id}/",
        "/api/mqtt/connection/{site_id}",
    ];
    let mut list = vec![
        endpoint(Method::GET, "/", Public, get(static_files::index)),
        endpoint(Method::GET, "/app.js", Public, get(static_files::app_js)),
        endpoint(Method::GET, "/js/{file}", Public, get(static_files::module)),
        endpoint(
            Method::GET,
            "/style.css",
            Public,
            get(static_files::style_css),
        ),
        endpoint(Method::GET, "/health", Public, get(health::health)),
        endpoint(Method::GET, "/metrics", Public, get(metrics::metrics)),
        endpoint(Method::GET, "/api/openapi.json", Read, get(openapi::serve)),
        endpoint(Method::GET, "/ws", ReadSocket, get(ws::upgrade)),
        endpoint(Method::GET, "/api/sites", Read, get(sites::list)),
        endpoint(Method::POST, "/api/sites", Admin, post(sites::create)),
        endpoint(Method::GET, "/api/sites/{id}", Read, get(sites::get)),
        endpoint(
            Method::PATCH,
            "/api/sites/{id}",
            Admin,
            patch(sites::update),
        ),
        endpoint(
            Method::DELETE,
            "/api/sites/{id}",
            Admin,
            delete(sites::delete),
        ),
        endpoint(
            Method::GET,
            "/api/sites/{site_id}/devices",
            Read,
            get(devices::list),
        ),
        endpoint(
            Method::GET,
            "/api/mqtt/connections",
            Read,
            get(connections::list),
        ),
        endpoint(
            Method::POST,
            "/api/mqtt/connections",
            Admin,
            post(connections::create),
        ),
        endpoint(Method::GET, "/api/mqtt/topics", Read, get(topics::list)),
        endpoint(
            Method::POST,
            "/api/mqtt/topics",
            Admin,
            post(topics::create),
        ),
        endpoint(Method::GET, "/api/mqtt/topics/{id}", Read, get(topics::get)),
        endpoint(
            Method::PATCH,
            "/api/mqtt/topics/{id}",
            Admin,
            patch(topics::update),
        ),
        endpoint(
            Method::DELETE,
            "/api/mqtt/topics/{id}",
            Admin,
            delete(topics::delete),
        ),
        endpoint(
            Method::GET,
            "/api/mqtt/discovered-topics",
            Read,
            get(discovered_topics::list),
        ),
        endpoint(Method::GET, "/api/parsers", Read, get(parsers::list)),
        // A dry run writes nothing, so it needs only read access.
        endpoint(
            Method::POST,
            "/api/parsers/{name}/test",
            Read,
            post(parsers::test),
        ),
        endpoint(
            Method::POST,
            "/api/parsers/reload",
            Admin,
            post(parsers::reload),
        ),
        endpoint(
            Method::GET,
            "/api/sensors/{id}/readings",
            Read,
            get(readings::list),
        ),
        endpoint(
            Method::GET,
            "/api/mqtt/connection-logs",
            Read,
            get(logs::connection_logs),
        ),
        endpoint(
            Method::GET,
            "/api/mqtt/parsing-logs",
            Read,
            get(logs::parsing_logs),
        ),
        endpoint(
            Method::POST,
            "/api/mqtt/parsing-logs/{id}/replay",
            Admin,
            post(logs::replay),
        ),
    ];
    for path in connection_paths {
        list.push(endpoint(Method::GET, path, Read, get(connections::get)));
        list.push(endpoint(
            Method::PATCH,
            path,
            Admin,
            patch(connections::update),
        ));
        list.push(endpoint(
            Method::DELETE,
            path,
            Admin,
            delete(connections::delete),
        ));
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

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints() {
        let handler = match endpoint.access {
            Access::Public => endpoint.handler,
            Access::Read => endpoint
                .handler
                .route_layer(from_fn_with_state(state.clone(), auth::require_read)),
            Access::ReadSocket => endpoint
                .handler
                .route_layer(from_fn_with_state(state.clone(), auth::require_read_socket)),
            Access::Admin => endpoint
                .handler
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
