//! Question: does group commit make durable publishing cheap? Durable publishes of 512-byte
//! events through the hub's real writer (batching, one `fdatasync` per batch, fan-out, acks)
//! with 1, 16 and 256 concurrent publishers, versus the same with the in-memory history; and the
//! append latency (p50/p99) of durable publishes paced at 10,000/s. Machine: the 2-core VM,
//! 2026-11-27, `cargo bench --bench group_commit -- --warm-up-time 1 --measurement-time 3`.
//! Numbers (that run): durable 5.1k / 28.1k / 238k publishes/s with 1 / 16 / 256 publishers,
//! memory 33.2k / 169k / 313k; paced 10k/s durable: p50 357 µs, p99 1.77 ms. Issue 3 goals: ≥ 100,000 durable appends/s with 256
//! concurrent appenders, p99 < 10 ms at 10,000 appends/s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // reason: bench setup

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use quicksilver::config::LogRetention;
use quicksilver::history::{History, LogHistory, MemoryHistory};
use quicksilver::hub::{validate, Hub, Publication};
use quicksilver::topic::{HubUrl, MatcherEngine};

fn bench_dir(name: &str) -> std::path::PathBuf {
    // On the real disk (target/ lives there), not a tmpfs: fsync must cost what it costs.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("bench-group-commit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn hub(durable: bool, name: &str) -> (Arc<Hub>, Option<std::path::PathBuf>) {
    let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
    let engine = Arc::new(MatcherEngine::new(HubUrl::new(&url), 1000));
    let (history, dir): (Box<dyn History>, _) = if durable {
        let dir = bench_dir(name);
        let (log, _) = LogHistory::open(dir.clone(), LogRetention::default()).unwrap();
        (Box::new(log), Some(dir))
    } else {
        (Box::new(MemoryHistory::new(100_000)), None)
    };
    (Arc::new(Hub::new(engine, history, 1024)), dir)
}

async fn publish_one(hub: &Hub, data: &str) {
    let p = Publication {
        topics: vec!["https://example.com/bench".to_owned()],
        data: data.to_owned(),
        ..Publication::default()
    };
    let u = validate(p, hub.engine().hub()).unwrap();
    hub.publish(u).await.unwrap();
}

fn throughput(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let data = Arc::new("x".repeat(512));
    let mut g = c.benchmark_group("publish_concurrent");
    for durable in [true, false] {
        let (hub, dir) = hub(durable, "throughput");
        for publishers in [1usize, 16, 256] {
            let per_task = (4096 / publishers).max(16);
            let total = (per_task * publishers) as u64;
            g.throughput(Throughput::Elements(total));
            let label = if durable { "log" } else { "memory" };
            g.bench_with_input(BenchmarkId::new(label, publishers), &publishers, |b, &n| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(async {
                        for _ in 0..iters {
                            let mut set = tokio::task::JoinSet::new();
                            for _ in 0..n {
                                let (hub, data) = (Arc::clone(&hub), Arc::clone(&data));
                                set.spawn(async move {
                                    for _ in 0..per_task {
                                        publish_one(&hub, &data).await;
                                    }
                                });
                            }
                            while set.join_next().await.is_some() {}
                        }
                    });
                    start.elapsed()
                })
            });
        }
        drop(hub);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    g.finish();
}

/// Durable publishes paced at `rate`/s for `secs`: latency from submit to acknowledgement.
fn paced_latency(rt: &tokio::runtime::Runtime, rate: u64, secs: u64) {
    let (hub, dir) = hub(true, "paced");
    let data = Arc::new("x".repeat(512));
    let latencies = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..rate * secs {
            tick.tick().await;
            let (hub, data, tx) = (Arc::clone(&hub), Arc::clone(&data), tx.clone());
            tokio::spawn(async move {
                let start = Instant::now();
                publish_one(&hub, &data).await;
                let _ = tx.send(start.elapsed());
            });
        }
        drop(tx);
        let mut all = Vec::new();
        while let Some(l) = rx.recv().await {
            all.push(l);
        }
        all
    });
    let mut l = latencies;
    l.sort_unstable();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "paced durable publishes: {} at {rate}/s: p50 {:?}, p99 {:?}, max {:?}",
        l.len(),
        pct(0.50),
        pct(0.99),
        l[l.len() - 1]
    );
    drop(hub);
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let full = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c, &rt);
    c.final_summary();
    // Under `cargo test --all-targets` this is a short smoke run.
    if full {
        paced_latency(&rt, 10_000, 5);
    } else {
        paced_latency(&rt, 1_000, 1);
    }
}
