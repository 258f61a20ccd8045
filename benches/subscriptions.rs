//! Question: with 100,000 connected subscribers, do subscription events slow the connect path,
//! and does listing one matcher's subscriptions avoid scanning everyone? Connect + disconnect
//! through `Hub::subscribe`/`unsubscribe` with the feature off and on (durable log history, the
//! writer running concurrently), and Subscription API snapshots (one matcher vs all).
//! Numbers: see the README section "Active subscriptions".
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: bench setup with fixed inputs

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use quicksilver::auth::Grants;
use quicksilver::config::LogRetention;
use quicksilver::history::LogHistory;
use quicksilver::hub::{
    validate, CursorRequest, Hub, HubOptions, Publication, StreamOptions, SubscriptionQuery,
};
use quicksilver::subscriber::Subscriber;
use quicksilver::topic::{HubUrl, MatcherEngine, MatcherType};

const CONNECTED: usize = 100_000;
/// Distinct documents watched: 100 subscribers each.
const DOCS: usize = 1_000;

fn bench_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("bench-subscriptions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn doc(i: usize) -> String {
    format!("https://example.com/docs/{}", i % DOCS)
}

struct Setup {
    hub: Hub,
    engine: Arc<MatcherEngine>,
    grants: Arc<Grants>,
    _subs: Vec<Arc<Subscriber>>,
    dir: std::path::PathBuf,
}

fn setup(on: bool, rt: &tokio::runtime::Runtime) -> Setup {
    let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
    let engine = Arc::new(MatcherEngine::new(HubUrl::new(&url), 100_000));
    let dir = bench_dir(if on { "on" } else { "off" });
    let (log, _) = LogHistory::open(dir.clone(), LogRetention::default()).unwrap();
    let options = HubOptions {
        subscription_events: on.then(|| "/.well-known/mercure".to_owned()),
    };
    let hub = Hub::with_options(Arc::clone(&engine), Box::new(log), 1024, options);
    let grants = Arc::new(
        Grants::from_details(
            serde_json::json!([{
                "type": "https://mercure.rocks/authorization-detail",
                "actions": ["subscribe"],
                "topics": [{"match": "https://example.com/docs/{id}", "match_type": "urlpattern"}, {"match": "*"}],
                "payload": {"user": "alice"}
            }]),
            &engine,
        )
        .unwrap(),
    );
    let subs = (0..CONNECTED)
        .map(|i| {
            let m = engine.compile(MatcherType::Exact, &doc(i)).unwrap();
            hub.subscribe(
                vec![m],
                Some(Arc::clone(&grants)),
                CursorRequest::None,
                StreamOptions::announced(),
            )
            .unwrap()
            .subscriber
        })
        .collect();
    // Presence changes queued before a publish are dispatched before it: after this, every
    // connect above is in the registry.
    let p = Publication {
        topics: vec!["https://example.com/marker".into()],
        data: "x".into(),
        ..Publication::default()
    };
    rt.block_on(hub.publish(validate(p, engine.hub()).unwrap()))
        .unwrap();
    Setup {
        hub,
        engine,
        grants,
        _subs: subs,
        dir,
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut connect = c.benchmark_group("connect_disconnect_100k_connected");
    connect.throughput(Throughput::Elements(1));
    let mut setups = Vec::new();
    for on in [false, true] {
        let s = setup(on, &rt);
        let label = if on {
            "subscriptions on"
        } else {
            "subscriptions off"
        };
        let mut i = 0usize;
        connect.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                i += 1;
                let m = s.engine.compile(MatcherType::Exact, &doc(i)).unwrap();
                let sub = s
                    .hub
                    .subscribe(
                        vec![m],
                        Some(Arc::clone(&s.grants)),
                        CursorRequest::None,
                        StreamOptions::announced(),
                    )
                    .unwrap();
                s.hub.unsubscribe(&sub.subscriber);
            })
        });
        setups.push(s);
    }
    connect.finish();

    let on = &setups[1];
    let mut api = c.benchmark_group("api_snapshot_100k_connected");
    api.bench_function("one matcher (100 subscriptions)", |b| {
        b.iter(|| {
            let snap = on
                .hub
                .subscriptions(&SubscriptionQuery::Matcher(MatcherType::Exact, doc(7)))
                .unwrap();
            assert!(snap.subscriptions.len() >= CONNECTED / DOCS);
        })
    });
    api.sample_size(10);
    api.bench_function("all (100,000 subscriptions)", |b| {
        b.iter(|| {
            let snap = on.hub.subscriptions(&SubscriptionQuery::All).unwrap();
            assert!(snap.subscriptions.len() >= CONNECTED);
        })
    });
    api.finish();
    for s in setups {
        let dir = s.dir.clone();
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
    c.final_summary();
}
