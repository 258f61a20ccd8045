//! In-memory history: publishes commit on the request threads (`Hub::publish` → inline commit),
//! small fan-outs happen there too and large ones are handed to the writer thread. These tests
//! drive the real `Hub` (no network needed for what they check) with concurrent publishers and
//! subscribers registering mid-stream, and check the delivery guarantee of the spec
//! ("Reconnection and State Reconciliation": every update after a subscriber's cursor, once,
//! in order): each subscriber gets exactly the updates of its topic committed after it
//! registered (its floor), in sequence order, none twice, whichever thread fanned them out.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test setup")]

use std::collections::BTreeMap;
use std::sync::Arc;

use quicksilver::history::{History, MemoryHistory, NoHistory};
use quicksilver::hub::{
    validate, CursorRequest, Hub, Publication, StreamOptions, Subscription, ValidUpdate,
};
use quicksilver::topic::{HubUrl, MatcherEngine, MatcherType};

const BIG: &str = "https://example.com/big";
const SMALL: &str = "https://example.com/small";
/// More subscribers than a request thread fans out itself (64): the writer fans these out.
const BIG_SUBSCRIBERS: usize = 100;
const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 1500;

fn hub(history: Box<dyn History>) -> (Arc<Hub>, Arc<MatcherEngine>) {
    let url = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    let engine = Arc::new(MatcherEngine::new(HubUrl::new(&url), 10_000));
    let hub = Hub::new(Arc::clone(&engine), history, 1 << 16);
    (Arc::new(hub), engine)
}

fn update(engine: &MatcherEngine, topic: &str, data: String) -> ValidUpdate {
    let publication = Publication {
        topics: vec![topic.to_owned()],
        data,
        private: false,
        id: None,
        event_type: None,
        retry: None,
    };
    validate(publication, engine.hub()).unwrap()
}

fn subscribe(hub: &Hub, engine: &MatcherEngine, topic: &str) -> Subscription {
    let matcher = if topic == "*" {
        engine.compile(MatcherType::UrlPattern, "*").unwrap()
    } else {
        engine.compile(MatcherType::Exact, topic).unwrap()
    };
    hub.subscribe(
        vec![matcher],
        None,
        CursorRequest::None,
        StreamOptions::default(),
    )
    .unwrap()
}

async fn run(history: Box<dyn History>) {
    let (hub, engine) = hub(history);
    let mut subs: Vec<(&str, Subscription)> = Vec::new();
    for _ in 0..BIG_SUBSCRIBERS {
        subs.push((BIG, subscribe(&hub, &engine, BIG)));
    }
    for _ in 0..3 {
        subs.push((SMALL, subscribe(&hub, &engine, SMALL)));
    }
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = Arc::clone(&hub);
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                let mut published = Vec::with_capacity(PER_PUBLISHER);
                for i in 0..PER_PUBLISHER {
                    // Mostly the small topic (fanned out inline when the writer has nothing
                    // pending), every 5th the big one (handed to the writer).
                    let topic = if i % 5 == 0 { BIG } else { SMALL };
                    let update = update(&engine, topic, format!("{p}/{i}"));
                    let update = hub.publish(update).await.unwrap();
                    published.push((update.seq, topic));
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                published
            })
        })
        .collect();
    // Subscribers registering while the publishes go on (on both topics and the wildcard).
    let mut late = Vec::new();
    for i in 0..30 {
        let topic = [BIG, SMALL, "*"][i % 3];
        late.push((topic, subscribe(&hub, &engine, topic)));
        tokio::task::yield_now().await;
    }
    let mut by_seq = BTreeMap::new();
    for p in publishers {
        for (seq, topic) in p.await.unwrap() {
            assert!(
                by_seq.insert(seq, topic).is_none(),
                "sequence {seq} given twice"
            );
        }
    }
    assert_eq!(by_seq.len(), PUBLISHERS * PER_PUBLISHER);
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=(PUBLISHERS * PER_PUBLISHER) as u64).collect::<Vec<_>>(),
        "sequences are contiguous"
    );
    // Everything answered is fanned out once `flush` returns.
    hub.flush().await;
    subs.extend(late);
    let mut received_big = 0;
    for (topic, sub) in &subs {
        let floor = sub.subscriber.floor();
        let expected: Vec<u64> = by_seq
            .iter()
            .filter(|(seq, t)| **seq > floor && (*topic == "*" || *t == topic))
            .map(|(seq, _)| *seq)
            .collect();
        let mut got = Vec::new();
        while let Some(update) = sub.subscriber.pop() {
            got.push(update.seq);
        }
        assert_eq!(
            got.len(),
            expected.len(),
            "{topic}, floor {floor}: received {} of {}",
            got.len(),
            expected.len()
        );
        assert_eq!(got, expected, "{topic}, floor {floor}: order or content");
        if *topic == BIG {
            received_big += got.len();
        }
    }
    assert!(
        received_big > 0,
        "the big topic's fan-out reached its subscribers"
    );
    assert_eq!(
        hub.counters()
            .published
            .load(std::sync::atomic::Ordering::Relaxed),
        (PUBLISHERS * PER_PUBLISHER) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_history_delivers_every_update_once_in_order() {
    run(Box::new(MemoryHistory::new(100_000))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_history_delivers_every_update_once_in_order() {
    run(Box::new(NoHistory::default())).await;
}

// `flush` answers only once every commit handed to the writer before it is fanned out: a
// publish to more subscribers than a request thread fans out itself, then `flush`, then the
// update must already be queued for every one of them (the writer may have taken the wake-up
// and the flush in one batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_covers_handed_over_fan_outs() {
    let (hub, engine) = hub(Box::new(MemoryHistory::new(1000)));
    let subs: Vec<_> = (0..65).map(|_| subscribe(&hub, &engine, BIG)).collect();
    for i in 0..2000 {
        let update = hub
            .publish(update(&engine, BIG, i.to_string()))
            .await
            .unwrap();
        hub.flush().await;
        for sub in &subs {
            assert_eq!(
                sub.subscriber.pop().map(|u| u.seq),
                Some(update.seq),
                "publish {i}: fanned out before flush answered"
            );
        }
    }
}
