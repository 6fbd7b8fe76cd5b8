//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the whole HTTP interface, generated from
//! the route table (every path, method and access) and the operation each route carries (the
//! types its handler reads and writes). What every route of a kind can fail with is added here
//! once: 401 where a token is needed, 400/413/415/422 where a body is read, 422 where the query
//! is, 404 where the path names a resource.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::Json;
use serde_json::Value;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation as PathOperation, OperationBuilder, ParameterBuilder, ParameterIn,
    PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Required, ResponseBuilder, ResponsesBuilder,
};

use super::auth::Access;
use super::operation::{Operation, ReplyBody};
use super::{endpoints, needs_database, schema};
use crate::state::AppState;

const JSON: &str = "application/json";

pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.parsers.current().names()))
}

/// The document, with the parser names the registry holds now wherever a parser is named.
pub fn document(parser_names: &[String]) -> Value {
    let mut value = serde_json::to_value(openapi()).unwrap_or(Value::Null);
    name_parsers(&mut value, parser_names);
    value
}

/// The document as utoipa models it, the same for every registry.
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "queryToken",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The token as a query parameter, for clients that cannot send an Authorization \
                 header (browsers opening the WebSocket); only GET /ws reads it.",
            ))),
        );
    for endpoint in endpoints() {
        let database = needs_database(&endpoint);
        let operation = if endpoint.operation.replies.is_empty() {
            page_file(endpoint.path)
        } else {
            endpoint.operation
        };
        let mut operation =
            with_common_replies(operation, endpoint.path, endpoint.access, database);
        for (name, schema) in std::mem::take(&mut operation.schemas) {
            components = components.schema(name, schema);
        }
        let item = PathItem::new(
            http_method(&endpoint.method),
            path_operation(operation, endpoint.path, endpoint.access),
        );
        paths = paths.path(endpoint.path, item);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("mqtt-supervisor")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Admin REST API of mqtt-supervisor. Errors are {\"error\": {\"code\", \
                     \"message\"}}, with \"field\" naming what to change on a 422. Mutations \
                     need 'Authorization: Bearer <admin token>'; reads need it too unless \
                     api.public_read is true. Bodies refuse unknown fields; each query \
                     parameter may be given once, and parameters an endpoint does not know \
                     are ignored.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// A route that describes nothing serves a file of the Devices page: its media type follows from
/// its name, as the files' own handlers set it (`tests/api_contract.rs` checks them).
fn page_file(path: &str) -> Operation {
    let (summary, media_type) = match path.rsplit_once('.').map(|(_, extension)| extension) {
        None => ("The Devices page.", "text/html"),
        Some("js") => ("A script of the Devices page.", "text/javascript"),
        Some("css") => ("A style sheet of the Devices page.", "text/css"),
        Some("svg") => ("An image of the Devices page.", "image/svg+xml"),
        Some("png") => ("An image of the Devices page.", "image/png"),
        Some("ico") => ("The icon of the Devices page.", "image/x-icon"),
        Some("html") => ("A page of the Devices page.", "text/html"),
        Some("json") => ("A file of the Devices page.", "application/json"),
        Some(_) => ("A file of the Devices page.", "application/octet-stream"),
    };
    Operation::new(summary).media(StatusCode::OK, media_type, "The file")
}

/// The replies every route of a kind shares, unless the route describes its own.
fn with_common_replies(
    mut operation: Operation,
    path: &str,
    access: Access,
    database: bool,
) -> Operation {
    let add = |operation: Operation, status: StatusCode, description: &'static str| {
        if operation.replies_with(status) {
            operation
        } else {
            operation.error(status, description)
        }
    };
    if access != Access::Public {
        operation = add(
            operation,
            StatusCode::UNAUTHORIZED,
            "Missing or wrong token (code unauthorized).",
        );
    }
    if access == Access::Admin {
        operation = add(
            operation,
            StatusCode::FORBIDDEN,
            "The read token cannot change anything (code forbidden).",
        );
    }
    if database {
        operation = add(
            operation,
            StatusCode::SERVICE_UNAVAILABLE,
            "The database does not answer (code database_unavailable); try again shortly.",
        );
    }
    if !path_parameters(path).is_empty() {
        operation = add(
            operation,
            StatusCode::NOT_FOUND,
            "No such resource (code not_found).",
        );
    }
    if operation.body.is_some() {
        operation = add(
            operation,
            StatusCode::BAD_REQUEST,
            "The body is not JSON (code invalid_json).",
        );
        operation = add(
            operation,
            StatusCode::PAYLOAD_TOO_LARGE,
            "The body is larger than http.body_limit_bytes (code payload_too_large).",
        );
        operation = add(
            operation,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "A Content-Type other than JSON (code unsupported_media_type).",
        );
    }
    if operation.body.is_some() || !operation.query.is_empty() {
        operation = add(
            operation,
            StatusCode::UNPROCESSABLE_ENTITY,
            "A field or query parameter is missing or invalid; error.field names it (code \
             validation_failed).",
        );
    }
    operation
}

fn path_operation(operation: Operation, path: &str, access: Access) -> PathOperation {
    let mut builder = OperationBuilder::new().summary(Some(operation.summary));
    for name in path_parameters(path) {
        let (schema, description) = match name {
            "name" => (schema::string().build(), "Parser name"),
            "site_id" => (schema::id().build(), "Site id"),
            _ => (schema::id().build(), "Id"),
        };
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(schema)),
        );
    }
    if !operation.query.is_empty() {
        builder = builder.parameters(Some(operation.query));
    }
    if let Some(body) = operation.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(JSON, ContentBuilder::new().schema(Some(body)).build())
                .build(),
        ));
    }
    let mut replies = operation.replies;
    replies.sort_by_key(|reply| reply.status);
    let mut responses = ResponsesBuilder::new();
    for reply in replies {
        let response = ResponseBuilder::new().description(reply.description);
        let response = match reply.body {
            ReplyBody::Json(schema) => {
                response.content(JSON, ContentBuilder::new().schema(Some(*schema)).build())
            }
            ReplyBody::Media(media_type) => {
                response.content(media_type, ContentBuilder::new().build())
            }
            ReplyBody::Empty => response,
        };
        responses = responses.response(reply.status.as_u16().to_string(), response.build());
    }
    builder = builder.responses(responses.build());
    let bearer = || SecurityRequirement::new("bearer", Vec::<String>::new());
    builder = builder.securities(Some(match access {
        Access::Public => Vec::new(),
        // Reads are open when api.public_read is true; the document describes the default.
        Access::Read | Access::Admin => vec![bearer()],
        Access::ReadSocket => vec![
            bearer(),
            SecurityRequirement::new("queryToken", Vec::<String>::new()),
        ],
    }));
    builder
        .extensions(Some(
            ExtensionsBuilder::new()
                .add(
                    "x-access",
                    match access {
                        Access::Public => "public",
                        Access::Read => "read",
                        Access::ReadSocket => "read (token may be sent as ?token=)",
                        Access::Admin => "admin",
                    },
                )
                .build(),
        ))
        .build()
}

/// The `{name}` parameters of a route's path, in order.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|level| level.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => HttpMethod::Get,
    }
}

/// A parser is named in topic bodies and in the dry run's path: the document lists the names the
/// registry holds, so a client (or a fuzzer) knows which are accepted.
fn name_parsers(document: &mut Value, names: &[String]) {
    let names = Value::from(names.to_vec());
    let schemas = &mut document["components"]["schemas"];
    for body in ["TopicCreate", "TopicPatch"] {
        if let Some(parser) = schemas
            .get_mut(body)
            .and_then(|schema| schema.pointer_mut("/properties/parser"))
        {
            parser["enum"] = names.clone();
        }
    }
    if let Some(parameters) = document
        .pointer_mut("/paths/~1api~1parsers~1{name}~1test/post/parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters {
            if parameter["name"] == "name" && parameter["in"] == "path" {
                parameter["schema"]["enum"] = names.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn sample() -> Value {
        document(&[
            "flat_telemetry".to_string(),
            "gateway_status_v1".to_string(),
        ])
    }

    #[test]
    fn document_covers_exactly_the_router() {
        let from_router: BTreeSet<(String, String)> = crate::api::route_table()
            .into_iter()
            .map(|(method, path, _)| (method.as_str().to_ascii_lowercase(), path.to_string()))
            .collect();
        let document = sample();
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
        let document = sample();
        let text = document.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                document["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
    }

    #[test]
    fn every_api_route_is_described() {
        for endpoint in crate::api::endpoints() {
            if endpoint.path.starts_with("/api") || endpoint.path.starts_with("/health") {
                assert!(
                    !endpoint.operation.summary.is_empty()
                        && !endpoint.operation.replies.is_empty(),
                    "{} {}",
                    endpoint.method,
                    endpoint.path
                );
            }
        }
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_name_parsers() {
        let document = sample();
        let schemas = &document["components"]["schemas"];
        for name in [
            "SiteCreate",
            "SitePatch",
            "ConnectionCreate",
            "ConnectionPatch",
            "TopicCreate",
            "TopicPatch",
            "ParserTestRequest",
        ] {
            assert_eq!(
                schemas[name]["additionalProperties"],
                Value::Bool(false),
                "{name}"
            );
        }
        assert_eq!(
            schemas["TopicCreate"]["properties"]["parser"]["enum"],
            serde_json::json!(["flat_telemetry", "gateway_status_v1"])
        );
        let parameters = &document["paths"]["/api/parsers/{name}/test"]["post"]["parameters"];
        assert_eq!(
            parameters[0]["schema"]["enum"],
            serde_json::json!(["flat_telemetry", "gateway_status_v1"])
        );
    }

    #[test]
    fn the_document_is_valid_json_schema_throughout() {
        let document = sample();
        for name in document["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
        {
            let root = serde_json::json!({
                "$ref": format!("#/components/schemas/{name}"),
                "components": document["components"],
            });
            jsonschema::validator_for(&root)
                .unwrap_or_else(|error| panic!("{name} is not a valid schema: {error}"));
        }
    }
}
