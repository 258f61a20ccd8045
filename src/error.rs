//! The request-path error type: every failure a handler can produce, classified by who is at
//! fault. `http::response` is the one place these become HTTP responses.
use crate::auth::AuthError;

/// An error on the request path. The `String` payloads are plain reasons safe to show a client
/// (never compiler internals, never a token).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// 400 without a Bearer challenge: the request is malformed independently of the token.
    #[error("{0}")]
    BadRequest(String),
    /// 413: an implementation limit was exceeded.
    #[error("{0}")]
    TooLarge(String),
    /// 401/403/400 with a `WWW-Authenticate: Bearer` challenge.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 405, with the allowed methods.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 503: the hub cannot serve this now (shutting down, history unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected internal failure; details are logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl HubError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }
    pub fn too_large(reason: impl Into<String>) -> Self {
        Self::TooLarge(reason.into())
    }
}
