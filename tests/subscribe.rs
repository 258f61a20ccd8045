//! Subscription end to end against the real hub: the SSE response, topic matchers, 400s, delivery
//! rules (once per update), private updates, heartbeats, fan-out under load and slow subscribers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const HUB: &str = "/.well-known/mercure";

/// Publishes over one h2c connection with a publish-everything token.
struct Publisher {
    client: TestClient,
    token: String,
    seq: AtomicUsize,
}

impl Publisher {
    async fn new(hub: &TestHub) -> Self {
        Self {
            client: hub.client(Proto::H2c).await,
            token: publish_all(),
            seq: AtomicUsize::new(0),
        }
    }

    /// A fresh id for this hub, `<label>-<n>`.
    fn next_id(&self, label: &str) -> String {
        format!("{label}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Publishes `data` on `topics` with `id`; asserts 200 and that the answer is the id.
    async fn send(&self, topics: &[&str], id: &str, data: &str, private: bool) {
        let mut form: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
        form.push(("id", id));
        form.push(("data", data));
        if private {
            form.push(("private", "on"));
        }
        let resp = self
            .client
            .send(Request::post(HUB).bearer(&self.token).form(&form))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "publish {id} on {topics:?}: {}",
            resp.text()
        );
        assert_eq!(resp.text(), id, "publish answers the update id");
    }

    /// A public update with a fresh id; returns the id.
    async fn public(&self, topics: &[&str]) -> String {
        let id = self.next_id("pub");
        self.send(topics, &id, &format!("data of {id}"), false)
            .await;
        id
    }

    /// A private update with a fresh id; returns the id.
    async fn private(&self, topics: &[&str]) -> String {
        let id = self.next_id("priv");
        self.send(topics, &id, &format!("data of {id}"), true).await;
        id
    }
}

/// An encoded query string from pairs.
fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A subscribe request for `query`, with a bearer token when given.
fn sub_request(query: &str, token: Option<&str>) -> Request {
    let req = Request::sse(&sub_target(query));
    match token {
        Some(t) => req.bearer(t),
        None => req,
    }
}

/// `open` for a GET of `query`.
async fn subscribe(client: &TestClient, query: &str, token: Option<&str>) -> SseStream {
    open(client, sub_request(query, token)).await
}

/// Asserts the next events carry exactly `ids`, in order.
async fn expect_ids(s: &mut SseStream, ids: &[String], what: &str) {
    for (i, id) in ids.iter().enumerate() {
        let ev = next(s, &format!("{what}: event #{i} (expected {id})")).await;
        assert_eq!(
            ev.id.as_deref(),
            Some(id.as_str()),
            "{what}: event #{i}, expected ids {ids:?}"
        );
        assert_eq!(ev.data, format!("data of {id}"), "{what}");
    }
}

/// Spec "Subscription" (routing): publishes one public update per entry of `skip`, then one per
/// entry of `deliver`, and asserts the stream receives exactly the `deliver` updates in order.
/// The hub delivers in publication order, so a wrongly delivered `skip` update would arrive
/// before the first `deliver` one; the `deliver` updates double as receipt markers.
async fn assert_routing(
    p: &Publisher,
    s: &mut SseStream,
    what: &str,
    skip: &[&[&str]],
    deliver: &[&[&str]],
) {
    assert!(
        !deliver.is_empty(),
        "a routing check needs a delivered marker"
    );
    for topics in skip {
        p.public(topics).await;
    }
    let mut ids = Vec::new();
    for topics in deliver {
        ids.push(p.public(topics).await);
    }
    expect_ids(s, &ids, what).await;
}

/// Spec "Subscription": 200, `text/event-stream`, no caching or proxy buffering, a `:` comment
/// first (flushing the headers), events in SSE framing; no `Mercure-Last-Event-ID` without a
/// cursor (spec "Reconnection"). Checked on every protocol.
#[tokio::test]
async fn stream_headers_preamble_and_delivery_on_every_protocol() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    for proto in Proto::ALL {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/delivery/{proto:?}");
        let mut s = subscribe(
            &client,
            &match_param("match", &topic),
            Some(&subscribe_all()),
        )
        .await;
        assert_eq!(s.version, proto.version(), "{proto:?}");
        assert_eq!(
            s.header("content-type"),
            Some("text/event-stream"),
            "{proto:?}"
        );
        let cache = s.header("cache-control").expect("cache-control");
        assert!(cache.contains("no-cache"), "{proto:?}: {cache}");
        assert_eq!(s.header("x-accel-buffering"), Some("no"), "{proto:?}");
        assert_eq!(
            s.header("mercure-last-event-id"),
            None,
            "{proto:?}: no cursor sent"
        );

        let id = p.public(&[&topic]).await;
        let ev = next(&mut s, &format!("{proto:?}")).await;
        assert_eq!(ev, SseEvent::data(&format!("data of {id}")).with_id(&id));
        // The preamble comment came before the event, and the event is framed exactly.
        assert_eq!(
            s.raw_str(),
            format!(":\nid: {id}\ndata: data of {id}\n\n"),
            "{proto:?}"
        );
    }
    hub.shutdown().await;
}

/// The preamble arrives before any update exists (it is what flushes the headers), and a HEAD
/// request gets the same headers without a stream.
#[tokio::test]
async fn preamble_is_sent_before_any_event() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let mut s = subscribe(&client, "match=urn%3Aquiet", Some(&subscribe_all())).await;
    assert_eq!(s.next_comment(DEADLINE).await.as_deref(), Some(""));
    assert_eq!(s.raw(), b":\n");

    for proto in [Proto::H1, Proto::H2c] {
        let client = hub.client(proto).await;
        let head = Request::new(http::Method::HEAD, &sub_target("match=urn%3Aquiet"))
            .bearer(&subscribe_all());
        let resp = client.send(head).await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/event-stream"),
            "{proto:?}"
        );
        assert_eq!(resp.header("x-accel-buffering"), Some("no"), "{proto:?}");
        assert!(resp.body.is_empty(), "{proto:?}");
    }
    hub.shutdown().await;
}

/// Spec "Server-Sent Events Field Injection": `data` is written as one `data:` field per line,
/// so line breaks in it cannot forge `id:`, `event:` or `retry:` fields.
#[tokio::test]
async fn data_line_breaks_cannot_inject_fields() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H1).await;
    let topic = "https://example.com/injection";
    let mut s = subscribe(
        &client,
        &match_param("match", topic),
        Some(&subscribe_all()),
    )
    .await;
    let data = "ok\nid: forged\nevent: mercure\r\n\r\ndata: evil\rretry: 1\n";
    p.send(&[topic], "real-id", data, false).await;
    let ev = next(&mut s, "injection").await;
    assert_eq!(ev.id.as_deref(), Some("real-id"));
    assert_eq!(ev.event, None);
    assert_eq!(ev.retry, None);
    assert_eq!(
        ev.data,
        "ok\nid: forged\nevent: mercure\n\ndata: evil\nretry: 1\n"
    );
    let raw = s.raw_str();
    for line in raw.lines().filter(|l| !l.is_empty()) {
        assert!(
            line == ":" || line == "id: real-id" || line.starts_with("data: ") || line == "data:",
            "unexpected line {line:?} in {raw:?}"
        );
    }
    hub.shutdown().await;
}

/// Spec "Matcher Types" / "Exact Matching": `match` and `match_exact` compare byte for byte, with
/// no case folding, normalisation or resolution against the hub URL.
#[tokio::test]
async fn exact_matchers_are_byte_for_byte() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let token = subscribe_all();

    let mut s = subscribe(
        &client,
        &match_param("match", "https://example.com/foo"),
        Some(&token),
    )
    .await;
    assert_routing(
        &p,
        &mut s,
        "match=https://example.com/foo",
        &[
            &["https://example.com/Foo"],
            &["https://EXAMPLE.com/foo"],
            &["https://example.com/foo/"],
            &["https://example.com/%66oo"],
            &["https://example.com:443/foo"],
            &["/foo"],
        ],
        &[&["https://example.com/foo"]],
    )
    .await;

    let mut s = subscribe(&client, &match_param("match", "/foo"), Some(&token)).await;
    assert_routing(
        &p,
        &mut s,
        "match=/foo",
        &[&["https://localhost/foo"], &["foo"], &["/FOO"]],
        &[&["/foo"]],
    )
    .await;

    let mut s = subscribe(
        &client,
        &match_param("match_exact", "https://example.com/bar"),
        Some(&token),
    )
    .await;
    assert_routing(
        &p,
        &mut s,
        "match_exact=https://example.com/bar",
        &[&["https://example.com/BAR"], &["https://example.com/bar?x"]],
        &[&["https://example.com/bar"]],
    )
    .await;

    // Spec "Subscription": the query is parsed with the WHATWG urlencoded parser: `+` is a
    // space, `%2B` a plus, and a `%` not followed by two hex digits stays literal.
    let raw = "match=urn%3Aa+b&match=urn%3Ac%2Bd&match=urn%3Ae%zz";
    let mut s = subscribe(&client, raw, Some(&token)).await;
    assert_routing(
        &p,
        &mut s,
        raw,
        &[&["urn:a+b"], &["urn:c d"], &["urn:e%25zz"]],
        &[&["urn:a b"], &["urn:c+d"], &["urn:e%zz"]],
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Matcher Types" / "URL Pattern": an absolute pattern matches by URL components.
#[tokio::test]
async fn urlpattern_absolute() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = subscribe(
        &client,
        &match_param("match_urlpattern", "https://example.com/books/:id"),
        Some(&subscribe_all()),
    )
    .await;
    assert_routing(
        &p,
        &mut s,
        "match_urlpattern=https://example.com/books/:id",
        &[
            &["https://example.com/books/1/reviews"],
            &["https://example.com/books/"],
            &["https://example.com/users/1"],
            &["https://example.org/books/1"],
            &["http://example.com/books/1"],
            &["/books/1"],
        ],
        &[
            &["https://example.com/books/1"],
            &["https://example.com/books/abc"],
        ],
    )
    .await;
    hub.shutdown().await;
}

/// Spec "URL Pattern": a relative pattern and relative topics resolve against the hub URL
/// (`https://localhost/.well-known/mercure` by default).
#[tokio::test]
async fn urlpattern_relative_resolves_against_hub_url() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = subscribe(
        &client,
        &match_param("match_urlpattern", "/books/:id"),
        Some(&subscribe_all()),
    )
    .await;
    assert_routing(
        &p,
        &mut s,
        "match_urlpattern=/books/:id",
        &[
            &["https://example.com/books/3"],
            &["http://localhost/books/4"],
            &["https://localhost/users/5"],
            &["/books/6/reviews"],
        ],
        &[&["https://localhost/books/1"], &["/books/2"]],
    )
    .await;
    hub.shutdown().await;
}

/// The base of relative patterns is the configured hub URL, not a fixed host.
#[tokio::test]
async fn urlpattern_relative_uses_configured_hub_url() {
    let hub = TestHub::start_with(|c| {
        c.hub_url = url::Url::parse("https://hub.example.net/.well-known/mercure").unwrap();
    })
    .await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = subscribe(
        &client,
        &match_param("match_urlpattern", "/books/:id"),
        Some(&subscribe_all()),
    )
    .await;
    assert_routing(
        &p,
        &mut s,
        "match_urlpattern=/books/:id with hub https://hub.example.net",
        &[&["https://localhost/books/1"]],
        &[&["https://hub.example.net/books/2"], &["/books/3"]],
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Matcher Types": `*` matches every topic, whatever the matcher type.
#[tokio::test]
async fn wildcard_receives_everything() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let token = subscribe_all();
    let mut plain = subscribe(&client, "match=*", Some(&token)).await;
    let mut typed = subscribe(&client, "match_urlpattern=*", Some(&token)).await;
    let topics: [&[&str]; 5] = [
        &["https://example.com/a"],
        &["/relative"],
        &["urn:example:x"],
        &["not a url at all"],
        &["https://example.com/b", "https://example.com/alt"],
    ];
    let mut ids = Vec::new();
    for t in topics {
        ids.push(p.public(t).await);
    }
    expect_ids(&mut plain, &ids, "match=*").await;
    expect_ids(&mut typed, &ids, "match_urlpattern=*").await;
    hub.shutdown().await;
}

/// Spec "Subscription": several matchers of any types in one request; the subscriber receives
/// updates matching at least one of them.
#[tokio::test]
async fn several_matchers_in_one_request() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::TlsH2).await;
    let q = query(&[
        ("match", "https://example.com/foo"),
        ("match", "bar"),
        ("match_urlpattern", "https://example.com/bar/:id"),
        ("match_exact", "urn:example:baz"),
        ("unrelated", "ignored"),
    ]);
    let mut s = subscribe(&client, &q, Some(&subscribe_all())).await;
    assert_routing(
        &p,
        &mut s,
        &q,
        &[
            &["https://example.com/other"],
            &["baz"],
            &["https://example.com/bar/1/x"],
        ],
        &[
            &["https://example.com/foo"],
            &["bar"],
            &["https://example.com/bar/7"],
            &["urn:example:baz"],
        ],
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Subscription": with `QUERY`, matchers in the form body and in the query component are
/// united; a matcher present only in the body and one only in the query both select topics.
#[tokio::test]
async fn query_method_unites_body_and_query_matchers() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let in_query = format!("https://example.com/{proto:?}/in-query");
        let in_body = format!("https://example.com/{proto:?}/in-body");
        let req = Request::query(&sub_target(&match_param("match", &in_query)))
            .bearer(&subscribe_all())
            .header("accept", "text/event-stream")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query(&[
                ("match_urlpattern", &format!("{in_body}{{/:rest}}?")),
                ("unrelated", "x"),
            ]));
        let mut s = open(&client, req).await;
        assert_eq!(s.header("content-type"), Some("text/event-stream"));
        let other = format!("https://example.com/{proto:?}/other");
        let in_body_sub = format!("{in_body}/1");
        assert_routing(
            &p,
            &mut s,
            &format!("{proto:?} QUERY"),
            &[&[&other]],
            &[&[&in_body], &[&in_query], &[&in_body_sub]],
        )
        .await;
        assert!(s.raw().starts_with(b":\n"), "{proto:?}");
    }

    // Body only, no query component (reference checklist §8 item 43).
    let client = hub.client(Proto::H2c).await;
    let req = Request::query(HUB)
        .bearer(&subscribe_all())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("match=urn%3Abody%3Aonly");
    let mut s = open(&client, req).await;
    assert_routing(
        &p,
        &mut s,
        "QUERY body only",
        &[&["urn:other"]],
        &[&["urn:body:only"]],
    )
    .await;
    hub.shutdown().await;
}

/// Sends a subscribe request that must fail with 400 and a short plain-text reason; returns the
/// reason.
async fn expect_400(client: &TestClient, req: Request) -> String {
    let what = format!("{} {}", req.method, req.target);
    let mut s = client.open_stream(req).await;
    assert!(s.wait_end(DEADLINE).await, "{what}: the error body ends");
    let body = s.raw_str();
    assert_eq!(s.status, StatusCode::BAD_REQUEST, "{what}: {body:?}");
    assert_eq!(
        s.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert!(body.ends_with('\n') && body.len() > 1, "{what}: {body:?}");
    assert!(!body.contains("0x"), "{what}: internals in {body:?}");
    body
}

/// Spec "Subscription": names in the reserved `match` namespace that are not a supported matcher
/// type, the Mercure 0.x `topic` parameter, a missing matcher, too many matchers, too long a
/// pattern, an invalid URL pattern, forbidden characters and invalid UTF-8 are all 400.
#[tokio::test]
async fn invalid_subscriptions_are_400() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let token = subscribe_all();
    let bad = |q: &str| sub_request(q, Some(&token));

    for name in [
        "match_regex",
        "Match",
        "matches",
        "match_Exact",
        "MATCH_URLPATTERN",
        "match_",
    ] {
        let body = expect_400(&client, bad(&format!("{name}=a"))).await;
        assert!(body.contains(name), "{name}: {body:?}");
        // Even next to a valid matcher.
        expect_400(&client, bad(&format!("match=a&{name}=b"))).await;
    }

    let body = expect_400(&client, bad("topic=https%3A%2F%2Fexample.com%2Fa")).await;
    assert!(body.contains("match"), "topic=: {body:?}");

    for q in ["", "foo=bar", "last_event_id=x"] {
        let body = expect_400(&client, bad(q)).await;
        assert!(body.contains("missing"), "{q:?}: {body:?}");
    }

    let hundred: Vec<String> = (0..100).map(|i| format!("match=urn%3At%3A{i}")).collect();
    // 100 matchers is the limit, accepted...
    drop(subscribe(&client, &hundred.join("&"), Some(&token)).await);
    // ...101 are not, whether in the query alone or split between query and QUERY body.
    let body = expect_400(
        &client,
        bad(&format!("{}&match=one-more", hundred.join("&"))),
    )
    .await;
    assert!(body.contains("too many matchers"), "{body:?}");
    let split = Request::query(&sub_target(&hundred[..60].join("&")))
        .bearer(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{}&match=one-more", hundred[60..].join("&")));
    expect_400(&client, split).await;

    let prefix = "https://example.com/";
    let at_limit = format!("{prefix}{}", "a".repeat(4096 - prefix.len()));
    assert_eq!(at_limit.len(), 4096);
    drop(subscribe(&client, &match_param("match", &at_limit), Some(&token)).await);
    for kind in ["match", "match_urlpattern"] {
        let too_long = format!("{at_limit}b");
        let body = expect_400(&client, bad(&match_param(kind, &too_long))).await;
        assert!(body.contains("too long"), "{kind}: {body:?}");
    }

    // Reference checklist §8 item 6: the compiler's text never reaches the client.
    for pattern in ["/(unclosed", "https://example.com/:id(", "/books/:id(["] {
        let body = expect_400(&client, bad(&match_param("match_urlpattern", pattern))).await;
        assert_eq!(body, "invalid topic matcher pattern\n", "{pattern}");
        for internal in ["0x", "regex", "urlpattern", "tokenizer"] {
            assert!(!body.contains(internal), "{pattern}: {body:?}");
        }
    }

    // Control and format characters (spec "Subscription": no C0, C1, DEL or Cf).
    for q in [
        "match=a%00b",
        "match=a%0Ab",
        "match=a%0Db",
        "match=a%7Fb",
        "match=a%C2%85b",
        "match=a%E2%80%AEb",
        "match=a%E2%80%8Bb",
        "match_urlpattern=%2Fbooks%2F%0A",
        "match_exact=%EF%BB%BFa",
    ] {
        let body = expect_400(&client, bad(q)).await;
        assert!(body.contains("control"), "{q}: {body:?}");
    }
    // Invalid UTF-8 after percent-decoding.
    for q in ["match=%FF", "match=a%C3", "match_urlpattern=%2F%ED%A0%80"] {
        let body = expect_400(&client, bad(q)).await;
        assert!(body.contains("UTF-8"), "{q}: {body:?}");
    }
    hub.shutdown().await;
}

/// Spec "Authorization": without a token on a hub that does not allow anonymous subscribers the
/// request is refused before any matcher is registered.
#[tokio::test]
async fn missing_token_is_401() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let resp = client.send(sub_request("match=*", None)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.text());
    assert!(resp.header("www-authenticate").is_some());
    hub.shutdown().await;
}

/// Spec "Subscription": the subscriber receives every matching update; an update whose
/// canonical and alternate topics both match, or that several of its matchers select, is still
/// one update and arrives once.
#[tokio::test]
async fn an_update_arrives_once_whatever_matches_it() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let token = subscribe_all();
    let book = "https://example.com/books/1";
    let alt = "https://example.com/users/42/books/1";
    let cases: Vec<(&str, String)> = vec![
        (
            "exact on both topics",
            query(&[("match", book), ("match", alt)]),
        ),
        (
            "urlpatterns on both topics",
            query(&[
                ("match_urlpattern", "https://example.com/books/:id"),
                ("match_urlpattern", "https://example.com/users/:u/books/:id"),
            ]),
        ),
        (
            "exact + urlpattern on different topics",
            query(&[
                ("match", alt),
                ("match_urlpattern", "https://example.com/books/:id"),
            ]),
        ),
        (
            "exact + urlpattern on the same topic",
            query(&[
                ("match", book),
                ("match_urlpattern", "https://example.com/books/:id"),
            ]),
        ),
        (
            "the same matcher twice",
            query(&[("match", book), ("match", book)]),
        ),
        (
            "exact + wildcard",
            query(&[("match", book), ("match", "*")]),
        ),
        (
            "three matchers",
            query(&[
                ("match", book),
                ("match_exact", alt),
                ("match_urlpattern", "https://example.com/:rest*"),
            ]),
        ),
    ];
    let mut streams = Vec::new();
    for (what, q) in &cases {
        streams.push((*what, subscribe(&client, q, Some(&token)).await));
    }
    let both = p.public(&[book, alt]).await;
    let single = p.public(&[book]).await;
    // Every stream routes `book`: the next update there proves nothing else was queued.
    let marker = p.public(&[book]).await;
    for (what, s) in &mut streams {
        expect_ids(s, &[both.clone(), single.clone(), marker.clone()], what).await;
    }
    hub.shutdown().await;
}

/// Spec "Subscribers" / "Authorization": an anonymous subscriber never receives a private
/// update, whatever its matchers; a subscriber with a token on the same hub does.
#[tokio::test]
async fn anonymous_subscribers_never_get_private_updates() {
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let book = "https://example.com/books/1";
    let mut anon = Vec::new();
    for q in [
        match_param("match", book),
        match_param("match_urlpattern", "https://example.com/books/:id"),
        "match=*".to_owned(),
    ] {
        anon.push((q.clone(), subscribe(&client, &q, None).await));
    }
    let mut granted = subscribe(&client, "match=*", Some(&subscribe_all())).await;

    let secret = p.private(&[book]).await;
    let secret_alt = p
        .private(&[book, "https://example.com/users/42/books/1"])
        .await;
    let marker = p.public(&[book]).await;
    for (q, s) in &mut anon {
        expect_ids(s, std::slice::from_ref(&marker), &format!("anonymous {q}")).await;
    }
    expect_ids(
        &mut granted,
        &[secret, secret_alt, marker],
        "token with * grant",
    )
    .await;
    hub.shutdown().await;
}

/// A subscriber token carrying the given `authorization_details`.
fn token_with_details(details: serde_json::Value) -> String {
    hs256_token(
        SUBSCRIBER_SECRET,
        claims(ISSUER, RESOURCE, unix_now() + 3600, details),
    )
}

/// Spec "Subscribers": a token that grants `subscribe` on none of the update's topics does not
/// receive it, even though its routing matchers select it.
#[tokio::test]
async fn token_without_a_matching_grant_gets_no_private_update() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let book = "https://example.com/books/1";
    let tokens = [
        ("no authorization details", token_with_details(json!([]))),
        (
            "grant on another topic",
            subscriber_token(&[("https://example.com/books/2", "")]),
        ),
        (
            "grant on a pattern not covering the topic",
            subscriber_token(&[("https://example.com/users/:id", "urlpattern")]),
        ),
        (
            "publish-only grant",
            token_with_details(json!([publish_detail(&[("*", "")])])),
        ),
        (
            "grant with the wrong case",
            subscriber_token(&[("https://example.com/Books/1", "")]),
        ),
    ];
    let mut streams = Vec::new();
    for (what, token) in &tokens {
        for q in [match_param("match", book), "match=*".to_owned()] {
            streams.push((
                format!("{what}, {q}"),
                subscribe(&client, &q, Some(token)).await,
            ));
        }
    }
    p.private(&[book]).await;
    p.private(&[book, "https://example.com/users/42/books/1"])
        .await;
    let marker = p.public(&[book]).await;
    for (what, s) in &mut streams {
        expect_ids(s, std::slice::from_ref(&marker), what).await;
    }
    hub.shutdown().await;
}

/// Spec "Subscribers", the alternate-topic example: a token granting only
/// `https://example.com/users/42/*`, routing on `https://example.com/books/:id`, receives a
/// private update whose canonical topic is the book and whose alternate topic is in its
/// namespace — routing and grant may be satisfied by different topics of the same update.
#[tokio::test]
async fn grant_on_an_alternate_topic_delivers_the_private_update() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let token = subscriber_token(&[("https://example.com/users/42/*", "urlpattern")]);
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let mut s = subscribe(
            &client,
            &match_param("match_urlpattern", "https://example.com/books/:id"),
            Some(&token),
        )
        .await;
        // Not for user 42: neither topic is granted.
        p.private(&[
            "https://example.com/books/2",
            "https://example.com/users/43/books/2",
        ])
        .await;
        // No alternate topic: the book alone is not granted.
        p.private(&["https://example.com/books/3"]).await;
        // Granted topic but not routed: the subscriber does not listen to it.
        p.private(&["https://example.com/users/42/books/4"]).await;
        let delivered = p
            .private(&[
                "https://example.com/books/1",
                "https://example.com/users/42/books/1",
            ])
            .await;
        let marker = p.public(&["https://example.com/books/5"]).await;
        expect_ids(&mut s, &[delivered, marker], &format!("{proto:?}")).await;
    }
    hub.shutdown().await;
}

/// Spec "Subscribers": routing on `books/:id` with a token granting `books/1` and `books/7`
/// delivers private updates for those books only; public ones are not restricted.
#[tokio::test]
async fn exact_grants_narrow_what_routing_selects() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let token = token_with_details(json!([subscribe_detail(&[
        ("https://example.com/books/1", "exact"),
        ("https://example.com/books/7", ""),
    ])]));
    let mut s = subscribe(
        &client,
        &match_param("match_urlpattern", "https://example.com/books/:id"),
        Some(&token),
    )
    .await;
    p.private(&["https://example.com/books/2"]).await;
    let one = p.private(&["https://example.com/books/1"]).await;
    p.private(&["https://example.com/books/10"]).await;
    let seven = p.private(&["https://example.com/books/7"]).await;
    let public_two = p.public(&["https://example.com/books/2"]).await;
    expect_ids(
        &mut s,
        &[one, seven, public_two],
        "grants books/1 and books/7",
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Subscribers": a `*` grant reads every private update its matchers route.
#[tokio::test]
async fn wildcard_grant_receives_every_private_update() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let mut all = subscribe(&client, "match=*", Some(&subscribe_all())).await;
    let mut books = subscribe(
        &client,
        &match_param("match_urlpattern", "https://example.com/books/:id"),
        Some(&subscribe_all()),
    )
    .await;
    let a = p.private(&["https://example.com/books/1"]).await;
    let b = p.private(&["urn:example:secret"]).await;
    let c = p
        .private(&["/relative/secret", "https://example.com/books/2"])
        .await;
    let d = p.public(&["https://example.com/books/3"]).await;
    expect_ids(&mut all, &[a.clone(), b, c.clone(), d.clone()], "match=*").await;
    expect_ids(&mut books, &[a, c, d], "books/:id").await;
    hub.shutdown().await;
}

/// Spec "Subscription": an idle stream gets a `:` keep-alive comment; the stream still delivers
/// afterwards.
#[tokio::test]
async fn idle_stream_gets_heartbeat_comments() {
    let hub = TestHub::start_with(|c| c.heartbeat = Some(Duration::from_millis(200))).await;
    let p = Publisher::new(&hub).await;
    for proto in [Proto::H1, Proto::H2c] {
        let client = hub.client(proto).await;
        let mut s = subscribe(&client, "match=urn%3Ahb", Some(&subscribe_all())).await;
        assert_eq!(
            s.next_comment(DEADLINE).await.as_deref(),
            Some(""),
            "preamble"
        );
        // The preamble is the only comment sent at once: a second one is a heartbeat.
        assert_eq!(
            s.next_comment(DEADLINE).await.as_deref(),
            Some(""),
            "{proto:?} heartbeat"
        );
        assert_eq!(
            s.next_comment(DEADLINE).await.as_deref(),
            Some(""),
            "{proto:?} heartbeat 2"
        );
        let id = p.public(&["urn:hb"]).await;
        expect_ids(&mut s, &[id], &format!("{proto:?} after heartbeats")).await;
        assert!(s.raw().starts_with(b":\n:\n:\n"), "{:?}", s.raw_str());
    }
    hub.shutdown().await;
}

/// 215 concurrent subscribers spread over shared h2 connections (h2c and TLS) and HTTP/1.1
/// connections each receive 100 sequentially published updates exactly once, in order, and
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_subscribers_receive_everything_in_order() {
    const UPDATES: usize = 100;
    let hub = TestHub::start().await;
    let topic = "https://example.com/load/1";
    let token = subscribe_all();
    let queries = [
        match_param("match", topic),
        match_param("match_urlpattern", "https://example.com/load/:n"),
        "match=*".to_owned(),
    ];

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push((hub.client(Proto::H2c).await, 40));
    }
    for _ in 0..2 {
        clients.push((hub.client(Proto::TlsH2).await, 20));
    }
    clients.push((hub.client(Proto::H1).await, 10));
    clients.push((hub.client(Proto::TlsH1).await, 5));

    let mut streams = Vec::new();
    for (c, (client, n)) in clients.iter().enumerate() {
        for i in 0..*n {
            let q = &queries[(c + i) % queries.len()];
            let label = format!("{:?} client {c} stream {i} ({q})", client.proto());
            streams.push((label, subscribe(client, q, Some(&token)).await));
        }
    }
    assert_eq!(streams.len(), 215);

    let expected: Vec<String> = (0..UPDATES).map(|i| format!("e{i}")).collect();
    let mut readers = JoinSet::new();
    for (label, mut s) in streams {
        let expected = expected.clone();
        readers.spawn(async move {
            let mut got = Vec::with_capacity(expected.len());
            while got.len() < expected.len() {
                match s.next_event_outcome(DEADLINE).await {
                    Outcome::Got(ev) => got.push(ev.id.unwrap_or_default()),
                    other => panic!("{label}: {other:?} after {got:?}"),
                }
            }
            assert_eq!(got, expected, "{label}");
            (label, s)
        });
    }

    let p = Publisher::new(&hub).await;
    for id in &expected {
        p.send(&[topic], id, "x", false).await;
    }
    let mut done = Vec::new();
    while let Some(r) = readers.join_next().await {
        done.push(r.expect("reader task"));
    }
    // Nothing extra: the next event on every stream is the marker published after all readers
    // finished.
    p.send(&[topic], "marker", "x", false).await;
    for (label, s) in &mut done {
        let ev = next(s, label).await;
        assert_eq!(ev.id.as_deref(), Some("marker"), "{label}");
    }
    assert_eq!(hub.running().state().hub.connected_subscribers(), 215);
    hub.shutdown().await;
}

/// Reads every event of a stream the hub is ending; returns their ids. The hub ends it cleanly
/// when the client drains it in time, and otherwise closes the connection (spec "Subscribers":
/// the hub closes the connection): both are an end, and only complete events count.
async fn drain_to_end(s: &mut SseStream, what: &str) -> Vec<String> {
    let ended = s.wait_end(DEADLINE).await;
    assert!(
        ended || s.failure().is_some(),
        "{what}: the hub should end the stream (it is still open)"
    );
    eprintln!(
        "{what}: ended {}",
        s.failure()
            .map_or("cleanly".to_owned(), |f| format!("by a close ({f})"))
    );
    let mut ids = Vec::new();
    while let Some(ev) = s.next_event(Duration::ZERO).await {
        ids.push(ev.id.unwrap_or_default());
    }
    ids
}

/// A subscriber that stops reading does not delay publishers or other subscribers: its socket
/// (HTTP/1.1) or stream window (h2, 64 KiB on the test client) fills, its bounded queue
/// overflows, and it is disconnected as lagging once it drains; meanwhile a subscriber on the
/// same h2 connection as the stalled h2 stream reads every update in order and every publish
/// answers 200. The stalled subscriber then resumes from history with `Last-Event-ID`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_does_not_delay_the_others() {
    const UPDATES: usize = 300;
    const SIZE: usize = 64 * 1024;
    /// How far the publisher may run ahead of the reader: below the queue capacity, so the
    /// reader can never overflow whatever the scheduling.
    const AHEAD: usize = 8;
    let hub = TestHub::start_with(|c| c.subscriber_queue_capacity = 16).await;
    let topic = "https://example.com/firehose";
    let q = match_param("match", topic);
    let token = subscribe_all();

    let h1 = hub.client(Proto::H1).await;
    let mut stalled_h1 = subscribe(&h1, &q, Some(&token)).await;
    let h2 = hub.client(Proto::H2c).await;
    let mut stalled_h2 = subscribe(&h2, &q, Some(&token)).await;
    let reader = subscribe(&h2, &q, Some(&token)).await;

    let expected: Vec<String> = (0..UPDATES).map(|i| format!("e{i}")).collect();
    let permits = Arc::new(Semaphore::new(AHEAD));
    let reader_task = paced_reader(
        reader,
        expected.clone(),
        SIZE,
        Arc::clone(&permits),
        "reader",
    );

    let p = Publisher::new(&hub).await;
    let data = "x".repeat(SIZE);
    for id in &expected {
        permits.acquire().await.expect("semaphore open").forget();
        p.send(&[topic], id, &data, false).await;
    }
    let mut reader = reader_task.await.expect("reader task");

    // Both stalled subscribers were dropped as lagging: they end after what was already on its
    // way (socket buffers / h2 window plus the 16 queued updates), a prefix of the updates.
    for (what, s) in [
        ("stalled h1", &mut stalled_h1),
        ("stalled h2", &mut stalled_h2),
    ] {
        let ids = drain_to_end(s, what).await;
        eprintln!(
            "{what}: received {} of {UPDATES} updates before the hub ended its stream",
            ids.len()
        );
        assert!(ids.len() < UPDATES, "{what}: was not disconnected");
        assert_eq!(ids, expected[..ids.len()], "{what}: a gapless prefix");

        // Spec "Reconnection": it resumes from history exactly after the last update it got.
        let resume = ids.last().cloned().unwrap_or_else(|| "earliest".to_owned());
        let mut again = open(
            &h2,
            sub_request(&q, Some(&token)).header("last-event-id", &resume),
        )
        .await;
        assert_eq!(again.header("mercure-last-event-id"), Some(resume.as_str()));
        for (i, id) in expected.iter().enumerate().skip(ids.len()) {
            let ev = next(&mut again, &format!("{what} resumed, update {i}")).await;
            assert_eq!(ev.id.as_deref(), Some(id.as_str()), "{what} resumed");
        }
    }

    // The reader is still live and got nothing extra.
    p.send(&[topic], "marker", "m", false).await;
    let ev = next(&mut reader, "reader marker").await;
    assert_eq!(ev.id.as_deref(), Some("marker"));
    hub.shutdown().await;
}

/// A `*` subscribe token expiring at `exp` (Unix seconds).
fn token_expiring_at(exp: u64) -> String {
    token_with_details_exp(json!([subscribe_detail(&[("*", "")])]), exp)
}

fn token_with_details_exp(details: serde_json::Value, exp: u64) -> String {
    hs256_token(SUBSCRIBER_SECRET, claims(ISSUER, RESOURCE, exp, details))
}

/// Streams whose client stopped reading, with a token expiring at `exp`: one over HTTP/1.1
/// (socket buffers filled) and one over h2c (64 KiB stream window filled). Returns them with
/// the ids published to fill them.
async fn stalled_streams_expiring_at(
    hub: &TestHub,
    p: &Publisher,
    exp: u64,
) -> (Vec<(&'static str, SseStream)>, Vec<String>) {
    let topic = "https://example.com/expiring";
    let q = match_param("match", topic);
    let token = token_expiring_at(exp);
    let h1 = hub.client(Proto::H1).await;
    let h2 = hub.client(Proto::H2c).await;
    let streams = vec![
        ("stalled h1", subscribe(&h1, &q, Some(&token)).await),
        ("stalled h2", subscribe(&h2, &q, Some(&token)).await),
    ];
    // ~7.5 MiB: more than loopback socket buffers and hyper's write buffer hold, well under the
    // default queue capacity (1024), so the HTTP/1.1 stream is stalled without lagging.
    let data = "x".repeat(64 * 1024);
    let mut ids = Vec::new();
    for i in 0..120 {
        let id = format!("early-{i}");
        p.send(&[topic], &id, &data, false).await;
        ids.push(id);
    }
    (streams, ids)
}

/// Opens an idle stream whose token expires at `exp` and waits for the hub to end it: an
/// event-based clock proving `exp` has passed on the hub's side (spec "Subscribers": the hub
/// closes the connection no later than `exp`).
async fn wait_for_expiry(hub: &TestHub, exp: u64) {
    let client = hub.client(Proto::H2c).await;
    let mut clock = subscribe(&client, "match=urn%3Aclock", Some(&token_expiring_at(exp))).await;
    let within = Duration::from_secs(exp.saturating_sub(unix_now()) + 1) + DEADLINE;
    assert!(
        clock.wait_end(within).await,
        "an idle stream ends at its token's exp"
    );
}

/// Spec "Subscribers": no update published after the token's `exp` reaches a subscriber, even
/// one that stopped reading before `exp` and resumes reading after it: it gets only what was
/// already on its way, then the stream ends (cleanly, or its connection is closed when it did
/// not drain in time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_gets_nothing_published_after_exp() {
    let hub = TestHub::start_with(|c| c.write_timeout = None).await;
    let p = Publisher::new(&hub).await;
    let exp = unix_now() + 3;
    let (mut streams, early) = stalled_streams_expiring_at(&hub, &p, exp).await;
    // At least a second after the stalled streams' exp.
    wait_for_expiry(&hub, (exp + 1).max(unix_now() + 1)).await;
    p.send(&["https://example.com/expiring"], "late", "late", false)
        .await;
    for (what, s) in &mut streams {
        let ids = drain_to_end(s, what).await;
        eprintln!(
            "{what}: {} updates delivered after resuming past exp",
            ids.len()
        );
        assert!(!ids.contains(&"late".to_owned()), "{what}: {ids:?}");
        assert_eq!(ids, early[..ids.len()], "{what}: a gapless prefix");
    }
    hub.shutdown().await;
}

/// Spec "Subscribers": "the hub MUST close the connection no later than the token's `exp`".
/// A stream whose client stopped reading is not closed at `exp` (nor at the `write_timeout`
/// rotation deadline): the deadline is only checked inside `SseBody::poll_frame`, which hyper
/// calls only when it can write (h1: its write buffer drained into the socket; h2: stream
/// window capacity), so the subscriber stays registered and its connection open for as long as
/// the client keeps the TCP connection without reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_disconnected_at_exp() {
    let hub = TestHub::start_with(|c| c.write_timeout = None).await;
    let p = Publisher::new(&hub).await;
    let exp = unix_now() + 3;
    let (streams, _) = stalled_streams_expiring_at(&hub, &p, exp).await;
    assert_eq!(hub.running().state().hub.connected_subscribers(), 2);
    // At least a second after the stalled streams' exp (the clock stream is gone by then).
    wait_for_expiry(&hub, (exp + 1).max(unix_now() + 1)).await;
    assert_eq!(
        hub.running().state().hub.connected_subscribers(),
        0,
        "the stalled streams are still registered after their token expired"
    );
    drop(streams);
    hub.shutdown().await;
}
