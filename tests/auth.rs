//! Authorization (spec "Authorization": "Presenting the Access Token", "Error Responses", "Token
//! Validation", "Authorization Details", "Publishers", "Subscribers"; "Security Considerations"
//! on CSRF): challenges, every token defect, presentation defects, grants, asymmetric keys and
//! algorithm confusion, cookies, the derived audience, and streams closing at `exp`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;
use quicksilver::auth::{Algorithm, IssuerConfig, KeyConfig};
use serde_json::{json, Value};
use std::time::Duration;

const HUB: &str = "/.well-known/mercure";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";
/// RFC 9728 metadata URL of `RESOURCE`.
const METADATA_URL: &str =
    "https://hub.test/.well-known/oauth-protected-resource/.well-known/mercure";
const COOKIE: &str = "__Secure-mercure_access_token";
const TOPIC: &str = "https://example.com/auth";

fn in_an_hour() -> u64 {
    unix_now() + 3600
}

/// Claims of a valid publisher token granting `*`.
fn pub_claims() -> Value {
    claims(
        ISSUER,
        RESOURCE,
        in_an_hour(),
        json!([publish_detail(&[("*", "")])]),
    )
}

/// Claims of a valid subscriber token granting `*`.
fn sub_claims() -> Value {
    claims(
        ISSUER,
        RESOURCE,
        in_an_hour(),
        json!([subscribe_detail(&[("*", "")])]),
    )
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn publish_req() -> Request {
    Request::post(HUB).form(&[("topic", TOPIC), ("data", "x")])
}

fn publish_req_to(topics: &[&str]) -> Request {
    let pairs: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
    Request::post(HUB).form(&pairs)
}

fn sub_req(topic: &str) -> Request {
    Request::sse(&sub_target(&match_param("match", topic)))
}

fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// Spec "Error Responses": a Bearer challenge with `resource_metadata` and, when given, the
/// RFC 6750 `error` code (without one: no `error=` at all).
fn assert_challenge(
    what: &str,
    status: StatusCode,
    www: Option<&str>,
    want: StatusCode,
    error: Option<&str>,
    metadata_url: &str,
) {
    assert_eq!(status, want, "{what}");
    let www = www.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(www.starts_with("Bearer "), "{what}: {www}");
    assert!(
        www.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{what}: {www}"
    );
    match error {
        Some(code) => assert!(www.contains(&format!("error=\"{code}\"")), "{what}: {www}"),
        None => assert!(!www.contains("error="), "{what}: {www}"),
    }
}

fn assert_resp_challenge(what: &str, resp: &Response, want: StatusCode, error: Option<&str>) {
    assert_challenge(
        what,
        resp.status,
        resp.header("www-authenticate"),
        want,
        error,
        METADATA_URL,
    );
}

fn assert_stream_challenge(what: &str, s: &SseStream, want: StatusCode, error: Option<&str>) {
    assert_challenge(
        what,
        s.status,
        s.header("www-authenticate"),
        want,
        error,
        METADATA_URL,
    );
}

fn assert_invalid_token(what: &str, resp: &Response) {
    assert_resp_challenge(what, resp, StatusCode::UNAUTHORIZED, Some("invalid_token"));
}

fn assert_ok(what: &str, resp: &Response) {
    assert_eq!(resp.status, StatusCode::OK, "{what}: {}", lossy(&resp.body));
}

/// Publishes a public marker and asserts it is the next event of `stream` (proves the stream
/// receives and nothing was delivered before it).
async fn assert_next_is_marker(client: &TestClient, stream: &mut SseStream, topic: &str) {
    let resp = client
        .send(
            Request::post(HUB)
                .bearer(&publish_all())
                .form(&[("topic", topic), ("data", "marker")]),
        )
        .await;
    assert_ok("marker", &resp);
    let ev = stream.next_event(DEADLINE).await.expect("marker event");
    assert_eq!(
        ev.data, "marker",
        "something was delivered before the marker"
    );
}

// Spec "Error Responses": no token where one is required → 401, a Bearer challenge with
// `resource_metadata` (RFC 9728) and no error code. Reference hub §1.9, §8 item 35.
#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge_on_publish_and_subscribe() {
    let hub = TestHub::start().await;
    let expected = format!("Bearer resource_metadata=\"{METADATA_URL}\"");
    for proto in Proto::ALL {
        let client = hub.client(proto).await;
        let resp = client.send(publish_req()).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{proto:?} publish");
        assert_eq!(
            resp.header("www-authenticate"),
            Some(expected.as_str()),
            "{proto:?} publish"
        );
        let stream = client.open_stream(sub_req(TOPIC)).await;
        assert_eq!(
            stream.status,
            StatusCode::UNAUTHORIZED,
            "{proto:?} subscribe"
        );
        assert_eq!(
            stream.header("www-authenticate"),
            Some(expected.as_str()),
            "{proto:?} subscribe"
        );
        // QUERY subscribes too.
        let resp = client
            .send(
                Request::query(HUB)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(match_param("match", TOPIC)),
            )
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{proto:?} QUERY");
        assert_eq!(resp.header("www-authenticate"), Some(expected.as_str()));
    }
    hub.shutdown().await;
}

/// Every defect of spec "Token Validation" and "Authorization Details", as publisher tokens.
fn invalid_publisher_tokens() -> Vec<(&'static str, String)> {
    let hmac = TestKey::hmac(PUBLISHER_SECRET.as_bytes());
    let valid = publish_all();
    let parts: Vec<&str> = valid.split('.').collect();
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
    let tampered_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.into_iter().collect::<String>()
    );
    // A payload swapped for another one under the original signature.
    let other = hs256_token(
        PUBLISHER_SECRET,
        with(pub_claims(), "sub", json!("someone-else")),
    );
    let swapped_payload = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    let now = unix_now();
    let detail_without_match = json!([{
        "type": DETAIL_TYPE, "actions": ["publish"], "topics": [{"match_type": "exact"}]
    }]);
    let unknown_match_type = json!([{
        "type": DETAIL_TYPE, "actions": ["publish"],
        "topics": [{"match": TOPIC, "match_type": "regex"}]
    }]);
    let topics_101: Vec<String> = (0..101).map(|i| format!("https://e.x/{i}")).collect();
    let topics_101: Vec<(&str, &str)> = topics_101.iter().map(|t| (t.as_str(), "")).collect();
    let one_bad_among_good = json!([
        publish_detail(&[("*", "")]),
        {"type": DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": ""}]}
    ]);
    let pub_token = |c: Value| hs256_token(PUBLISHER_SECRET, c);
    vec![
        ("tampered signature", tampered_sig),
        ("payload swapped under a signature", swapped_payload),
        (
            "wrong key",
            hs256_token("another-secret-0123456789abcdef0123456789", pub_claims()),
        ),
        (
            "expired",
            pub_token(with(pub_claims(), "exp", json!(now - 10))),
        ),
        (
            "expires now",
            pub_token(with(pub_claims(), "exp", json!(now))),
        ),
        (
            "nbf in the future",
            pub_token(with(pub_claims(), "nbf", json!(now + 3600))),
        ),
        ("missing exp", pub_token(without(pub_claims(), "exp"))),
        (
            "exp not a number",
            pub_token(with(pub_claims(), "exp", json!((now + 3600).to_string()))),
        ),
        (
            "wrong aud",
            pub_token(with(
                pub_claims(),
                "aud",
                json!("https://other.test/.well-known/mercure"),
            )),
        ),
        (
            "aud with a trailing slash",
            pub_token(with(pub_claims(), "aud", json!(format!("{RESOURCE}/")))),
        ),
        (
            "aud array without the resource",
            pub_token(with(
                pub_claims(),
                "aud",
                json!(["https://other.test/.well-known/mercure"]),
            )),
        ),
        ("missing aud", pub_token(without(pub_claims(), "aud"))),
        (
            "unknown iss",
            pub_token(with(pub_claims(), "iss", json!("https://evil.test"))),
        ),
        (
            "iss differing in case",
            pub_token(with(pub_claims(), "iss", json!("https://ISSUER.test"))),
        ),
        ("missing iss", pub_token(without(pub_claims(), "iss"))),
        (
            "typ JWT",
            sign(
                "HS256",
                &hmac,
                json!({"alg": "HS256", "typ": "JWT"}),
                pub_claims(),
            ),
        ),
        (
            "no typ",
            sign("HS256", &hmac, json!({"alg": "HS256"}), pub_claims()),
        ),
        (
            "alg none",
            sign(
                "none",
                &hmac,
                json!({"alg": "none", "typ": "at+jwt"}),
                pub_claims(),
            ),
        ),
        (
            "HS384 against the HS256 key",
            sign("HS384", &hmac, default_header("HS384"), pub_claims()),
        ),
        (
            "subscriber key on publish",
            hs256_token(SUBSCRIBER_SECRET, pub_claims()),
        ),
        (
            "detail topic without match",
            pub_token(with(
                pub_claims(),
                "authorization_details",
                detail_without_match,
            )),
        ),
        (
            "unknown match_type",
            pub_token(with(
                pub_claims(),
                "authorization_details",
                unknown_match_type,
            )),
        ),
        (
            "101 detail topics",
            pub_token(with(
                pub_claims(),
                "authorization_details",
                json!([publish_detail(&topics_101)]),
            )),
        ),
        (
            "one bad detail next to a good one",
            pub_token(with(
                pub_claims(),
                "authorization_details",
                one_bad_among_good,
            )),
        ),
        (
            "authorization_details not an array",
            pub_token(with(
                pub_claims(),
                "authorization_details",
                publish_detail(&[("*", "")]),
            )),
        ),
    ]
}

// Spec "Token Validation" / "Authorization Details" / "Error Responses": every presented-token
// failure is 401 `error="invalid_token"` with `resource_metadata`. Reference hub §8 items 36–41.
#[tokio::test]
async fn invalid_tokens_are_401_invalid_token_on_publish() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    for (what, token) in invalid_publisher_tokens() {
        let resp = client.send(publish_req().bearer(&token)).await;
        assert_invalid_token(what, &resp);
        assert_eq!(
            resp.text(),
            "Unauthorized\n",
            "{what}: invalid_token discloses nothing"
        );
    }
    hub.shutdown().await;
}

// Same checks on subscribe (subscriber key), with a representative subset over h2.
#[tokio::test]
async fn invalid_tokens_are_401_invalid_token_on_subscribe() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::TlsH2).await;
    let hmac = TestKey::hmac(SUBSCRIBER_SECRET.as_bytes());
    let now = unix_now();
    let sub_token = |c: Value| hs256_token(SUBSCRIBER_SECRET, c);
    for (what, token) in [
        (
            "expired",
            sub_token(with(sub_claims(), "exp", json!(now - 10))),
        ),
        (
            "nbf in the future",
            sub_token(with(sub_claims(), "nbf", json!(now + 3600))),
        ),
        ("missing aud", sub_token(without(sub_claims(), "aud"))),
        (
            "typ JWT",
            sign(
                "HS256",
                &hmac,
                json!({"alg": "HS256", "typ": "JWT"}),
                sub_claims(),
            ),
        ),
        (
            "publisher key on subscribe",
            hs256_token(PUBLISHER_SECRET, sub_claims()),
        ),
        (
            "detail topic with a control character",
            sub_token(with(
                sub_claims(),
                "authorization_details",
                json!([subscribe_detail(&[("https://e.x/\u{1}", "")])]),
            )),
        ),
    ] {
        let stream = client.open_stream(sub_req(TOPIC).bearer(&token)).await;
        assert_stream_challenge(
            what,
            &stream,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        );
    }
    hub.shutdown().await;
}

// Spec "Token Validation": `aud` may be an array containing the resource identifier; `typ` is
// `at+jwt` compared case-insensitively with an optional `application/` prefix; the detail caps
// are inclusive. Reference hub §8 item 37.
#[tokio::test]
async fn valid_token_variants_are_accepted() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let hmac = TestKey::hmac(PUBLISHER_SECRET.as_bytes());
    let topics_100: Vec<String> = (0..99).map(|i| format!("https://e.x/{i}")).collect();
    let mut topics_100: Vec<(&str, &str)> = topics_100.iter().map(|t| (t.as_str(), "")).collect();
    topics_100.push((TOPIC, ""));
    let mut cases = vec![
        (
            "aud array containing the resource".to_owned(),
            hs256_token(
                PUBLISHER_SECRET,
                with(
                    pub_claims(),
                    "aud",
                    json!(["https://other.test/", RESOURCE]),
                ),
            ),
        ),
        (
            "100 detail topics".to_owned(),
            hs256_token(
                PUBLISHER_SECRET,
                with(
                    pub_claims(),
                    "authorization_details",
                    json!([publish_detail(&topics_100)]),
                ),
            ),
        ),
        (
            "unknown action next to publish, foreign detail type ignored".to_owned(),
            hs256_token(
                PUBLISHER_SECRET,
                with(
                    pub_claims(),
                    "authorization_details",
                    json!([
                        {"type": "https://other.example/detail", "actions": {}, "topics": "x"},
                        detail(&["frobnicate", "publish"], &[(TOPIC, "exact")], None)
                    ]),
                ),
            ),
        ),
        (
            "nbf in the past".to_owned(),
            hs256_token(
                PUBLISHER_SECRET,
                with(pub_claims(), "nbf", json!(unix_now() - 60)),
            ),
        ),
    ];
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        cases.push((
            format!("typ {typ}"),
            sign(
                "HS256",
                &hmac,
                json!({"alg": "HS256", "typ": typ}),
                pub_claims(),
            ),
        ));
    }
    for (what, token) in cases {
        let resp = client.send(publish_req().bearer(&token)).await;
        assert_ok(&what, &resp);
    }
    hub.shutdown().await;
}

// Spec "Authorization": an anonymous hub accepts tokenless subscribers, but a presented token is
// still validated ("MUST be validated"), never downgraded to anonymous.
#[tokio::test]
async fn anonymous_hub_still_verifies_presented_tokens() {
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let client = hub.client(Proto::H2c).await;
    let anonymous = client.open_stream(sub_req(TOPIC)).await;
    assert_eq!(anonymous.status, StatusCode::OK, "tokenless subscriber");
    let expired = hs256_token(
        SUBSCRIBER_SECRET,
        with(sub_claims(), "exp", json!(unix_now() - 10)),
    );
    for (what, token) in [
        ("expired", expired),
        ("publisher key", hs256_token(PUBLISHER_SECRET, sub_claims())),
        (
            "garbage",
            "aaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbb.cccccccccccccc".to_owned(),
        ),
    ] {
        let stream = client.open_stream(sub_req(TOPIC).bearer(&token)).await;
        assert_stream_challenge(
            what,
            &stream,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        );
    }
    let stream = client.open_stream(sub_req(TOPIC).bearer("x")).await;
    assert_stream_challenge(
        "Bearer x",
        &stream,
        StatusCode::BAD_REQUEST,
        Some("invalid_request"),
    );
    // Publishing still needs a token on an anonymous hub.
    let resp = client.send(publish_req()).await;
    assert_resp_challenge("anonymous publish", &resp, StatusCode::UNAUTHORIZED, None);
    hub.shutdown().await;
}

// Spec "Authorization HTTP Header" and "Error Responses": a malformed presentation is 400 with
// `error="invalid_request"`; the scheme is case-insensitive. Reference hub §1.9, §3, §8 item 36.
#[tokio::test]
async fn presentation_defects_are_400_invalid_request() {
    let hub = TestHub::start().await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let token = publish_all();
        let cases = [
            (
                "Basic",
                publish_req().header("authorization", "Basic dXNlcjpwYXNzd29yZA=="),
            ),
            ("Bearer x", publish_req().bearer("x")),
            (
                "Bearer without credentials",
                publish_req().header("authorization", "Bearer"),
            ),
            (
                "two Authorization headers",
                publish_req().bearer(&token).bearer(&token),
            ),
            (
                "Basic with a valid cookie",
                publish_req()
                    .header("authorization", "Basic dXNlcjpwYXNzd29yZA==")
                    .header("cookie", &format!("{COOKIE}={token}"))
                    .header("origin", &client.base_url()),
            ),
        ];
        for (what, req) in cases {
            let resp = client.send(req).await;
            assert_resp_challenge(
                &format!("{proto:?} {what}"),
                &resp,
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
            );
        }
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            let resp = client
                .send(publish_req().header("authorization", &format!("{scheme} {token}")))
                .await;
            assert_ok(&format!("{proto:?} scheme {scheme}"), &resp);
        }
        let stream = client
            .open_stream(sub_req(TOPIC).header("authorization", "Basic dXNlcjpwYXNzd29yZA=="))
            .await;
        assert_stream_challenge(
            &format!("{proto:?} Basic on subscribe"),
            &stream,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        );
    }
    hub.shutdown().await;
}

// Spec "Publishers": the token must grant `publish` on every topic, canonical and alternate;
// otherwise 403 `insufficient_scope` and nothing is dispatched. Reference hub §8 item 34.
#[tokio::test]
async fn publish_without_a_grant_is_403_and_not_delivered() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let a = "https://example.com/a";
    let b = "https://example.com/b";
    let mut stream = client
        .open_stream(sub_req(a).bearer(&subscribe_all()))
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    let only_a = publisher_token(&[(a, "")]);

    let resp = client.send(publish_req_to(&[b]).bearer(&only_a)).await;
    assert_resp_challenge(
        "canonical not granted",
        &resp,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
    );
    let resp = client.send(publish_req_to(&[a, b]).bearer(&only_a)).await;
    assert_resp_challenge(
        "alternate not granted",
        &resp,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
    );
    let resp = client.send(publish_req_to(&[b, a]).bearer(&only_a)).await;
    assert_resp_challenge(
        "canonical not granted, alternate granted",
        &resp,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
    );
    // A valid token with no authorization details grants nothing.
    let no_details = hs256_token(
        PUBLISHER_SECRET,
        without(pub_claims(), "authorization_details"),
    );
    let resp = client.send(publish_req_to(&[a]).bearer(&no_details)).await;
    assert_resp_challenge(
        "no authorization_details",
        &resp,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
    );
    // A subscribe-only detail grants no publish.
    let subscribe_only = hs256_token(
        PUBLISHER_SECRET,
        with(
            pub_claims(),
            "authorization_details",
            json!([subscribe_detail(&[("*", "")])]),
        ),
    );
    let resp = client
        .send(publish_req_to(&[a]).bearer(&subscribe_only))
        .await;
    assert_resp_challenge(
        "subscribe-only detail",
        &resp,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
    );
    assert_next_is_marker(&client, &mut stream, a).await;

    // The granted topic alone is fine.
    let resp = client.send(publish_req_to(&[a]).bearer(&only_a)).await;
    assert_ok("granted topic", &resp);
    let ev = stream.next_event(DEADLINE).await.expect("granted update");
    assert_eq!(ev.id.as_deref(), Some(resp.text()));
    hub.shutdown().await;
}

// Spec "Topic Matcher List" / "URL Pattern": a `urlpattern` publish grant covers the topics its
// pattern matches and nothing else.
#[tokio::test]
async fn urlpattern_publish_grant() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let token = publisher_token(&[("https://example.com/books/:id", "urlpattern")]);
    for topic in [
        "https://example.com/books/1",
        "https://example.com/books/abc",
    ] {
        let resp = client.send(publish_req_to(&[topic]).bearer(&token)).await;
        assert_ok(topic, &resp);
    }
    for topic in [
        "https://example.com/users/1",
        "https://example.com/books/1/chapters/2",
        "https://example.org/books/1",
        "/books/1",
    ] {
        let resp = client.send(publish_req_to(&[topic]).bearer(&token)).await;
        assert_resp_challenge(
            topic,
            &resp,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
        );
    }
    hub.shutdown().await;
}

const ES_ISSUER: &str = "https://es.test";
const RS_ISSUER: &str = "https://rs.test";

fn issuer(id: &str, publisher: Option<KeyConfig>, subscriber: Option<KeyConfig>) -> IssuerConfig {
    IssuerConfig {
        id: id.to_owned(),
        publisher,
        subscriber,
        authorization_server: false,
        publisher_jwks: None,
        subscriber_jwks: None,
    }
}

fn key(key: &str, alg: Algorithm) -> Option<KeyConfig> {
    Some(KeyConfig {
        key: key.to_owned(),
        alg,
    })
}

fn pub_claims_for(iss: &str) -> Value {
    claims(
        iss,
        RESOURCE,
        in_an_hour(),
        json!([publish_detail(&[("*", "")])]),
    )
}

// Spec "Token Validation": keys are bound to issuers and pinned to one algorithm; `alg` must fit
// the key (no HS256 verified with a public key's PEM text, no PS256 on an RS256 key).
// Reference hub §3 "Algorithms", §8 item 39.
#[tokio::test]
async fn asymmetric_keys_and_algorithm_confusion() {
    let es = TestKey::es256();
    let rsa = TestKey::rsa_fixture();
    let es_pem = es.public_key_pem();
    let rs_pem = rsa.public_key_pem();
    let (es_cfg, rs_cfg) = (es_pem.clone(), rs_pem.clone());
    let hub = TestHub::start_with(move |c| {
        c.issuers
            .push(issuer(ES_ISSUER, key(&es_cfg, Algorithm::ES256), None));
        c.issuers
            .push(issuer(RS_ISSUER, key(&rs_cfg, Algorithm::RS256), None));
    })
    .await;
    let client = hub.client(Proto::TlsH2).await;

    let es_token = sign(
        "ES256",
        &es,
        default_header("ES256"),
        pub_claims_for(ES_ISSUER),
    );
    let rs_token = sign(
        "RS256",
        &rsa,
        default_header("RS256"),
        pub_claims_for(RS_ISSUER),
    );
    assert_ok("ES256", &client.send(publish_req().bearer(&es_token)).await);
    assert_ok("RS256", &client.send(publish_req().bearer(&rs_token)).await);

    let other_es = TestKey::es256();
    for (what, token) in [
        (
            "HS256 with the ES256 PEM as secret",
            sign(
                "HS256",
                &TestKey::hmac(es_pem.as_bytes()),
                default_header("HS256"),
                pub_claims_for(ES_ISSUER),
            ),
        ),
        (
            "HS256 with the RS256 PEM as secret",
            sign(
                "HS256",
                &TestKey::hmac(rs_pem.as_bytes()),
                default_header("HS256"),
                pub_claims_for(RS_ISSUER),
            ),
        ),
        (
            "PS256 with the RS256 key",
            sign(
                "PS256",
                &rsa,
                default_header("PS256"),
                pub_claims_for(RS_ISSUER),
            ),
        ),
        (
            "RS512 with the RS256 key",
            sign(
                "RS512",
                &rsa,
                default_header("RS512"),
                pub_claims_for(RS_ISSUER),
            ),
        ),
        (
            "ES256 by another key",
            sign(
                "ES256",
                &other_es,
                default_header("ES256"),
                pub_claims_for(ES_ISSUER),
            ),
        ),
        (
            "ES key claiming the RS issuer",
            sign(
                "ES256",
                &es,
                default_header("ES256"),
                pub_claims_for(RS_ISSUER),
            ),
        ),
        (
            "RS key claiming the ES issuer",
            sign(
                "RS256",
                &rsa,
                default_header("RS256"),
                pub_claims_for(ES_ISSUER),
            ),
        ),
    ] {
        let resp = client.send(publish_req().bearer(&token)).await;
        assert_invalid_token(what, &resp);
    }
    // The ES issuer has no subscriber key: its valid signature does not make a subscriber.
    let sub = sign(
        "ES256",
        &es,
        default_header("ES256"),
        claims(
            ES_ISSUER,
            RESOURCE,
            in_an_hour(),
            json!([subscribe_detail(&[("*", "")])]),
        ),
    );
    let stream = client.open_stream(sub_req(TOPIC).bearer(&sub)).await;
    assert_stream_challenge(
        "ES issuer on subscribe (no subscriber key)",
        &stream,
        StatusCode::UNAUTHORIZED,
        Some("invalid_token"),
    );
    hub.shutdown().await;
}

// Spec "Token Validation": with several issuers the signature is verified only with the keys of
// the token's `iss`, never a pooled set. Reference hub §8 item 40.
#[tokio::test]
async fn keys_are_bound_to_their_issuer() {
    const A: &str = "https://a.test";
    const B: &str = "https://b.test";
    const A_KEY: &str = "issuer-a-publisher-secret-0123456789abcdef";
    const B_KEY: &str = "issuer-b-publisher-secret-0123456789abcdef";
    let hub = TestHub::start_with(|c| {
        c.issuers
            .push(issuer(A, key(A_KEY, Algorithm::HS256), None));
        c.issuers
            .push(issuer(B, key(B_KEY, Algorithm::HS256), None));
    })
    .await;
    let client = hub.client(Proto::H1).await;
    assert_ok(
        "A by A",
        &client
            .send(publish_req().bearer(&hs256_token(A_KEY, pub_claims_for(A))))
            .await,
    );
    assert_ok(
        "B by B",
        &client
            .send(publish_req().bearer(&hs256_token(B_KEY, pub_claims_for(B))))
            .await,
    );
    for (what, token) in [
        ("B signed by A", hs256_token(A_KEY, pub_claims_for(B))),
        ("A signed by B", hs256_token(B_KEY, pub_claims_for(A))),
        (
            "default issuer signed by A",
            hs256_token(A_KEY, pub_claims()),
        ),
        (
            "A signed by the default issuer",
            hs256_token(PUBLISHER_SECRET, pub_claims_for(A)),
        ),
    ] {
        let resp = client.send(publish_req().bearer(&token)).await;
        assert_invalid_token(what, &resp);
    }
    hub.shutdown().await;
}

// Spec "Cookie": without an Authorization header the cookie carries the token (any position in
// the Cookie header; configurable name).
#[tokio::test]
async fn cookie_token_works_for_subscribe() {
    let hub = TestHub::start().await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/cookie/{proto:?}");
        let mut stream = client
            .open_stream(
                sub_req(&topic)
                    .header("cookie", &format!("a=b; {COOKIE}={}; c=d", subscribe_all())),
            )
            .await;
        assert_eq!(stream.status, StatusCode::OK, "{proto:?}");
        // A private update proves the cookie's grants are in force.
        let resp = client
            .send(Request::post(HUB).bearer(&publish_all()).form(&[
                ("topic", &topic),
                ("data", "secret"),
                ("private", "on"),
            ]))
            .await;
        assert_ok("private publish", &resp);
        let ev = stream.next_event(DEADLINE).await.expect("private event");
        assert_eq!(ev.data, "secret", "{proto:?}");
    }
    // RFC 9113 §8.2.3: an HTTP/2 client may split the Cookie header into one field per cookie.
    let client = hub.client(Proto::TlsH2).await;
    let stream = client
        .open_stream(
            sub_req(TOPIC)
                .header("cookie", "a=b")
                .header("cookie", &format!("{COOKIE}={}", subscribe_all()))
                .header("cookie", "c=d"),
        )
        .await;
    assert_eq!(stream.status, StatusCode::OK, "h2 cookie crumbs");
    hub.shutdown().await;

    let hub = TestHub::start_with(|c| c.cookie_name = "mercureAuth".to_owned()).await;
    let client = hub.client(Proto::H2c).await;
    let stream = client
        .open_stream(sub_req(TOPIC).header("cookie", &format!("mercureAuth={}", subscribe_all())))
        .await;
    assert_eq!(stream.status, StatusCode::OK, "configured cookie name");
    let stream = client
        .open_stream(sub_req(TOPIC).header("cookie", &format!("{COOKIE}={}", subscribe_all())))
        .await;
    assert_stream_challenge(
        "default name on a renamed cookie",
        &stream,
        StatusCode::UNAUTHORIZED,
        None,
    );
    hub.shutdown().await;
}

// Spec "Presenting the Access Token": when an Authorization header is present its token MUST be
// used and the cookie ignored, in both directions.
#[tokio::test]
async fn authorization_header_wins_over_the_cookie() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let stream = client
        .open_stream(
            sub_req(TOPIC)
                .bearer(&subscribe_all())
                .header("cookie", &format!("{COOKIE}=garbage")),
        )
        .await;
    assert_eq!(
        stream.status,
        StatusCode::OK,
        "valid header, garbage cookie"
    );

    let valid_cookie = format!("{COOKIE}={}", subscribe_all());
    let stream = client
        .open_stream(
            sub_req(TOPIC)
                .bearer("not-a-jwt")
                .header("cookie", &valid_cookie),
        )
        .await;
    assert_stream_challenge(
        "malformed header, valid cookie",
        &stream,
        StatusCode::BAD_REQUEST,
        Some("invalid_request"),
    );
    let expired = hs256_token(
        SUBSCRIBER_SECRET,
        with(sub_claims(), "exp", json!(unix_now() - 10)),
    );
    let stream = client
        .open_stream(
            sub_req(TOPIC)
                .bearer(&expired)
                .header("cookie", &valid_cookie),
        )
        .await;
    assert_stream_challenge(
        "expired header, valid cookie",
        &stream,
        StatusCode::UNAUTHORIZED,
        Some("invalid_token"),
    );
    hub.shutdown().await;
}

// Spec "Presenting the Access Token": the RFC 6750 `access_token` query parameter is not
// accepted (nor `authorization`); such a request carries no token → 401 bare challenge.
// Reference hub §3, §8 item 38.
#[tokio::test]
async fn tokens_in_the_query_string_are_ignored() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let sub = subscribe_all();
    for param in ["access_token", "authorization"] {
        for value in [sub.clone(), format!("Bearer {sub}")] {
            let target = format!(
                "{}&{}",
                sub_target(&match_param("match", TOPIC)),
                match_param(param, &value)
            );
            let stream = client.open_stream(Request::sse(&target)).await;
            assert_stream_challenge(
                &format!("subscribe ?{param}"),
                &stream,
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
        let target = format!("{HUB}?{}", match_param(param, &publish_all()));
        let resp = client
            .send(Request::post(&target).form(&[("topic", TOPIC)]))
            .await;
        assert_resp_challenge(
            &format!("publish ?{param}"),
            &resp,
            StatusCode::UNAUTHORIZED,
            None,
        );
    }
    // Nor a form field of the publish body (RFC 6750 §2.2 is not a Mercure mechanism).
    let resp = client
        .send(Request::post(HUB).form(&[("topic", TOPIC), ("access_token", &publish_all())]))
        .await;
    assert_resp_challenge(
        "access_token form field",
        &resp,
        StatusCode::UNAUTHORIZED,
        None,
    );
    hub.shutdown().await;
}

// Spec "Security Considerations" (CSRF): a cookie-authenticated publish must come from the hub's
// own origin (or an allowed one), per `Origin`, else `Referer`; neither → rejected.
// Reference hub §3 "CSRF", §1.9: 400 `invalid_request`.
#[tokio::test]
async fn cookie_authenticated_publish_checks_the_origin() {
    let hub =
        TestHub::start_with(|c| c.cors_origins = vec!["https://app.example".to_owned()]).await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let base = client.base_url();
        let cookie = format!("{COOKIE}={}", publish_all());
        let req = || publish_req().header("cookie", &cookie);
        let rejected = [
            ("no Origin nor Referer", req()),
            (
                "foreign Origin",
                req().header("origin", "https://evil.example"),
            ),
            (
                "foreign Origin, own Referer",
                req()
                    .header("origin", "https://evil.example")
                    .header("referer", &format!("{base}/page")),
            ),
            (
                "other scheme",
                req().header(
                    "origin",
                    &format!(
                        "{}://{}",
                        if proto.is_tls() { "http" } else { "https" },
                        client.authority()
                    ),
                ),
            ),
            (
                "foreign Referer",
                req().header("referer", "https://evil.example/page"),
            ),
            ("Origin null", req().header("origin", "null")),
        ];
        for (what, r) in rejected {
            let resp = client.send(r).await;
            assert_resp_challenge(
                &format!("{proto:?} {what}"),
                &resp,
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
            );
        }
        let accepted = [
            ("own Origin", req().header("origin", &base)),
            (
                "own Referer",
                req().header("referer", &format!("{base}/page?x=1")),
            ),
            (
                "CORS-allowed Origin",
                req().header("origin", "https://app.example"),
            ),
        ];
        for (what, r) in accepted {
            assert_ok(&format!("{proto:?} {what}"), &client.send(r).await);
        }
        // The header-authenticated publish needs no Origin.
        assert_ok(
            "bearer without Origin",
            &client.send(publish_req().bearer(&publish_all())).await,
        );
    }
    hub.shutdown().await;
}

// Spec "Token Validation": without a configured resource identifier the audience is the URL of
// the hub as contacted (`<origin>/.well-known/mercure`), and so is the challenge's metadata URL.
#[tokio::test]
async fn derived_audience_follows_the_contacted_origin() {
    let hub = TestHub::start_with(|c| c.resource_identifier = None).await;
    let plain = hub.client(Proto::H1).await;
    let tls = hub.client(Proto::TlsH2).await;
    let token_for = |client: &TestClient| {
        hs256_token(
            PUBLISHER_SECRET,
            claims(
                ISSUER,
                &format!("{}{HUB}", client.base_url()),
                in_an_hour(),
                json!([publish_detail(&[("*", "")])]),
            ),
        )
    };
    for (client, other) in [(&plain, &tls), (&tls, &plain)] {
        let what = format!("{:?}", client.proto());
        let metadata = format!("{}{METADATA_PATH}", client.base_url());
        assert_ok(
            &what,
            &client.send(publish_req().bearer(&token_for(client))).await,
        );
        let resp = client.send(publish_req()).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            resp.header("www-authenticate"),
            Some(format!("Bearer resource_metadata=\"{metadata}\"").as_str()),
            "{what}"
        );
        // The other listener's audience, and the pinned one of the other tests, do not fit.
        for (why, token) in [
            ("other listener's audience", token_for(other)),
            ("a fixed resource identifier", publish_all()),
        ] {
            let resp = client.send(publish_req().bearer(&token)).await;
            assert_challenge(
                &format!("{what}: {why}"),
                resp.status,
                resp.header("www-authenticate"),
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                &metadata,
            );
        }
    }
    hub.shutdown().await;
}

/// Opens a stream with a token expiring in two seconds and waits for a clean end.
async fn stream_ends_at_exp(hub: &TestHub, proto: Proto) {
    let client = hub.client(proto).await;
    let token = hs256_token(
        SUBSCRIBER_SECRET,
        with(sub_claims(), "exp", json!(unix_now() + 2)),
    );
    let mut stream = client.open_stream(sub_req(TOPIC).bearer(&token)).await;
    assert_eq!(stream.status, StatusCode::OK, "{proto:?}");
    assert_eq!(
        stream.next_comment(DEADLINE).await.as_deref(),
        Some(""),
        "{proto:?}: preamble"
    );
    assert!(
        stream.wait_end(Duration::from_secs(10)).await,
        "{proto:?}: stream did not end cleanly at exp: {:?}",
        stream.failure()
    );
}

// Spec "Subscribers": the hub MUST close the connection no later than the token's `exp`.
// Reference hub §8 item 47.
#[tokio::test]
async fn stream_closes_at_token_expiry() {
    let hub = TestHub::start().await;
    tokio::join!(
        stream_ends_at_exp(&hub, Proto::H1),
        stream_ends_at_exp(&hub, Proto::H2c),
        stream_ends_at_exp(&hub, Proto::TlsH2),
    );
    hub.shutdown().await;
}
