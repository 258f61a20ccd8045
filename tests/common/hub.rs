//! Starts the real hub in-process on 127.0.0.1:0 (plain and TLS listeners) with known keys, and
//! mints tokens for it. Every integration test goes through `TestHub`.
use std::net::SocketAddr;
use std::time::Duration;

use quicksilver::auth::{Algorithm, IssuerConfig, KeyConfig};
use quicksilver::config::{Config, HistoryConfig, LogRetention, TlsConfig};
use quicksilver::server::{self, RunningHub};
use serde_json::Value;

use super::client::{certs_dev_dir, Proto, TestClient};
use super::jwt::{claims, hs256_token, publish_detail, subscribe_detail, unix_now};

/// The trusted issuer of test tokens.
pub const ISSUER: &str = "https://issuer.test";
/// Publisher key of `ISSUER` (HS256).
pub const PUBLISHER_SECRET: &str = "publisher-secret-for-tests-0123456789abcdef";
/// Subscriber key of `ISSUER` (HS256).
pub const SUBSCRIBER_SECRET: &str = "subscriber-secret-for-tests-0123456789abcdef";
/// The hub's configured resource identifier (the `aud` of test tokens).
pub const RESOURCE: &str = "https://hub.test/.well-known/mercure";

/// A fresh, unique directory under the system temp dir (removed by `TestHub` on drop).
pub fn temp_data_dir(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "quicksilver-test-{label}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ))
}

/// A configuration for tests: both listeners on ephemeral loopback ports, one issuer with
/// distinct publisher and subscriber secrets, a pinned resource identifier, anonymous off, and
/// the durable history log (the production default) in a fresh temp directory.
pub fn test_config() -> Config {
    let certs = certs_dev_dir();
    Config {
        addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        tls: Some(TlsConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: certs.join("localhost.pem"),
            key: certs.join("localhost-key.pem"),
        }),
        issuers: vec![IssuerConfig {
            id: ISSUER.to_owned(),
            publisher: Some(KeyConfig {
                key: PUBLISHER_SECRET.to_owned(),
                alg: Algorithm::HS256,
            }),
            subscriber: Some(KeyConfig {
                key: SUBSCRIBER_SECRET.to_owned(),
                alg: Algorithm::HS256,
            }),
            publisher_jwks: None,
            subscriber_jwks: None,
            authorization_server: false,
        }],
        resource_identifier: Some(RESOURCE.to_owned()),
        history: HistoryConfig::Log {
            dir: temp_data_dir("hub"),
            retention: LogRetention::default(),
        },
        shutdown_grace: Duration::from_secs(5),
        ..Config::default()
    }
}

/// A running hub.
pub struct TestHub {
    running: Option<RunningHub>,
    data_dir: Option<std::path::PathBuf>,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
}

impl TestHub {
    /// Starts a hub with `test_config()`.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a hub with `test_config()` adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        // Only the harness's own temp directory is removed on drop; a test that points the
        // history elsewhere owns that directory (e.g. to restart a hub on it).
        let data_dir = match &config.history {
            HistoryConfig::Log { dir, .. } => Some(dir.clone()),
            _ => None,
        };
        adjust(&mut config);
        let running = server::start(config).await.expect("hub starts");
        let addr = running.addr.expect("plain listener bound");
        let tls_addr = running.tls_addr.expect("TLS listener bound");
        Self {
            running: Some(running),
            data_dir,
            addr,
            tls_addr,
        }
    }

    /// The address serving `proto`.
    pub fn addr_for(&self, proto: Proto) -> SocketAddr {
        if proto.is_tls() {
            self.tls_addr
        } else {
            self.addr
        }
    }

    /// A connected client speaking `proto`.
    pub async fn client(&self, proto: Proto) -> TestClient {
        TestClient::connect(self.addr_for(proto), proto).await
    }

    /// Access to the running hub (state, counters).
    pub fn running(&self) -> &RunningHub {
        self.running.as_ref().expect("hub running")
    }

    /// Graceful shutdown (ends streams, waits for connections within the grace period).
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A publisher token for `topics` (`(pattern, match_type)` pairs), valid for an hour.
pub fn publisher_token(topics: &[(&str, &str)]) -> String {
    hs256_token(
        PUBLISHER_SECRET,
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            Value::Array(vec![publish_detail(topics)]),
        ),
    )
}

/// A publisher token granting every topic.
pub fn publish_all() -> String {
    publisher_token(&[("*", "")])
}

/// A subscriber token granting `subscribe` on `topics`, valid for an hour.
pub fn subscriber_token(topics: &[(&str, &str)]) -> String {
    hs256_token(
        SUBSCRIBER_SECRET,
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            Value::Array(vec![subscribe_detail(topics)]),
        ),
    )
}

/// A subscriber token granting every topic.
pub fn subscribe_all() -> String {
    subscriber_token(&[("*", "")])
}

/// The hub's subscribe target for `query` (already encoded), e.g. `match=a&match=b`.
pub fn sub_target(query: &str) -> String {
    format!("/.well-known/mercure?{query}")
}

/// `match=<topic>` percent-encoded.
pub fn match_param(kind: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(kind, value)
        .finish()
}
