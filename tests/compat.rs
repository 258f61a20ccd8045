//! Mercure 0.x compatibility (`--protocol-version-compatibility`, reference hub §4): the classic
//! quick start verbatim (in-process and with the binary and curl), legacy `mercure` claims,
//! `topic=` URI templates, 0.x token sources and cursors, mode 7 extras, and modern mode still
//! rejecting every legacy form.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;
use serde_json::{json, Value};

const HUB: &str = "/.well-known/mercure";
const BOOK: &str = "https://example.com/books/1";
const BOOKS_TEMPLATE: &str = "https://example.com/books/{id}";
const MARKER: &str = "https://example.com/marker";

/// A 0.x token: header `{"alg":"HS256","typ":"JWT"}`, the claims as given (no iss/aud/exp).
fn legacy_token(secret: &str, claims: Value) -> String {
    sign(
        "HS256",
        &TestKey::hmac(secret.as_bytes()),
        json!({"alg": "HS256", "typ": "JWT"}),
        claims,
    )
}

/// The classic quick-start publisher token: `{"mercure":{"publish":["*"]}}`.
fn quick_start_publisher() -> String {
    legacy_token(PUBLISHER_SECRET, json!({"mercure": {"publish": ["*"]}}))
}

fn legacy_subscriber(subscribe: Value) -> String {
    legacy_token(
        SUBSCRIBER_SECRET,
        json!({"mercure": {"subscribe": subscribe}}),
    )
}

/// A hub in compatibility mode `version` with anonymous subscribers (one issuer, as
/// `MERCURE_PUBLISHER_JWT_KEY` / `MERCURE_SUBSCRIBER_JWT_KEY` configure it).
async fn compat_hub(version: u8) -> TestHub {
    TestHub::start_with(|c| {
        c.protocol_version_compatibility = Some(version);
        c.anonymous = true;
    })
    .await
}

fn topic_target(topics: &[&str]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for t in topics {
        s.append_pair("topic", t);
    }
    sub_target(&s.finish())
}

async fn publish(client: &TestClient, token: &str, fields: &[(&str, &str)]) -> Response {
    client
        .send(Request::post(HUB).form(fields).bearer(token))
        .await
}

/// Publishes a public marker with the quick-start token and returns its id.
async fn publish_marker(client: &TestClient, data: &str) -> String {
    let resp = publish(
        client,
        &quick_start_publisher(),
        &[("topic", MARKER), ("data", data)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.text().to_owned()
}

async fn next_data(stream: &mut SseStream) -> String {
    stream.next_event(DEADLINE).await.expect("an event").data
}

#[tokio::test]
async fn classic_quick_start_works_verbatim() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let mut exact = client
        .open_stream(Request::sse(&topic_target(&[BOOK])))
        .await;
    let mut template = client
        .open_stream(Request::sse(&topic_target(&[BOOKS_TEMPLATE])))
        .await;
    assert_eq!(exact.status, StatusCode::OK);
    assert_eq!(template.status, StatusCode::OK);
    let resp = publish(
        &client,
        &quick_start_publisher(),
        &[("topic", BOOK), ("data", r#"{"status": "updated"}"#)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.text().starts_with("urn:uuid:"), "{}", resp.text());
    for stream in [&mut exact, &mut template] {
        let ev = stream.next_event(DEADLINE).await.expect("the update");
        assert_eq!(ev.data, r#"{"status": "updated"}"#);
        assert_eq!(ev.id.as_deref(), Some(resp.text()));
    }
    hub.shutdown().await;
}

// `topic=` is exact first, then an RFC 6570 template; mixable with `match*`.
#[tokio::test]
async fn topic_selectors_templates_and_match_mix() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H2c).await;
    let target = format!(
        "{}&{}",
        topic_target(&["https://example.com/users/{id}{?tab}"]),
        match_param("match", MARKER)
    );
    let mut stream = client.open_stream(Request::sse(&target)).await;
    assert_eq!(stream.status, StatusCode::OK);
    let token = quick_start_publisher();
    for (topic, data) in [
        ("https://example.com/users/1/2", "too deep"),
        ("https://example.com/users/7?tab=books", "with query"),
        ("https://example.com/users/{id}{?tab}", "literal"),
        (MARKER, "marker"),
    ] {
        let resp = publish(&client, &token, &[("topic", topic), ("data", data)]).await;
        assert_eq!(resp.status, StatusCode::OK);
    }
    assert_eq!(next_data(&mut stream).await, "with query");
    assert_eq!(next_data(&mut stream).await, "literal");
    assert_eq!(next_data(&mut stream).await, "marker");
    hub.shutdown().await;
}

// Legacy `mercure.subscribe` (strings: exact-or-template; objects: match/match_type) grants
// private delivery; the namespaced claim wins over `mercure`.
#[tokio::test]
async fn legacy_subscribe_claims_receive_private_updates() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let template_sub = legacy_subscriber(json!([BOOKS_TEMPLATE]));
    let object_sub = legacy_subscriber(
        json!([{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]),
    );
    let namespaced = legacy_token(
        SUBSCRIBER_SECRET,
        json!({"mercure": {"subscribe": ["*"]}, "https://mercure.rocks/": {"subscribe": []}}),
    );
    let target = topic_target(&[BOOK, MARKER]);
    let mut streams = Vec::new();
    for token in [&template_sub, &object_sub, &namespaced] {
        let s = client
            .open_stream(Request::sse(&target).bearer(token))
            .await;
        assert_eq!(s.status, StatusCode::OK);
        streams.push(s);
    }
    let mut anonymous = client.open_stream(Request::sse(&target)).await;
    let resp = publish(
        &client,
        &quick_start_publisher(),
        &[("topic", BOOK), ("data", "secret"), ("private", "on")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK);
    publish_marker(&client, "marker").await;
    assert_eq!(next_data(&mut streams[0]).await, "secret");
    assert_eq!(next_data(&mut streams[1]).await, "secret");
    // The namespaced claim (no subscribe grant) wins: the marker comes first.
    assert_eq!(next_data(&mut streams[2]).await, "marker");
    assert_eq!(next_data(&mut anonymous).await, "marker");
    hub.shutdown().await;
}

// Legacy `mercure.publish` patterns: a template grant covers matching topics only (403 else).
#[tokio::test]
async fn legacy_publish_grants() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let token = legacy_token(
        PUBLISHER_SECRET,
        json!({"mercure": {"publish": [BOOKS_TEMPLATE]}}),
    );
    let ok = publish(&client, &token, &[("topic", BOOK), ("data", "x")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let denied = publish(
        &client,
        &token,
        &[("topic", "https://example.com/authors/1"), ("data", "x")],
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // Over 1000 entries per array is an invalid token.
    let many: Vec<String> = (0..1001).map(|i| format!("/t/{i}")).collect();
    let too_many = legacy_token(PUBLISHER_SECRET, json!({"mercure": {"publish": many}}));
    let resp = publish(&client, &too_many, &[("topic", "/t/1"), ("data", "x")]).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    hub.shutdown().await;
}

// Relaxed validation: typ/aud/exp not required, exp enforced when present, iss optional with one
// issuer; algorithm pinning and signatures stay.
#[tokio::test]
async fn relaxed_checks_keep_signature_and_algorithm() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let fields = [("topic", BOOK), ("data", "x")];
    let grant = json!({"publish": ["*"]});
    let cases = [
        (
            json!({"mercure": grant, "iss": "https://unknown"}),
            StatusCode::OK,
        ),
        (
            json!({"mercure": grant, "aud": "elsewhere"}),
            StatusCode::OK,
        ),
        (
            json!({"mercure": grant, "exp": unix_now() + 60}),
            StatusCode::OK,
        ),
        (
            json!({"mercure": grant, "exp": unix_now() - 1}),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (claims, status) in cases {
        let resp = publish(
            &client,
            &legacy_token(PUBLISHER_SECRET, claims.clone()),
            &fields,
        )
        .await;
        assert_eq!(resp.status, status, "{claims}");
    }
    let wrong_key = legacy_token(SUBSCRIBER_SECRET, json!({"mercure": grant}));
    assert_eq!(
        publish(&client, &wrong_key, &fields).await.status,
        StatusCode::UNAUTHORIZED
    );
    let hs384 = sign(
        "HS384",
        &TestKey::hmac(PUBLISHER_SECRET.as_bytes()),
        json!({"typ": "JWT"}),
        json!({"mercure": grant}),
    );
    assert_eq!(
        publish(&client, &hs384, &fields).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A modern token still works in compatibility mode.
    assert_eq!(
        publish(&client, &publish_all(), &fields).await.status,
        StatusCode::OK
    );
    hub.shutdown().await;
}

// With two issuers a token without `iss` cannot pick one.
#[tokio::test]
async fn missing_iss_with_two_issuers_is_rejected() {
    let hub = TestHub::start_with(|c| {
        c.protocol_version_compatibility = Some(8);
        let mut other = c.issuers[0].clone();
        other.id = "https://other.test".to_owned();
        c.issuers.push(other);
    })
    .await;
    let client = hub.client(Proto::H1).await;
    let resp = publish(
        &client,
        &quick_start_publisher(),
        &[("topic", BOOK), ("data", "x")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    hub.shutdown().await;
}

// Token sources: the `authorization` query parameter (one value, ≥ 41 chars, else ignored) and
// the `mercureAuthorization` cookie, for subscribing and publishing.
#[tokio::test]
async fn query_parameter_and_legacy_cookie() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let sub = legacy_subscriber(json!(["*"]));
    let base = topic_target(&[BOOK, MARKER]);
    let mut by_query = client
        .open_stream(Request::sse(&format!("{base}&authorization={sub}")))
        .await;
    let mut by_cookie = client
        .open_stream(Request::sse(&base).header("cookie", &format!("mercureAuthorization={sub}")))
        .await;
    // Too short, or twice: silently skipped → anonymous.
    let mut short = client
        .open_stream(Request::sse(&format!("{base}&authorization=abc")))
        .await;
    let mut twice = client
        .open_stream(Request::sse(&format!(
            "{base}&authorization={sub}&authorization={sub}"
        )))
        .await;
    for s in [&by_query, &by_cookie, &short, &twice] {
        assert_eq!(s.status, StatusCode::OK);
    }
    let publisher = quick_start_publisher();
    let resp = client
        .send(
            Request::post(&format!("{HUB}?authorization={publisher}")).form(&[
                ("topic", BOOK),
                ("data", "secret"),
                ("private", "on"),
            ]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    // A cookie-authenticated publish passes the CSRF check from the hub's own origin.
    let origin = format!("http://{}", client.authority());
    let resp = client
        .send(
            Request::post(HUB)
                .form(&[("topic", MARKER), ("data", "marker")])
                .header("cookie", &format!("mercureAuthorization={publisher}"))
                .header("origin", &origin),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(next_data(&mut by_query).await, "secret");
    assert_eq!(next_data(&mut by_cookie).await, "secret");
    assert_eq!(next_data(&mut short).await, "marker");
    assert_eq!(next_data(&mut twice).await, "marker");
    hub.shutdown().await;
}

// `lastEventID` (0.x clients, first connection) is read after the header and `last_event_id`.
#[tokio::test]
async fn last_event_id_query_parameter() {
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let first = publish_marker(&client, "one").await;
    let second = publish_marker(&client, "two").await;
    publish_marker(&client, "three").await;
    let target = topic_target(&[MARKER]);
    let mut s = client
        .open_stream(Request::sse(&format!("{target}&lastEventID={first}")))
        .await;
    assert_eq!(next_data(&mut s).await, "two");
    let mut s = client
        .open_stream(Request::sse(&format!(
            "{target}&lastEventID={first}&last_event_id={second}"
        )))
        .await;
    assert_eq!(next_data(&mut s).await, "three");
    let mut s = client
        .open_stream(
            Request::sse(&format!("{target}&lastEventID={first}")).header("last-event-id", &second),
        )
        .await;
    assert_eq!(next_data(&mut s).await, "three");
    // Mode 8 does not read a `Last-Event-ID` query parameter: no replay, live only.
    let mut s = client
        .open_stream(Request::sse(&format!("{target}&Last-Event-ID={first}")))
        .await;
    publish_marker(&client, "live").await;
    assert_eq!(next_data(&mut s).await, "live");
    hub.shutdown().await;
}

// Mode 7 adds the `Last-Event-ID` query parameter and public publishes to ungranted topics
// (private ones still need a grant); mode 8 has neither.
#[tokio::test]
async fn mode_7_extras() {
    let narrow = legacy_token(
        PUBLISHER_SECRET,
        json!({"mercure": {"publish": ["https://example.com/granted"]}}),
    );
    let hub = compat_hub(7).await;
    let client = hub.client(Proto::H1).await;
    let first = publish_marker(&client, "one").await;
    publish_marker(&client, "two").await;
    let mut s = client
        .open_stream(Request::sse(&format!(
            "{}&Last-Event-ID={first}",
            topic_target(&[MARKER])
        )))
        .await;
    assert_eq!(next_data(&mut s).await, "two");
    let public = publish(&client, &narrow, &[("topic", BOOK), ("data", "x")]).await;
    assert_eq!(public.status, StatusCode::OK);
    let private = publish(
        &client,
        &narrow,
        &[("topic", BOOK), ("data", "x"), ("private", "on")],
    )
    .await;
    assert_eq!(private.status, StatusCode::FORBIDDEN);
    hub.shutdown().await;

    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let public = publish(&client, &narrow, &[("topic", BOOK), ("data", "x")]).await;
    assert_eq!(public.status, StatusCode::FORBIDDEN);
    hub.shutdown().await;
}

// Modern mode (the default) rejects every legacy form.
#[tokio::test]
async fn modern_mode_rejects_legacy_forms() {
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let client = hub.client(Proto::H1).await;
    let resp = client.send(Request::get(&topic_target(&[BOOK]))).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    // The 0.x quick-start token: no typ at+jwt, iss, aud, exp → 401.
    let fields = [("topic", BOOK), ("data", "x")];
    let resp = publish(&client, &quick_start_publisher(), &fields).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    // A valid RFC 9068 token carrying only the legacy claim grants nothing → 403.
    let mut modern = claims(ISSUER, RESOURCE, unix_now() + 3600, Value::Null);
    modern["mercure"] = json!({"publish": ["*"]});
    let resp = publish(&client, &hs256_token(PUBLISHER_SECRET, modern), &fields).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    // Query parameter and mercureAuthorization cookie are not read → 401 (no token).
    let resp = client
        .send(Request::post(&format!("{HUB}?authorization={}", publish_all())).form(&fields))
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let resp = client
        .send(
            Request::post(HUB)
                .form(&fields)
                .header("cookie", &format!("mercureAuthorization={}", publish_all())),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    hub.shutdown().await;

    // Without anonymous, a subscriber presenting its token only in the query is 401.
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let target = format!(
        "{}&authorization={}",
        sub_target(&match_param("match", BOOK)),
        subscribe_all()
    );
    assert_eq!(
        client.send(Request::get(&target)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cookie = format!("mercureAuthorization={}", subscribe_all());
    let resp = client
        .send(Request::get(&sub_target(&match_param("match", BOOK))).header("cookie", &cookie))
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    hub.shutdown().await;
}

/// The classic quick start against the binary: configured only through the reference image's
/// key variables plus compatibility and anonymous, driven by curl with the 0.x command verbatim
/// (only the port differs).
#[test]
fn quick_start_with_the_binary_and_curl() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    if !external_program("curl") {
        return;
    }
    const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";
    fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quicksilver"));
    for (k, _) in std::env::vars() {
        if k.starts_with("QUICKSILVER_") || k.starts_with("MERCURE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut hub = Killed(
        cmd.env("MERCURE_PUBLISHER_JWT_KEY", SECRET)
            .env("MERCURE_SUBSCRIBER_JWT_KEY", SECRET)
            .env("QUICKSILVER_PROTOCOL_VERSION_COMPATIBILITY", "8")
            .env("QUICKSILVER_ANONYMOUS", "1")
            .env("QUICKSILVER_ADDR", "127.0.0.1:0")
            .env("QUICKSILVER_HISTORY", "memory")
            .env("QUICKSILVER_LOG_LEVEL", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quicksilver"),
    );
    let stderr = lines(hub.0.stderr.take().unwrap());
    let mut warned = false;
    let port = loop {
        let line = stderr.recv_timeout(DEADLINE).expect("a listening line");
        warned |= line.contains("protocol-version-compatibility 8");
        if line.contains("listening (HTTP/1.1, h2c)") {
            let addr = line.split("addr=").nth(1).expect("addr field").trim();
            break addr.parse::<std::net::SocketAddr>().unwrap().port();
        }
    };
    assert!(warned, "compatibility mode logs a warning at start");
    let base = format!("http://localhost:{port}/.well-known/mercure");
    let mut subscribers = Vec::new();
    for query in [
        "topic=https://example.com/books/1",
        "topic=https://example.com/books/%7Bid%7D",
    ] {
        let mut child = Command::new("curl")
            .args(["-sN", &format!("{base}?{query}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn curl");
        let out = lines(child.stdout.take().unwrap());
        let child = Killed(child);
        // The preamble comment proves the subscription is registered.
        assert_eq!(out.recv_timeout(DEADLINE).as_deref(), Ok(":"));
        subscribers.push((child, out));
    }
    let jwt = sign(
        "HS256",
        &TestKey::hmac(SECRET.as_bytes()),
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"mercure": {"publish": ["*"]}}),
    );
    let command = format!(
        "curl -d 'topic=https://example.com/books/1' -d 'data={{\"status\": \"updated\"}}' \
         -H \"Authorization: Bearer {jwt}\" http://localhost:{port}/.well-known/mercure"
    );
    let out = Command::new("bash")
        .args(["-c", &command])
        .output()
        .expect("run curl");
    let id = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(id.starts_with("urn:uuid:"), "{id:?}");
    for (_, out) in &subscribers {
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some("") || got.len() < 2 {
            got.push(out.recv_timeout(DEADLINE).expect("the event's lines"));
        }
        assert!(got.contains(&format!("id: {id}")), "{got:?}");
        assert!(
            got.contains(&"data: {\"status\": \"updated\"}".to_owned()),
            "{got:?}"
        );
    }
    // A token in the `authorization` query parameter works and never reaches a log line (the
    // hub logs no URIs), even at trace level: collect the whole log up to exit to check.
    let query_jwt = sign(
        "HS256",
        &TestKey::hmac(SECRET.as_bytes()),
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"mercure": {"publish": ["*"]}, "jti": "query-token-marker"}),
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-d",
            "topic=https://example.com/books/1",
            "-d",
            "data=by query",
            &format!("{base}?authorization={query_jwt}"),
        ])
        .output()
        .expect("run curl");
    let id = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(id.starts_with("urn:uuid:"), "{id:?}");
    for (_, out) in &subscribers {
        let line = loop {
            let line = out.recv_timeout(DEADLINE).expect("the second event");
            if line.starts_with("data: ") {
                break line;
            }
        };
        assert_eq!(line, "data: by query");
    }
    drop(subscribers);
    let status = Command::new("kill")
        .args(["-TERM", &hub.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let mut log = Vec::new();
    while let Ok(line) = stderr.recv_timeout(DEADLINE) {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.contains("update published")),
        "trace logging is on: {log:?}"
    );
    for secret in [&jwt, &query_jwt] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.iter().any(|l| l.contains(signature)), "{log:?}");
    }
    let _ = &mut hub;
}

/// Runs `quicksilver token` with `args` and returns the printed token.
fn cli_token(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quicksilver"))
        .arg("token")
        .args(args)
        .output()
        .expect("run quicksilver token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.matches('\n').count(), 1, "one line: {token:?}");
    token.trim_end().to_owned()
}

// `quicksilver token` mints tokens a modern hub and a compatibility hub accept.
#[tokio::test]
async fn token_cli_modern_and_legacy() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let common = ["--iss", ISSUER, "--aud", RESOURCE];
    let publisher = cli_token(
        &[
            &common[..],
            &[
                "--key",
                PUBLISHER_SECRET,
                "--publish-urlpattern",
                "https://example.com/books/:id",
            ],
        ]
        .concat(),
    );
    let subscriber = cli_token(
        &[
            &common[..],
            &[
                "--key",
                SUBSCRIBER_SECRET,
                "--subscribe",
                BOOK,
                "--ttl",
                "10m",
            ],
        ]
        .concat(),
    );
    let mut stream = client
        .open_stream(Request::sse(&sub_target(&match_param("match", BOOK))).bearer(&subscriber))
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    let fields = [("topic", BOOK), ("data", "private"), ("private", "on")];
    let resp = publish(&client, &publisher, &fields).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(next_data(&mut stream).await, "private");
    let denied = publish(&client, &publisher, &[("topic", MARKER), ("data", "x")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // A legacy token (no aud, default iss) is not accepted by a modern hub.
    let legacy = cli_token(&["--key", PUBLISHER_SECRET, "--legacy", "--publish", "*"]);
    let resp = publish(&client, &legacy, &[("topic", BOOK), ("data", "x")]).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "no aud, unknown iss");
    hub.shutdown().await;

    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let subscriber = cli_token(&[
        "--key",
        SUBSCRIBER_SECRET,
        "--legacy",
        "--ttl",
        "0",
        "--subscribe",
        BOOKS_TEMPLATE,
    ]);
    let mut stream = client
        .open_stream(Request::sse(&topic_target(&[BOOKS_TEMPLATE])).bearer(&subscriber))
        .await;
    let resp = publish(&client, &legacy, &fields).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(next_data(&mut stream).await, "private");
    hub.shutdown().await;
}

// Debian's php-symfony-mercure publisher (repeated `topic=`, `private=on`, `+` for spaces, the
// body as the id) with a 0.x token through its static token provider: a subscriber receives
// exactly what it sent, public and private; an anonymous one only the public update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symfony_mercure_publisher() {
    if !external_program("php") {
        return;
    }
    let hub = compat_hub(8).await;
    let client = hub.client(Proto::H1).await;
    let target = topic_target(&[BOOKS_TEMPLATE, MARKER]);
    let mut private = client
        .open_stream(Request::sse(&target).bearer(&legacy_subscriber(json!(["*"]))))
        .await;
    let mut anonymous = client.open_stream(Request::sse(&target)).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/symfony_publish.php");
    let url = format!("http://127.0.0.1:{}/.well-known/mercure", hub.addr.port());
    let token = quick_start_publisher();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("php")
            .args([script, &url, &token, "public", "private"])
            .output()
    })
    .await
    .unwrap()
    .expect("run php");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<&str> = stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{stdout}");
    for (i, (kind, id)) in ["public", "private"].iter().zip(&ids).enumerate() {
        assert!(id.starts_with("urn:uuid:"), "{id}");
        let ev = private.next_event(DEADLINE).await.expect("the update");
        assert_eq!(ev.id.as_deref(), Some(*id));
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            data,
            json!({"kind": kind, "text": format!("a b+c&d=é\n#{i}")})
        );
    }
    publish_marker(&client, "marker").await;
    let ev = anonymous.next_event(DEADLINE).await.expect("public update");
    assert_eq!(ev.id.as_deref(), Some(ids[0]));
    assert_eq!(next_data(&mut anonymous).await, "marker");
    hub.shutdown().await;
}
