//! Building `Config` from its layers: defaults < TOML file (`--config`) < environment
//! (`QUICKSILVER_<NAME>` and the reference image's `MERCURE_*`) < CLI flags. All problems are
//! reported together, each with its key. Reads key and TLS files; never logs.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::layers::{FileIssuer, Layers, Raw, Setting};
use super::parse;
use super::{
    Config, HistoryConfig, LogFormat, LogRetention, TlsConfig, DEFAULT_DATA_DIR, DEFAULT_ISSUER,
};
use crate::auth::{Algorithm, IssuerConfig, JwksSource, JwksUrl, KeyConfig};

/// The plain listener when none is configured: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// Command-line flags. Every setting is optional here so layers can be told apart; values are
/// kept as text and parsed by `load`, so that every bad value is reported together.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "quicksilver",
    version,
    about = "A Mercure hub",
    after_help = "Every setting can also be given as env QUICKSILVER_<NAME> (e.g. \
                  QUICKSILVER_MAX_REQUEST_BODY_SIZE) or as a snake_case key of the --config TOML \
                  file; precedence: defaults < file < env < flags. With no JWT key configured, a \
                  loopback-only development hub with a generated secret is started."
)]
pub struct Cli {
    /// TOML configuration file (env QUICKSILVER_CONFIG)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, report every problem, and exit
    #[arg(long)]
    pub check_config: bool,

    /// Plain-text listener (HTTP/1.1 and h2c) [default: 127.0.0.1:3000]; `none` disables it
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<String>,
    /// TLS listener (h2 and http/1.1 via ALPN); needs --tls-cert and --tls-key
    #[arg(long, value_name = "IP:PORT")]
    pub tls_addr: Option<String>,
    /// TLS certificate chain (PEM file)
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<String>,
    /// TLS private key (PEM file)
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<String>,

    /// Key verifying publisher tokens: a secret, a PEM public key, or @file
    /// (env also MERCURE_PUBLISHER_JWT_KEY)
    // A PEM value starts with `-----BEGIN`: without this clap would take it for a flag.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub publisher_jwt_key: Option<String>,
    /// Algorithm of the publisher key [default: HS256 for a secret; required for PEM]
    #[arg(long, value_name = "ALG")]
    pub publisher_jwt_alg: Option<String>,
    /// Key verifying subscriber tokens: a secret, a PEM public key, or @file
    /// (env also MERCURE_SUBSCRIBER_JWT_KEY)
    // A PEM value starts with `-----BEGIN`: without this clap would take it for a flag.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub subscriber_jwt_key: Option<String>,
    /// Algorithm of the subscriber key [default: HS256 for a secret; required for PEM]
    #[arg(long, value_name = "ALG")]
    pub subscriber_jwt_alg: Option<String>,
    /// Trusted issuer (`iss`) the keys above belong to [default: https://localhost]
    /// (env also MERCURE_TRUSTED_ISSUERS)
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// Expected token audience [default: <scheme>://<host>/.well-known/mercure per request]
    #[arg(long, value_name = "URL")]
    pub resource_identifier: Option<String>,
    /// Public hub URL, base of relative topics [default: the resource identifier if it ends
    /// with /.well-known/mercure, else https://localhost/.well-known/mercure]
    #[arg(long, value_name = "URL")]
    pub hub_url: Option<String>,
    /// Let subscribers without a token receive public updates (`--anonymous=false` to turn off)
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse::parse_bool
    )]
    pub anonymous: Option<bool>,
    /// Active subscriptions: subscription events and the Subscription API [default: false]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse::parse_bool
    )]
    pub subscriptions: Option<bool>,
    /// Origins allowed for credentialed CORS, scheme://host[:port]; comma or space separated,
    /// repeatable
    #[arg(long, value_name = "ORIGINS")]
    pub cors_origins: Vec<String>,
    /// Cookie carrying the access token [default: __Secure-mercure_access_token]
    #[arg(long, value_name = "NAME")]
    pub cookie_name: Option<String>,

    /// Idle time before a heartbeat comment [default: 40s]; 0 disables
    #[arg(long, value_name = "DURATION")]
    pub heartbeat: Option<String>,
    /// Maximum life of a subscriber stream, jittered to 80–100 % [default: 600s]; 0 disables
    #[arg(long, value_name = "DURATION")]
    pub write_timeout: Option<String>,
    /// Maximum publish or QUERY body [default: 1MiB]; 0 disables the limit
    #[arg(long, value_name = "SIZE")]
    pub max_request_body_size: Option<String>,
    /// Maximum `topic` fields per publish [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_topics_per_update: Option<String>,
    /// Maximum length of one form field other than `data` [default: 64KiB]
    #[arg(long, value_name = "SIZE")]
    pub max_field_length: Option<String>,
    /// History backend: log (durable, on disk), memory or none [default: log]
    #[arg(long, value_name = "BACKEND")]
    pub history: Option<String>,
    /// Events kept by the memory history [default: 100000]
    #[arg(long, value_name = "N")]
    pub history_size: Option<String>,
    /// Directory of the durable history log [default: ./quicksilver-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Retention of the log: most events kept [default: 1000000]
    #[arg(long, value_name = "N")]
    pub history_max_events: Option<String>,
    /// Retention of the log: most bytes kept [default: 1GiB]
    #[arg(long, value_name = "SIZE")]
    pub history_max_bytes: Option<String>,
    /// Retention of the log: oldest event age kept; 0 disables [default: 7d]
    #[arg(long, value_name = "DURATION")]
    pub history_max_age: Option<String>,
    /// Queued updates per subscriber before it is disconnected [default: 1024]
    #[arg(long, value_name = "N")]
    pub subscriber_queue_capacity: Option<String>,
    /// Entries in the topic matcher result cache [default: 100000]
    #[arg(long, value_name = "N")]
    pub matcher_cache_size: Option<String>,
    /// How long shutdown waits for connections to finish [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// Threads answering requests (accepts, TLS handshakes, publishes, HTTP/2) [default: one
    /// per CPU]
    #[arg(long, value_name = "N")]
    pub workers: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or quicksilver=debug [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Mercure 0.x compatibility: 8, or 7 (adds what 7 had) [default: off]. Weakens token
    /// validation (no typ/aud, optional exp): see the README's migration section
    #[arg(long, value_name = "VERSION")]
    pub protocol_version_compatibility: Option<String>,
    /// Origins allowed to publish with the cookie (CSRF allowlist, besides the hub's own origin
    /// and --cors-origins): scheme://host[:port], `*`, or a `*` prefix/suffix wildcard; comma or
    /// space separated, repeatable
    #[arg(long, value_name = "ORIGINS")]
    pub publish_origins: Vec<String>,
    /// Extra trusted CA certificates (PEM file) for HTTPS JWK Set URLs, besides the platform's
    #[arg(long, value_name = "PATH")]
    pub jwks_ca_file: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Mint an access token (printed on stdout) for development and scripts
    Token(super::token::TokenArgs),
}

/// Where environment variables come from (tests pass a map instead of mutating the process).
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment. Variables that are not valid UTF-8 are treated as unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Every configuration problem found, as (key, reason). The key is the flag (`--tls-cert`), or
/// the TOML key for file-only settings (`issuers[0].id`).
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<(String, String)>);

impl ConfigErrors {
    /// The exit status for bad configuration (`EX_USAGE` of sysexits.h).
    pub const EXIT_CODE: i32 = 64;

    pub fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push((key.into(), reason.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (key, reason) in &self.0 {
            writeln!(f, "{key}: {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Builds the validated configuration.
pub fn load(cli: &Cli, env: &dyn EnvSource) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let layers = Layers::read(cli, env, &mut errors);
    let mut r = Resolver {
        layers,
        errors,
        warnings: Vec::new(),
    };
    let config = r.build();
    if r.errors.is_empty() {
        Ok(Config {
            warnings: r.warnings,
            ..config
        })
    } else {
        Err(r.errors)
    }
}

/// Parses the winning raw values, recording problems and falling back to defaults so that
/// validation continues and every problem is found in one pass.
struct Resolver {
    layers: Layers,
    errors: ConfigErrors,
    warnings: Vec<String>,
}

impl Resolver {
    fn build(&mut self) -> Config {
        let defaults = Config::default();
        let mut config = Config::default();

        let (addr, tls) = self.listeners();
        config.addr = addr;
        config.tls = tls;

        config.anonymous = self.value(Setting::Anonymous, false, parse::parse_bool);
        config.subscriptions = self.value(Setting::Subscriptions, false, parse::parse_bool);
        let resource_identifier = self.opt_value(
            Setting::ResourceIdentifier,
            parse::parse_resource_identifier,
        );
        if let Some((text, url)) = &resource_identifier {
            if url.scheme() != "https" {
                self.warnings.push(format!(
                    "--resource-identifier {text} is not https; tokens for it can be replayed over plain HTTP"
                ));
            }
        }
        config.hub_url = match self.opt_value(Setting::HubUrl, parse::parse_hub_url) {
            Some((_, url)) => url,
            None => match &resource_identifier {
                Some((_, url)) if url.path().ends_with("/.well-known/mercure") => url.clone(),
                _ => defaults.hub_url.clone(),
            },
        };
        config.resource_identifier = resource_identifier.map(|(text, _)| text.trim().to_owned());

        config.cors_origins = self.cors_origins();
        config.publish_origins = self.publish_origins();
        config.protocol_version_compatibility =
            self.value(Setting::ProtocolVersionCompatibility, None, |s| {
                match s.trim().to_ascii_lowercase().as_str() {
                    "" | "0" | "off" | "false" | "none" => Ok(None),
                    "7" => Ok(Some(7)),
                    "8" => Ok(Some(8)),
                    _ => Err(format!(
                        "{s:?} is not a compatibility version (7, 8, or off)"
                    )),
                }
            });
        if let Some(v) = config.protocol_version_compatibility {
            self.warnings.push(format!(
                "--protocol-version-compatibility {v}: Mercure 0.x clients are accepted, which \
                 weakens token validation (typ and aud not checked, exp optional, iss optional \
                 with one issuer, tokens read from the query string and the mercureAuthorization \
                 cookie{}); migrate clients and turn it off",
                if v == 7 {
                    ", public publishes to ungranted topics"
                } else {
                    ""
                }
            ));
        }
        config.cookie_name = self.value(
            Setting::CookieName,
            defaults.cookie_name,
            parse::parse_cookie_name,
        );
        config.heartbeat = self.value(Setting::Heartbeat, defaults.heartbeat, |s| {
            parse::parse_duration(s).map(non_zero_duration)
        });
        config.write_timeout = self.value(Setting::WriteTimeout, defaults.write_timeout, |s| {
            parse::parse_duration(s).map(non_zero_duration)
        });
        config.max_request_body_size = self.value(
            Setting::MaxRequestBodySize,
            defaults.max_request_body_size,
            |s| {
                let n = to_usize(parse::parse_size(s)?)?;
                Ok((n > 0).then_some(n))
            },
        );
        config.max_topics_per_update = self.value(
            Setting::MaxTopicsPerUpdate,
            defaults.max_topics_per_update,
            |s| positive(parse::parse_count(s)?),
        );
        config.max_field_length =
            self.value(Setting::MaxFieldLength, defaults.max_field_length, |s| {
                positive(parse::parse_size(s)?)
            });
        config.history = self.history(defaults.history);
        config.subscriber_queue_capacity = self.value(
            Setting::SubscriberQueueCapacity,
            defaults.subscriber_queue_capacity,
            |s| positive(parse::parse_count(s)?),
        );
        config.matcher_cache_size = self.value(
            Setting::MatcherCacheSize,
            defaults.matcher_cache_size,
            |s| positive(parse::parse_count(s)?),
        );
        config.shutdown_grace = self.value(
            Setting::ShutdownGrace,
            defaults.shutdown_grace,
            parse::parse_duration,
        );
        config.workers = self.value(Setting::Workers, defaults.workers, |s| {
            positive(parse::parse_count(s)?).map(Some)
        });
        config.log_format = self.value(Setting::LogFormat, defaults.log_format, |s| {
            match s.trim().to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("{s:?} is not a log format (text or json)")),
            }
        });
        config.log_level = self.value(Setting::LogLevel, defaults.log_level, |s| {
            let s = s.trim();
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_owned())
                .map_err(|e| {
                    format!("{s:?} is not a log filter (e.g. info, quicksilver=debug): {e}")
                })
        });

        self.issuers(&mut config);
        config
    }

    /// The winning value parsed, or `default` when unset or invalid (the problem is recorded).
    fn value<T>(
        &mut self,
        key: Setting,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.layers.get(key) {
            None => default,
            Some(raw) => match parse(&raw.value) {
                Ok(value) => value,
                Err(reason) => {
                    let reason = format!("{reason} ({})", raw.source());
                    self.errors.push(key.flag(), reason);
                    default
                }
            },
        }
    }

    /// The winning value parsed, with its text; `None` when unset, empty or invalid.
    fn opt_value<T>(
        &mut self,
        key: Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<(String, T)> {
        let raw = self.layers.get(key)?.clone();
        if raw.value.trim().is_empty() {
            return None;
        }
        let value = self.value(key, None, |s| parse(s).map(Some))?;
        Some((raw.value, value))
    }

    /// A path setting, resolved (relative to the TOML file when it comes from there); `None`
    /// when unset or empty.
    fn path(&self, key: Setting) -> Option<PathBuf> {
        let raw = self.layers.get(key)?;
        let text = raw.value.trim();
        (!text.is_empty()).then(|| raw.resolve_path(text))
    }

    fn listeners(&mut self) -> (Option<SocketAddr>, Option<TlsConfig>) {
        let default_addr = DEFAULT_ADDR.parse().ok();
        let addr = self.value(Setting::Addr, default_addr, parse::parse_listen_addr);
        let tls_addr = self.value(Setting::TlsAddr, None, parse::parse_listen_addr);
        let tls_addr_set = self.layers.get(Setting::TlsAddr).is_some();
        let cert = self.path(Setting::TlsCert);
        let key = self.path(Setting::TlsKey);

        let mut tls = None;
        if let Some(tls_addr) = tls_addr {
            for (k, path) in [(Setting::TlsCert, &cert), (Setting::TlsKey, &key)] {
                match path {
                    None => self
                        .errors
                        .push(k.flag(), "required with --tls-addr (a PEM file)"),
                    Some(path) => {
                        if let Err(e) = check_readable_file(path) {
                            self.errors
                                .push(k.flag(), format!("cannot read {}: {e}", path.display()));
                        }
                    }
                }
            }
            if let (Some(cert), Some(key)) = (&cert, &key) {
                tls = Some(TlsConfig {
                    addr: tls_addr,
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            if addr == Some(tls_addr) {
                self.errors.push(
                    Setting::TlsAddr.flag(),
                    format!("{tls_addr} is also the --addr listener"),
                );
            }
        } else if !tls_addr_set && (cert.is_some() || key.is_some()) {
            self.errors.push(
                Setting::TlsAddr.flag(),
                "--tls-cert/--tls-key are set but no TLS listener is: set --tls-addr (e.g. 0.0.0.0:443)",
            );
        }
        if addr.is_none() && tls_addr.is_none() {
            self.errors.push(
                Setting::Addr.flag(),
                "no listener: --addr is disabled and --tls-addr is not set",
            );
        }
        (addr, tls)
    }

    fn cors_origins(&mut self) -> Vec<String> {
        let Some(raw) = self.layers.get(Setting::CorsOrigins).cloned() else {
            return Vec::new();
        };
        let mut origins: Vec<String> = Vec::new();
        for item in parse::split_list(&raw.value) {
            match parse::parse_origin(item) {
                Ok(origin) if !origins.contains(&origin) => origins.push(origin),
                Ok(_) => {}
                Err(reason) => self.errors.push(
                    Setting::CorsOrigins.flag(),
                    format!("{reason} ({})", raw.source()),
                ),
            }
        }
        origins
    }

    fn publish_origins(&mut self) -> Vec<String> {
        let Some(raw) = self.layers.get(Setting::PublishOrigins).cloned() else {
            return Vec::new();
        };
        let mut origins: Vec<String> = Vec::new();
        for item in parse::split_list(&raw.value) {
            let item = item.trim();
            // `*` and wildcard forms are fine here: this list grants no CORS credentials.
            let parsed = if item == "*" || item.contains('*') {
                Ok(item.to_ascii_lowercase())
            } else {
                parse::parse_origin(item)
            };
            match parsed {
                Ok(origin) if !origins.contains(&origin) => origins.push(origin),
                Ok(_) => {}
                Err(reason) => self.errors.push(
                    Setting::PublishOrigins.flag(),
                    format!("{reason} ({})", raw.source()),
                ),
            }
        }
        origins
    }

    fn history(&mut self, default: HistoryConfig) -> HistoryConfig {
        #[derive(Clone, Copy)]
        enum Kind {
            Log,
            Memory,
            None,
        }
        let default_kind = match default {
            HistoryConfig::Log { .. } => Kind::Log,
            HistoryConfig::Memory { .. } => Kind::Memory,
            HistoryConfig::None => Kind::None,
        };
        let kind = self.value(Setting::History, default_kind, |s| {
            match s.trim().to_ascii_lowercase().as_str() {
                "log" => Ok(Kind::Log),
                "memory" => Ok(Kind::Memory),
                "none" => Ok(Kind::None),
                _ => Err(format!(
                    "{s:?} is not a history backend (log, memory or none)"
                )),
            }
        });
        match kind {
            Kind::None => HistoryConfig::None,
            Kind::Memory => {
                let capacity = self.value(Setting::HistorySize, 100_000, |s| {
                    positive(parse::parse_count(s)?)
                });
                HistoryConfig::Memory { capacity }
            }
            Kind::Log => {
                let d = LogRetention::default();
                let dir = self.value(Setting::DataDir, PathBuf::from(DEFAULT_DATA_DIR), |s| {
                    let s = s.trim();
                    if s.is_empty() {
                        Err("empty data directory".to_owned())
                    } else {
                        Ok(PathBuf::from(s))
                    }
                });
                let max_events = self.value(Setting::HistoryMaxEvents, d.max_events, |s| {
                    let n = parse::parse_count(s)?;
                    if n == 0 {
                        Err("must be at least 1".to_owned())
                    } else {
                        Ok(n)
                    }
                });
                let max_bytes = self.value(Setting::HistoryMaxBytes, d.max_bytes, |s| {
                    let n = parse::parse_size(s)?;
                    if n < 1024 * 1024 {
                        Err("must be at least 1MiB".to_owned())
                    } else {
                        Ok(n)
                    }
                });
                let max_age = self.value(Setting::HistoryMaxAge, d.max_age, |s| {
                    let age = parse::parse_duration(s)?;
                    Ok((!age.is_zero()).then_some(age))
                });
                HistoryConfig::Log {
                    dir,
                    retention: LogRetention {
                        max_events,
                        max_bytes,
                        max_age,
                    },
                }
            }
        }
    }

    /// Issuers from `[[issuers]]` and from the layered `--issuer`/key settings, then either dev
    /// mode (no key anywhere) or the role requirements of a production hub.
    fn issuers(&mut self, config: &mut Config) {
        let issuer_id = self.value(Setting::Issuer, DEFAULT_ISSUER.to_owned(), parse_issuer_id);
        let given = |raw: Option<&Raw>| raw.is_some_and(|raw| !raw.value.trim().is_empty());
        let file_issuers = self.layers.file_issuers.take().unwrap_or_default();
        let jwks_ca = self.path(Setting::JwksCaFile);
        if let Some(path) = &jwks_ca {
            if let Err(e) = check_readable_file(path) {
                self.errors.push(
                    Setting::JwksCaFile.flag(),
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
        let publisher_given = given(self.layers.get(Setting::PublisherJwtKey))
            || file_issuers
                .iter()
                .any(|i| given(i.publisher_key.as_ref()) || given(i.publisher_jwks.as_ref()));
        let subscriber_given = given(self.layers.get(Setting::SubscriberJwtKey))
            || file_issuers
                .iter()
                .any(|i| given(i.subscriber_key.as_ref()) || given(i.subscriber_jwks.as_ref()));
        let publisher = self.layered_key(
            Setting::PublisherJwtKey,
            Setting::PublisherJwtAlg,
            "publisher",
        );
        let subscriber = self.layered_key(
            Setting::SubscriberJwtKey,
            Setting::SubscriberJwtAlg,
            "subscriber",
        );

        let mut issuers: Vec<IssuerConfig> = Vec::new();
        let mut id_keys: Vec<String> = Vec::new();
        for file_issuer in &file_issuers {
            if let Some(issuer) = self.file_issuer(file_issuer, jwks_ca.as_ref()) {
                id_keys.push(format!("{}.id", file_issuer.label));
                issuers.push(issuer);
            }
        }
        if publisher.is_some() || subscriber.is_some() {
            id_keys.push(Setting::Issuer.flag());
            issuers.push(IssuerConfig {
                id: issuer_id.clone(),
                publisher,
                subscriber,
                authorization_server: false,
                publisher_jwks: None,
                subscriber_jwks: None,
            });
        }
        for (i, issuer) in issuers.iter().enumerate() {
            if issuers[..i].iter().any(|earlier| earlier.id == issuer.id) {
                let key = id_keys
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Setting::Issuer.flag());
                self.errors
                    .push(key, format!("duplicate issuer {:?}", issuer.id));
            }
        }

        // An `[[issuers]]` table without keys is an error above, not a reason for dev mode.
        if !publisher_given && !subscriber_given && file_issuers.is_empty() {
            self.dev_mode(config, issuer_id);
            return;
        }
        if !publisher_given {
            self.errors.push(
                Setting::PublisherJwtKey.flag(),
                "no issuer has a publisher key: set --publisher-jwt-key (or MERCURE_PUBLISHER_JWT_KEY, \
                 or publisher_key in an [[issuers]] table)",
            );
        }
        if !subscriber_given && !config.anonymous {
            self.errors.push(
                Setting::SubscriberJwtKey.flag(),
                "no issuer has a subscriber key: set --subscriber-jwt-key (or MERCURE_SUBSCRIBER_JWT_KEY, \
                 or subscriber_key in an [[issuers]] table), or enable --anonymous",
            );
        }
        config.issuers = issuers;
    }

    /// No key configured anywhere: a random HS256 secret for both roles, anonymous subscribers,
    /// and loopback listeners only (the secret is printed at start, so it must not guard a
    /// reachable hub).
    fn dev_mode(&mut self, config: &mut Config, issuer_id: String) {
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let key = KeyConfig {
            key: secret.clone(),
            alg: Algorithm::HS256,
        };
        config.issuers = vec![IssuerConfig {
            id: issuer_id,
            publisher: Some(key.clone()),
            subscriber: Some(key),
            authorization_server: false,
            publisher_jwks: None,
            subscriber_jwks: None,
        }];
        config.dev_secret = Some(secret);
        config.anonymous = true;
        let listeners = [
            (Setting::Addr, config.addr),
            (Setting::TlsAddr, config.tls.as_ref().map(|t| t.addr)),
        ];
        for (key, addr) in listeners {
            if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                self.errors.push(
                    key.flag(),
                    format!(
                        "{addr} is not a loopback address, and no JWT key is configured: the \
                         generated development secret only serves loopback. Configure keys \
                         (--publisher-jwt-key, and --subscriber-jwt-key or --anonymous) or listen \
                         on 127.0.0.1"
                    ),
                );
            }
        }
    }

    /// The key of one role from the layered settings.
    fn layered_key(&mut self, key: Setting, alg: Setting, role: &str) -> Option<KeyConfig> {
        let material = self.layers.get(key).cloned();
        let alg_raw = self.layers.get(alg).cloned();
        self.key_config(
            material.as_ref(),
            alg_raw.as_ref(),
            &key.flag(),
            &alg.flag(),
            role,
        )
    }

    /// A `[[issuers]]` duration key, `default` when unset.
    fn issuer_duration(&mut self, raw: Option<&Raw>, key: String, default: Duration) -> Duration {
        let Some(raw) = raw.filter(|r| !r.value.trim().is_empty()) else {
            return default;
        };
        parse::parse_duration(&raw.value).unwrap_or_else(|reason| {
            self.errors
                .push(key, format!("{reason} ({})", raw.source()));
            default
        })
    }

    /// A `publisher_jwks`/`subscriber_jwks` value: an `https://` URL or a file path (resolved
    /// against the TOML file's directory). Other URL schemes are refused (no SSRF via `http:`,
    /// `file:` and the like).
    fn jwks_source(
        &mut self,
        raw: Option<&Raw>,
        key: String,
        url_config: &JwksUrl,
    ) -> Option<JwksSource> {
        let raw = raw?;
        let text = raw.value.trim();
        if text.is_empty() {
            return None;
        }
        if text.contains("://") {
            let valid = url::Url::parse(text)
                .map_err(|e| e.to_string())
                .and_then(|url| match url.scheme() {
                    "https" if url.host_str().is_some() => Ok(()),
                    _ => Err("only https:// URLs are fetched".to_owned()),
                });
            return match valid {
                Ok(()) => Some(JwksSource::Url(JwksUrl {
                    url: text.to_owned(),
                    ..url_config.clone()
                })),
                Err(reason) => {
                    self.errors
                        .push(key, format!("{reason} ({})", raw.source()));
                    None
                }
            };
        }
        Some(JwksSource::File(raw.resolve_path(text)))
    }

    fn file_issuer(&mut self, raw: &FileIssuer, jwks_ca: Option<&PathBuf>) -> Option<IssuerConfig> {
        let label = &raw.label;
        let id = match &raw.id {
            None => {
                self.errors.push(
                    format!("{label}.id"),
                    "missing (the exact `iss` of this issuer's tokens)",
                );
                None
            }
            Some(id) => match parse_issuer_id(&id.value) {
                Ok(id) => Some(id),
                Err(reason) => {
                    self.errors
                        .push(format!("{label}.id"), format!("{reason} ({})", id.source()));
                    None
                }
            },
        };
        let publisher = self.key_config(
            raw.publisher_key.as_ref(),
            raw.publisher_alg.as_ref(),
            &format!("{label}.publisher_key"),
            &format!("{label}.publisher_alg"),
            "publisher",
        );
        let subscriber = self.key_config(
            raw.subscriber_key.as_ref(),
            raw.subscriber_alg.as_ref(),
            &format!("{label}.subscriber_key"),
            &format!("{label}.subscriber_alg"),
            "subscriber",
        );
        let authorization_server = match &raw.authorization_server {
            None => false,
            Some(value) => parse::parse_bool(&value.value).unwrap_or_else(|reason| {
                self.errors
                    .push(format!("{label}.authorization_server"), reason);
                false
            }),
        };
        let has_key = |k: &Option<Raw>| k.as_ref().is_some_and(|r| !r.value.trim().is_empty());
        if [
            &raw.publisher_key,
            &raw.subscriber_key,
            &raw.publisher_jwks,
            &raw.subscriber_jwks,
        ]
        .iter()
        .all(|k| !has_key(k))
        {
            self.errors.push(
                label.clone(),
                "has no publisher_key, subscriber_key, publisher_jwks or subscriber_jwks; its \
                 tokens could never be verified",
            );
        }
        let url_config = JwksUrl {
            url: String::new(),
            ca_file: jwks_ca.cloned(),
            refresh_interval: self.issuer_duration(
                raw.jwks_refresh_interval.as_ref(),
                format!("{label}.jwks_refresh_interval"),
                JwksUrl::DEFAULT_REFRESH_INTERVAL,
            ),
            refresh_min_interval: self.issuer_duration(
                raw.jwks_refresh_min_interval.as_ref(),
                format!("{label}.jwks_refresh_min_interval"),
                JwksUrl::DEFAULT_REFRESH_MIN_INTERVAL,
            ),
        };
        let publisher_jwks = self.jwks_source(
            raw.publisher_jwks.as_ref(),
            format!("{label}.publisher_jwks"),
            &url_config,
        );
        let subscriber_jwks = self.jwks_source(
            raw.subscriber_jwks.as_ref(),
            format!("{label}.subscriber_jwks"),
            &url_config,
        );
        Some(IssuerConfig {
            id: id?,
            publisher,
            subscriber,
            authorization_server,
            publisher_jwks,
            subscriber_jwks,
        })
    }

    /// Setting material (`@path` is read) and its algorithm: a PEM key needs an explicit non-HMAC
    /// algorithm, a secret defaults to HS256 and must use HMAC. `None` when no key is given or
    /// it is invalid (recorded).
    fn key_config(
        &mut self,
        material: Option<&Raw>,
        alg: Option<&Raw>,
        key_name: &str,
        alg_name: &str,
        role: &str,
    ) -> Option<KeyConfig> {
        let alg = match alg.filter(|a| !a.value.trim().is_empty()) {
            None => None,
            Some(raw) => match parse::parse_algorithm(&raw.value) {
                Ok(alg) => Some(alg),
                Err(reason) => {
                    self.errors
                        .push(alg_name, format!("{reason} ({})", raw.source()));
                    return None;
                }
            },
        };
        let raw = material.filter(|m| !m.value.trim().is_empty())?;
        let key = match raw.value.strip_prefix('@') {
            Some(path) => {
                let path = raw.resolve_path(path.trim());
                match std::fs::read_to_string(&path) {
                    // A trailing newline from `echo secret > file` is not part of the secret.
                    Ok(text) => text.trim_end_matches(['\n', '\r']).to_owned(),
                    Err(e) => {
                        self.errors.push(
                            key_name,
                            format!("cannot read key file {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
            None => raw.value.clone(),
        };
        if key.is_empty() {
            self.errors.push(
                key_name,
                format!("the {role} key is empty ({})", raw.source()),
            );
            return None;
        }
        let is_pem = key.trim_start().starts_with("-----BEGIN");
        let alg = match (is_pem, alg) {
            (true, None) => {
                self.errors.push(
                    alg_name,
                    format!("the {role} key is a PEM key: set its algorithm (RS256, PS256, ES256, EdDSA…)"),
                );
                return None;
            }
            (true, Some(alg)) if alg.is_hmac() => {
                self.errors.push(
                    alg_name,
                    format!(
                        "the {role} key is a PEM key, which cannot be used with an HMAC algorithm"
                    ),
                );
                return None;
            }
            (false, Some(alg)) if !alg.is_hmac() => {
                self.errors.push(
                    alg_name,
                    format!(
                        "the {role} key is a shared secret, which needs HS256, HS384 or HS512; \
                         asymmetric algorithms need a PEM public key"
                    ),
                );
                return None;
            }
            (_, Some(alg)) => alg,
            (false, None) => Algorithm::HS256,
        };
        if !is_pem && key.len() < 32 {
            self.warnings.push(format!(
                "{key_name}: the {role} secret is {} bytes; HMAC secrets should be at least 32 random bytes",
                key.len()
            ));
        }
        Some(KeyConfig { key, alg })
    }
}

fn parse_issuer_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("an issuer identifier must not be empty".to_owned());
    }
    if t.contains(char::is_whitespace) {
        return Err(format!(
            "{t:?}: an issuer identifier must not contain spaces (one issuer per value)"
        ));
    }
    Ok(t.to_owned())
}

fn non_zero_duration(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

fn to_usize(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| format!("{n} is too large for this platform"))
}

fn positive(n: u64) -> Result<usize, String> {
    if n == 0 {
        return Err("must be at least 1".to_owned());
    }
    to_usize(n)
}

fn check_readable_file(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    Ok(())
}
