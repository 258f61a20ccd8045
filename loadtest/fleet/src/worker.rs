//! A worker process: holds its share of the subscriber connections (HTTP/1.1 raw, or HTTP/2
//! streams through hyper), parses their SSE, records delivery latency, duplicates and loss, and
//! answers the coordinator's line commands. Exits when its stdin closes or its deadline passes.
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use crate::cli::{Args, Target};
use crate::net::{unix_nanos, Endpoint};
use crate::proto::{Command, DeliveryReport, Event, WorkerSpec};
use crate::sse::{percent_encode, SseItem, SseParser, Stamp};
use crate::stats::{new_histogram, own_rss, record, to_sparse};
use crate::wire::{parse_head, ChunkedDecoder};

/// Sequence numbers tracked for duplicates (one bit each per subscriber).
const MAX_SEQ: u64 = 1 << 22;
/// A connection attempt (TCP, TLS, request, response head) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read per `read` call on an HTTP/1.1 stream; lives as long as the connection.
const READ_BUF: usize = 4096;

pub fn run(spec: WorkerSpec) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qs-fleet worker {}: runtime: {e}", spec.index);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(spec))
}

struct Delivery {
    epoch: u32,
    hist: Histogram<u64>,
    deliveries: u64,
    unique: u64,
    duplicates: u64,
    stale: u64,
    foreign: u64,
    per_seq: Vec<u32>,
    first_ns: u64,
    last_ns: u64,
}

impl Delivery {
    fn new(epoch: u32) -> Self {
        Self {
            epoch,
            hist: new_histogram(),
            deliveries: 0,
            unique: 0,
            duplicates: 0,
            stale: 0,
            foreign: 0,
            per_seq: Vec::new(),
            first_ns: 0,
            last_ns: 0,
        }
    }
}

struct Shared {
    args: Args,
    endpoint: Endpoint,
    index: u64,
    count: u64,
    connect_body: bool,
    connected: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    pending: AtomicU64,
    epoch: AtomicU32,
    connect_hist: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<String>>,
    topic_live: Mutex<Vec<u64>>,
    delivery: Mutex<Delivery>,
    connect_sem: Option<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn emit(event: &Event) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

impl Shared {
    fn mark_connected(&self, started: Instant, topic: u64) {
        self.connected.fetch_add(1, Relaxed);
        record(
            &mut lock(&self.connect_hist),
            started.elapsed().as_micros() as u64,
        );
        if let Some(n) = lock(&self.topic_live).get_mut(topic as usize) {
            *n += 1;
        }
        self.pending.fetch_sub(1, Relaxed);
    }

    fn mark_failed(&self, error: String) {
        self.failed.fetch_add(1, Relaxed);
        let mut errors = lock(&self.errors);
        if errors.len() < 8 && !errors.contains(&error) {
            errors.push(error);
        }
        self.pending.fetch_sub(1, Relaxed);
    }

    fn mark_closed(&self, topic: u64) {
        self.closed.fetch_add(1, Relaxed);
        if let Some(n) = lock(&self.topic_live).get_mut(topic as usize) {
            *n = n.saturating_sub(1);
        }
    }

    fn subscribe_path(&self, topic: u64) -> String {
        let name = self.args.topic_name(topic);
        match self.args.target {
            Target::Mercure => {
                let mut p = format!("/.well-known/mercure?{}=", self.args.sub_param);
                percent_encode(&name, &mut p);
                p
            }
            Target::Nchan => {
                let mut p = String::from("/sub/");
                percent_encode(&name, &mut p);
                p
            }
        }
    }
}

/// Per-subscriber delivery state: which sequence numbers of the current epoch it has seen.
#[derive(Default)]
struct Seen {
    epoch: u32,
    bits: Vec<u64>,
}

fn on_item(d: &mut Delivery, seen: &mut Seen, item: SseItem, now_ns: u64) {
    let stamp: Stamp = match item {
        SseItem::Update(s) => s,
        SseItem::Foreign => {
            d.foreign += 1;
            return;
        }
        SseItem::Comment => return,
    };
    if stamp.epoch != d.epoch {
        d.stale += 1;
        return;
    }
    d.deliveries += 1;
    record(&mut d.hist, now_ns.saturating_sub(stamp.sent_ns) / 1000);
    if d.first_ns == 0 {
        d.first_ns = now_ns;
    }
    d.last_ns = now_ns;
    if seen.epoch != d.epoch {
        seen.epoch = d.epoch;
        seen.bits.clear();
    }
    if stamp.seq >= MAX_SEQ {
        return;
    }
    let (word, bit) = ((stamp.seq / 64) as usize, 1u64 << (stamp.seq % 64));
    if seen.bits.len() <= word {
        seen.bits.resize(word + 1, 0);
    }
    if seen.bits[word] & bit != 0 {
        d.duplicates += 1;
        return;
    }
    seen.bits[word] |= bit;
    d.unique += 1;
    let seq = stamp.seq as usize;
    if d.per_seq.len() <= seq {
        d.per_seq.resize(seq + 1, 0);
    }
    d.per_seq[seq] += 1;
}

async fn serve(spec: WorkerSpec) -> ExitCode {
    let alpn: &[u8] = if spec.args.http2 { b"h2" } else { b"http/1.1" };
    let endpoint = match Endpoint::new(&spec.args, alpn) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("qs-fleet worker {}: {e}", spec.index);
            return ExitCode::FAILURE;
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(spec.args.timeout + 30.0);
    let topics = spec.args.topics as usize;
    let shared = Arc::new(Shared {
        connect_body: spec.args.connected_on_body(),
        connect_sem: (spec.args.connect_concurrency > 0)
            .then(|| Semaphore::new(spec.args.connect_concurrency)),
        args: spec.args,
        endpoint,
        index: spec.index as u64,
        count: spec.count.max(1) as u64,
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        epoch: AtomicU32::new(0),
        connect_hist: Mutex::new(new_histogram()),
        errors: Mutex::new(Vec::new()),
        topic_live: Mutex::new(vec![0; topics]),
        delivery: Mutex::new(Delivery::new(0)),
    });

    let (tx, mut commands) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Command>(&line) {
                Ok(c) => {
                    if tx.send(c).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("qs-fleet worker: bad command {line:?}: {e}"),
            }
        }
        let _ = tx.send(Command::Exit);
    });

    let mut opened: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Exit) => break,
                Some(Command::Grow { conns }) => {
                    let mine: Vec<u64> = (opened..conns).filter(|c| c % shared.count == shared.index).collect();
                    opened = opened.max(conns);
                    tokio::spawn(grow(shared.clone(), mine));
                }
                Some(Command::Epoch { epoch }) => {
                    {
                        let mut d = lock(&shared.delivery);
                        *d = Delivery::new(epoch);
                        shared.epoch.store(epoch, Relaxed);
                    }
                    let topic_subs = lock(&shared.topic_live).clone();
                    emit(&Event::EpochReady { epoch, topic_subs });
                }
                Some(Command::Report { epoch, published, unacked }) => {
                    emit(&Event::Report(Box::new(report(&shared, epoch, published, &unacked))));
                }
            },
            _ = tick.tick() => {
                if Instant::now() > deadline {
                    eprintln!("qs-fleet worker {}: deadline passed, exiting", shared.index);
                    return ExitCode::FAILURE;
                }
                emit(&Event::Progress {
                    connected: shared.connected.load(Relaxed),
                    failed: shared.failed.load(Relaxed),
                    closed: shared.closed.load(Relaxed),
                    unique: lock(&shared.delivery).unique,
                    rss: own_rss(),
                });
            }
        }
    }
    ExitCode::SUCCESS
}

fn report(shared: &Shared, epoch: u32, published: u64, unacked: &[u64]) -> DeliveryReport {
    let topic_live = lock(&shared.topic_live).clone();
    let d = lock(&shared.delivery);
    let topics = shared.args.topics.max(1);
    let mut r = DeliveryReport {
        epoch,
        deliveries: d.deliveries,
        unique: d.unique,
        duplicates: d.duplicates,
        stale: d.stale,
        foreign: d.foreign,
        first_ns: d.first_ns,
        last_ns: d.last_ns,
        latency_us: to_sparse(&d.hist),
        closed: shared.closed.load(Relaxed),
        rss: own_rss(),
        ..DeliveryReport::default()
    };
    if d.epoch != epoch {
        return r;
    }
    let is_unacked = |seq: u64| unacked.binary_search(&seq).is_ok();
    for (seq, &got) in d.per_seq.iter().enumerate() {
        let seq = seq as u64;
        if seq >= published {
            r.unexpected += u64::from(got);
        } else if is_unacked(seq) {
            r.unacked_delivered += u64::from(got);
        }
    }
    // Expected: every acknowledged publish reaches every subscriber live on its topic now
    // (one that closed mid-phase is counted as loss by its own absence from `topic_live`, so
    // it is not double counted; its deliveries before closing still count in `unique`).
    for seq in 0..published.min(MAX_SEQ) {
        if is_unacked(seq) {
            continue;
        }
        let live = topic_live
            .get((seq % topics) as usize)
            .copied()
            .unwrap_or(0);
        let got = u64::from(d.per_seq.get(seq as usize).copied().unwrap_or(0));
        r.missing += live.saturating_sub(got);
    }
    r
}

async fn grow(shared: Arc<Shared>, conns: Vec<u64>) {
    let started = Instant::now();
    let streams = shared.args.streams();
    shared
        .pending
        .fetch_add(conns.len() as u64 * streams, Relaxed);
    for conn in conns {
        if shared.args.http2 {
            tokio::spawn(h2_connection(shared.clone(), conn));
        } else {
            tokio::spawn(h1_subscriber(shared.clone(), conn));
        }
    }
    while shared.pending.load(Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let errors = lock(&shared.errors).clone();
    emit(&Event::Grown {
        connected: shared.connected.load(Relaxed),
        failed: shared.failed.load(Relaxed),
        elapsed_s: started.elapsed().as_secs_f64(),
        connect_us: to_sparse(&lock(&shared.connect_hist)),
        errors,
    });
}

async fn acquire(shared: &Shared) -> Option<tokio::sync::SemaphorePermit<'_>> {
    match &shared.connect_sem {
        Some(sem) => sem.acquire().await.ok(),
        None => None,
    }
}

/// One HTTP/1.1 subscriber on its own connection: raw request, then head, chunked body and SSE
/// parsed in place from one fixed buffer.
async fn h1_subscriber(shared: Arc<Shared>, conn_index: u64) {
    let topic = conn_index % shared.args.topics.max(1);
    let permit = acquire(&shared).await;
    let started = Instant::now();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        shared.subscribe_path(topic),
        shared.endpoint.authority
    );
    if let (Target::Mercure, Some(token)) = (shared.args.target, &shared.args.sub_token) {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");

    let mut buf = [0u8; READ_BUF];
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut conn = shared
            .endpoint
            .connect(conn_index, shared.args.source_ips)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut filled = 0;
        loop {
            let n = conn
                .read(&mut buf[filled..])
                .await
                .map_err(|e| format!("read head: {e}"))?;
            if n == 0 {
                return Err("closed before the response head".to_string());
            }
            filled += n;
            if let Some(head) = parse_head(&buf[..filled]).map_err(str::to_string)? {
                if head.status != 200 {
                    return Err(format!("status {}", head.status));
                }
                return Ok((conn, head, filled));
            }
            if filled == buf.len() {
                return Err("response head larger than the read buffer".to_string());
            }
        }
    })
    .await;
    let (mut conn, head, filled) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return shared.mark_failed(e),
        Err(_) => return shared.mark_failed("connect timeout".to_string()),
    };
    let mut permit = permit;
    let mut is_connected = !shared.connect_body;
    if is_connected {
        shared.mark_connected(started, topic);
        permit = None;
    }
    let mut decoder = head.chunked.then(ChunkedDecoder::default);
    let mut parser = SseParser::default();
    let mut seen = Seen::default();
    let mut start = head.head_len;
    let mut end = filled;
    loop {
        if end > start {
            let input = &buf[start..end];
            let mut got_body = false;
            let now = unix_nanos();
            let mut d = lock(&shared.delivery);
            let ok = match &mut decoder {
                Some(dec) => dec
                    .feed(input, |payload| {
                        got_body |= !payload.is_empty();
                        parser.feed(payload, |item| on_item(&mut d, &mut seen, item, now));
                    })
                    .is_ok(),
                None => {
                    got_body = true;
                    parser.feed(input, |item| on_item(&mut d, &mut seen, item, now));
                    true
                }
            };
            drop(d);
            if got_body && !is_connected {
                is_connected = true;
                shared.mark_connected(started, topic);
                permit = None;
            }
            if !ok || decoder.as_ref().is_some_and(ChunkedDecoder::is_done) {
                break;
            }
        }
        start = 0;
        end = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
    }
    drop(permit);
    if is_connected {
        shared.mark_closed(topic);
    } else {
        shared.mark_failed("closed before the first body bytes".to_string());
    }
}

/// One HTTP/2 connection carrying `streams_per_conn` subscriber streams.
async fn h2_connection(shared: Arc<Shared>, conn_index: u64) {
    let streams = shared.args.streams();
    let permit = acquire(&shared).await;
    let started = Instant::now();
    let handshake = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let conn = shared
            .endpoint
            .connect(conn_index, shared.args.source_ips)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(conn))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))
    })
    .await;
    let (sender, connection) = match handshake {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            for _ in 0..streams {
                shared.mark_failed(e.clone());
            }
            return;
        }
        Err(_) => {
            for _ in 0..streams {
                shared.mark_failed("connect timeout".to_string());
            }
            return;
        }
    };
    tokio::spawn(connection);
    drop(permit);
    for s in 0..streams {
        let subscriber = conn_index * streams + s;
        tokio::spawn(h2_stream(
            shared.clone(),
            sender.clone(),
            subscriber,
            started,
        ));
    }
}

async fn h2_stream(
    shared: Arc<Shared>,
    mut sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    subscriber: u64,
    started: Instant,
) {
    let topic = subscriber % shared.args.topics.max(1);
    let scheme = if shared.endpoint.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let uri = format!(
        "{scheme}://{}{}",
        shared.endpoint.authority,
        shared.subscribe_path(topic)
    );
    let mut request = http::Request::get(uri).header("accept", "text/event-stream");
    if let (Target::Mercure, Some(token)) = (shared.args.target, &shared.args.sub_token) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match request.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return shared.mark_failed(format!("request: {e}")),
    };
    let response = tokio::time::timeout(CONNECT_TIMEOUT, async {
        sender.ready().await.map_err(|e| format!("h2 ready: {e}"))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("h2 request: {e}"))
    })
    .await;
    let response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return shared.mark_failed(e),
        Err(_) => return shared.mark_failed("stream open timeout".to_string()),
    };
    // `sender` stays alive with the stream: the connection task ends when every handle is gone.
    if response.status() != http::StatusCode::OK {
        return shared.mark_failed(format!("status {}", response.status().as_u16()));
    }
    let mut is_connected = !shared.connect_body;
    if is_connected {
        shared.mark_connected(started, topic);
    }
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    let mut seen = Seen::default();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if !is_connected {
            is_connected = true;
            shared.mark_connected(started, topic);
        }
        let now = unix_nanos();
        let mut d = lock(&shared.delivery);
        parser.feed(&data, |item| on_item(&mut d, &mut seen, item, now));
    }
    if is_connected {
        shared.mark_closed(topic);
    } else {
        shared.mark_failed("stream ended before the first body bytes".to_string());
    }
}
