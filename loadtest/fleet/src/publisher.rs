//! The publish phase: `--publishers` keep-alive HTTP/1.1 connections sending stamped updates,
//! paced on one global schedule (`--rate`) or back to back, bounded by `--count` and/or
//! `--duration`. Records publish request latency and which sequence numbers were acknowledged.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::cli::{Args, Target};
use crate::net::{unix_nanos, Endpoint};
use crate::sse::{encode_payload, percent_encode, Stamp};
use crate::stats::{new_histogram, record};

/// A publish request (connect included when reconnecting) must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Live counters, read by the progress line.
#[derive(Default)]
pub struct PubCounters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
}

/// What one publish phase did.
pub struct PubOutcome {
    /// Sequence numbers handed out: `0..published`.
    pub published: u64,
    pub acked: u64,
    /// Sorted.
    pub unacked: Vec<u64>,
    pub latency: Histogram<u64>,
    pub start_ns: u64,
    pub elapsed: Duration,
    pub errors: Vec<String>,
}

struct Phase {
    args: Args,
    endpoint: Endpoint,
    epoch: u32,
    next: AtomicU64,
    limit: u64,
    end: Option<Instant>,
    start: Instant,
    counters: Arc<PubCounters>,
    unacked: Mutex<Vec<u64>>,
    latency: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<String>>,
}

pub async fn run_phase(
    args: &Args,
    endpoint: &Endpoint,
    epoch: u32,
    counters: Arc<PubCounters>,
) -> PubOutcome {
    let start = Instant::now();
    let phase = Arc::new(Phase {
        args: args.clone(),
        endpoint: endpoint.clone(),
        epoch,
        next: AtomicU64::new(0),
        limit: args.count.unwrap_or(u64::MAX),
        end: args.duration.map(|d| start + Duration::from_secs_f64(d)),
        start,
        counters,
        unacked: Mutex::new(Vec::new()),
        latency: Mutex::new(new_histogram()),
        errors: Mutex::new(Vec::new()),
    });
    let start_ns = unix_nanos();
    let tasks: Vec<_> = (0..args.publishers)
        .map(|i| tokio::spawn(publisher(phase.clone(), i as u64)))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let published = phase.next.load(Relaxed).min(phase.limit);
    let mut unacked = std::mem::take(&mut *lock(&phase.unacked));
    unacked.retain(|&s| s < published);
    unacked.sort_unstable();
    let latency = lock(&phase.latency).clone();
    let errors = lock(&phase.errors).clone();
    PubOutcome {
        published,
        acked: published - unacked.len() as u64,
        unacked,
        latency,
        start_ns,
        elapsed,
        errors,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(phase: &Phase, index: u64) -> Result<Sender, String> {
    let conn = phase
        .endpoint
        .connect(index, phase.args.source_ips)
        .await
        .map_err(|e| format!("publisher connect: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| format!("publisher handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

fn build_request(phase: &Phase, seq: u64) -> Result<http::Request<Full<Bytes>>, String> {
    let args = &phase.args;
    let topic = args.topic_name(seq % args.topics.max(1));
    let data = encode_payload(
        Stamp {
            sent_ns: unix_nanos(),
            seq,
            epoch: phase.epoch,
        },
        args.size,
    );
    let builder = http::Request::post(match args.target {
        Target::Mercure => "/.well-known/mercure".to_string(),
        Target::Nchan => {
            let mut p = String::from("/pub/");
            percent_encode(&topic, &mut p);
            p
        }
    })
    .header("host", &phase.endpoint.authority);
    let (builder, body) = match args.target {
        Target::Mercure => {
            let mut body = String::with_capacity(data.len() + topic.len() + 32);
            body.push_str("topic=");
            percent_encode(&topic, &mut body);
            body.push_str("&data=");
            percent_encode(&data, &mut body);
            let token = args.pub_token.as_deref().unwrap_or_default();
            (
                builder
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", format!("Bearer {token}")),
                body,
            )
        }
        Target::Nchan => (builder.header("content-type", "application/json"), data),
    };
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))
}

async fn publisher(phase: Arc<Phase>, index: u64) {
    let mut sender: Option<Sender> = None;
    let rate = phase.args.rate;
    loop {
        if phase.end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let seq = phase.next.fetch_add(1, Relaxed);
        if seq >= phase.limit {
            break;
        }
        if rate > 0.0 {
            let at = phase.start + Duration::from_secs_f64(seq as f64 / rate);
            if phase.end.is_some_and(|end| at >= end) {
                // Past the phase end: this number is never sent.
                phase.next.fetch_min(seq, Relaxed);
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        phase.counters.sent.fetch_add(1, Relaxed);
        let sent_at = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let s = match sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => connect(&phase, index).await?,
            };
            let mut s = s;
            s.ready()
                .await
                .map_err(|e| format!("publisher ready: {e}"))?;
            let request = build_request(&phase, seq)?;
            let response = s
                .send_request(request)
                .await
                .map_err(|e| format!("publish: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("publish response: {e}"))?;
            drop(body);
            sender = Some(s);
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("publish status {}", status.as_u16()))
            }
        })
        .await
        .unwrap_or_else(|_| Err("publish timeout".to_string()));
        match outcome {
            Ok(()) => {
                phase.counters.acked.fetch_add(1, Relaxed);
                record(
                    &mut lock(&phase.latency),
                    sent_at.elapsed().as_micros() as u64,
                );
            }
            Err(e) => {
                phase.counters.failed.fetch_add(1, Relaxed);
                lock(&phase.unacked).push(seq);
                let mut errors = lock(&phase.errors);
                if errors.len() < 8 && !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
}
