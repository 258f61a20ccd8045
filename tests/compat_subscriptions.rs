//! Active subscriptions in compatibility mode (reference hub §4): `topic=` subscriptions get v8
//! events and API (`…/subscriptions/{topic}/{subscriber}`, JSON with `topic`), the modern routes
//! and shapes are unaffected, and modern mode has neither `topic=` nor the v8 routes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{json, Value};

async fn compat_hub() -> TestHub {
    TestHub::start_with(|c| {
        c.protocol_version_compatibility = Some(8);
        c.subscriptions = true;
    })
    .await
}

fn topic_query(topic: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("topic", topic)
        .finish()
}

async fn subscribe(client: &TestClient, query: &str, token: &str) -> SseStream {
    let s = client
        .open_stream(Request::sse(&sub_target(query)).bearer(token))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    s
}

/// A watcher of every subscription event, granted everything.
async fn watcher(client: &TestClient) -> SseStream {
    subscribe(
        client,
        &match_param("match_urlpattern", ALL_EVENTS),
        &subscribe_all(),
    )
    .await
}

/// Reads subscription events until one whose `field` is `value` with `active`.
async fn wait_for(s: &mut SseStream, field: &str, value: &str, active: bool) -> Value {
    wait_for_sub_event(s, field, value, active).await.1
}

async fn api(client: &TestClient, path: &str, token: &str) -> Response {
    client.send(Request::get(path).bearer(token)).await
}

fn listed(collection: &Value) -> BTreeSet<String> {
    collection["subscriptions"]
        .as_array()
        .expect("a subscriptions array")
        .iter()
        .map(Value::to_string)
        .collect()
}

/// A `topic=` subscription (a URI template, and an exact topic with characters to encode) is
/// announced at `…/subscriptions/{topic}/{subscriber}` with `topic` instead of `match`/
/// `match_type`, everything else modern; `active` true then false; the API serves it (single and
/// collection) while it lasts, then 404. Payloads: an `authorization_details` one, and the legacy
/// `mercure.payload`.
#[tokio::test]
async fn topic_subscriptions_have_v8_events_and_api() {
    let hub = compat_hub().await;
    let client = hub.client(Proto::H1).await;
    let all = subscribe_all();
    let mut w = watcher(&client).await;
    wait_for(&mut w, "match", ALL_EVENTS, true).await;
    let template = format!("{}/{{id}}", unique("books"));
    let exact = format!("{}/a b/50%25:x?y=é", unique("exact"));
    let modern_tok = hs256_token(
        SUBSCRIBER_SECRET,
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            json!([subscribe_detail_with_payload(
                &[("*", "")],
                json!({"user": "alice"})
            )]),
        ),
    );
    let legacy_tok = sign(
        "HS256",
        &TestKey::hmac(SUBSCRIBER_SECRET.as_bytes()),
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"mercure": {"subscribe": ["*"], "payload": {"user": "bob"}}}),
    );
    for (topic, token, payload) in [
        (&template, &modern_tok, json!({"user": "alice"})),
        (&exact, &legacy_tok, json!({"user": "bob"})),
    ] {
        let s = subscribe(&client, &topic_query(topic), token).await;
        let on = wait_for(&mut w, "topic", topic, true).await;
        let sub_id = on["subscriber"].as_str().unwrap().to_owned();
        assert!(sub_id.starts_with("urn:uuid:"), "{sub_id}");
        let id = format!("{NS}/{}/{}", enc(topic), enc(&sub_id));
        assert_eq!(
            on,
            json!({
                "id": id,
                "type": "subscription",
                "topic": topic,
                "subscriber": sub_id,
                "active": true,
                "payload": payload,
            })
        );
        // Single.
        let one = api(&client, &id, &all).await;
        assert_eq!(one.status, StatusCode::OK, "{id}");
        assert_eq!(one.header("content-type"), Some("application/json"));
        assert_eq!(one.json(), on);
        let cursor = w.last_event_id().to_owned();
        let etag = format!("\"{cursor}\"");
        assert_eq!(one.header("etag"), Some(etag.as_str()));
        assert!(one.header("link").unwrap().contains(&cursor));
        let not_modified = client
            .send(
                Request::get(&id)
                    .bearer(&all)
                    .header("if-none-match", &etag),
            )
            .await;
        assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
        // The topic's collection.
        let coll_path = format!("{NS}/{}", enc(topic));
        let coll = api(&client, &coll_path, &all).await;
        assert_eq!(coll.status, StatusCode::OK);
        assert_eq!(coll.header("etag"), Some(etag.as_str()));
        let coll = coll.json();
        assert_eq!(coll["id"], coll_path.as_str());
        assert_eq!(coll["type"], "subscriptions");
        assert_eq!(coll["subscriptions"], json!([on.clone()]));
        // An exact watcher on the event topic itself receives the disconnect.
        let mut on_topic = subscribe(&client, &match_param("match", &id), &all).await;
        drop(s);
        let (_, off) = next_sub_event(&mut on_topic).await;
        let mut expected = on.clone();
        expected["active"] = json!(false);
        assert_eq!(off, expected);
        wait_for(&mut w, "topic", topic, false).await;
        assert_eq!(api(&client, &id, &all).await.status, StatusCode::NOT_FOUND);
        let coll = api(&client, &coll_path, &all).await;
        assert_eq!(coll.json()["subscriptions"], json!([]));
        // Its disconnect must be an event the watcher has seen before the next round compares
        // the watcher's last event id with the API's cursor.
        drop(on_topic);
        wait_for(&mut w, "match", &id, false).await;
    }
    hub.shutdown().await;
}

/// Both shapes side by side: the same string as `topic=` and as `match=` gives two
/// subscriptions, each at its own routes; the all-subscriptions collection lists both; a
/// two-segment path starting with `exact` stays the modern collection even when a `topic=exact`
/// subscription exists; the same authorization (the request path as a topic) applies.
#[tokio::test]
async fn v8_and_modern_routes_side_by_side() {
    let hub = compat_hub().await;
    let client = hub.client(Proto::H2c).await;
    let all = subscribe_all();
    let mut w = watcher(&client).await;
    let w_own = wait_for(&mut w, "match", ALL_EVENTS, true).await;
    let topic = unique("side");
    let _v8 = subscribe(&client, &topic_query(&topic), &all).await;
    let e_v8 = wait_for(&mut w, "topic", &topic, true).await;
    let _modern = subscribe(&client, &match_param("match", &topic), &all).await;
    let e_modern = wait_for(&mut w, "match", &topic, true).await;
    assert_eq!(e_modern["match_type"], "exact");
    assert!(e_modern.get("topic").is_none() && e_v8.get("match").is_none());
    let _literal = subscribe(&client, &topic_query("exact"), &all).await;
    let e_literal = wait_for(&mut w, "topic", "exact", true).await;

    let everything = api(&client, NS, &all).await;
    assert_eq!(everything.status, StatusCode::OK);
    let expected: BTreeSet<String> = [&w_own, &e_v8, &e_modern, &e_literal]
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(listed(&everything.json()), expected);

    let v8_coll = api(&client, &format!("{NS}/{}", enc(&topic)), &all).await;
    assert_eq!(v8_coll.json()["subscriptions"], json!([e_v8.clone()]));
    let modern_coll = api(&client, &format!("{NS}/exact/{}", enc(&topic)), &all).await;
    assert_eq!(
        modern_coll.json()["subscriptions"],
        json!([e_modern.clone()])
    );
    for e in [&e_v8, &e_modern] {
        let one = api(&client, e["id"].as_str().unwrap(), &all).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.json(), *e);
    }
    // `/exact` alone is the v8 collection of the topic "exact"; `/exact/{subscriber}` is the
    // modern collection of the exact matcher "{subscriber}" (empty), not the v8 single.
    let literal_coll = api(&client, &format!("{NS}/exact"), &all).await;
    assert_eq!(
        literal_coll.json()["subscriptions"],
        json!([e_literal.clone()])
    );
    let literal_sub = e_literal["subscriber"].as_str().unwrap();
    assert_eq!(
        e_literal["id"],
        format!("{NS}/exact/{}", enc(literal_sub)).as_str()
    );
    let shadowed = api(&client, &format!("{NS}/exact/{}", enc(literal_sub)), &all).await;
    assert_eq!(shadowed.status, StatusCode::OK);
    assert_eq!(shadowed.json()["type"], "subscriptions");
    assert_eq!(shadowed.json()["subscriptions"], json!([]));
    // Unknown subscriber, or a subscriber under the other shape: 404.
    let unknown = format!(
        "{NS}/{}/{}",
        enc(&topic),
        enc("urn:uuid:00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(
        api(&client, &unknown, &all).await.status,
        StatusCode::NOT_FOUND
    );
    let crossed = format!(
        "{NS}/{}/{}",
        enc(&topic),
        enc(e_modern["subscriber"].as_str().unwrap())
    );
    assert_eq!(
        api(&client, &crossed, &all).await.status,
        StatusCode::NOT_FOUND
    );
    // Authorization: the request path as a topic.
    let v8_path = e_v8["id"].as_str().unwrap();
    let narrow = subscriber_token(&[(v8_path, "")]);
    assert_eq!(api(&client, v8_path, &narrow).await.status, StatusCode::OK);
    let other = subscriber_token(&[(&topic, "")]);
    assert_eq!(
        api(&client, v8_path, &other).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client.send(Request::get(v8_path)).await.status,
        StatusCode::UNAUTHORIZED
    );
    hub.shutdown().await;
}

/// Modern mode: no `topic=` at all, and no v8 routes (one segment: 404; two segments need a
/// matcher type: 400), while the modern routes work as before.
#[tokio::test]
async fn modern_mode_has_no_v8_routes() {
    let hub = TestHub::start_with(|c| c.subscriptions = true).await;
    let client = hub.client(Proto::H1).await;
    let all = subscribe_all();
    let topic = unique("modern");
    let resp = client
        .send(Request::get(&sub_target(&topic_query(&topic))).bearer(&all))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let mut w = watcher(&client).await;
    wait_for(&mut w, "match", ALL_EVENTS, true).await;
    let _s = subscribe(&client, &match_param("match", &topic), &all).await;
    let on = wait_for(&mut w, "match", &topic, true).await;
    assert!(on.get("topic").is_none());
    let id = on["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{NS}/exact/")), "{id}");
    assert_eq!(api(&client, id, &all).await.json(), on);
    let v8_coll = format!("{NS}/{}", enc(&topic));
    assert_eq!(
        api(&client, &v8_coll, &all).await.status,
        StatusCode::NOT_FOUND
    );
    let v8_one = format!("{v8_coll}/{}", enc(on["subscriber"].as_str().unwrap()));
    assert_eq!(
        api(&client, &v8_one, &all).await.status,
        StatusCode::BAD_REQUEST
    );
    hub.shutdown().await;
}
