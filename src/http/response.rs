//! The one place errors become HTTP responses, plus the small response builders every handler
//! uses. RFC 6750 challenges carry `resource_metadata`; the real auth failure reason is logged
//! at info (never the token) so operators can debug a 401.
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use super::HubBody;
use crate::auth::AuthError;
use crate::error::HubError;

pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A response with a complete body.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<HubBody> {
    let mut resp = Response::new(HubBody::full(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A `text/plain; charset=utf-8` response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<HubBody> {
    full(status, TEXT_PLAIN, body)
}

/// Maps an error to its response. `resource_metadata` is the URL of the protected resource
/// metadata, put in every Bearer challenge.
pub fn error(err: &HubError, resource_metadata: &str) -> Response<HubBody> {
    match err {
        HubError::BadRequest(reason) => text(StatusCode::BAD_REQUEST, format!("{reason}\n")),
        HubError::TooLarge(reason) => text(StatusCode::PAYLOAD_TOO_LARGE, format!("{reason}\n")),
        HubError::NotFound => text(StatusCode::NOT_FOUND, "Not Found\n"),
        HubError::MethodNotAllowed(allow) => {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            resp
        }
        HubError::Unavailable(reason) => {
            tracing::warn!(reason = %reason, "service unavailable");
            text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
        }
        HubError::Internal(detail) => {
            tracing::error!(detail = %detail, "internal error");
            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        }
        HubError::Auth(auth) => auth_error(auth, resource_metadata),
    }
}

fn auth_error(err: &AuthError, resource_metadata: &str) -> Response<HubBody> {
    tracing::info!(reason = %err, "authorization error");
    let (status, code, body) = match err {
        AuthError::Missing => (StatusCode::UNAUTHORIZED, None, "Unauthorized\n".to_owned()),
        AuthError::InvalidToken(_) => (
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "Unauthorized\n".to_owned(),
        ),
        AuthError::InsufficientScope(_) => (
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "Forbidden\n".to_owned(),
        ),
        // The presentation defect is the client's own request: safe and useful to explain.
        AuthError::InvalidRequest(reason) => (
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            format!("{reason}\n"),
        ),
    };
    let mut challenge = String::from("Bearer ");
    if let Some(code) = code {
        challenge.push_str("error=\"");
        challenge.push_str(code);
        challenge.push_str("\", ");
    }
    challenge.push_str("resource_metadata=\"");
    challenge.push_str(&resource_metadata.replace(['"', '\\'], ""));
    challenge.push('"');
    let mut resp = text(status, body);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    resp
}
