//! Spec "Reconnection, State Reconciliation, and Event Sourcing" end to end: cursors from the
//! `Last-Event-ID` header, the `last_event_id` parameter (query and QUERY body), `earliest`, unknown
//! and empty cursors, the `Mercure-Last-Event-ID` answer, replay filtering and re-authorization,
//! reused ids, bounded and absent history, and the seam between replay and live delivery.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use http::StatusCode;
use quicksilver::config::HistoryConfig;

const HUB: &str = "/.well-known/mercure";
const TOPIC: &str = "https://example.com/books/1";

/// Publishes over one h2c connection with a publish-everything token.
struct Publisher {
    client: TestClient,
    token: String,
}

impl Publisher {
    async fn new(hub: &TestHub) -> Self {
        Self {
            client: hub.client(Proto::H2c).await,
            token: publish_all(),
        }
    }

    /// Publishes on `topics` (data `data of <id>`) with `id`, or a hub-generated id when `None`;
    /// asserts 200 and returns the id the hub answered.
    async fn send(&self, topics: &[&str], id: Option<&str>, private: bool) -> String {
        let mut form: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
        let data = id.map(|id| format!("data of {id}"));
        if let (Some(id), Some(data)) = (id, data.as_deref()) {
            form.push(("id", id));
            form.push(("data", data));
        }
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
            "publish {id:?} on {topics:?}: {}",
            resp.text()
        );
        if let Some(id) = id {
            assert_eq!(resp.text(), id, "publish answers the update id");
        }
        resp.text().to_owned()
    }

    /// A public update on `TOPIC` with `id`.
    async fn public(&self, id: &str) {
        self.send(&[TOPIC], Some(id), false).await;
    }

    /// Public updates on `TOPIC`, in order.
    async fn public_all(&self, ids: &[&str]) {
        for id in ids {
            self.public(id).await;
        }
    }
}

/// A subscribe request for `query` with a `*` subscribe token.
fn sub(query: &str) -> Request {
    Request::sse(&sub_target(query)).bearer(&subscribe_all())
}

/// `match=TOPIC` plus `extra` (already encoded, may be empty).
fn topic_query(extra: &str) -> String {
    let m = match_param("match", TOPIC);
    if extra.is_empty() {
        m
    } else {
        format!("{m}&{extra}")
    }
}

/// Asserts the next events carry exactly `ids`, in order.
async fn expect_ids(s: &mut SseStream, ids: &[&str], what: &str) {
    for (i, id) in ids.iter().enumerate() {
        let ev = next(s, &format!("{what}: event #{i} (expected {id})")).await;
        assert_eq!(ev.id.as_deref(), Some(*id), "{what}: event #{i} of {ids:?}");
    }
}

/// Asserts the replay is exactly `ids` by publishing a live marker and expecting `ids` then the
/// marker: the marker is published after the stream opened, so it follows the whole replay, and
/// anything else replayed would show up before it.
async fn expect_replay(p: &Publisher, s: &mut SseStream, ids: &[&str], marker: &str, what: &str) {
    p.public(marker).await;
    let mut all = ids.to_vec();
    all.push(marker);
    expect_ids(s, &all, what).await;
}

/// Spec "Reconnection": `Last-Event-ID: a` replays what follows `a`, and the response names the
/// cursor in `Mercure-Last-Event-ID`. On every protocol.
#[tokio::test]
async fn last_event_id_header_replays_what_follows() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b", "c"]).await;
    // Each iteration's live marker is on TOPIC too, so later iterations replay it after `c`.
    let mut replayed = vec!["c".to_owned()];
    for proto in Proto::ALL {
        let client = hub.client(proto).await;
        let mut s = open(&client, sub(&topic_query("")).header("last-event-id", "a")).await;
        assert_eq!(s.header("mercure-last-event-id"), Some("a"), "{proto:?}");
        let b = next(&mut s, "b").await;
        assert_eq!(b, SseEvent::data("data of b").with_id("b"), "{proto:?}");
        let marker = format!("live-{proto:?}");
        let expected: Vec<&str> = replayed.iter().map(String::as_str).collect();
        expect_replay(&p, &mut s, &expected, &marker, &format!("{proto:?}")).await;
        replayed.push(marker);
    }
    hub.shutdown().await;
}

/// Spec "Reconnection": the `last_event_id` query parameter works like the header (browsers
/// cannot set the header on a first connection).
#[tokio::test]
async fn last_event_id_parameter_replays_what_follows() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b", "c"]).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = open(&client, sub(&topic_query("last_event_id=a"))).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("a"));
    expect_replay(&p, &mut s, &["b", "c"], "live", "last_event_id=a").await;
    hub.shutdown().await;
}

/// Spec "Reconnection": the header takes precedence over the parameter; spec "Subscription":
/// with `QUERY`, the query component's `last_event_id` wins over the body's, and a body-only
/// cursor is honoured.
#[tokio::test]
async fn cursor_precedence() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b", "c"]).await;
    let client = hub.client(Proto::H2c).await;

    let mut s = open(
        &client,
        sub(&topic_query("last_event_id=a")).header("last-event-id", "b"),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("b"));
    expect_replay(&p, &mut s, &["c"], "live-1", "header b + parameter a").await;

    // An empty header is no cursor: the parameter applies.
    let mut s = open(
        &client,
        sub(&topic_query("last_event_id=a")).header("last-event-id", ""),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("a"));
    expect_replay(
        &p,
        &mut s,
        &["b", "c", "live-1"],
        "live-2",
        "empty header + parameter a",
    )
    .await;

    let form = "application/x-www-form-urlencoded";
    let mut s = open(
        &client,
        Request::query(&sub_target(&topic_query("last_event_id=b")))
            .bearer(&subscribe_all())
            .header("content-type", form)
            .body("last_event_id=a"),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("b"));
    expect_replay(
        &p,
        &mut s,
        &["c", "live-1", "live-2"],
        "live-3",
        "QUERY: query b + body a",
    )
    .await;

    let mut s = open(
        &client,
        Request::query(HUB)
            .bearer(&subscribe_all())
            .header("content-type", form)
            .body(topic_query("last_event_id=live-1")),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("live-1"));
    expect_replay(
        &p,
        &mut s,
        &["live-2", "live-3"],
        "live-4",
        "QUERY: body-only cursor",
    )
    .await;

    let mut s = open(
        &client,
        Request::query(&sub_target(&topic_query("")))
            .bearer(&subscribe_all())
            .header("content-type", form)
            .header("last-event-id", "live-3")
            .body("last_event_id=a"),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("live-3"));
    expect_replay(
        &p,
        &mut s,
        &["live-4"],
        "live-5",
        "QUERY: header beats body",
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Reconnection": `earliest` replays everything retained, in order, and the header says
/// `earliest`; as a header too.
#[tokio::test]
async fn earliest_replays_everything() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b", "c"]).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = open(&client, sub(&topic_query("last_event_id=earliest"))).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    expect_replay(&p, &mut s, &["a", "b", "c"], "d", "parameter earliest").await;

    let mut s = open(
        &client,
        sub(&topic_query("")).header("last-event-id", "earliest"),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    expect_replay(&p, &mut s, &["a", "b", "c", "d"], "e", "header earliest").await;
    hub.shutdown().await;
}

/// Spec "Reconnection": an unknown cursor replays nothing, the header falls back to `earliest`,
/// and live updates still flow (reference checklist §8 item 46).
#[tokio::test]
async fn unknown_cursor_replays_nothing() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    // Empty history.
    let mut s = open(&client, sub(&topic_query("last_event_id=nope"))).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    expect_replay(&p, &mut s, &[], "a", "unknown cursor, empty history").await;
    // Non-empty history.
    p.public_all(&["b", "c"]).await;
    let mut s = open(
        &client,
        sub(&topic_query("")).header("last-event-id", "urn:uuid:unknown"),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    expect_replay(&p, &mut s, &[], "d", "unknown cursor").await;
    hub.shutdown().await;
}

/// Spec "Reconnection": an empty `last_event_id=` is a cursor with nothing to resume from: no
/// replay, header `earliest` (reference checklist §8 item 46).
#[tokio::test]
async fn empty_cursor_means_no_replay() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b"]).await;
    let client = hub.client(Proto::H2c).await;
    for q in ["last_event_id=", "last_event_id"] {
        let mut s = open(&client, sub(&topic_query(q))).await;
        assert_eq!(s.header("mercure-last-event-id"), Some("earliest"), "{q}");
        let marker = format!("live after {q}");
        expect_replay(&p, &mut s, &[], &marker, q).await;
    }
    hub.shutdown().await;
}

/// A subscriber token granting `subscribe` on exactly `topic`.
fn grant_on(topic: &str) -> String {
    subscriber_token(&[(topic, "")])
}

/// Spec "Reconnection" and "Authorization on Event Replay": replay is filtered by the routing
/// matchers and every replayed event is re-authorized against the current token, exactly like
/// live delivery.
#[tokio::test]
async fn replay_is_routed_and_reauthorized() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let other = "https://example.com/books/2";
    p.send(&[TOPIC], Some("start"), false).await;
    p.send(&[other], Some("other-public"), false).await;
    p.send(&[TOPIC], Some("mine-public"), false).await;
    p.send(&[TOPIC], Some("mine-private"), true).await;
    p.send(&[other], Some("other-private"), true).await;
    p.send(
        &[TOPIC, "https://example.com/users/42/books/1"],
        Some("alt-private"),
        true,
    )
    .await;
    p.send(&[TOPIC], Some("last"), false).await;
    let client = hub.client(Proto::H2c).await;
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "grant on another topic",
            grant_on("https://example.com/books/3"),
            &["mine-public", "last"],
        ),
        (
            "grant on the topic",
            grant_on(TOPIC),
            &["mine-public", "mine-private", "alt-private", "last"],
        ),
        (
            "grant on the alternate topic only",
            subscriber_token(&[("https://example.com/users/42/*", "urlpattern")]),
            &["mine-public", "alt-private", "last"],
        ),
        (
            "grant on everything",
            subscribe_all(),
            &["mine-public", "mine-private", "alt-private", "last"],
        ),
    ];
    for (i, (what, token, expected)) in cases.iter().enumerate() {
        for cursor in ["start", "earliest"] {
            // Each stream also routes its own marker topic, so markers never replay elsewhere.
            let marker_topic = format!("urn:marker:{i}:{cursor}");
            let q = format!(
                "{}&{}",
                topic_query(&format!("last_event_id={cursor}")),
                match_param("match", &marker_topic)
            );
            let mut s = open(&client, Request::sse(&sub_target(&q)).bearer(token)).await;
            assert_eq!(s.header("mercure-last-event-id"), Some(cursor), "{what}");
            let marker = format!("marker-{i}-{cursor}");
            p.send(&[&marker_topic], Some(&marker), false).await;
            let mut all: Vec<&str> = if cursor == "earliest" {
                vec!["start"]
            } else {
                vec![]
            };
            all.extend_from_slice(expected);
            all.push(&marker);
            expect_ids(&mut s, &all, &format!("{what}, cursor {cursor}")).await;
        }
    }

    // The cursor may name an event the subscriber does not route or may not read: it is still a
    // position in history.
    let mut s = open(
        &client,
        Request::sse(&sub_target(&topic_query("last_event_id=other-private")))
            .bearer(&grant_on("https://example.com/books/3")),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some("other-private"));
    let next_ev = next(&mut s, "after other-private").await;
    assert_eq!(next_ev.id.as_deref(), Some("last"));
    hub.shutdown().await;
}

/// Spec "Reconnection": an id used by several updates resolves to its earliest occurrence, and
/// later updates reusing it are replayed.
#[tokio::test]
async fn reused_id_resolves_to_the_earliest_occurrence() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["x", "y", "x", "z"]).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = open(&client, sub(&topic_query("")).header("last-event-id", "x")).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("x"));
    expect_replay(&p, &mut s, &["y", "x", "z"], "live", "cursor x").await;
    hub.shutdown().await;
}

/// Reference checklist §5 (local transport): without history every cursor resolves to
/// `earliest` and nothing is replayed; live delivery is unaffected.
#[tokio::test]
async fn without_history_nothing_is_replayed() {
    let hub = TestHub::start_with(|c| c.history = HistoryConfig::None).await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["a", "b"]).await;
    let client = hub.client(Proto::H2c).await;
    for (i, cursor) in ["a", "b", "earliest", "unknown"].into_iter().enumerate() {
        let mut s = open(
            &client,
            sub(&topic_query("")).header("last-event-id", cursor),
        )
        .await;
        assert_eq!(
            s.header("mercure-last-event-id"),
            Some("earliest"),
            "{cursor}"
        );
        let marker = format!("live-{i}");
        expect_replay(&p, &mut s, &[], &marker, cursor).await;
    }
    hub.shutdown().await;
}

/// Spec "Reconnection": the hub may discard events; a cursor naming a discarded event resolves
/// to `earliest` and nothing before the retained window is replayed.
#[tokio::test]
async fn trimmed_history() {
    let hub = TestHub::start_with(|c| c.history = HistoryConfig::Memory { capacity: 3 }).await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["e1", "e2", "e3", "e4", "e5"]).await;
    let client = hub.client(Proto::H2c).await;

    let mut s = open(&client, sub(&topic_query("")).header("last-event-id", "e1")).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    // Ring is now e4, e5, live-1 after this publish.
    expect_replay(&p, &mut s, &[], "live-1", "discarded cursor e1").await;

    // The oldest retained event still resolves.
    let mut s = open(&client, sub(&topic_query("")).header("last-event-id", "e4")).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("e4"));
    expect_replay(&p, &mut s, &["e5", "live-1"], "live-2", "cursor e4").await;

    // `earliest` replays only the retained window (e5, live-1, live-2).
    let mut s = open(&client, sub(&topic_query("last_event_id=earliest"))).await;
    assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
    expect_replay(
        &p,
        &mut s,
        &["e5", "live-1", "live-2"],
        "live-3",
        "earliest, trimmed",
    )
    .await;
    hub.shutdown().await;
}

/// The seam between replay and live delivery: 50 updates before subscribing with `earliest`,
/// 50 more published concurrently with the replay being read; all 100 arrive once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_then_live_without_gap_or_duplicate() {
    let ids: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let hub = TestHub::start().await;
        let p = Publisher::new(&hub).await;
        for id in &ids[..50] {
            p.public(id).await;
        }
        let client = hub.client(proto).await;
        let mut s = open(
            &client,
            sub(&topic_query("")).header("last-event-id", "earliest"),
        )
        .await;
        assert_eq!(s.header("mercure-last-event-id"), Some("earliest"));
        let publisher = {
            let later = ids[50..].to_vec();
            let p = Publisher::new(&hub).await;
            tokio::spawn(async move {
                for id in &later {
                    p.public(id).await;
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < ids.len() {
            let ev = next(&mut s, &format!("{proto:?} event #{}", got.len())).await;
            got.push(ev.id.unwrap_or_default());
        }
        publisher.await.expect("publisher task");
        assert_eq!(got, ids, "{proto:?}");
        expect_replay(&p, &mut s, &[], "marker", &format!("{proto:?}")).await;
        hub.shutdown().await;
    }
}

/// Spec "Reconnection": the id a client last received (what `EventSource` resends as
/// `Last-Event-ID`) resumes exactly after it, with hub-generated ids too.
#[tokio::test]
async fn resuming_with_the_last_received_id() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let client = hub.client(Proto::H2c).await;
    let mut s = open(&client, sub(&topic_query(""))).await;
    assert_eq!(s.header("mercure-last-event-id"), None);
    let mut published = Vec::new();
    for _ in 0..5 {
        published.push(p.send(&[TOPIC], None, false).await);
    }
    for id in &published {
        let ev = next(&mut s, "live").await;
        assert_eq!(ev.id.as_deref(), Some(id.as_str()));
        assert!(id.starts_with("urn:uuid:"), "{id}");
    }
    let resume = s.last_event_id().to_owned();
    assert_eq!(resume, published[4]);
    drop(s);

    // Published while disconnected, on the routed topic and elsewhere.
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(p.send(&[TOPIC], None, false).await);
        p.send(&[&format!("https://example.com/other/{i}")], None, false)
            .await;
    }
    let mut s = open(
        &client,
        sub(&topic_query("")).header("last-event-id", &resume),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some(resume.as_str()));
    let missed: Vec<&str> = missed.iter().map(String::as_str).collect();
    expect_replay(&p, &mut s, &missed, "live", "resumed").await;
    assert_eq!(s.last_event_id(), "live");

    // Resuming again from the middle of what was just received.
    let mut s = open(
        &client,
        sub(&topic_query("")).header("last-event-id", missed[2]),
    )
    .await;
    assert_eq!(s.header("mercure-last-event-id"), Some(missed[2]));
    expect_replay(
        &p,
        &mut s,
        &[missed[3], missed[4], "live"],
        "live-2",
        "middle",
    )
    .await;
    hub.shutdown().await;
}

/// Spec "Subscription": an update selected by several matchers, or through several of its
/// topics, is replayed once, like live.
#[tokio::test]
async fn replayed_update_arrives_once_whatever_matches_it() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    let alt = "https://example.com/users/42/books/1";
    p.send(&[TOPIC, alt], Some("both"), false).await;
    p.send(&[TOPIC], Some("single"), false).await;
    let client = hub.client(Proto::H2c).await;
    let q = format!(
        "{}&{}&{}&last_event_id=earliest",
        match_param("match", TOPIC),
        match_param("match", alt),
        match_param("match_urlpattern", "https://example.com/books/:id"),
    );
    let mut s = open(&client, sub(&q)).await;
    expect_replay(&p, &mut s, &["both", "single"], "live", "three matchers").await;
    hub.shutdown().await;
}

/// Ids are UTF-8 strings: a non-ASCII cursor in the parameter resolves, and
/// `Mercure-Last-Event-ID` carries its UTF-8 bytes.
#[tokio::test]
async fn non_ascii_cursor() {
    let hub = TestHub::start().await;
    let p = Publisher::new(&hub).await;
    p.public_all(&["livre-é-1", "livre-é-2"]).await;
    let client = hub.client(Proto::H1).await;
    let q = topic_query(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("last_event_id", "livre-é-1")
            .finish(),
    );
    let mut s = open(&client, sub(&q)).await;
    assert_eq!(
        s.headers.get("mercure-last-event-id").map(|v| v.as_bytes()),
        Some("livre-é-1".as_bytes())
    );
    expect_replay(&p, &mut s, &["livre-é-2"], "live", "non-ASCII cursor").await;
    hub.shutdown().await;
}
