//! Active subscriptions (spec "Active Subscriptions", "Subscription Events", "Subscription API",
//! "Payloads"): event topics and bodies, percent-encoding, payload selection, the API with its
//! authorization, cursor, ETag and 304, and the API + cursor consistency scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

fn event_topic(match_type: &str, pattern: &str, subscriber: &str) -> String {
    format!("{NS}/{match_type}/{}/{}", enc(pattern), enc(subscriber))
}

async fn start() -> TestHub {
    TestHub::start_with(|c| c.subscriptions = true).await
}

fn token(details: Vec<Value>) -> String {
    hs256_token(
        SUBSCRIBER_SECRET,
        claims(ISSUER, RESOURCE, unix_now() + 3600, Value::Array(details)),
    )
}

/// A watcher of every subscription event (and of `extra` exact topics), granted everything.
async fn watcher(client: &TestClient, extra: &[&str]) -> SseStream {
    let mut q = match_param("match_urlpattern", ALL_EVENTS);
    for t in extra {
        q.push('&');
        q.push_str(&match_param("match", t));
    }
    let s = client
        .open_stream(Request::sse(&sub_target(&q)).bearer(&subscribe_all()))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    s
}

/// Reads subscription events until one for `pattern` with `active`, skipping others.
async fn wait_for(s: &mut SseStream, pattern: &str, active: bool) -> (String, Value) {
    wait_for_sub_event(s, "match", pattern, active).await
}

async fn subscribe(client: &TestClient, query: &str, token: &str) -> SseStream {
    let s = client
        .open_stream(Request::sse(&sub_target(query)).bearer(token))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    s
}

async fn publish(client: &TestClient, topic: &str, data: &str) -> String {
    let resp = client
        .send(
            Request::post("/.well-known/mercure")
                .bearer(&publish_all())
                .form(&[("topic", topic), ("data", data)]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    resp.text().to_owned()
}

async fn api(client: &TestClient, path: &str, token: Option<&str>) -> Response {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.bearer(t);
    }
    client.send(req).await
}

/// Spec "Subscription Events": SSE type `mercure`, private, JSON with id (= topic), type,
/// match_type, match, subscriber, active, payload; `active: true` on connect, `false` on
/// disconnect. Over HTTP/1.1, h2c and TLS h2.
#[tokio::test]
async fn event_shape_and_lifecycle() {
    let hub = start().await;
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let mut w = watcher(&client, &[]).await;
        // The watcher sees its own arrival: it can receive. (The previous watcher's departure
        // may come before or after it.)
        let (_, own) = wait_for(&mut w, ALL_EVENTS, true).await;
        assert_eq!(own["match_type"], "urlpattern");

        let topic = unique("shape");
        let tok = token(vec![subscribe_detail_with_payload(
            &[(&topic, "")],
            json!({"user": "alice"}),
        )]);
        let s = subscribe(&client, &match_param("match", &topic), &tok).await;
        let (id1, on) = wait_for(&mut w, &topic, true).await;
        assert!(id1.starts_with("urn:uuid:"), "{id1}");
        let sub_id = on["subscriber"].as_str().unwrap().to_owned();
        assert!(sub_id.starts_with("urn:uuid:"), "{sub_id}");
        assert_eq!(
            on,
            json!({
                "id": event_topic("exact", &topic, &sub_id),
                "type": "subscription",
                "match_type": "exact",
                "match": topic,
                "subscriber": sub_id,
                "active": true,
                "payload": {"user": "alice"},
            }),
            "{proto:?}"
        );
        drop(s);
        let (id2, off) = wait_for(&mut w, &topic, false).await;
        assert_ne!(id1, id2);
        let mut expected = on.clone();
        expected["active"] = json!(false);
        assert_eq!(off, expected, "{proto:?}");
    }
    hub.shutdown().await;
}

/// Subscriber ids are random per connection: two connections with the same token differ, and a
/// client-supplied `subscriber` parameter changes nothing.
#[tokio::test]
async fn subscriber_ids_are_per_connection_and_not_client_controlled() {
    let hub = start().await;
    let client = hub.client(Proto::H2c).await;
    let mut w = watcher(&client, &[]).await;
    next_sub_event(&mut w).await;
    let topic = unique("ids");
    let tok = subscriber_token(&[(&topic, "")]);
    let q = format!("{}&subscriber=urn:evil", match_param("match", &topic));
    let _a = subscribe(&client, &q, &tok).await;
    let _b = subscribe(&client, &q, &tok).await;
    let (_, a) = next_sub_event(&mut w).await;
    let (_, b) = next_sub_event(&mut w).await;
    assert_ne!(a["subscriber"], b["subscriber"]);
    for e in [&a, &b] {
        assert!(e["subscriber"].as_str().unwrap().starts_with("urn:uuid:"));
    }
    hub.shutdown().await;
}

/// Each variable is percent-encoded exactly once (RFC 6570): `/`, `%`, `:` and spaces in matchers,
/// `:` in the subscriber. The topic is exactly that (an exact watcher on it receives the
/// disconnect) and the API finds the subscription at that path.
#[tokio::test]
async fn percent_encoding_of_matchers() {
    let hub = start().await;
    let client = hub.client(Proto::H1).await;
    let mut w = watcher(&client, &[]).await;
    next_sub_event(&mut w).await;
    let id = uuid::Uuid::new_v4();
    let cases = [
        ("exact", format!("https://example.com/a b/{id}/%41:x")),
        ("urlpattern", format!("https://example.com/{id}/books/:id")),
        ("exact", format!("urn:x:{id}/50%25 off")),
    ];
    for (kind, pattern) in &cases {
        let param = if *kind == "exact" {
            "match"
        } else {
            "match_urlpattern"
        };
        let s = subscribe(&client, &match_param(param, pattern), &subscribe_all()).await;
        let (_, on) = wait_for(&mut w, pattern, true).await;
        let sub_id = on["subscriber"].as_str().unwrap();
        let topic = event_topic(kind, pattern, sub_id);
        assert_eq!(on["id"], topic.as_str());
        assert_eq!(on["match_type"], *kind);
        assert!(!topic.contains(' '));
        // The API resolves the encoded path segments.
        let one = api(&client, &topic, Some(&subscribe_all())).await;
        assert_eq!(one.status, StatusCode::OK, "{topic}");
        assert_eq!(one.json(), on);
        let coll = api(
            &client,
            &format!("{NS}/{kind}/{}", enc(pattern)),
            Some(&subscribe_all()),
        )
        .await;
        assert_eq!(coll.status, StatusCode::OK);
        assert_eq!(coll.json()["subscriptions"], json!([on.clone()]));
        // An exact watcher on the computed topic receives the disconnect.
        let mut exact = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
        drop(s);
        let (_, off) = next_sub_event(&mut exact).await;
        assert_eq!(off["id"], topic.as_str());
        assert_eq!(off["active"], false);
        wait_for(&mut w, pattern, false).await;
    }
    hub.shutdown().await;
}

/// Spec "Payloads": the payload of the first `subscribe` detail matching the subscription's own
/// matcher string; `*` as a default; a first matching detail without payload gives none; a broad
/// detail placed first masks specific ones.
#[tokio::test]
async fn payload_selection_order() {
    let hub = start().await;
    let client = hub.client(Proto::H2c).await;
    let mut w = watcher(&client, &[]).await;
    next_sub_event(&mut w).await;
    let specific = unique("payload");
    let other = unique("payload-other");
    let pattern = format!("{specific}/:id");
    let detail_specific = |p: Option<Value>| match p {
        Some(p) => subscribe_detail_with_payload(&[(&specific, "")], p),
        None => subscribe_detail(&[(&specific, "")]),
    };
    let cases: Vec<(Vec<Value>, Value, Value, Value)> = vec![
        // Specific before `*`: the specific one wins for its matcher, `*` is the default.
        (
            vec![
                detail_specific(Some(json!({"p": "specific"}))),
                subscribe_detail_with_payload(&[(&pattern, "urlpattern")], json!({"p": "pattern"})),
                subscribe_detail_with_payload(&[("*", "")], json!({"p": "default"})),
            ],
            json!({"p": "specific"}),
            json!({"p": "default"}),
            json!({"p": "pattern"}),
        ),
        // The first matching detail has no payload: none, even though `*` follows with one.
        (
            vec![
                detail_specific(None),
                subscribe_detail_with_payload(&[("*", "")], json!({"p": "default"})),
            ],
            Value::Null,
            json!({"p": "default"}),
            json!({"p": "default"}),
        ),
        // Broad first masks the specific payload.
        (
            vec![
                subscribe_detail_with_payload(&[("*", "")], json!({"p": "default"})),
                detail_specific(Some(json!({"p": "specific"}))),
            ],
            json!({"p": "default"}),
            json!({"p": "default"}),
            json!({"p": "default"}),
        ),
    ];
    for (details, want_specific, want_other, want_pattern) in cases {
        let q = format!(
            "{}&{}&{}",
            match_param("match", &specific),
            match_param("match", &other),
            match_param("match_urlpattern", &pattern)
        );
        let s = subscribe(&client, &q, &token(details)).await;
        let mut got = HashMap::new();
        for _ in 0..3 {
            let (_, e) = next_sub_event(&mut w).await;
            assert_eq!(e["active"], true);
            got.insert(
                e["match"].as_str().unwrap().to_owned(),
                e.get("payload").cloned().unwrap_or(Value::Null),
            );
        }
        assert_eq!(got[&specific], want_specific);
        assert_eq!(got[&other], want_other);
        assert_eq!(got[&pattern], want_pattern);
        drop(s);
        for _ in 0..3 {
            let (_, e) = next_sub_event(&mut w).await;
            assert_eq!(e["active"], false);
        }
    }
    hub.shutdown().await;
}

/// Subscription events are private: a watcher on the namespace without a grant on it receives
/// nothing, proven by a later marker it does receive.
#[tokio::test]
async fn watcher_without_grant_receives_nothing() {
    let hub = start().await;
    let client = hub.client(Proto::H1).await;
    let marker = unique("marker");
    let mut granted = watcher(&client, &[]).await;
    next_sub_event(&mut granted).await;
    let q = format!(
        "{}&{}",
        match_param("match_urlpattern", ALL_EVENTS),
        match_param("match", &marker)
    );
    let mut denied = subscribe(&client, &q, &subscriber_token(&[(&marker, "")])).await;
    wait_for(&mut granted, ALL_EVENTS, true).await; // the denied watcher's own arrival
    let topic = unique("private");
    let s = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
    wait_for(&mut granted, &topic, true).await;
    drop(s);
    wait_for(&mut granted, &topic, false).await;
    let id = publish(&client, &marker, "marker").await;
    let ev = denied.next_event(DEADLINE).await.expect("marker");
    assert_eq!((ev.id.as_deref(), ev.data.as_str()), (Some(&*id), "marker"));
    hub.shutdown().await;
}

/// Subscription events go through history: a watcher resuming with `Last-Event-ID` replays the
/// events that followed.
#[tokio::test]
async fn events_resume_with_last_event_id() {
    let hub = start().await;
    let client = hub.client(Proto::H2c).await;
    let mut w = watcher(&client, &[]).await;
    next_sub_event(&mut w).await;
    let topic = unique("resume");
    let s = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
    let (on_id, on) = next_sub_event(&mut w).await;
    drop(s);
    let (off_id, off) = next_sub_event(&mut w).await;
    assert_eq!(off["subscriber"], on["subscriber"]);
    let mut resumed = client
        .open_stream(
            Request::sse(&sub_target(&match_param("match_urlpattern", ALL_EVENTS)))
                .bearer(&subscribe_all())
                .header("last-event-id", &on_id),
        )
        .await;
    assert_eq!(
        resumed.header("mercure-last-event-id"),
        Some(on_id.as_str())
    );
    let (id, replayed) = next_sub_event(&mut resumed).await;
    assert_eq!((id, replayed), (off_id, off));
    // Then its own arrival, live.
    let (_, own) = next_sub_event(&mut resumed).await;
    assert_eq!(
        (own["match"].clone(), own["active"].clone()),
        (json!(ALL_EVENTS), json!(true))
    );
    hub.shutdown().await;
}

fn link_for(cursor: &str) -> String {
    format!(
        "</.well-known/mercure>; rel=\"mercure\"; last-event-id=\"{cursor}\"; type=\"mercure\"; content-type=\"application/json\""
    )
}

/// The API: the whole collection, one matcher's collection, one subscription (200, then 404
/// once it ended), 404 for an unknown subscriber; `application/json`, the exact `Link` header
/// and an `ETag` naming the last dispatched event.
#[tokio::test]
async fn api_collections_and_single() {
    let hub = start().await;
    let client = hub.client(Proto::H1).await;
    let tok = subscribe_all();
    let mut w = watcher(&client, &[]).await;
    let (_, w_own) = next_sub_event(&mut w).await;
    let topic = unique("api");
    let pattern = format!("{}/:x", unique("api-pattern"));
    let s1 = subscribe(&client, &match_param("match", &topic), &tok).await;
    let (_, e1) = wait_for(&mut w, &topic, true).await;
    let _s2 = subscribe(&client, &match_param("match", &topic), &tok).await;
    let (_, e2) = wait_for(&mut w, &topic, true).await;
    let _s3 = subscribe(&client, &match_param("match_urlpattern", &pattern), &tok).await;
    let (_, e3) = wait_for(&mut w, &pattern, true).await;

    let all = api(&client, NS, Some(&tok)).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("content-type"), Some("application/json"));
    let cursor = w.last_event_id().to_owned();
    assert_eq!(all.header("link"), Some(link_for(&cursor).as_str()));
    assert_eq!(all.header("etag"), Some(format!("\"{cursor}\"").as_str()));
    let body = all.json();
    assert_eq!(body["id"], NS);
    assert_eq!(body["type"], "subscriptions");
    assert!(body.get("@context").is_none() && body.get("last_event_id").is_none());
    let listed: BTreeSet<String> = body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let expected: BTreeSet<String> = [&w_own, &e1, &e2, &e3]
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(listed, expected);

    let per_matcher_path = format!("{NS}/exact/{}", enc(&topic));
    let per = api(&client, &per_matcher_path, Some(&tok)).await;
    assert_eq!(per.status, StatusCode::OK);
    let per = per.json();
    assert_eq!(per["id"], per_matcher_path.as_str());
    assert_eq!(per["type"], "subscriptions");
    let subs: BTreeSet<String> = per["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(subs, [e1.to_string(), e2.to_string()].into_iter().collect());
    let none = api(
        &client,
        &format!("{NS}/exact/{}", enc(&unique("none"))),
        Some(&tok),
    )
    .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["subscriptions"], json!([]));

    let one_path = e1["id"].as_str().unwrap().to_owned();
    let one = api(&client, &one_path, Some(&tok)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.header("content-type"), Some("application/json"));
    assert_eq!(one.header("link"), Some(link_for(&cursor).as_str()));
    assert_eq!(one.json(), e1);
    let unknown = format!(
        "{per_matcher_path}/{}",
        enc("urn:uuid:00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(
        api(&client, &unknown, Some(&tok)).await.status,
        StatusCode::NOT_FOUND
    );
    // Right subscriber, other matcher.
    let wrong = format!(
        "{NS}/urlpattern/{}/{}",
        enc(&topic),
        enc(e1["subscriber"].as_str().unwrap())
    );
    assert_eq!(
        api(&client, &wrong, Some(&tok)).await.status,
        StatusCode::NOT_FOUND
    );
    // Bad escapes and unknown matcher types are malformed; other shapes do not exist.
    assert_eq!(
        api(&client, &format!("{NS}/regex/a"), Some(&tok))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api(&client, &format!("{NS}/exact/%FF"), Some(&tok))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api(&client, &format!("{NS}/exact"), Some(&tok))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let post = client.send(Request::post(NS).bearer(&tok)).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    drop(s1);
    wait_for(&mut w, &topic, false).await;
    assert_eq!(
        api(&client, &one_path, Some(&tok)).await.status,
        StatusCode::NOT_FOUND
    );
    let per = api(&client, &per_matcher_path, Some(&tok)).await.json();
    assert_eq!(per["subscriptions"], json!([e2]));
    hub.shutdown().await;
}

/// Authorization (spec "Subscription API", RFC 6750): 401 without a token (even on an anonymous
/// hub), 403 without a grant on the path, the path alone is the topic (query ignored), URL
/// pattern grants cover the namespace.
#[tokio::test]
async fn api_authorization() {
    let hub = TestHub::start_with(|c| {
        c.subscriptions = true;
        c.anonymous = true;
    })
    .await;
    let client = hub.client(Proto::H2c).await;
    let topic = unique("auth");
    let path = format!("{NS}/exact/{}", enc(&topic));

    let missing = api(&client, &path, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let challenge = missing.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{challenge}"
    );

    let forged = hs256_token(
        "a-secret-the-hub-does-not-know-0123456789abcdef",
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            json!([subscribe_detail(&[("*", "")])]),
        ),
    );
    let bad = api(&client, &path, Some(&forged)).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));

    let other = api(&client, &path, Some(&subscriber_token(&[(&topic, "")]))).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));

    let exact = subscriber_token(&[(&path, "")]);
    assert_eq!(
        api(&client, &path, Some(&exact)).await.status,
        StatusCode::OK
    );
    let with_query = api(&client, &format!("{path}?foo=bar"), Some(&exact)).await;
    assert_eq!(
        with_query.status,
        StatusCode::OK,
        "the query is not part of the topic"
    );
    // A grant naming the path with a query does not match the path.
    let with_q_grant = subscriber_token(&[(&format!("{path}?foo=bar"), "")]);
    let r = api(&client, &format!("{path}?foo=bar"), Some(&with_q_grant)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The exact grant on one matcher's collection does not cover the whole collection.
    assert_eq!(
        api(&client, NS, Some(&exact)).await.status,
        StatusCode::FORBIDDEN
    );
    // A URL pattern grant over the namespace covers every endpoint.
    let broad = subscriber_token(&[("/.well-known/mercure/subscriptions{/*}?", "urlpattern")]);
    assert_eq!(api(&client, NS, Some(&broad)).await.status, StatusCode::OK);
    assert_eq!(
        api(&client, &path, Some(&broad)).await.status,
        StatusCode::OK
    );
    // A URL pattern scoped to one matcher's (encoded) path: its collection, its subscriptions
    // and its events, nothing else (the README's presence example).
    let scoped = subscriber_token(&[(&format!("{path}{{/*}}?"), "urlpattern")]);
    assert_eq!(
        api(&client, &path, Some(&scoped)).await.status,
        StatusCode::OK
    );
    let unknown = format!(
        "{path}/{}",
        enc("urn:uuid:00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(
        api(&client, &unknown, Some(&scoped)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api(&client, NS, Some(&scoped)).await.status,
        StatusCode::FORBIDDEN
    );
    let other_path = format!("{NS}/exact/{}", enc(&unique("other")));
    assert_eq!(
        api(&client, &other_path, Some(&scoped)).await.status,
        StatusCode::FORBIDDEN
    );
    let mut w = subscribe(
        &client,
        &match_param("match_urlpattern", &format!("{path}/:subscriber")),
        &scoped,
    )
    .await;
    let _s = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
    let (_, e) = next_sub_event(&mut w).await;
    assert_eq!(
        (e["match"].clone(), e["active"].clone()),
        (json!(topic), json!(true))
    );
    hub.shutdown().await;
}

/// `If-None-Match` equal to the ETag → 304 with the ETag and no body; `earliest` before any
/// event; a change moves the cursor.
#[tokio::test]
async fn etag_and_not_modified() {
    let hub = start().await;
    let client = hub.client(Proto::H1).await;
    let tok = subscribe_all();
    let first = api(&client, NS, Some(&tok)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("etag"), Some("\"earliest\""));
    assert_eq!(first.header("link"), Some(link_for("earliest").as_str()));
    assert_eq!(first.json()["subscriptions"], json!([]));
    let not_modified = client
        .send(
            Request::get(NS)
                .bearer(&tok)
                .header("if-none-match", "\"earliest\""),
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some("\"earliest\""));
    assert!(not_modified.body.is_empty());

    let mut w = watcher(&client, &[]).await;
    let (own_id, _) = next_sub_event(&mut w).await;
    let modified = client
        .send(
            Request::get(NS)
                .bearer(&tok)
                .header("if-none-match", "\"earliest\""),
        )
        .await;
    assert_eq!(modified.status, StatusCode::OK);
    let etag = format!("\"{own_id}\"");
    assert_eq!(modified.header("etag"), Some(etag.as_str()));
    let again = client
        .send(Request::get(NS).bearer(&tok).header("if-none-match", &etag))
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    hub.shutdown().await;
}

/// `mercure_subscriptions: true` in the resource metadata only when the feature is on.
#[tokio::test]
async fn metadata_advertises_the_feature() {
    const METADATA: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";
    let on = start().await;
    let doc = on
        .client(Proto::H1)
        .await
        .send(Request::get(METADATA))
        .await
        .json();
    assert_eq!(doc["mercure_subscriptions"], true);
    on.shutdown().await;
    let off = TestHub::start().await;
    let doc = off
        .client(Proto::H1)
        .await
        .send(Request::get(METADATA))
        .await
        .json();
    assert!(doc.get("mercure_subscriptions").is_none(), "{doc}");
    off.shutdown().await;
}

/// Feature off (the default): the API routes do not exist and no subscription event is
/// published (a marker published after a connect and a disconnect arrives first).
#[tokio::test]
async fn feature_off_has_no_routes_and_no_events() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    for path in [
        NS.to_owned(),
        format!("{NS}/exact/a"),
        format!("{NS}/exact/a/b"),
    ] {
        let r = api(&client, &path, Some(&subscribe_all())).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let marker = unique("marker");
    let mut w = watcher(&client, &[&marker]).await;
    let topic = unique("off");
    let s = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
    let id1 = publish(&client, &marker, "one").await;
    assert_eq!(w.next_event(DEADLINE).await.expect("marker").id, Some(id1));
    drop(s);
    // The disconnect is seen by the hub when the connection's stream ends; a fresh connection
    // proves nothing is announced whatever the timing.
    let other = hub.client(Proto::H2c).await;
    let s2 = subscribe(&other, &match_param("match", &topic), &subscribe_all()).await;
    drop(s2);
    drop(other);
    let id2 = publish(&client, &marker, "two").await;
    assert_eq!(w.next_event(DEADLINE).await.expect("marker").id, Some(id2));
    hub.shutdown().await;
}

/// A `HEAD` probe of the subscribe endpoint is not a subscription: no events.
#[tokio::test]
async fn head_probe_is_not_announced() {
    let hub = start().await;
    let client = hub.client(Proto::H1).await;
    let marker = unique("marker");
    let mut w = watcher(&client, &[&marker]).await;
    let (_, own) = next_sub_event(&mut w).await;
    assert_eq!(own["match"], ALL_EVENTS);
    next_sub_event(&mut w).await; // the marker matcher's own arrival
    let topic = unique("head");
    let head = client
        .send(
            Request::new(
                http::Method::HEAD,
                &sub_target(&match_param("match", &topic)),
            )
            .bearer(&subscribe_all()),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    let id = publish(&client, &marker, "m").await;
    assert_eq!(w.next_event(DEADLINE).await.expect("marker").id, Some(id));
    hub.shutdown().await;
}

/// Spec "Subscription API" + "Reconciliation": read the API, subscribe with its cursor, and every
/// later change is seen exactly once while subscribers come and go concurrently; the snapshot
/// plus the events equals the final state.
#[tokio::test]
async fn api_and_cursor_are_consistent() {
    let hub = start().await;
    let client = hub.client(Proto::H2c).await;
    let tok = subscribe_all();
    let topic = format!("presence-{}", uuid::Uuid::new_v4());
    let events_pattern = format!("{NS}/exact/{topic}/:subscriber");
    let collection = format!("{NS}/exact/{topic}");
    let marker = unique("marker");

    // Counts every change of the collection, to know when the churn is over.
    let mut counter = subscribe(
        &client,
        &match_param("match_urlpattern", &events_pattern),
        &tok,
    )
    .await;

    const N: usize = 24;
    let churn_client = Arc::new(hub.client(Proto::H2c).await);
    let churn = {
        let client = Arc::clone(&churn_client);
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            for i in 0..N {
                let s = subscribe(&client, &match_param("match", &topic), &subscribe_all()).await;
                if i % 3 == 0 {
                    kept.push(s);
                } else {
                    drop(s);
                }
            }
            kept
        })
    };
    // Meanwhile: snapshot, then subscribe from its cursor.
    let snap = api(&client, &collection, Some(&tok)).await;
    assert_eq!(snap.status, StatusCode::OK);
    let link = snap.header("link").unwrap().to_owned();
    let cursor = link
        .split("last-event-id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(snap.header("etag"), Some(format!("\"{cursor}\"").as_str()));
    let q = format!(
        "{}&{}&last_event_id={}",
        match_param("match_urlpattern", &events_pattern),
        match_param("match", &marker),
        enc(&cursor)
    );
    let mut follower = subscribe(&client, &q, &tok).await;

    let kept = churn.await.unwrap();
    let expected_active = kept.len();
    // Wait until every connect and disconnect of the churn was dispatched.
    let (mut on, mut off) = (0, 0);
    while on < N || off < N - expected_active {
        let (_, e) = next_sub_event(&mut counter).await;
        if e["active"] == true {
            on += 1;
        } else {
            off += 1;
        }
    }
    let marker_id = publish(&client, &marker, "end").await;

    // Snapshot + events after the cursor, each applied exactly once.
    let mut state: BTreeSet<String> = snap.json()["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["subscriber"].as_str().unwrap().to_owned())
        .collect();
    let mut seen_ids = BTreeSet::new();
    loop {
        let ev = follower
            .next_event(DEADLINE)
            .await
            .unwrap_or_else(|| panic!("follower stalled: {}", follower.raw_str()));
        let id = ev.id.clone().unwrap();
        assert!(seen_ids.insert(id.clone()), "event {id} delivered twice");
        if id == marker_id {
            break;
        }
        let e: Value = serde_json::from_str(&ev.data).unwrap();
        let sub = e["subscriber"].as_str().unwrap().to_owned();
        if e["active"] == true {
            assert!(
                state.insert(sub),
                "a connect already in the snapshot was replayed: {e}"
            );
        } else {
            assert!(
                state.remove(&sub),
                "a disconnect of an unknown subscription: {e}"
            );
        }
    }
    let fin = api(&client, &collection, Some(&tok)).await.json();
    let final_state: BTreeSet<String> = fin["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["subscriber"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(state, final_state);
    assert_eq!(final_state.len(), expected_active);
    drop(kept);
    hub.shutdown().await;
}

/// Removal publishes `active: false` exactly once per subscription, whoever removes it first
/// (the stream's end, the reaper, a repeated removal).
#[tokio::test]
async fn disconnect_is_announced_exactly_once() {
    use quicksilver::auth::Grants;
    use quicksilver::history::MemoryHistory;
    use quicksilver::hub::{validate, CursorRequest, Hub, HubOptions, Publication, StreamOptions};
    use quicksilver::topic::{HubUrl, MatcherEngine, MatcherType};

    let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
    let engine = Arc::new(MatcherEngine::new(HubUrl::new(&url), 1000));
    let hub = Hub::with_options(
        Arc::clone(&engine),
        Box::new(MemoryHistory::new(1000)),
        1000,
        HubOptions {
            subscription_events: Some("/.well-known/mercure".into()),
        },
    );
    let all =
        Arc::new(Grants::from_details(json!([subscribe_detail(&[("*", "")])]), &engine).unwrap());
    let w = hub
        .subscribe(
            vec![
                engine.compile(MatcherType::UrlPattern, ALL_EVENTS).unwrap(),
                engine.compile(MatcherType::Exact, "marker").unwrap(),
            ],
            Some(Arc::clone(&all)),
            CursorRequest::None,
            StreamOptions::announced(),
        )
        .unwrap()
        .subscriber;
    let s = hub
        .subscribe(
            vec![engine.compile(MatcherType::Exact, "t").unwrap()],
            None,
            CursorRequest::None,
            StreamOptions::announced(),
        )
        .unwrap()
        .subscriber;
    let overdue = hub
        .subscribe(
            vec![engine.compile(MatcherType::Exact, "u").unwrap()],
            None,
            CursorRequest::None,
            StreamOptions {
                deadline: Some(tokio::time::Instant::now()),
                ..StreamOptions::announced()
            },
        )
        .unwrap()
        .subscriber;
    hub.unsubscribe(&s);
    hub.unsubscribe(&s);
    let now = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    assert_eq!(
        hub.reap(
            now,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            None
        ),
        1
    );
    hub.unsubscribe(&overdue); // its stream ending afterwards
    let publication = Publication {
        topics: vec!["marker".into()],
        data: "end".into(),
        ..Publication::default()
    };
    // Changes queued before a publish are dispatched before it.
    hub.publish(validate(publication, engine.hub()).unwrap())
        .await
        .unwrap();
    // The publisher is answered once its update is committed; the fan-out follows.
    hub.flush().await;
    let mut seen = Vec::new();
    while let Some(u) = w.pop() {
        let frame = String::from_utf8(u.frame.to_vec()).unwrap();
        seen.push(frame);
    }
    let count = |needle: &str| seen.iter().filter(|f| f.contains(needle)).count();
    assert_eq!(count("\"match\":\"t\""), 2, "{seen:#?}");
    assert_eq!(count("\"match\":\"u\""), 2, "{seen:#?}");
    assert_eq!(count("\"active\":false"), 2, "{seen:#?}");
    assert!(seen.last().unwrap().contains("data: end"), "{seen:#?}");
    assert!(seen
        .iter()
        .all(|f| f.contains("event: mercure") || f.contains("data: end")));
}

/// Causal order through the writer: presence changes queued before a publish are dispatched
/// before it, even when they span several batches; the registry then holds all of them.
#[tokio::test]
async fn changes_before_a_publish_are_dispatched_before_it() {
    use quicksilver::history::MemoryHistory;
    use quicksilver::hub::{
        validate, CursorRequest, Hub, HubOptions, Publication, StreamOptions, SubscriptionQuery,
    };
    use quicksilver::topic::{HubUrl, MatcherEngine, MatcherType};

    let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
    let engine = Arc::new(MatcherEngine::new(HubUrl::new(&url), 1000));
    let hub = Hub::with_options(
        Arc::clone(&engine),
        Box::new(MemoryHistory::new(100_000)),
        16,
        HubOptions {
            subscription_events: Some("/.well-known/mercure".into()),
        },
    );
    const N: usize = 5_000;
    let subs: Vec<_> = (0..N)
        .map(|i| {
            let m = engine
                .compile(MatcherType::Exact, &format!("t{}", i % 7))
                .unwrap();
            hub.subscribe(
                vec![m],
                None,
                CursorRequest::None,
                StreamOptions::announced(),
            )
            .unwrap()
            .subscriber
        })
        .collect();
    for s in &subs[..N / 2] {
        hub.unsubscribe(s);
    }
    let publication = Publication {
        topics: vec!["marker".into()],
        data: "end".into(),
        ..Publication::default()
    };
    let marker = hub
        .publish(validate(publication, engine.hub()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        marker.seq,
        (N + N / 2 + 1) as u64,
        "every change before the marker"
    );
    let snap = hub.subscriptions(&SubscriptionQuery::All).await.unwrap();
    assert_eq!(snap.subscriptions.len(), N - N / 2);
    assert_eq!(snap.last_event_id.as_deref(), Some(&*marker.id));
    let one = hub
        .subscriptions(&SubscriptionQuery::Matcher(MatcherType::Exact, "t3".into()))
        .await
        .unwrap();
    let expected = (N / 2..N).filter(|i| i % 7 == 3).count();
    assert_eq!(one.subscriptions.len(), expected);
}
