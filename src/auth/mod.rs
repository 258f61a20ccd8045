//! Authorization: token presentation (header / cookie), JWS verification on `ring` with keys
//! bound to issuers and algorithms, RFC 9068 claim checks, and `authorization_details` → `Grants`.
//! Pure and sync; never logs or returns a token.
mod cache;
mod claims;
mod fetch;
mod grants;
mod jwks;
mod jws;
mod keys;
mod presentation;
mod verifier;

#[cfg(test)]
mod tests;

pub use grants::{
    Grants, SubscribeDetail, MAX_DETAIL_TOPICS, MAX_LEGACY_ENTRIES, MAX_MERCURE_DETAILS,
    MERCURE_DETAIL_TYPE,
};
pub use jwks::JwksStatus;
pub use jws::{mint, MAX_TOKEN_LEN};
pub use presentation::{
    extract_token, extract_token_compat, LEGACY_COOKIE_NAME, MIN_COMPACT_JWS_LEN,
};
pub use verifier::Verifier;

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
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
    /// Every supported algorithm, HMAC first.
    pub const ALL: [Self; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// One verification key: an HMAC secret (raw text) or a PEM public key, pinned to one algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub key: String,
    pub alg: Algorithm,
}

// By hand so that printing the configuration never prints a shared secret.
impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.alg.is_hmac() {
            format!("<secret, {} bytes>", self.key.len())
        } else {
            format!("<PEM, {} bytes>", self.key.len())
        };
        f.debug_struct("KeyConfig")
            .field("key", &format_args!("{key}"))
            .field("alg", &self.alg)
            .finish()
    }
}

/// A trusted issuer and the keys that verify its tokens, per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub id: String,
    pub publisher: Option<KeyConfig>,
    pub subscriber: Option<KeyConfig>,
    /// JWK Set (file or HTTPS URL) verifying publisher tokens (instead of `publisher`).
    pub publisher_jwks: Option<JwksSource>,
    /// JWK Set (file or HTTPS URL) verifying subscriber tokens (instead of `subscriber`).
    pub subscriber_jwks: Option<JwksSource>,
    /// Advertised in `authorization_servers` of the resource metadata.
    pub authorization_server: bool,
}

/// Where a JWK Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file, re-read when a `kid` is unknown and the file changed.
    File(std::path::PathBuf),
    /// An `https://` URL, fetched at start, on an interval and on a `kid` miss.
    Url(JwksUrl),
}

/// An HTTPS JWK Set source and how it is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    /// `https://` only; redirects are not followed.
    pub url: String,
    /// Extra trusted CA certificates (PEM), besides the platform's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Periodic refresh.
    pub refresh_interval: std::time::Duration,
    /// At most one fetch per this period (a `kid` miss never fetches more often).
    pub refresh_min_interval: std::time::Duration,
}

impl JwksUrl {
    /// Default periodic refresh: 10 minutes.
    pub const DEFAULT_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
    /// Default rate limit of refreshes: one per 30 seconds.
    pub const DEFAULT_REFRESH_MIN_INTERVAL: std::time::Duration =
        std::time::Duration::from_secs(30);

    /// A source with the default intervals and no extra CA.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            refresh_min_interval: Self::DEFAULT_REFRESH_MIN_INTERVAL,
        }
    }
}

/// Which endpoint role a token is verified for (selects the issuer's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    /// `publisher` or `subscriber`, as in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Subscriber => "subscriber",
        }
    }
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
    /// The `authorization` query parameter (compatibility mode only).
    Query,
    Cookie,
}

/// A presented token (borrowed from the request).
#[derive(Debug, Clone, Copy)]
pub struct Credential<'a> {
    pub token: &'a str,
    pub source: TokenSource,
}

/// What a validated token says.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `exp`, seconds since the Unix epoch; `u64::MAX` when absent (only compatibility mode
    /// accepts such tokens).
    pub exp: u64,
    pub sub: Option<String>,
    /// Shared: a cached verification hands out the same grants to every request using it.
    pub grants: std::sync::Arc<Grants>,
}
