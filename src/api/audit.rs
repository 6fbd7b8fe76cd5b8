//! The audit log: every accepted change made through the API (when, with which token by name,
//! the method and path, the site it touched and which fields it sent, never their values),
//! written once the handler has answered 2xx; every attempt the tokens refused (401, 403); and
//! `GET /api/audit-log` to read them.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, Order, Set};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::list::Listing;
use crate::entity::audit_log;
use crate::state::AppState;

/// A mutation's answer is a row or a short report; one larger than this is not searched for a
/// `site_id` (it is still passed on whole).
const MAX_ANSWER_BYTES_SEARCHED: usize = 1 << 20;

/// One accepted change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditEntryResponse {
    pub id: i32,
    pub at: DateTime<Utc>,
    /// `change`: accepted (answered 2xx); `refused`: the tokens said no (401 or 403).
    #[schema(pattern = "^(change|refused)$")]
    pub kind: String,
    /// `admin` or `read`: which token was used, never the token itself; `none` for an attempt
    /// without a valid token.
    #[schema(pattern = "^(admin|read|none)$")]
    pub token: String,
    pub method: String,
    /// The path as called.
    pub path: String,
    /// The site the change touched, when it names one (path, body or answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i32>,
    /// What was done and which fields were sent (never their values: passwords pass here).
    pub summary: String,
}

/// `GET /api/audit-log`: newest first; `?site_id=` keeps one site's changes.
pub struct AuditLogList;

impl Listing for AuditLogList {
    type Entity = audit_log::Entity;
    type Item = AuditEntryResponse;
    const SITE_COLUMN: Option<audit_log::Column> = Some(audit_log::Column::SiteId);
    fn order() -> Vec<(audit_log::Column, Order)> {
        vec![
            (audit_log::Column::At, Order::Desc),
            (audit_log::Column::Id, Order::Desc),
        ]
    }
    fn item(row: audit_log::Model, _: &AppState) -> AuditEntryResponse {
        AuditEntryResponse {
            id: row.id,
            at: row.at,
            kind: row.kind,
            token: row.token,
            method: row.method,
            path: row.path,
            site_id: row.site_id,
            summary: row.summary,
        }
    }
}

/// The top-level field names of a JSON object body, sorted.
pub fn body_fields(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The site a change touched: the `{site_id}` of the route, else the `{id}` of a site route (or
/// of the site a `POST /api/sites` made), else a `site_id` in the body, else one in the answer.
pub fn site_of(template: &str, path: &str, body: &[u8], answer: &[u8]) -> Option<i32> {
    let from_path = template
        .split('/')
        .zip(path.split('/'))
        .find(|(name, _)| {
            *name == "{site_id}" || (*name == "{id}" && template.starts_with("/api/sites/{id}"))
        })
        .and_then(|(_, value)| value.parse().ok());
    let field = |bytes: &[u8], name: &str| {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|value| value.get(name).and_then(Value::as_i64))
            .and_then(|id| i32::try_from(id).ok())
    };
    if template == "/api/sites" {
        return field(answer, "id");
    }
    from_path
        .or_else(|| field(body, "site_id"))
        .or_else(|| field(answer, "site_id"))
}

/// One line saying what was done: the verb of the method and the fields sent.
pub fn summary(method: &Method, template: &str, fields: &[String]) -> String {
    let verb = match *method {
        Method::POST => "posted to",
        Method::PATCH => "changed",
        Method::PUT => "replaced",
        Method::DELETE => "deleted",
        _ => "called",
    };
    if fields.is_empty() {
        format!("{verb} {template}")
    } else {
        format!("{verb} {template}: {}", fields.join(", "))
    }
}

/// Wraps a mutation: runs it, and records it when it was accepted. A failure to record is
/// logged, not turned into an error: the change itself has been made.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .copied()
        .unwrap_or(Caller::Admin);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, state.config.http.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(
                "request body is larger than the configured limit (http.body_limit_bytes)".into(),
            )
            .into_response()
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, answer) = response.into_parts();
    // The handler's answer is already in memory: reading it whole cannot fail but on a broken
    // stream, which is then reported as such rather than passed on truncated.
    let answer = match to_bytes(answer, usize::MAX).await {
        Ok(answer) => answer,
        Err(error) => {
            return ApiError::Internal(format!("cannot read the answer: {error}")).into_response()
        }
    };
    let searched: &[u8] = if answer.len() <= MAX_ANSWER_BYTES_SEARCHED {
        &answer
    } else {
        &[]
    };
    let entry = audit_log::ActiveModel {
        at: Set(Utc::now()),
        kind: Set("change".into()),
        token: Set(caller.token_name().to_string()),
        method: Set(method.to_string()),
        site_id: Set(site_of(&template, &path, &body, searched)),
        summary: Set(summary(&method, &template, &body_fields(&body))),
        path: Set(path),
        ..Default::default()
    };
    if let Err(error) = entry.insert(&state.db).await {
        tracing::warn!(%error, "cannot write the audit log row of an accepted change");
    }
    Response::from_parts(parts, Body::from(answer))
}

/// An attempt at a change the tokens refused: the read token (403) or no valid token (401).
/// Only the method and path are known to be the caller's; the body was not read.
pub async fn record_refusal(state: &AppState, method: &Method, path: &str, error: &ApiError) {
    let (token, reason) = match error {
        ApiError::Forbidden(_) => ("read", "the read token cannot change anything"),
        _ => ("none", "no valid token"),
    };
    let entry = audit_log::ActiveModel {
        at: Set(Utc::now()),
        kind: Set("refused".into()),
        token: Set(token.into()),
        method: Set(method.to_string()),
        path: Set(path.to_string()),
        site_id: Set(None),
        summary: Set(format!("refused ({}): {reason}", error.status().as_u16())),
        ..Default::default()
    };
    if let Err(error) = entry.insert(&state.db).await {
        tracing::warn!(%error, "cannot write the audit log row of a refused change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_comes_from_the_path_then_the_body_then_the_answer() {
        let template = "/api/mqtt/connection/{site_id}/";
        assert_eq!(
            site_of(template, "/api/mqtt/connection/7/", b"", b""),
            Some(7)
        );
        assert_eq!(
            site_of("/api/sites/{id}", "/api/sites/3", b"", b""),
            Some(3)
        );
        assert_eq!(
            site_of(
                "/api/sites",
                "/api/sites",
                br#"{"name": "a"}"#,
                br#"{"id": 8}"#
            ),
            Some(8),
            "a new site"
        );
        assert_eq!(
            site_of(
                "/api/mqtt/topics",
                "/api/mqtt/topics",
                br#"{"site_id": 4}"#,
                b""
            ),
            Some(4)
        );
        assert_eq!(
            site_of(
                "/api/mqtt/topics/{id}",
                "/api/mqtt/topics/9",
                br#"{"qos": 0}"#,
                br#"{"id": 9, "site_id": 5}"#
            ),
            Some(5),
            "a topic's {{id}} is not a site"
        );
        assert_eq!(
            site_of("/api/parsers/reload", "/api/parsers/reload", b"", b"[]"),
            None
        );
    }

    #[test]
    fn the_summary_names_fields_never_values() {
        let fields = body_fields(br#"{"password": "hunter2", "is_active": true}"#);
        let line = summary(&Method::PATCH, "/api/mqtt/connection/{site_id}/", &fields);
        assert_eq!(
            line,
            "changed /api/mqtt/connection/{site_id}/: is_active, password"
        );
        assert!(!line.contains("hunter2"));
        assert_eq!(
            summary(&Method::DELETE, "/api/sites/{id}", &[]),
            "deleted /api/sites/{id}"
        );
        assert!(body_fields(b"not json").is_empty());
    }
}
