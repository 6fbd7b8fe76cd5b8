//! The tokens: the admin token for every mutation, the admin or the read token for reads and
//! the WebSocket (unless `api.public_read = true`). Compared in constant time so response timing
//! does not reveal how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::audit;
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

/// Who made a request, as far as the tokens tell; kept in the request's extensions for the
/// audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token, or anyone on a service without one (every caller may do everything).
    Admin,
    /// The read token.
    Reader,
    /// No token was needed and none was checked (public endpoints, `public_read` reads).
    Anyone,
}

impl Caller {
    /// The name the audit log shows: never the token itself.
    pub fn token_name(self) -> &'static str {
        match self {
            Caller::Reader => "read",
            Caller::Admin | Caller::Anyone => "admin",
        }
    }
}

/// Whether a request with these headers and query may use an endpoint of `access`, and who it is.
pub fn check(
    state: &AppState,
    access: Access,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Caller, ApiError> {
    let admin_token = state.config.api.admin_token.as_str();
    let read_token = state.config.api.read_token.as_str();
    let needs_token = match access {
        Access::Public => false,
        Access::Read | Access::ReadSocket => !state.config.api.public_read,
        Access::Admin => true,
    };
    if admin_token.is_empty() {
        return Ok(Caller::Admin);
    }
    if !needs_token {
        return Ok(Caller::Anyone);
    }
    let given = match bearer_token(headers) {
        Some(token) => Some(token.to_string()),
        None if access == Access::ReadSocket => {
            query.and_then(|query| raw_parameter(query, "token"))
        }
        None => None,
    };
    let Some(token) = given else {
        return Err(ApiError::Unauthorized(
            "this endpoint needs a token: send 'Authorization: Bearer <token>'".into(),
        ));
    };
    if token_matches(admin_token, &token) {
        return Ok(Caller::Admin);
    }
    if !read_token.is_empty() && token_matches(read_token, &token) {
        return match access {
            Access::Admin => Err(ApiError::Forbidden(
                "the read token cannot change anything: use the admin token".into(),
            )),
            _ => Ok(Caller::Reader),
        };
    }
    Err(ApiError::Unauthorized("the token is not valid".into()))
}

async fn guard(state: AppState, access: Access, mut request: Request, next: Next) -> Response {
    match check(&state, access, request.headers(), request.uri().query()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            if access == Access::Admin {
                audit::record_refusal(&state, request.method(), request.uri().path(), &error).await;
            }
            error.into_response()
        }
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
