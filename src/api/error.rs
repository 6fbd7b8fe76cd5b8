//! The one error type of the HTTP interface: every failure becomes a status code and a body
//! `{"error": {"code", "message"}}` (plus `field` or `details` where they help the caller).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token that may not do this (the read token on a mutation).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A body or query value the API cannot accept; `field` is what the caller has to change.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// A list of problems that belong to no single field (e.g. parser files that do not load).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Vec<String>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON at all.
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the database is not reachable; try again shortly")]
    Unavailable(#[source] DbErr),
    /// Logged in full; the caller only learns that something failed on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every `code` an error body may carry.
pub const ERROR_CODES: [&str; 13] = [
    "unauthorized",
    "forbidden",
    "not_found",
    "validation_failed",
    "parser_load_failed",
    "conflict",
    "payload_too_large",
    "invalid_json",
    "bad_request",
    "unsupported_media_type",
    "method_not_allowed",
    "database_unavailable",
    "internal",
];

/// The body of every error response, as the OpenAPI document states it.
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
pub struct ErrorSchema {
    error: ErrorDetailSchema,
}

#[derive(ToSchema)]
#[schema(as = ErrorDetail)]
#[allow(dead_code)]
struct ErrorDetailSchema {
    #[schema(schema_with = code_schema)]
    code: String,
    message: String,
    /// The body field or query parameter to change (`validation_failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    field: Option<String>,
    /// Each problem, where there are several (`parser_load_failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>)]
    details: Option<Vec<String>>,
}

fn code_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ERROR_CODES))
        .build()
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [String]>,
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Conflict(message.into())
    }

    /// A database error, with a unique-key violation explained by `conflict` (the caller knows
    /// which value collided; the driver's text names only the index).
    pub fn database(error: DbErr, conflict: impl FnOnce() -> String) -> ApiError {
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(conflict()),
            _ => ApiError::from(error),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } | ApiError::Invalid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Invalid { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> ApiError {
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                ApiError::Conflict("a row with the same unique value already exists".into())
            }
            // A parent row deleted between our check and the insert.
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => ApiError::Conflict(
                "a row this change refers to no longer exists; reload and try again".into(),
            ),
            _ => match error {
                DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => ApiError::Unavailable(error),
                other => ApiError::Internal(other.to_string()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal error; the service log has the details".to_string()
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "request failed: database unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let (field, details) = match &self {
            ApiError::Validation { field, .. } => (Some(field.as_str()), None),
            ApiError::Invalid { details, .. } => (None, Some(details.as_slice())),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field,
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_message_names_the_field() {
        let error = ApiError::validation("port", "must be between 1 and 65535");
        assert_eq!(error.to_string(), "port: must be between 1 and 65535");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code(), "validation_failed");
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let response = ApiError::Internal("secret connection string".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn every_code_is_listed_for_the_document() {
        let errors = [
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::not_found(""),
            ApiError::validation("a", "b"),
            ApiError::Invalid {
                code: "parser_load_failed",
                message: String::new(),
                details: Vec::new(),
            },
            ApiError::conflict(""),
            ApiError::PayloadTooLarge(String::new()),
            ApiError::InvalidJson(String::new()),
            ApiError::BadRequest(String::new()),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::MethodNotAllowed(String::new()),
            ApiError::Unavailable(DbErr::Custom(String::new())),
            ApiError::Internal(String::new()),
        ];
        for error in &errors {
            assert!(ERROR_CODES.contains(&error.code()), "{}", error.code());
        }
        assert_eq!(errors.len(), ERROR_CODES.len());
    }
}
