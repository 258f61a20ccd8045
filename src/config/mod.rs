//! Typed, validated configuration. `Config` is what the rest of the hub reads; it is built once
//! at start by `load` (defaults < TOML file < env < CLI flags) and never re-read.
mod layers;
mod load;
mod parse;
#[cfg(test)]
mod tests;
mod token;

pub use load::{load, Cli, Command, ConfigErrors, EnvSource, ProcessEnv, DEFAULT_ADDR};
pub use token::{mint_token, TokenArgs, DEFAULT_TOKEN_AUDIENCE};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::IssuerConfig;
use crate::history::log;

/// The whole hub configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain-text listener (HTTP/1.1 and h2c prior knowledge). `None` disables it.
    pub addr: Option<SocketAddr>,
    /// TLS listener (ALPN h2 and http/1.1).
    pub tls: Option<TlsConfig>,
    /// Trusted issuers, each with its publisher and subscriber keys.
    pub issuers: Vec<IssuerConfig>,
    /// No key was configured: a random secret was generated for a first try (see `main`).
    pub dev_secret: Option<String>,
    /// Expected `aud`; `None` derives `<scheme>://<host>/.well-known/mercure` per request.
    pub resource_identifier: Option<String>,
    /// The hub URL: base for relative URL patterns and topics, and the reserved namespace.
    pub hub_url: url::Url,
    /// Tokenless subscribers receive public updates.
    pub anonymous: bool,
    /// Active subscriptions: subscription events and the Subscription API.
    pub subscriptions: bool,
    /// Origins allowed for credentialed CORS (exact `scheme://host[:port]`, lower case).
    pub cors_origins: Vec<String>,
    /// Extra origins allowed to publish with the cookie (CSRF), besides the hub's own origin
    /// and `cors_origins`: `scheme://host[:port]`, `*`, or a `*` prefix/suffix wildcard.
    pub publish_origins: Vec<String>,
    /// Mercure 0.x compatibility (`7` or `8`); `None` is the default, modern-only mode.
    pub protocol_version_compatibility: Option<u8>,
    /// Name of the cookie carrying the access token.
    pub cookie_name: String,
    /// Idle period before a `:` heartbeat comment; `None` disables heartbeats.
    pub heartbeat: Option<Duration>,
    /// Maximum life of a subscriber stream (jittered to 80–100 %); `None` disables it.
    pub write_timeout: Option<Duration>,
    /// Maximum publish or QUERY body size in bytes; `None` disables the limit.
    pub max_request_body_size: Option<usize>,
    /// Maximum `topic` fields per publish (over → 413).
    pub max_topics_per_update: usize,
    /// Maximum length in bytes of one form field value other than `data` (over → 413).
    pub max_field_length: usize,
    /// History backend.
    pub history: HistoryConfig,
    /// Capacity of each subscriber's queue; overflow ends the stream (it resumes from history).
    pub subscriber_queue_capacity: usize,
    /// Entries in the matcher result cache (and a tenth of it for compiled patterns).
    pub matcher_cache_size: usize,
    /// How long shutdown waits for connections to finish after SSE streams are ended.
    pub shutdown_grace: Duration,
    /// Threads of the runtime answering requests; `None` is one per CPU. (Streams of HTTP/1.1
    /// subscribers run on a delivery runtime of their own, one thread per CPU.)
    pub workers: Option<usize>,
    /// Log output format.
    pub log_format: LogFormat,
    /// `tracing` filter directive (e.g. `info`, `quicksilver=debug`).
    pub log_level: String,
    /// Accepted but doubtful settings (short HMAC secret, non-https resource identifier), for
    /// `main` to log once logging is set up.
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether the behaviours of protocol version `version` (7 or 8) are enabled: compatibility
    /// `8` enables v8's, `7` enables v7's and v8's (reference hub §4).
    pub fn compat(&self, version: u8) -> bool {
        self.protocol_version_compatibility
            .is_some_and(|c| version >= c)
    }
    /// Whether any compatibility mode is on.
    pub fn compat_any(&self) -> bool {
        self.protocol_version_compatibility.is_some()
    }
}

/// The TLS listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which `History` implementation backs the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryConfig {
    /// The embedded durable log in `dir` (the default).
    Log {
        dir: PathBuf,
        retention: LogRetention,
    },
    /// Bounded in-memory ring of the last `capacity` events (volatile).
    Memory { capacity: usize },
    /// No history: cursors always resolve to `earliest` and nothing is replayed.
    None,
}

/// Retention of the durable log; whole old segments are deleted once any bound is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    pub max_events: u64,
    pub max_bytes: u64,
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
}

impl Default for LogRetention {
    fn default() -> Self {
        Self {
            max_events: log::DEFAULT_MAX_EVENTS,
            max_bytes: log::DEFAULT_MAX_BYTES,
            max_age: Some(log::DEFAULT_MAX_AGE),
        }
    }
}

/// Default directory of the durable history log (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = log::DEFAULT_DATA_DIR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub const DEFAULT_ISSUER: &str = "https://localhost";
pub const DEFAULT_COOKIE_NAME: &str = "__Secure-mercure_access_token";
pub const DEFAULT_HUB_URL: &str = "https://localhost/.well-known/mercure";

impl Default for Config {
    /// Programmatic defaults (used by tests and as the lowest configuration layer). No issuer
    /// and no listener address are set here: `load` and callers decide those.
    fn default() -> Self {
        Self {
            addr: None,
            tls: None,
            issuers: Vec::new(),
            dev_secret: None,
            resource_identifier: None,
            hub_url: default_hub_url(),
            anonymous: false,
            subscriptions: false,
            cors_origins: Vec::new(),
            publish_origins: Vec::new(),
            protocol_version_compatibility: None,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            heartbeat: Some(Duration::from_secs(40)),
            write_timeout: Some(Duration::from_secs(600)),
            max_request_body_size: Some(1024 * 1024),
            max_topics_per_update: 1000,
            max_field_length: 64 * 1024,
            history: HistoryConfig::Log {
                dir: PathBuf::from(DEFAULT_DATA_DIR),
                retention: LogRetention::default(),
            },
            subscriber_queue_capacity: 1024,
            matcher_cache_size: 100_000,
            shutdown_grace: Duration::from_secs(5),
            workers: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            warnings: Vec::new(),
        }
    }
}

/// The default hub URL, parsed.
#[allow(clippy::expect_used)] // reason: a compile-time constant that is a valid absolute URL
pub fn default_hub_url() -> url::Url {
    url::Url::parse(DEFAULT_HUB_URL).expect("DEFAULT_HUB_URL is a valid URL")
}
