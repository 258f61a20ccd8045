//! Tests of `load` across its layers, fed by maps and temporary files (the process environment
//! is never read or changed).
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail loudly on bad fixtures

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::layers::Setting;
use super::*;
use crate::auth::{Algorithm, JwksSource, JwksUrl};

const SECRET: &str = "0123456789abcdef0123456789abcdef!";
const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("quicksilver").chain(args.iter().copied()))
        .expect("test flags parse")
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Env with both keys, so the hub is not in dev mode.
fn keyed(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map = env(&[
        ("MERCURE_PUBLISHER_JWT_KEY", SECRET),
        ("MERCURE_SUBSCRIBER_JWT_KEY", SECRET),
    ]);
    map.extend(env(pairs));
    map
}

/// A file under the temp dir with a name unique to this process and call.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "quicksilver-config-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn ok(cli: &Cli, env: &HashMap<String, String>) -> Config {
    match load(cli, env) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected configuration errors:\n{errors}"),
    }
}

fn errs(cli: &Cli, env: &HashMap<String, String>) -> Vec<(String, String)> {
    match load(cli, env) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0,
    }
}

fn keys(errors: &[(String, String)]) -> Vec<&str> {
    let mut keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn names_follow_the_flag() {
    assert_eq!(
        Setting::MaxRequestBodySize.flag(),
        "--max-request-body-size"
    );
    assert_eq!(
        Setting::MaxRequestBodySize.env_name(),
        "QUICKSILVER_MAX_REQUEST_BODY_SIZE"
    );
    assert_eq!(
        Setting::MaxRequestBodySize.toml_name(),
        "max_request_body_size"
    );
    let flags: Vec<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    for key in Setting::ALL {
        assert!(
            flags.contains(&key.name().to_owned()),
            "no flag --{}",
            key.name()
        );
    }
}

#[test]
fn defaults_with_keys() {
    let config = ok(&Cli::default(), &keyed(&[]));
    let defaults = Config::default();
    assert_eq!(config.addr, Some("127.0.0.1:3000".parse().unwrap()));
    assert!(config.tls.is_none());
    assert_eq!(config.dev_secret, None);
    assert!(!config.anonymous);
    assert_eq!(config.issuers.len(), 1);
    assert_eq!(config.issuers[0].id, DEFAULT_ISSUER);
    assert_eq!(
        config.issuers[0].publisher.as_ref().unwrap().alg,
        Algorithm::HS256
    );
    assert_eq!(config.issuers[0].subscriber.as_ref().unwrap().key, SECRET);
    assert_eq!(config.hub_url, defaults.hub_url);
    assert_eq!(config.heartbeat, defaults.heartbeat);
    assert_eq!(config.write_timeout, Some(Duration::from_secs(600)));
    assert_eq!(config.max_request_body_size, Some(1 << 20));
    assert_eq!(
        config.history,
        HistoryConfig::Log {
            dir: std::path::PathBuf::from("./quicksilver-data"),
            retention: crate::config::LogRetention {
                max_events: 1_000_000,
                max_bytes: 1 << 30,
                max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            },
        }
    );
    assert_eq!(config.cookie_name, DEFAULT_COOKIE_NAME);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn precedence_defaults_file_env_flags() {
    let file = temp_file(
        "hub.toml",
        r#"
heartbeat = "10s"
write_timeout = "20s"
cookie_name = "from_file"
max_request_body_size = "2MiB"
max_topics_per_update = 7
anonymous = true
"#,
    );
    let env = keyed(&[
        ("QUICKSILVER_CONFIG", file.to_str().unwrap()),
        ("QUICKSILVER_WRITE_TIMEOUT", "30s"),
        ("QUICKSILVER_COOKIE_NAME", "from_env"),
        ("QUICKSILVER_ANONYMOUS", "off"),
    ]);
    let config = ok(&cli(&["--cookie-name", "from_flag", "--anonymous"]), &env);
    assert_eq!(
        config.heartbeat,
        Some(Duration::from_secs(10)),
        "file over default"
    );
    assert_eq!(
        config.write_timeout,
        Some(Duration::from_secs(30)),
        "env over file"
    );
    assert_eq!(config.cookie_name, "from_flag", "flag over env");
    assert!(config.anonymous, "flag over env over file");
    assert_eq!(config.max_request_body_size, Some(2 << 20));
    assert_eq!(config.max_topics_per_update, 7);
    assert_eq!(config.max_field_length, 64 * 1024, "default kept");

    // `--config` on the command line wins over QUICKSILVER_CONFIG.
    let other = temp_file("other.toml", "heartbeat = \"5s\"\n");
    let config = ok(&cli(&["--config", other.to_str().unwrap()]), &env);
    assert_eq!(config.heartbeat, Some(Duration::from_secs(5)));
    assert_eq!(config.cookie_name, "from_env");
    assert!(!config.anonymous);
}

#[test]
fn mercure_aliases_and_quicksilver_names() {
    let env_aliases = env(&[
        (
            "MERCURE_PUBLISHER_JWT_KEY",
            "pub-secret-pub-secret-pub-secret-1",
        ),
        ("MERCURE_PUBLISHER_JWT_ALG", "HS512"),
        (
            "MERCURE_SUBSCRIBER_JWT_KEY",
            "sub-secret-sub-secret-sub-secret-1",
        ),
        ("MERCURE_SUBSCRIBER_JWT_ALG", "HS384"),
        ("MERCURE_TRUSTED_ISSUERS", "https://auth.example"),
    ]);
    let config = ok(&Cli::default(), &env_aliases);
    let issuer = &config.issuers[0];
    assert_eq!(issuer.id, "https://auth.example");
    assert_eq!(
        issuer.publisher.as_ref().unwrap().key,
        "pub-secret-pub-secret-pub-secret-1"
    );
    assert_eq!(issuer.publisher.as_ref().unwrap().alg, Algorithm::HS512);
    assert_eq!(issuer.subscriber.as_ref().unwrap().alg, Algorithm::HS384);

    let mut both = env_aliases.clone();
    both.extend(env(&[
        (
            "QUICKSILVER_PUBLISHER_JWT_KEY",
            "qs-secret-qs-secret-qs-secret-qs-1",
        ),
        ("QUICKSILVER_ISSUER", "https://qs.example"),
    ]));
    let config = ok(&Cli::default(), &both);
    assert_eq!(config.issuers[0].id, "https://qs.example");
    assert_eq!(
        config.issuers[0].publisher.as_ref().unwrap().key,
        "qs-secret-qs-secret-qs-secret-qs-1"
    );

    let config = ok(&cli(&["--issuer", "https://flag.example"]), &both);
    assert_eq!(config.issuers[0].id, "https://flag.example");
}

#[test]
fn zero_disables_durations_and_body_limit() {
    let env = keyed(&[
        ("QUICKSILVER_HEARTBEAT", "0"),
        ("QUICKSILVER_WRITE_TIMEOUT", "0s"),
        ("QUICKSILVER_MAX_REQUEST_BODY_SIZE", "0"),
    ]);
    let config = ok(&Cli::default(), &env);
    assert_eq!(config.heartbeat, None);
    assert_eq!(config.write_timeout, None);
    assert_eq!(config.max_request_body_size, None);

    let config = ok(
        &cli(&[
            "--heartbeat",
            "1h30m",
            "--max-request-body-size",
            "1048576",
            "--max-field-length",
            "1KB",
        ]),
        &keyed(&[]),
    );
    assert_eq!(config.heartbeat, Some(Duration::from_secs(5400)));
    assert_eq!(config.max_request_body_size, Some(1_048_576));
    assert_eq!(config.max_field_length, 1000);

    let e = errs(
        &cli(&[
            "--max-field-length",
            "0",
            "--subscriber-queue-capacity",
            "0",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        keys(&e),
        ["--max-field-length", "--subscriber-queue-capacity"]
    );
}

#[test]
fn dev_mode_generates_a_secret_and_forces_anonymous() {
    let config = ok(&cli(&["--anonymous=false"]), &env(&[]));
    let secret = config.dev_secret.clone().expect("dev secret");
    assert_eq!(secret.len(), 43, "32 bytes, base64url without padding");
    assert!(config.anonymous);
    assert_eq!(config.issuers.len(), 1);
    let issuer = &config.issuers[0];
    assert_eq!(issuer.id, DEFAULT_ISSUER);
    for key in [&issuer.publisher, &issuer.subscriber] {
        let key = key.as_ref().unwrap();
        assert_eq!(key.key, secret);
        assert_eq!(key.alg, Algorithm::HS256);
    }
    let again = ok(&Cli::default(), &env(&[]));
    assert_ne!(
        again.dev_secret, config.dev_secret,
        "a fresh secret per start"
    );

    let custom = ok(&cli(&["--issuer", "https://dev.example"]), &env(&[]));
    assert_eq!(custom.issuers[0].id, "https://dev.example");
}

#[test]
fn dev_mode_refuses_non_loopback_listeners() {
    let e = errs(&cli(&["--addr", "0.0.0.0:3000"]), &env(&[]));
    assert_eq!(keys(&e), ["--addr"]);
    assert!(e[0].1.contains("--publisher-jwt-key"), "{}", e[0].1);

    let config = ok(&cli(&["--addr", "[::1]:3000"]), &env(&[]));
    assert!(config.dev_secret.is_some());

    // With keys, any address is fine.
    let config = ok(&cli(&["--addr", "0.0.0.0:3000"]), &keyed(&[]));
    assert!(config.dev_secret.is_none());
}

#[test]
fn production_needs_a_publisher_key_and_a_subscriber_key_or_anonymous() {
    let e = errs(
        &Cli::default(),
        &env(&[("MERCURE_SUBSCRIBER_JWT_KEY", SECRET)]),
    );
    assert_eq!(keys(&e), ["--publisher-jwt-key"]);

    let e = errs(
        &Cli::default(),
        &env(&[("MERCURE_PUBLISHER_JWT_KEY", SECRET)]),
    );
    assert_eq!(keys(&e), ["--subscriber-jwt-key"]);
    assert!(e[0].1.contains("--anonymous"));

    let config = ok(
        &cli(&["--anonymous"]),
        &env(&[("MERCURE_PUBLISHER_JWT_KEY", SECRET)]),
    );
    assert!(config.anonymous);
    assert!(config.issuers[0].subscriber.is_none());
    assert!(config.dev_secret.is_none());
}

#[test]
fn key_algorithms() {
    // PEM without an algorithm, or with HMAC.
    let e = errs(&cli(&["--publisher-jwt-key", PEM]), &keyed(&[]));
    assert_eq!(keys(&e), ["--publisher-jwt-alg"]);
    assert!(e[0].1.contains("PEM"));
    let e = errs(
        &cli(&["--publisher-jwt-key", PEM, "--publisher-jwt-alg", "HS256"]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--publisher-jwt-alg"]);

    let config = ok(
        &cli(&["--publisher-jwt-key", PEM, "--publisher-jwt-alg", "EdDSA"]),
        &keyed(&[]),
    );
    let publisher = config.issuers[0].publisher.clone().unwrap();
    assert_eq!(publisher.alg, Algorithm::EdDSA);
    assert_eq!(publisher.key, PEM);

    // A secret with an asymmetric algorithm; an unknown name.
    let e = errs(&cli(&["--subscriber-jwt-alg", "RS256"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--subscriber-jwt-alg"]);
    let e = errs(&cli(&["--subscriber-jwt-alg", "hs256"]), &keyed(&[]));
    assert!(e[0].1.contains("did you mean HS256"), "{}", e[0].1);

    // Short secrets are accepted with a warning.
    let config = ok(&cli(&["--publisher-jwt-key", "short"]), &keyed(&[]));
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].starts_with("--publisher-jwt-key"));
}

#[test]
fn several_errors_are_reported_together() {
    let e = errs(
        &cli(&[
            "--heartbeat",
            "4x",
            "--addr",
            "nope",
            "--publisher-jwt-alg",
            "XX256",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        keys(&e),
        ["--addr", "--heartbeat", "--publisher-jwt-alg"],
        "{e:?}"
    );
    let heartbeat = &e.iter().find(|(k, _)| k == "--heartbeat").unwrap().1;
    assert!(heartbeat.contains("from the command line"), "{heartbeat}");

    let e = errs(
        &Cli::default(),
        &keyed(&[("QUICKSILVER_HEARTBEAT", "soon")]),
    );
    assert!(
        e[0].1.contains("from env QUICKSILVER_HEARTBEAT"),
        "{}",
        e[0].1
    );

    let display = ConfigErrors(vec![
        ("--a".into(), "bad".into()),
        ("--b".into(), "worse".into()),
    ]);
    assert_eq!(display.to_string(), "--a: bad\n--b: worse\n");
}

#[test]
fn toml_file_problems() {
    let file = temp_file(
        "unknown.toml",
        "heartbeet = \"40s\"\nmax-request-body-size = \"1MiB\"\nheartbeat = [1]\nhistory = \"memory\"\n",
    );
    let e = errs(&cli(&["--config", file.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(
        keys(&e),
        ["--heartbeat", "heartbeet", "max-request-body-size"],
        "{e:?}"
    );
    let dashed = &e
        .iter()
        .find(|(k, _)| k == "max-request-body-size")
        .unwrap()
        .1;
    assert!(dashed.contains("max_request_body_size"), "{dashed}");

    let file = temp_file("broken.toml", "heartbeat = \n");
    let e = errs(&cli(&["--config", file.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(keys(&e), ["--config"]);
    assert!(e[0].1.contains(file.to_str().unwrap()));

    let missing = std::env::temp_dir().join("quicksilver-config-test-does-not-exist.toml");
    let e = errs(&cli(&["--config", missing.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(keys(&e), ["--config"]);
    assert!(e[0].1.contains("does-not-exist"));

    let file = temp_file("bad-value.toml", "heartbeat = \"4x\"\n");
    let e = errs(&cli(&["--config", file.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(keys(&e), ["--heartbeat"]);
    assert!(e[0].1.contains("key heartbeat"), "{}", e[0].1);
}

#[test]
fn cors_origins() {
    let config = ok(
        &cli(&[
            "--cors-origins",
            "https://App.example.com, http://localhost:8080",
            "--cors-origins",
            "https://app.example.com:443 https://b.example",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        config.cors_origins,
        [
            "https://app.example.com",
            "http://localhost:8080",
            "https://b.example"
        ]
    );

    let file = temp_file(
        "cors.toml",
        "cors_origins = [\"https://a.example\", \"https://b.example\"]\n",
    );
    let config = ok(&cli(&["--config", file.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(
        config.cors_origins,
        ["https://a.example", "https://b.example"]
    );

    let e = errs(&cli(&["--cors-origins", "https://a.example/"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--cors-origins"]);
    assert!(e[0].1.contains("path"));
    let e = errs(
        &Cli::default(),
        &keyed(&[("QUICKSILVER_CORS_ORIGINS", "*")]),
    );
    assert_eq!(keys(&e), ["--cors-origins"]);
    assert!(e[0].1.contains("credentials"));
}

#[test]
fn keys_from_files() {
    let secret_file = temp_file("secret.txt", &format!("{SECRET}\n"));
    let arg = format!("@{}", secret_file.display());
    let config = ok(&cli(&["--publisher-jwt-key", &arg]), &keyed(&[]));
    assert_eq!(
        config.issuers[0].publisher.as_ref().unwrap().key,
        SECRET,
        "trailing newline dropped"
    );

    let pem_file = temp_file("pub.pem", PEM);
    let env = env(&[
        (
            "MERCURE_PUBLISHER_JWT_KEY",
            &format!("@{}", pem_file.display()),
        ),
        ("MERCURE_PUBLISHER_JWT_ALG", "ES256"),
        ("QUICKSILVER_ANONYMOUS", "1"),
    ]);
    let config = ok(&Cli::default(), &env);
    assert_eq!(
        config.issuers[0].publisher.as_ref().unwrap().alg,
        Algorithm::ES256
    );

    let e = errs(
        &cli(&["--publisher-jwt-key", "@/nonexistent/quicksilver/key.pem"]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--publisher-jwt-key"]);
    assert!(e[0].1.contains("/nonexistent/quicksilver/key.pem"));

    // Relative `@` paths in the TOML file are relative to the file.
    let dir = secret_file.parent().unwrap();
    let toml = dir.join("relative.toml");
    std::fs::write(
        &toml,
        "publisher_jwt_key = \"@secret.txt\"\nanonymous = true\n",
    )
    .unwrap();
    let config = ok(&cli(&["--config", toml.to_str().unwrap()]), &HashMap::new());
    assert_eq!(config.issuers[0].publisher.as_ref().unwrap().key, SECRET);
}

#[test]
fn issuer_tables() {
    let file = temp_file(
        "issuers.toml",
        &format!(
            r#"
anonymous = true

[[issuers]]
id = "https://a.example"
publisher_key = "{SECRET}"
authorization_server = true

[[issuers]]
id = "https://b.example"
subscriber_key = """{PEM}"""
subscriber_alg = "EdDSA"
"#
        ),
    );
    let path = file.to_str().unwrap();
    let config = ok(&cli(&["--config", path]), &HashMap::new());
    assert_eq!(config.issuers.len(), 2);
    assert_eq!(config.issuers[0].id, "https://a.example");
    assert!(config.issuers[0].authorization_server);
    assert!(config.issuers[0].subscriber.is_none());
    assert_eq!(
        config.issuers[1].subscriber.as_ref().unwrap().alg,
        Algorithm::EdDSA
    );
    assert!(config.dev_secret.is_none());

    // Layered keys join as one more issuer, under --issuer.
    let config = ok(&cli(&["--config", path]), &keyed(&[]));
    assert_eq!(config.issuers.len(), 3);
    assert_eq!(config.issuers[2].id, DEFAULT_ISSUER);
    let e = errs(
        &cli(&["--config", path, "--issuer", "https://a.example"]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--issuer"]);
    assert!(e[0].1.contains("duplicate"));

    let file = temp_file(
        "bad-issuers.toml",
        r#"
[[issuers]]
publisher_key = "0123456789abcdef0123456789abcdef"

[[issuers]]
id = "https://keyless.example"
publisher_algo = "HS256"
"#,
    );
    let e = errs(&cli(&["--config", file.to_str().unwrap()]), &keyed(&[]));
    assert_eq!(
        keys(&e),
        ["issuers[0].id", "issuers[1]", "issuers[1].publisher_algo"],
        "{e:?}"
    );
}

#[test]
fn tls_listener() {
    let cert = temp_file("cert.pem", "cert");
    let key = temp_file("key.pem", "key");
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let config = ok(
        &cli(&[
            "--tls-addr",
            "0.0.0.0:8443",
            "--tls-cert",
            cert_s,
            "--tls-key",
            key_s,
            "--addr",
            "none",
        ]),
        &keyed(&[]),
    );
    let tls = config.tls.unwrap();
    assert_eq!(tls.addr, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(tls.cert, cert);
    assert!(config.addr.is_none());

    let e = errs(&cli(&["--tls-addr", "127.0.0.1:8443"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--tls-cert", "--tls-key"]);
    let e = errs(
        &cli(&[
            "--tls-addr",
            "127.0.0.1:8443",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            key_s,
        ]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--tls-cert"]);
    let e = errs(
        &cli(&["--tls-cert", cert_s, "--tls-key", key_s]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--tls-addr"]);
    let e = errs(&cli(&["--addr", "none"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--addr"]);
    let e = errs(&cli(&["--addr", ""]), &keyed(&[]));
    assert_eq!(keys(&e), ["--addr"]);

    // Dev mode checks the TLS listener too.
    let e = errs(
        &cli(&[
            "--tls-addr",
            "0.0.0.0:8443",
            "--tls-cert",
            cert_s,
            "--tls-key",
            key_s,
        ]),
        &env(&[]),
    );
    assert_eq!(keys(&e), ["--tls-addr"]);
}

#[test]
fn hub_url_and_resource_identifier() {
    let config = ok(
        &cli(&[
            "--resource-identifier",
            "https://hub.example/.well-known/mercure",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        config.hub_url.as_str(),
        "https://hub.example/.well-known/mercure"
    );
    assert_eq!(
        config.resource_identifier.as_deref(),
        Some("https://hub.example/.well-known/mercure")
    );

    let config = ok(
        &cli(&[
            "--resource-identifier",
            "https://api.example",
            "--hub-url",
            "https://x.example/hub",
        ]),
        &keyed(&[]),
    );
    assert_eq!(config.hub_url.as_str(), "https://x.example/hub");
    assert_eq!(
        config.resource_identifier.as_deref(),
        Some("https://api.example")
    );

    let config = ok(
        &cli(&["--resource-identifier", "https://api.example/"]),
        &keyed(&[]),
    );
    assert_eq!(config.hub_url, default_hub_url());

    let config = ok(
        &cli(&[
            "--resource-identifier",
            "http://hub.example/.well-known/mercure",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        config.warnings.len(),
        1,
        "plain http is accepted with a warning"
    );

    let e = errs(
        &cli(&[
            "--resource-identifier",
            "/hub#x",
            "--hub-url",
            "https://h.example/?q",
        ]),
        &keyed(&[]),
    );
    assert_eq!(keys(&e), ["--hub-url", "--resource-identifier"]);
}

#[test]
fn history_and_logging() {
    let config = ok(
        &cli(&[
            "--history",
            "none",
            "--log-format",
            "json",
            "--log-level",
            "quicksilver=debug",
        ]),
        &keyed(&[]),
    );
    assert_eq!(config.history, HistoryConfig::None);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.log_level, "quicksilver=debug");

    let config = ok(
        &cli(&["--history", "memory", "--history-size", "10"]),
        &keyed(&[]),
    );
    assert_eq!(config.history, HistoryConfig::Memory { capacity: 10 });

    let e = errs(
        &cli(&[
            "--history",
            "memory",
            "--history-size",
            "0",
            "--log-format",
            "xml",
            "--log-level",
            "[[[",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        keys(&e),
        ["--history-size", "--log-format", "--log-level"],
        "{e:?}"
    );
    let e = errs(&cli(&["--history", "redis"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--history"]);
}

#[test]
fn durable_log_settings() {
    let config = ok(
        &cli(&[
            "--data-dir",
            "/var/lib/qs",
            "--history-max-events",
            "500",
            "--history-max-age",
            "0",
        ]),
        &keyed(&[("QUICKSILVER_HISTORY_MAX_BYTES", "64MiB")]),
    );
    assert_eq!(
        config.history,
        HistoryConfig::Log {
            dir: std::path::PathBuf::from("/var/lib/qs"),
            retention: crate::config::LogRetention {
                max_events: 500,
                max_bytes: 64 << 20,
                max_age: None,
            },
        }
    );
    let e = errs(
        &cli(&[
            "--history-max-events",
            "0",
            "--history-max-bytes",
            "1KiB",
            "--history-max-age",
            "soon",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        keys(&e),
        [
            "--history-max-age",
            "--history-max-bytes",
            "--history-max-events"
        ],
        "{e:?}"
    );
}

#[test]
fn boolean_flags_and_env() {
    assert_eq!(cli(&["--anonymous"]).anonymous, Some(true));
    assert_eq!(cli(&["--anonymous=false"]).anonymous, Some(false));
    assert_eq!(cli(&["--anonymous=on"]).anonymous, Some(true));
    assert_eq!(cli(&[]).anonymous, None);
    assert!(Cli::try_parse_from(["quicksilver", "--anonymous=maybe"]).is_err());

    let config = ok(&Cli::default(), &keyed(&[("QUICKSILVER_ANONYMOUS", "yes")]));
    assert!(config.anonymous);
    let e = errs(
        &Cli::default(),
        &keyed(&[("QUICKSILVER_ANONYMOUS", "sure")]),
    );
    assert_eq!(keys(&e), ["--anonymous"]);
}

// `--protocol-version-compatibility`: off by default, 7 or 8 from any layer with a warning,
// anything else an error; `--publish-origins` accepts `*` and wildcards.
#[test]
fn compatibility_and_publish_origins() {
    let c = ok(&cli(&[]), &keyed(&[]));
    assert_eq!(c.protocol_version_compatibility, None);
    assert!(!c.compat(8) && !c.compat_any());
    let c = ok(
        &cli(&[]),
        &keyed(&[("QUICKSILVER_PROTOCOL_VERSION_COMPATIBILITY", "8")]),
    );
    assert!(c.compat(8) && !c.compat(7));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("--protocol-version-compatibility 8")));
    let c = ok(
        &cli(&["--protocol-version-compatibility", "7"]),
        &keyed(&[]),
    );
    assert!(c.compat(7) && c.compat(8));
    let e = errs(
        &cli(&["--protocol-version-compatibility", "9"]),
        &keyed(&[]),
    );
    assert!(e
        .iter()
        .any(|(k, _)| k == "--protocol-version-compatibility"));
    let c = ok(
        &cli(&[
            "--publish-origins",
            "*",
            "--publish-origins",
            "https://*.example.com, https://a.test",
        ]),
        &keyed(&[]),
    );
    assert_eq!(
        c.publish_origins,
        vec!["*", "https://*.example.com", "https://a.test"]
    );
    let e = errs(&cli(&["--publish-origins", "nope"]), &keyed(&[]));
    assert!(e.iter().any(|(k, _)| k == "--publish-origins"));
}

// `[[issuers]]` may name a JWK Set file per role instead of a key (resolved against the TOML
// file's directory); such an issuer satisfies the publisher/subscriber requirements.
#[test]
fn issuer_jwks_files() {
    let file = temp_file(
        "jwks.toml",
        r#"
[[issuers]]
id = "https://idp.example"
publisher_jwks = "idp-publisher.json"
subscriber_jwks = "/etc/idp/subscriber.json"
"#,
    );
    let config = ok(&cli(&["--config", file.to_str().unwrap()]), &HashMap::new());
    let issuer = &config.issuers[0];
    assert_eq!(
        issuer.publisher_jwks,
        Some(JwksSource::File(file.with_file_name("idp-publisher.json")))
    );
    assert_eq!(
        issuer.subscriber_jwks,
        Some(JwksSource::File("/etc/idp/subscriber.json".into()))
    );
    assert!(issuer.publisher.is_none() && config.dev_secret.is_none());
}

// An `https://` value is a URL source with the issuer's refresh settings and the global CA
// file; other schemes are refused.
#[test]
fn issuer_jwks_urls() {
    let ca = temp_file("jwks-ca.pem", "not checked here\n");
    let file = temp_file(
        "jwks-url.toml",
        &format!(
            r#"
jwks_ca_file = "{}"
[[issuers]]
id = "https://idp.example"
publisher_jwks = "https://idp.example/jwks.json"
subscriber_jwks = "sub.json"
jwks_refresh_interval = "1m"
jwks_refresh_min_interval = "2s"
"#,
            ca.display()
        ),
    );
    let config = ok(&cli(&["--config", file.to_str().unwrap()]), &HashMap::new());
    assert_eq!(
        config.issuers[0].publisher_jwks,
        Some(JwksSource::Url(JwksUrl {
            url: "https://idp.example/jwks.json".to_owned(),
            ca_file: Some(ca.clone()),
            refresh_interval: Duration::from_secs(60),
            refresh_min_interval: Duration::from_secs(2),
        }))
    );
    for bad in ["http://idp.example/jwks.json", "file:///etc/passwd"] {
        let file = temp_file(
            "jwks-bad.toml",
            &format!("[[issuers]]\nid = \"https://idp.example\"\npublisher_jwks = \"{bad}\"\n"),
        );
        let e = errs(&cli(&["--config", file.to_str().unwrap()]), &HashMap::new());
        assert!(
            e.iter().any(|(k, _)| k == "issuers[0].publisher_jwks"),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn subscriptions_setting() {
    assert!(
        !ok(&Cli::default(), &keyed(&[])).subscriptions,
        "off by default"
    );
    assert_eq!(cli(&["--subscriptions"]).subscriptions, Some(true));
    assert_eq!(cli(&["--subscriptions=false"]).subscriptions, Some(false));
    assert!(ok(&cli(&["--subscriptions"]), &keyed(&[])).subscriptions);
    let config = ok(
        &Cli::default(),
        &keyed(&[("QUICKSILVER_SUBSCRIPTIONS", "1")]),
    );
    assert!(config.subscriptions);
    let file = temp_file("subscriptions.toml", "subscriptions = true\n");
    let env = keyed(&[("QUICKSILVER_CONFIG", file.to_str().unwrap())]);
    assert!(ok(&Cli::default(), &env).subscriptions);
    let env = keyed(&[
        ("QUICKSILVER_CONFIG", file.to_str().unwrap()),
        ("QUICKSILVER_SUBSCRIPTIONS", "off"),
    ]);
    assert!(!ok(&Cli::default(), &env).subscriptions, "env over file");
}

#[test]
fn workers_setting() {
    assert_eq!(ok(&cli(&[]), &keyed(&[])).workers, None);
    let config = ok(&cli(&["--workers", "1"]), &keyed(&[]));
    assert_eq!(config.workers, Some(1));
    let config = ok(&cli(&[]), &keyed(&[("QUICKSILVER_WORKERS", "3")]));
    assert_eq!(config.workers, Some(3));
    let e = errs(&cli(&["--workers", "0"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--workers"], "{e:?}");
    let e = errs(&cli(&["--workers", "many"]), &keyed(&[]));
    assert_eq!(keys(&e), ["--workers"], "{e:?}");
}
