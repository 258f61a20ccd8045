//! The setting names and the raw (unparsed) layers: TOML file, environment and CLI flags, each a
//! map from setting to text plus where the text came from. Precedence is applied here; parsing
//! and validation are not.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::load::{Cli, ConfigErrors, EnvSource};

/// Every layered setting. Its name is the flag without `--`; the env variable is
/// `QUICKSILVER_<NAME>` (upper case, `-` → `_`) and the TOML key is the name in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Setting {
    Addr,
    TlsAddr,
    TlsCert,
    TlsKey,
    PublisherJwtKey,
    PublisherJwtAlg,
    SubscriberJwtKey,
    SubscriberJwtAlg,
    Issuer,
    ResourceIdentifier,
    HubUrl,
    Anonymous,
    Subscriptions,
    CorsOrigins,
    CookieName,
    Heartbeat,
    WriteTimeout,
    MaxRequestBodySize,
    MaxTopicsPerUpdate,
    MaxFieldLength,
    History,
    HistorySize,
    DataDir,
    HistoryMaxEvents,
    HistoryMaxBytes,
    HistoryMaxAge,
    SubscriberQueueCapacity,
    MatcherCacheSize,
    ShutdownGrace,
    Workers,
    LogFormat,
    LogLevel,
    ProtocolVersionCompatibility,
    PublishOrigins,
    JwksCaFile,
}

impl Setting {
    pub(crate) const ALL: [Setting; 35] = [
        Setting::Addr,
        Setting::TlsAddr,
        Setting::TlsCert,
        Setting::TlsKey,
        Setting::PublisherJwtKey,
        Setting::PublisherJwtAlg,
        Setting::SubscriberJwtKey,
        Setting::SubscriberJwtAlg,
        Setting::Issuer,
        Setting::ResourceIdentifier,
        Setting::HubUrl,
        Setting::Anonymous,
        Setting::Subscriptions,
        Setting::CorsOrigins,
        Setting::CookieName,
        Setting::Heartbeat,
        Setting::WriteTimeout,
        Setting::MaxRequestBodySize,
        Setting::MaxTopicsPerUpdate,
        Setting::MaxFieldLength,
        Setting::History,
        Setting::HistorySize,
        Setting::DataDir,
        Setting::HistoryMaxEvents,
        Setting::HistoryMaxBytes,
        Setting::HistoryMaxAge,
        Setting::SubscriberQueueCapacity,
        Setting::MatcherCacheSize,
        Setting::ShutdownGrace,
        Setting::Workers,
        Setting::LogFormat,
        Setting::LogLevel,
        Setting::ProtocolVersionCompatibility,
        Setting::PublishOrigins,
        Setting::JwksCaFile,
    ];

    /// The flag name without `--`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Setting::Addr => "addr",
            Setting::TlsAddr => "tls-addr",
            Setting::TlsCert => "tls-cert",
            Setting::TlsKey => "tls-key",
            Setting::PublisherJwtKey => "publisher-jwt-key",
            Setting::PublisherJwtAlg => "publisher-jwt-alg",
            Setting::SubscriberJwtKey => "subscriber-jwt-key",
            Setting::SubscriberJwtAlg => "subscriber-jwt-alg",
            Setting::Issuer => "issuer",
            Setting::ResourceIdentifier => "resource-identifier",
            Setting::HubUrl => "hub-url",
            Setting::Anonymous => "anonymous",
            Setting::Subscriptions => "subscriptions",
            Setting::CorsOrigins => "cors-origins",
            Setting::CookieName => "cookie-name",
            Setting::Heartbeat => "heartbeat",
            Setting::WriteTimeout => "write-timeout",
            Setting::MaxRequestBodySize => "max-request-body-size",
            Setting::MaxTopicsPerUpdate => "max-topics-per-update",
            Setting::MaxFieldLength => "max-field-length",
            Setting::History => "history",
            Setting::HistorySize => "history-size",
            Setting::DataDir => "data-dir",
            Setting::HistoryMaxEvents => "history-max-events",
            Setting::HistoryMaxBytes => "history-max-bytes",
            Setting::HistoryMaxAge => "history-max-age",
            Setting::SubscriberQueueCapacity => "subscriber-queue-capacity",
            Setting::MatcherCacheSize => "matcher-cache-size",
            Setting::ShutdownGrace => "shutdown-grace",
            Setting::Workers => "workers",
            Setting::LogFormat => "log-format",
            Setting::LogLevel => "log-level",
            Setting::ProtocolVersionCompatibility => "protocol-version-compatibility",
            Setting::PublishOrigins => "publish-origins",
            Setting::JwksCaFile => "jwks-ca-file",
        }
    }

    /// `--name`: the key under which problems are reported.
    pub(crate) fn flag(self) -> String {
        format!("--{}", self.name())
    }

    pub(crate) fn env_name(self) -> String {
        env_name(self.name())
    }

    pub(crate) fn toml_name(self) -> String {
        self.name().replace('-', "_")
    }

    /// Variables of the reference image read when `QUICKSILVER_<NAME>` is unset.
    pub(crate) fn env_aliases(self) -> &'static [&'static str] {
        match self {
            Setting::PublisherJwtKey => &["MERCURE_PUBLISHER_JWT_KEY"],
            Setting::PublisherJwtAlg => &["MERCURE_PUBLISHER_JWT_ALG"],
            Setting::SubscriberJwtKey => &["MERCURE_SUBSCRIBER_JWT_KEY"],
            Setting::SubscriberJwtAlg => &["MERCURE_SUBSCRIBER_JWT_ALG"],
            Setting::Issuer => &["MERCURE_TRUSTED_ISSUERS"],
            _ => &[],
        }
    }

    fn from_toml_name(name: &str) -> Option<Setting> {
        Setting::ALL.into_iter().find(|k| k.toml_name() == name)
    }
}

/// `QUICKSILVER_<NAME>` for a flag name.
pub(crate) fn env_name(flag_name: &str) -> String {
    format!(
        "QUICKSILVER_{}",
        flag_name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Where a raw value came from, for error messages and for resolving relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Flag,
    Env(String),
    /// The TOML file and the key path inside it (`heartbeat`, `issuers[0].publisher_key`).
    File {
        path: PathBuf,
        key: String,
    },
}

/// One setting as text, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    pub(crate) value: String,
    pub(crate) origin: Origin,
}

impl Raw {
    /// "from env QUICKSILVER_HEARTBEAT", appended to reasons so the operator knows which layer
    /// to fix.
    pub(crate) fn source(&self) -> String {
        match &self.origin {
            Origin::Flag => "from the command line".to_owned(),
            Origin::Env(name) => format!("from env {name}"),
            Origin::File { path, key } => format!("from {} key {key}", path.display()),
        }
    }

    /// A path given in this value. Relative paths in the TOML file are relative to the file's
    /// directory (so a config file and its keys can move together); elsewhere to the working
    /// directory.
    pub(crate) fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match &self.origin {
            Origin::File { path: file, .. } if p.is_relative() => match file.parent() {
                Some(dir) => dir.join(p),
                None => p.to_path_buf(),
            },
            _ => p.to_path_buf(),
        }
    }
}

/// One `[[issuers]]` table of the TOML file, raw.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileIssuer {
    /// `issuers[<n>]`, prefix of the keys problems are reported under.
    pub(crate) label: String,
    pub(crate) id: Option<Raw>,
    pub(crate) publisher_key: Option<Raw>,
    pub(crate) publisher_alg: Option<Raw>,
    pub(crate) subscriber_key: Option<Raw>,
    pub(crate) subscriber_alg: Option<Raw>,
    pub(crate) publisher_jwks: Option<Raw>,
    pub(crate) subscriber_jwks: Option<Raw>,
    pub(crate) jwks_refresh_interval: Option<Raw>,
    pub(crate) jwks_refresh_min_interval: Option<Raw>,
    pub(crate) authorization_server: Option<Raw>,
}

/// All raw layers.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) file: HashMap<Setting, Raw>,
    /// `None` when the file has no `issuers` array.
    pub(crate) file_issuers: Option<Vec<FileIssuer>>,
    pub(crate) env: HashMap<Setting, Raw>,
    pub(crate) cli: HashMap<Setting, Raw>,
}

impl Layers {
    /// Reads every layer. File problems (unreadable, unparsable, unknown keys, wrong types) are
    /// recorded in `errors`; the other keys of the file still apply.
    pub(crate) fn read(cli: &Cli, env: &dyn EnvSource, errors: &mut ConfigErrors) -> Layers {
        let mut layers = Layers {
            env: env_layer(env),
            cli: cli_layer(cli),
            ..Layers::default()
        };
        let config_path = match &cli.config {
            Some(path) => Some(path.clone()),
            None => env
                .get(&env_name("config"))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        };
        if let Some(path) = config_path {
            read_file(&path, &mut layers, errors);
        }
        layers
    }

    /// The winning raw value: flags > env > file.
    pub(crate) fn get(&self, key: Setting) -> Option<&Raw> {
        self.cli
            .get(&key)
            .or_else(|| self.env.get(&key))
            .or_else(|| self.file.get(&key))
    }
}

fn env_layer(env: &dyn EnvSource) -> HashMap<Setting, Raw> {
    let mut values = HashMap::new();
    for key in Setting::ALL {
        let names = std::iter::once(key.env_name())
            .chain(key.env_aliases().iter().map(|a| (*a).to_owned()));
        for name in names {
            if let Some(value) = env.get(&name) {
                values.insert(
                    key,
                    Raw {
                        value,
                        origin: Origin::Env(name),
                    },
                );
                break;
            }
        }
    }
    values
}

fn cli_layer(cli: &Cli) -> HashMap<Setting, Raw> {
    let mut values = HashMap::new();
    for key in Setting::ALL {
        let value = match key {
            Setting::Addr => cli.addr.clone(),
            Setting::TlsAddr => cli.tls_addr.clone(),
            Setting::TlsCert => cli.tls_cert.clone(),
            Setting::TlsKey => cli.tls_key.clone(),
            Setting::PublisherJwtKey => cli.publisher_jwt_key.clone(),
            Setting::PublisherJwtAlg => cli.publisher_jwt_alg.clone(),
            Setting::SubscriberJwtKey => cli.subscriber_jwt_key.clone(),
            Setting::SubscriberJwtAlg => cli.subscriber_jwt_alg.clone(),
            Setting::Issuer => cli.issuer.clone(),
            Setting::ResourceIdentifier => cli.resource_identifier.clone(),
            Setting::HubUrl => cli.hub_url.clone(),
            Setting::Anonymous => cli.anonymous.map(|b| b.to_string()),
            Setting::Subscriptions => cli.subscriptions.map(|b| b.to_string()),
            // Repeated flags accumulate; the joined text is split again on commas.
            Setting::CorsOrigins => {
                (!cli.cors_origins.is_empty()).then(|| cli.cors_origins.join(","))
            }
            Setting::CookieName => cli.cookie_name.clone(),
            Setting::Heartbeat => cli.heartbeat.clone(),
            Setting::WriteTimeout => cli.write_timeout.clone(),
            Setting::MaxRequestBodySize => cli.max_request_body_size.clone(),
            Setting::MaxTopicsPerUpdate => cli.max_topics_per_update.clone(),
            Setting::MaxFieldLength => cli.max_field_length.clone(),
            Setting::History => cli.history.clone(),
            Setting::HistorySize => cli.history_size.clone(),
            Setting::DataDir => cli.data_dir.clone(),
            Setting::HistoryMaxEvents => cli.history_max_events.clone(),
            Setting::HistoryMaxBytes => cli.history_max_bytes.clone(),
            Setting::HistoryMaxAge => cli.history_max_age.clone(),
            Setting::SubscriberQueueCapacity => cli.subscriber_queue_capacity.clone(),
            Setting::MatcherCacheSize => cli.matcher_cache_size.clone(),
            Setting::ShutdownGrace => cli.shutdown_grace.clone(),
            Setting::Workers => cli.workers.clone(),
            Setting::LogFormat => cli.log_format.clone(),
            Setting::LogLevel => cli.log_level.clone(),
            Setting::ProtocolVersionCompatibility => cli.protocol_version_compatibility.clone(),
            Setting::PublishOrigins => {
                (!cli.publish_origins.is_empty()).then(|| cli.publish_origins.join(","))
            }
            Setting::JwksCaFile => cli.jwks_ca_file.clone(),
        };
        if let Some(value) = value {
            values.insert(
                key,
                Raw {
                    value,
                    origin: Origin::Flag,
                },
            );
        }
    }
    values
}

/// The TOML key reported for problems that concern the whole file.
const CONFIG_KEY: &str = "--config";

fn read_file(path: &Path, layers: &mut Layers, errors: &mut ConfigErrors) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            errors.push(CONFIG_KEY, format!("cannot read {}: {e}", path.display()));
            return;
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            errors.push(CONFIG_KEY, format!("cannot parse {}: {e}", path.display()));
            return;
        }
    };
    let origin = |key: String| Origin::File {
        path: path.to_path_buf(),
        key,
    };
    for (name, value) in table {
        if name == "issuers" {
            layers.file_issuers = Some(read_issuers(path, &value, errors));
            continue;
        }
        let Some(key) = Setting::from_toml_name(&name) else {
            errors.push(
                name.clone(),
                unknown_key_reason(path, &name, |n| Setting::from_toml_name(n).is_some()),
            );
            continue;
        };
        let is_list = matches!(key, Setting::CorsOrigins | Setting::PublishOrigins);
        match value_text(&value, is_list) {
            Ok(text) => {
                layers.file.insert(
                    key,
                    Raw {
                        value: text,
                        origin: origin(name),
                    },
                );
            }
            Err(expected) => errors.push(
                key.flag(),
                format!("{} key {name}: expected {expected}", path.display()),
            ),
        }
    }
}

fn unknown_key_reason(path: &Path, name: &str, is_known: impl Fn(&str) -> bool) -> String {
    let snake = name.replace('-', "_");
    if snake != name && is_known(&snake) {
        format!(
            "unknown key in {}; TOML keys use snake_case: {snake}",
            path.display()
        )
    } else {
        format!("unknown key in {}", path.display())
    }
}

/// Scalars become the text the env and flag layers would give; arrays are accepted only for
/// lists (joined with commas, split again by the list parser).
fn value_text(value: &toml::Value, is_list: bool) -> Result<String, &'static str> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) if is_list => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or("an array of strings")
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| items.join(",")),
        _ if is_list => Err("a string or an array of strings"),
        _ => Err("a string, an integer or a boolean"),
    }
}

const ISSUER_KEYS: [&str; 10] = [
    "id",
    "publisher_key",
    "publisher_alg",
    "subscriber_key",
    "subscriber_alg",
    "publisher_jwks",
    "subscriber_jwks",
    "jwks_refresh_interval",
    "jwks_refresh_min_interval",
    "authorization_server",
];

fn read_issuers(path: &Path, value: &toml::Value, errors: &mut ConfigErrors) -> Vec<FileIssuer> {
    let Some(items) = value.as_array() else {
        errors.push(
            "issuers",
            format!(
                "{}: expected an array of tables ([[issuers]])",
                path.display()
            ),
        );
        return Vec::new();
    };
    let mut issuers = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let label = format!("issuers[{n}]");
        let Some(table) = item.as_table() else {
            errors.push(label, format!("{}: expected a table", path.display()));
            continue;
        };
        let mut issuer = FileIssuer {
            label: label.clone(),
            ..FileIssuer::default()
        };
        for (name, value) in table {
            let key = format!("{label}.{name}");
            let slot = match name.as_str() {
                "id" => &mut issuer.id,
                "publisher_key" => &mut issuer.publisher_key,
                "publisher_alg" => &mut issuer.publisher_alg,
                "publisher_jwks" => &mut issuer.publisher_jwks,
                "subscriber_jwks" => &mut issuer.subscriber_jwks,
                "jwks_refresh_interval" => &mut issuer.jwks_refresh_interval,
                "jwks_refresh_min_interval" => &mut issuer.jwks_refresh_min_interval,
                "subscriber_key" => &mut issuer.subscriber_key,
                "subscriber_alg" => &mut issuer.subscriber_alg,
                "authorization_server" => &mut issuer.authorization_server,
                _ => {
                    let reason = unknown_key_reason(path, name, |n| ISSUER_KEYS.contains(&n));
                    errors.push(
                        key,
                        format!("{reason} (issuer keys: {})", ISSUER_KEYS.join(", ")),
                    );
                    continue;
                }
            };
            match value_text(value, false) {
                Ok(text) => {
                    *slot = Some(Raw {
                        value: text,
                        origin: Origin::File {
                            path: path.to_path_buf(),
                            key: key.clone(),
                        },
                    });
                }
                Err(expected) => {
                    errors.push(key, format!("{}: expected {expected}", path.display()))
                }
            }
        }
        issuers.push(issuer);
    }
    issuers
}
