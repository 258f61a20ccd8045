//! Question: with 100,000 connected subscribers, do subscription events slow the connect path,
//! and does listing one matcher's subscriptions avoid scanning everyone? Connect + disconnect
//! through `Hub::subscribe`/`unsubscribe` with the feature off and on (durable log history, the
//! writer running concurrently), and Subscription API snapshots (one matcher vs all).
//! Then end to end: HTTP/1.1 SSE connects per second against the real server (each connection
//! opens a stream, reads the preamble and closes), feature off and on.
//! Numbers: see the README section "Active subscriptions".
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: bench setup with fixed inputs

// The allocator of the real binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
            let snap = rt
                .block_on(
                    on.hub
                        .subscriptions(&SubscriptionQuery::Matcher(MatcherType::Exact, doc(7))),
                )
                .unwrap();
            assert!(snap.subscriptions.len() >= CONNECTED / DOCS);
        })
    });
    api.sample_size(10);
    api.bench_function("all (100,000 subscriptions)", |b| {
        b.iter(|| {
            let snap = rt
                .block_on(on.hub.subscriptions(&SubscriptionQuery::All))
                .unwrap();
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
    if std::env::args().any(|a| a == "--bench") {
        for on in [false, true] {
            let rate = rt.block_on(http_connects(on));
            println!(
                "http_connects_per_s/subscriptions {}: {rate:.0}",
                if on { "on" } else { "off" }
            );
        }
    }
}

/// Connects per second over HTTP/1.1 with 32 concurrent clients for 3 s, 100,000 streams kept
/// open meanwhile is out of reach of one process's file descriptors here, so this measures the
/// per-connect cost only.
async fn http_connects(on: bool) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = bench_dir(if on { "http-on" } else { "http-off" });
    let config = quicksilver::config::Config {
        addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        anonymous: true,
        subscriptions: on,
        history: quicksilver::config::HistoryConfig::Log {
            dir: dir.clone(),
            retention: LogRetention::default(),
        },
        ..quicksilver::config::Config::default()
    };
    let running = quicksilver::server::start(config).await.unwrap();
    let addr = running.addr.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut buf = vec![0u8; 4096];
            while tokio::time::Instant::now() < deadline {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                let req = format!(
                    "GET /.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fdocs%2F{} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
                    (t * 1000 + n) % 1000
                );
                conn.write_all(req.as_bytes()).await.unwrap();
                let mut got = Vec::new();
                // Headers, then the preamble chunk: the subscription is registered.
                while got
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .is_none_or(|end| got.len() <= end + 4)
                {
                    let r = conn.read(&mut buf).await.unwrap();
                    assert!(r > 0, "connection closed early");
                    got.extend_from_slice(&buf[..r]);
                }
                drop(conn);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    rate
}
