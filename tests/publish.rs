//! Publication (spec "Publication", "Server-Sent Events Field Injection", "Reserved Hub Namespace",
//! "Resource Limits"): success and the id over every protocol, every 400 rule, the 413 limits,
//! unknown fields, `private` by presence, and `data` line splitting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;

const HUB: &str = "/.well-known/mercure";
const FORM: &str = "application/x-www-form-urlencoded";

/// Protocols every looped case runs over.
const PROTOS: [Proto; 4] = [Proto::H1, Proto::H2c, Proto::TlsH2, Proto::TlsH1];

async fn publish(client: &TestClient, token: &str, pairs: &[(&str, &str)]) -> Response {
    client
        .send(Request::post(HUB).bearer(token).form(pairs))
        .await
}

/// Publishes a form body written by hand (for bytes the serializer would escape).
async fn publish_raw(client: &TestClient, token: &str, body: &str) -> Response {
    client
        .send(
            Request::post(HUB)
                .bearer(token)
                .header("content-type", FORM)
                .body(body.to_owned()),
        )
        .await
}

/// Opens a subscription to `topic` (exact match) and waits for its headers, so the subscriber is
/// registered before anything is published.
async fn subscribe(client: &TestClient, topic: &str, token: Option<&str>) -> SseStream {
    let mut req = Request::sse(&sub_target(&match_param("match", topic)));
    if let Some(token) = token {
        req = req.bearer(token);
    }
    let stream = client.open_stream(req).await;
    assert_eq!(stream.status, StatusCode::OK, "subscribe to {topic}");
    stream
}

fn lossy(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// Spec "Error Responses": a 400 for a request malformed independently of the token carries no
/// Bearer challenge; the body explains the rejection.
fn assert_plain_400(resp: &Response, what: &str) {
    assert_eq!(
        resp.status,
        StatusCode::BAD_REQUEST,
        "{what}: body {:?}",
        lossy(resp)
    );
    assert!(
        !lossy(resp).trim().is_empty(),
        "{what}: 400 without an explanation"
    );
    assert_eq!(
        resp.header("www-authenticate"),
        None,
        "{what}: a request defect is not a token defect"
    );
}

fn assert_413(resp: &Response, what: &str) {
    assert_eq!(
        resp.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{what}: body {:?}",
        lossy(resp)
    );
    assert!(!lossy(resp).trim().is_empty(), "{what}: 413 without text");
    assert_eq!(resp.header("www-authenticate"), None, "{what}");
}

/// Publishes a public marker on `topic` and asserts it is the very next event `stream` gets:
/// proves the stream could receive and that nothing else was delivered before it.
async fn assert_next_is_marker(
    client: &TestClient,
    stream: &mut SseStream,
    topic: &str,
    what: &str,
) {
    let marker = format!("marker after {what}");
    let resp = publish(
        client,
        &publish_all(),
        &[("topic", topic), ("data", &marker)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{what}: marker publish");
    let ev = stream
        .next_event(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("{what}: marker not received"));
    assert_eq!(ev.data, marker, "{what}: an earlier update was delivered");
    assert_eq!(ev.id.as_deref(), Some(resp.text()), "{what}");
}

// Spec "Publication": 200, `text/plain; charset=utf-8`, body = the generated id; hub-generated
// ids are IRIs (`urn:uuid:` + UUIDv7 here, reference hub §1.3 step 11).
#[tokio::test]
async fn generated_id_is_a_urn_uuid_v7_on_every_protocol() {
    let hub = TestHub::start().await;
    for proto in PROTOS {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/generated/{proto:?}");
        let mut stream = subscribe(&client, &topic, Some(&subscribe_all())).await;
        let resp = publish(
            &client,
            &publish_all(),
            &[("topic", &topic), ("data", "hello")],
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}: {}", lossy(&resp));
        assert_eq!(resp.version, proto.version(), "{proto:?}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{proto:?}"
        );
        let id = resp.text();
        let uuid = id
            .strip_prefix("urn:uuid:")
            .unwrap_or_else(|| panic!("{proto:?}: id {id:?} is not urn:uuid:"));
        let uuid = uuid::Uuid::parse_str(uuid).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7, "{proto:?}: {id}");
        let ev = stream.next_event(DEADLINE).await.expect("event");
        assert_eq!(
            ev,
            SseEvent::data("hello").with_id(id),
            "{proto:?}: no event type, no retry"
        );

        // A second update gets a different id.
        let again = publish(&client, &publish_all(), &[("topic", &topic)]).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_ne!(again.text(), id, "{proto:?}: ids must differ");
        let ev = stream.next_event(DEADLINE).await.expect("second event");
        assert_eq!(ev.id.as_deref(), Some(again.text()));
        assert_eq!(ev.data, "", "absent data is an empty data field");
    }
    hub.shutdown().await;
}

// Spec "Publication": a publisher-supplied `id` is used verbatim (also as the response body);
// `type` becomes the SSE `event`, `retry` the SSE `retry`.
#[tokio::test]
async fn given_id_type_and_retry_reach_the_subscriber_on_every_protocol() {
    let hub = TestHub::start().await;
    for proto in PROTOS {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/given/{proto:?}");
        let id = format!("https://example.com/révisions/{proto:?}?v=1");
        let mut stream = subscribe(&client, &topic, Some(&subscribe_all())).await;
        let resp = publish(
            &client,
            &publish_all(),
            &[
                ("topic", &topic),
                ("data", "{\"a\":1}"),
                ("id", &id),
                ("type", "book-updated"),
                ("retry", "1500"),
            ],
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}: {}", lossy(&resp));
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{proto:?}"
        );
        assert_eq!(resp.text(), id, "{proto:?}: the id verbatim");
        let ev = stream.next_event(DEADLINE).await.expect("event");
        assert_eq!(
            ev,
            SseEvent::data("{\"a\":1}")
                .with_id(&id)
                .with_event("book-updated")
                .with_retry(1500),
            "{proto:?}"
        );
    }
    hub.shutdown().await;
}

// Spec "Publication": at least one `topic` is required → 400, whatever the protocol.
#[tokio::test]
async fn missing_topic_is_400_on_every_protocol() {
    let hub = TestHub::start().await;
    for proto in PROTOS {
        let client = hub.client(proto).await;
        let resp = publish(&client, &publish_all(), &[("data", "no topic")]).await;
        assert_plain_400(&resp, &format!("{proto:?} missing topic"));
        let resp = publish_raw(&client, &publish_all(), "").await;
        assert_plain_400(&resp, &format!("{proto:?} empty body"));
    }
    hub.shutdown().await;
}

// Spec "Publication": no topic may be exactly `*` or address the reserved hub namespace
// (resolved against the hub URL, dot-segments removed, unreserved escapes decoded), canonical or
// alternate, "regardless of the presented access token" → 400. Reference hub §8 item 31.
#[tokio::test]
async fn star_and_reserved_topics_are_400_even_with_a_publish_all_token() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    for topic in [
        "*",
        "/.well-known/mercure",
        "/.well-known/mercure/",
        "/.well-known/mercure/subscriptions/foo",
        "https://any.example/.well-known/mercure/x",
        "https://localhost/.well-known/mercure",
        "mercure/subscriptions/foo",
        "/.well-known/%6Dercure/x",
        "/.well-known/mercure/../mercure/x",
        "/foo/%2E%2E/.well-known/mercure",
        "",
    ] {
        let resp = publish(&client, &publish_all(), &[("topic", topic), ("data", "x")]).await;
        assert_plain_400(&resp, &format!("canonical topic {topic:?}"));
        let resp = publish(
            &client,
            &publish_all(),
            &[("topic", "https://example.com/ok"), ("topic", topic)],
        )
        .await;
        assert_plain_400(&resp, &format!("alternate topic {topic:?}"));
    }
    hub.shutdown().await;
}

// Spec "Publication": both rules reject the request "regardless of the presented access token":
// a token without a grant on the topic still gets 400 (not 403).
#[tokio::test]
async fn reserved_topics_are_400_whatever_the_token_grants() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let narrow = publisher_token(&[("https://example.com/only", "")]);
    for topic in ["*", "/.well-known/mercure/subscriptions/foo", ""] {
        let resp = publish(&client, &narrow, &[("topic", topic)]).await;
        assert_plain_400(&resp, &format!("narrow token, topic {topic:?}"));
    }
    hub.shutdown().await;
}

// Spec "Publication": only the hub path subtree is reserved; look-alikes are ordinary topics.
#[tokio::test]
async fn reserved_lookalikes_are_accepted() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    for topic in [
        "/.well-known/mercure-dashboard",
        "/foo/.well-known/mercure/bar",
        "urn:example:mercure",
    ] {
        let mut stream = subscribe(&client, topic, Some(&subscribe_all())).await;
        let resp = publish(&client, &publish_all(), &[("topic", topic), ("data", "ok")]).await;
        assert_eq!(resp.status, StatusCode::OK, "{topic:?}: {}", lossy(&resp));
        let ev = stream.next_event(DEADLINE).await.expect("event");
        assert_eq!(ev.id.as_deref(), Some(resp.text()), "{topic:?}");
    }
    hub.shutdown().await;
}

// Spec "Publication": `type=mercure` is reserved; `id` must not start with `#` nor be
// `earliest`; `retry` must be ASCII digits only → 400. Reference hub §8 items 32, 33.
#[tokio::test]
async fn type_id_and_retry_rules_are_400() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let topic = "https://example.com/fields";
    for (field, value) in [
        ("type", "mercure"),
        ("id", "#frag"),
        ("id", "#"),
        ("id", "earliest"),
        ("retry", "abc"),
        ("retry", "12a"),
        ("retry", "-1"),
        ("retry", "+1"),
        ("retry", "1.5"),
        ("retry", " 1"),
        ("retry", ""),
    ] {
        let resp = publish(&client, &publish_all(), &[("topic", topic), (field, value)]).await;
        assert_plain_400(&resp, &format!("{field}={value:?}"));
    }
    hub.shutdown().await;
}

// Spec "Terminology" (Topic) and "Publication" (`id`, `type`): no C0, DEL, C1 or Unicode `Cf`
// characters → 400; "Server-Sent Events Field Injection". Reference hub §8 items 1, 2, 15.
#[tokio::test]
async fn control_and_format_characters_are_400_in_topic_id_and_type() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    for bad in [
        "\0", "\n", "\r", "\u{7f}", "\u{9f}", "\u{202e}", "\u{200b}", "\u{feff}",
    ] {
        let value = format!("https://example.com/x{bad}y");
        for field in ["topic", "id", "type"] {
            let mut pairs = vec![("data", "x"), (field, value.as_str())];
            if field != "topic" {
                pairs.push(("topic", "https://example.com/chars"));
            }
            let resp = publish(&client, &publish_all(), &pairs).await;
            assert_plain_400(&resp, &format!("{field} with {bad:?}"));
        }
        // As an alternate topic too.
        let resp = publish(
            &client,
            &publish_all(),
            &[("topic", "https://example.com/chars"), ("topic", &value)],
        )
        .await;
        assert_plain_400(&resp, &format!("alternate topic with {bad:?}"));
    }
    hub.shutdown().await;
}

// Spec "Publication": field names and values MUST be UTF-8; `%FF` decodes to an invalid byte.
#[tokio::test]
async fn invalid_utf8_is_400() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    for body in [
        "topic=%FF",
        "topic=https%3A%2F%2Fexample.com%2F%FF",
        "topic=https%3A%2F%2Fexample.com%2Fa&id=%FF",
        "topic=https%3A%2F%2Fexample.com%2Fa&type=%C3",
        "topic=https%3A%2F%2Fexample.com%2Fa&data=%FF%FE",
    ] {
        let resp = publish_raw(&client, &publish_all(), body).await;
        assert_plain_400(&resp, body);
    }
    hub.shutdown().await;
}

// Spec "Publication": the request MUST be `application/x-www-form-urlencoded`.
#[tokio::test]
async fn other_content_types_are_400() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H1).await;
    let multipart = "--xyz\r\nContent-Disposition: form-data; name=\"topic\"\r\n\r\n\
                     https://example.com/multipart\r\n--xyz--\r\n";
    let resp = client
        .send(
            Request::post(HUB)
                .bearer(&publish_all())
                .header("content-type", "multipart/form-data; boundary=xyz")
                .body(multipart),
        )
        .await;
    assert_plain_400(&resp, "multipart/form-data");
    let resp = client
        .send(
            Request::post(HUB)
                .bearer(&publish_all())
                .header("content-type", "application/json")
                .body(r#"{"topic":"https://example.com/json"}"#),
        )
        .await;
    assert_plain_400(&resp, "application/json");
    // The media type is matched case-insensitively and parameters are allowed.
    let resp = client
        .send(
            Request::post(HUB)
                .bearer(&publish_all())
                .header(
                    "content-type",
                    "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                )
                .body("topic=https%3A%2F%2Fexample.com%2Fform"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", lossy(&resp));
    hub.shutdown().await;
}

// Spec "Publication": a rejected update is not dispatched, not even on its valid topics.
#[tokio::test]
async fn rejected_updates_are_not_delivered() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    let topic = "https://example.com/rejected";
    let mut stream = subscribe(&client, topic, Some(&subscribe_all())).await;
    for pairs in [
        vec![("topic", topic), ("topic", "/.well-known/mercure/x")],
        vec![("topic", topic), ("topic", "*")],
        vec![("topic", topic), ("type", "mercure")],
        vec![("topic", topic), ("retry", "soon")],
        vec![("topic", topic), ("id", "earliest")],
    ] {
        let resp = publish(&client, &publish_all(), &pairs).await;
        assert_plain_400(&resp, &format!("{pairs:?}"));
    }
    assert_next_is_marker(&client, &mut stream, topic, "rejected updates").await;
    hub.shutdown().await;
}

// Spec "Publication": body over the size limit → 413; but authorization comes first, so an
// unauthenticated oversized request is 401 (reference hub §1.3 step 2, §8 item 3).
#[tokio::test]
async fn body_over_the_limit_is_413_but_401_without_a_valid_token() {
    let hub = TestHub::start_with(|c| c.max_request_body_size = Some(1024)).await;
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let big = "a".repeat(2048);
        let resp = publish(
            &client,
            &publish_all(),
            &[("topic", "https://example.com/big"), ("data", &big)],
        )
        .await;
        assert_413(&resp, &format!("{proto:?} 2 KiB body"));

        let fits = "a".repeat(900);
        let resp = publish(
            &client,
            &publish_all(),
            &[("topic", "https://example.com/big"), ("data", &fits)],
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?} 900 B data");

        let resp = client
            .send(Request::post(HUB).form(&[("topic", "https://example.com/big"), ("data", &big)]))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::UNAUTHORIZED,
            "{proto:?} no token, big body"
        );
        let www = resp.header("www-authenticate").expect("challenge");
        assert!(!www.contains("error="), "{www}");

        let expired = hs256_token(
            PUBLISHER_SECRET,
            claims(
                ISSUER,
                RESOURCE,
                unix_now() - 60,
                serde_json::json!([publish_detail(&[("*", "")])]),
            ),
        );
        let resp = publish(
            &client,
            &expired,
            &[("topic", "https://example.com/big"), ("data", &big)],
        )
        .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{proto:?} bad token");
        let www = resp.header("www-authenticate").expect("challenge");
        assert!(www.contains("error=\"invalid_token\""), "{www}");
    }
    hub.shutdown().await;
}

// Spec "Publication": more `topic` fields than the implementation limit → 413.
#[tokio::test]
async fn too_many_topics_is_413() {
    let hub = TestHub::start_with(|c| c.max_topics_per_update = 3).await;
    let client = hub.client(Proto::H1).await;
    let topics: Vec<String> = (0..4)
        .map(|i| format!("https://example.com/many/{i}"))
        .collect();
    let mut pairs: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", t.as_str())).collect();
    let resp = publish(&client, &publish_all(), &pairs).await;
    assert_413(&resp, "4 topics, limit 3");
    pairs.pop();
    let resp = publish(&client, &publish_all(), &pairs).await;
    assert_eq!(resp.status, StatusCode::OK, "3 topics: {}", lossy(&resp));
    hub.shutdown().await;
}

// Spec "Publication": a field longer than the implementation limit → 413.
#[tokio::test]
async fn field_over_the_length_limit_is_413() {
    let hub = TestHub::start_with(|c| c.max_field_length = 64).await;
    let client = hub.client(Proto::H1).await;
    let prefix = "https://example.com/";
    let at_limit = format!("{prefix}{}", "a".repeat(64 - prefix.len()));
    let over = format!("{at_limit}a");
    assert_eq!(at_limit.len(), 64);
    for (field, value) in [("topic", &over), ("id", &over), ("type", &over)] {
        let mut pairs = vec![(field, value.as_str())];
        if field != "topic" {
            pairs.push(("topic", "https://example.com/len"));
        }
        let resp = publish(&client, &publish_all(), &pairs).await;
        assert_413(&resp, &format!("{field} of {} bytes", value.len()));
    }
    let resp = publish(
        &client,
        &publish_all(),
        &[("topic", &at_limit), ("id", &at_limit), ("type", &at_limit)],
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "at the limit: {}",
        lossy(&resp)
    );
    hub.shutdown().await;
}

// Spec "Publication": "hubs MUST ignore fields they do not recognize" (names are
// case-sensitive; `privately` does not make the update private, so an anonymous subscriber gets it).
#[tokio::test]
async fn unknown_fields_are_ignored() {
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let client = hub.client(Proto::H2c).await;
    let topic = "https://example.com/unknown-fields";
    let mut stream = subscribe(&client, topic, None).await;
    let resp = publish_raw(
        &client,
        &publish_all(),
        "foo=bar&topic=https%3A%2F%2Fexample.com%2Funknown-fields&Topic=x&unknown%5B%5D=1&data=d&\
         extension&DATA=nope&privately=1",
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", lossy(&resp));
    let ev = stream.next_event(DEADLINE).await.expect("event");
    assert_eq!(ev, SseEvent::data("d").with_id(resp.text()));
    hub.shutdown().await;
}

// Spec "Publication": the presence of `private` marks the update private whatever its value,
// even empty or without `=`; an anonymous subscriber never gets it, an authorized one does.
#[tokio::test]
async fn private_by_presence_even_when_empty() {
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let client = hub.client(Proto::H2c).await;
    let topic = "https://example.com/private-presence";
    let enc = "https%3A%2F%2Fexample.com%2Fprivate-presence";
    let mut anonymous = subscribe(&client, topic, None).await;
    let mut authorized = subscribe(&client, topic, Some(&subscribe_all())).await;
    let mut ids = Vec::new();
    for body in [
        format!("topic={enc}&data=p1&private="),
        format!("topic={enc}&data=p2&private"),
        format!("topic={enc}&data=p3&private=off"),
        format!("topic={enc}&data=p4&private=false"),
        format!("private=0&topic={enc}&data=p5"),
    ] {
        let resp = publish_raw(&client, &publish_all(), &body).await;
        assert_eq!(resp.status, StatusCode::OK, "{body}: {}", lossy(&resp));
        ids.push(resp.text().to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        let ev = authorized
            .next_event(DEADLINE)
            .await
            .expect("private event");
        assert_eq!(ev.data, format!("p{}", i + 1));
        assert_eq!(ev.id.as_deref(), Some(id.as_str()));
    }
    assert_next_is_marker(&client, &mut anonymous, topic, "private updates").await;
    hub.shutdown().await;
}

// Spec "Publication" (`data`) and "Server-Sent Events Field Injection": one `data:` line per
// CR/LF/CRLF-separated line, so the subscriber gets the LF-normalized value and no forged field.
#[tokio::test]
async fn data_line_breaks_are_split_and_cannot_inject_fields() {
    let hub = TestHub::start().await;
    for proto in [Proto::H1, Proto::H2c] {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/injection/{proto:?}");
        let mut stream = subscribe(&client, &topic, Some(&subscribe_all())).await;
        let cases = [
            ("one\rtwo", "one\ntwo"),
            ("one\ntwo", "one\ntwo"),
            ("one\r\ntwo", "one\ntwo"),
            ("\r\n\r\nmixed\r\rend\n", "\n\nmixed\n\nend\n"),
            (
                "a\nid: forged\nevent: mercure\n\ndata: evil",
                "a\nid: forged\nevent: mercure\n\ndata: evil",
            ),
            (
                "a\r\nretry: 1\r\n\r\nid: forged\r\nevent: mercure",
                "a\nretry: 1\n\nid: forged\nevent: mercure",
            ),
        ];
        let mut ids = Vec::new();
        for (data, _) in cases {
            let resp = publish(
                &client,
                &publish_all(),
                &[("topic", &topic), ("data", data)],
            )
            .await;
            assert_eq!(resp.status, StatusCode::OK, "{proto:?} {data:?}");
            ids.push(resp.text().to_owned());
        }
        for ((data, expected), id) in cases.iter().zip(&ids) {
            let ev = stream.next_event(DEADLINE).await.expect("event");
            assert_eq!(
                ev,
                SseEvent::data(expected).with_id(id),
                "{proto:?}: data {data:?} must arrive as one event with the real id and no type"
            );
        }
        // Exactly one event per update: the next one is the marker, nothing forged in between.
        assert_next_is_marker(&client, &mut stream, &topic, "injection attempts").await;

        let raw = stream.raw_str();
        assert!(!raw.contains('\r'), "{proto:?}: CR on the wire: {raw:?}");
        for line in raw.split('\n') {
            assert!(
                line.is_empty()
                    || line == ":"
                    || line.starts_with("data: ")
                    || line.starts_with("id: "),
                "{proto:?}: unexpected line {line:?} in {raw:?}"
            );
        }
        let id_lines = raw.split('\n').filter(|l| l.starts_with("id: ")).count();
        assert_eq!(
            id_lines,
            cases.len() + 1,
            "{proto:?}: one id line per update"
        );
    }
    hub.shutdown().await;
}
