//! The admin token: required for every mutation, and for reads unless `api.public_read = true`.
//! Compared in constant time so response timing does not reveal how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::query::raw_parameter;
use crate::state::AppState;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token ever: health, metrics and the page (which asks for the token itself).
    Public,
    /// Token unless `api.public_read`.
    Read,
    /// Read access, where browsers cannot set headers: the token may also come as `?token=`.
    ReadSocket,
    /// Token always (when the service has one).
    Admin,
}

/// Constant-time for tokens of equal length; a length mismatch returns at once, which reveals
/// only the length.
pub fn token_matches(expected: &str, given: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether a request with these headers and query may use an endpoint of `access`.
pub fn check(
    state: &AppState,
    access: Access,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), ApiError> {
    let expected = state.config.api.admin_token.as_str();
    let needs_token = match access {
        Access::Public => false,
        Access::Read | Access::ReadSocket => !state.config.api.public_read,
        Access::Admin => true,
    };
    if !needs_token || expected.is_empty() {
        return Ok(());
    }
    let given = match bearer_token(headers) {
        Some(token) => Some(token.to_string()),
        None if access == Access::ReadSocket => {
            query.and_then(|query| raw_parameter(query, "token"))
        }
        None => None,
    };
    match given {
        None => Err(ApiError::Unauthorized(
            "this endpoint needs the admin token: send 'Authorization: Bearer <token>'".into(),
        )),
        Some(token) if token_matches(expected, &token) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized(
            "the admin token is not valid".into(),
        )),
    }
}

async fn guard(state: AppState, access: Access, request: Request, next: Next) -> Response {
    match check(&state, access, request.headers(), request.uri().query()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

pub async fn require_read(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(state, Access::Read, request, next).await
}

pub async fn require_read_socket(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    guard(state, Access::ReadSocket, request, next).await
}

pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    guard(state, Access::Admin, request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secret", "secreT"));
        assert!(!token_matches("secret", "secret-longer"));
        assert!(!token_matches("secret", ""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "bearer abc".parse().expect("header"));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer_token(&headers), None);
    }
}
