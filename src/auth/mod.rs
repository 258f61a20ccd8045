//! Authorization: token presentation (header / cookie), JWS verification on `ring` with keys
//! bound to issuers and algorithms, RFC 9068 claim checks, and `authorization_details` → `Grants`.
//! Pure and sync; never logs or returns a token.
use std::sync::Arc;

use crate::topic::{Matcher, MatcherEngine};

/// A JWS algorithm the hub can verify. `none` does not exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    /// Parses the JOSE name (`HS256`, `EdDSA`…), case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        let _ = name;
        unimplemented!()
    }
    pub fn name(self) -> &'static str {
        unimplemented!()
    }
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// One verification key: an HMAC secret (raw text) or a PEM public key, pinned to one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub key: String,
    pub alg: Algorithm,
}

/// A trusted issuer and the keys that verify its tokens, per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub id: String,
    pub publisher: Option<KeyConfig>,
    pub subscriber: Option<KeyConfig>,
    /// Advertised in `authorization_servers` of the resource metadata.
    pub authorization_server: bool,
}

/// Which endpoint role a token is verified for (selects the issuer's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

/// An authorization failure, mapped to RFC 6750 responses by `http::response`. The `String` is
/// the real reason, for the server log only (never sent: `invalid_token` discloses nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token presented where one is required → 401, challenge without `error`.
    #[error("no access token presented")]
    Missing,
    /// Malformed presentation → 400 `error="invalid_request"`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Token failed validation → 401 `error="invalid_token"`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Valid token lacking the grant → 403 `error="insufficient_scope"`.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
}

/// Where a presented token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Cookie,
}

/// A presented token (borrowed from the request).
#[derive(Debug, Clone, Copy)]
pub struct Credential<'a> {
    pub token: &'a str,
    pub source: TokenSource,
}

/// Extracts the token: the `Authorization` header wins (exactly one, scheme `Bearer`
/// case-insensitive, a plausible compact JWS, else `InvalidRequest`); otherwise the cookie named
/// `cookie_name`; otherwise `None`. Never reads the query string.
pub fn extract_token<'a>(
    headers: &'a http::HeaderMap,
    cookie_name: &str,
) -> Result<Option<Credential<'a>>, AuthError> {
    let _ = (headers, cookie_name);
    unimplemented!()
}

/// Grants carried by a validated token.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    _private: (),
}

/// One `subscribe` authorization detail: its matchers and optional payload.
#[derive(Debug, Clone)]
pub struct SubscribeDetail {
    pub matchers: Vec<Matcher>,
    pub payload: Option<serde_json::Value>,
}

impl Grants {
    /// Whether some `publish` grant matches `topic`.
    pub fn can_publish(&self, engine: &MatcherEngine, topic: &str) -> bool {
        let _ = (engine, topic);
        unimplemented!()
    }
    /// Whether some `subscribe` grant matches at least one of `topics`.
    pub fn can_subscribe_any(&self, engine: &MatcherEngine, topics: &[Box<str>]) -> bool {
        let _ = (engine, topics);
        unimplemented!()
    }
    /// Payload of the first `subscribe` detail whose topics match the subscription's own
    /// matcher string used as a topic (`*` matches every subscription). `None` when that first
    /// matching detail has none, or none matches.
    pub fn payload_for(
        &self,
        engine: &MatcherEngine,
        subscription: &str,
    ) -> Option<&serde_json::Value> {
        let _ = (engine, subscription);
        unimplemented!()
    }
}

/// What a validated token says.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `exp`, seconds since the Unix epoch.
    pub exp: u64,
    pub sub: Option<String>,
    pub grants: Grants,
}

/// Verifies tokens against the trusted issuers.
#[derive(Debug)]
pub struct Verifier {
    _private: (),
}

impl Verifier {
    /// Loads and checks every issuer's keys; all problems are returned together.
    pub fn new(issuers: &[IssuerConfig], engine: Arc<MatcherEngine>) -> Result<Self, Vec<String>> {
        let _ = (issuers, engine);
        unimplemented!()
    }
    /// Whether any issuer has a key for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        let _ = role;
        unimplemented!()
    }
    /// Full validation: signature with the key of the issuer named by `iss` for `role` only,
    /// `typ` at+jwt, algorithm pinning, `exp` (required) and `nbf` against `now` (Unix seconds),
    /// `aud` containing `audience`, then strict `authorization_details` parsing.
    pub fn verify(
        &self,
        token: &str,
        role: Role,
        audience: &str,
        now: u64,
    ) -> Result<Claims, AuthError> {
        let _ = (token, role, audience, now);
        unimplemented!()
    }
}

/// Signs `claims` as a compact JWS with header `{"alg":…,"typ":"at+jwt"}`. `key` is an HMAC
/// secret for HS*, or a PKCS#8 PEM private key for the other algorithms. For dev mode, the token
/// CLI and tests.
pub fn mint(claims: &serde_json::Value, key: &str, alg: Algorithm) -> Result<String, String> {
    let _ = (claims, key, alg);
    unimplemented!()
}
