//! Issue 5 acceptance, "a publish returns while 1,000 subscribers are stalled": the real hub with
//! 1,000 raw HTTP/1.1 subscribers that never read and one that does. It proves the slow-subscriber
//! policy, never a speed: every wait is a failure deadline, nothing sleeps to let things happen.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

const HUB: &str = "/.well-known/mercure";
const STALLED: usize = 1_000;
/// Updates published while they are stalled, and their `data` size: a stalled subscriber absorbs
/// about 25 of them (kernel buffers, hyper's write queue, its own queue) before it overflows.
const UPDATES: usize = 200;
const SIZE: usize = 8 * 1024;
const QUEUE_CAPACITY: usize = 16;
/// How far the publisher may run ahead of the healthy reader: below the queue capacity, so the
/// reader can never overflow however the two cores are scheduled.
const AHEAD: usize = 8;
/// Receive buffer a stalled socket asks for (Linux doubles it) and the MSS it announces. With
/// loopback's 64 KiB MSS the hub's send buffer for each connection grows to `tcp_wmem`'s 4 MiB
/// (4 GB for 1,000, enough to put the shared machine's TCP stack under memory pressure); with a
/// 536-byte MSS it stays near 170 KiB.
const STALLED_RCVBUF: u32 = 4096;
const STALLED_MSS: u32 = 536;
/// Stalled streams whose bytes are kept and parsed after draining (the others are only checked
/// for their end, which keeps the debug-build test cheap).
const SAMPLED: usize = 4;
/// Failure bound for the hub to drop every stalled subscriber, and then for draining them all.
/// The policy acts within about a second (500 ms without progress, checked every 200 ms).
const END_DEADLINE: Duration = Duration::from_secs(60);

/// Issue 5 (scale engine) acceptance: "a publish returns while 1,000 subscribers are stalled".
/// The policy (architecture "Per-subscriber queue", README "Architecture"): publishers push into
/// each subscriber's bounded queue and move on; a full queue marks that subscriber lagging and
/// ends its stream; a stream whose client stopped reading has its connection closed 500 ms after
/// it stopped making progress; one slow socket never delays anyone else.
///
/// 1,000 subscribers send their GET and then never read past the response headers; one healthy
/// subscriber reads. Every publish must answer 200 (each within `DEADLINE`, 10 s: a hang
/// detector, not a timing threshold) while the stalled subscribers' socket buffers and queues
/// fill, the healthy one must receive every update in order, the hub must drop all 1,000 while
/// they still have not read a byte, and each stalled socket, once read, must end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_returns_while_1000_subscribers_are_stalled() {
    // Two descriptors per stalled subscriber in this process (client and hub side), plus slack.
    ensure_open_files_limit(2 * STALLED as u64 + 512);
    // Subscription events on: each stream the hub drops is an `active: false` event, which is
    // how this test sees the drops of clients that themselves observe nothing.
    let hub = TestHub::start_with(|c| {
        c.subscriber_queue_capacity = QUEUE_CAPACITY;
        c.subscriptions = true;
    })
    .await;
    let topic = "https://example.com/stalled-fanout";
    let q = match_param("match", topic);
    let token = subscribe_all();

    // The hub registers a subscriber before answering, so each 200 means it is in the index.
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        stalled.push(open_stalled(hub.addr, &q, &token, i).await);
    }
    let reader_client = hub.client(Proto::H1).await;
    let mut reader = open(&reader_client, Request::sse(&sub_target(&q)).bearer(&token)).await;
    let health = hub.client(Proto::H1).await;
    assert_eq!(subscribers(&health).await, STALLED + 1, "all registered");
    // Counts the drops from the start of history, so it may start now.
    let drops = count_drops(hub.client(Proto::H1).await, token.clone(), topic, STALLED);

    let publisher = hub.client(Proto::H2c).await;
    let publish_token = publish_all();
    let publish = |id: String, data: String| {
        let req = Request::post(HUB).bearer(&publish_token).form(&[
            ("topic", topic),
            ("id", &id),
            ("data", &data),
        ]);
        let publisher = &publisher;
        async move {
            // `send` panics unless the whole response arrives within `DEADLINE`.
            let resp = publisher.send(req).await;
            assert_eq!(resp.status, StatusCode::OK, "publish {id}: {}", resp.text());
            assert_eq!(resp.text(), id, "publish answers the update id");
        }
    };

    // The healthy subscriber receives before anything is stalled.
    publish("warm-up".to_owned(), "w".to_owned()).await;
    let ev = next(&mut reader, "healthy subscriber, warm-up").await;
    assert_eq!(ev.id.as_deref(), Some("warm-up"));

    let expected: Vec<String> = (0..UPDATES).map(|i| format!("e{i}")).collect();
    let permits = Arc::new(Semaphore::new(AHEAD));
    let reader_task = paced_reader(
        reader,
        expected.clone(),
        SIZE,
        Arc::clone(&permits),
        "healthy subscriber",
    );
    let data = "x".repeat(SIZE);
    for id in &expected {
        permits.acquire().await.expect("semaphore open").forget();
        publish(id.clone(), data.clone()).await;
    }
    let mut reader = reader_task.await.expect("healthy subscriber task");

    // While the 1,000 still have not read a byte of body, the hub drops them all: nothing a
    // non-reading client can observe signals this, so the watcher counts their `active: false`
    // subscription events.
    match timeout(END_DEADLINE, drops).await {
        Ok(joined) => joined.expect("watcher task"),
        Err(_) => panic!(
            "not all {STALLED} stalled subscribers dropped {END_DEADLINE:?} after the last publish"
        ),
    }

    // Each stalled socket, read now, ends: EOF or reset (the hub closed the connection), or the
    // last chunk (the stream ended itself once its client read again and the queue drained).
    let deadline = Instant::now() + END_DEADLINE;
    let mut drains = JoinSet::new();
    for (i, s) in stalled.into_iter().enumerate() {
        drains.spawn(async move { (i, timeout_at(deadline, s.drain(i < SAMPLED)).await) });
    }
    let (mut closed, mut reset, mut ended) = (0, 0, 0);
    let mut reset_error = None;
    let mut got = Vec::new();
    while let Some(joined) = drains.join_next().await {
        let (i, drained) = joined.expect("drain task");
        let Ok(drained) = drained else {
            panic!("stalled subscriber {i}: its stream did not end within {END_DEADLINE:?}");
        };
        match drained.end {
            End::Eof => closed += 1,
            End::Reset(e) => {
                reset += 1;
                reset_error.get_or_insert(e);
            }
            End::LastChunk => ended += 1,
        }
        if let Some(body) = drained.body {
            got.push((i, body));
        }
    }
    eprintln!(
        "stalled subscribers: {closed} closed by the hub, {reset} reset ({reset_error:?}), \
         {ended} ended by a last chunk"
    );

    // A sample of them received a gapless prefix, then nothing: their streams were cut short.
    let all: Vec<&str> = std::iter::once("warm-up")
        .chain(expected.iter().map(String::as_str))
        .collect();
    for (i, body) in got {
        let mut parser = SseParser::new();
        let ids: Vec<String> = parser
            .feed(&body)
            .into_iter()
            .filter_map(|item| match item {
                SseItem::Event(ev) => Some(ev.id.unwrap_or_default()),
                SseItem::Comment(_) => None,
            })
            .collect();
        eprintln!(
            "stalled subscriber {i}: {} of {} updates before its stream was cut",
            ids.len(),
            all.len()
        );
        assert!(ids.len() < all.len(), "stalled subscriber {i}: not cut");
        assert_eq!(ids, all[..ids.len()], "stalled subscriber {i}: a prefix");
    }
    // Exact, whatever the watcher's own connection is doing: the topic's active subscriptions.
    let left = health
        .send(Request::get(&format!("{NS}/exact/{}", enc(topic))).bearer(&token))
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text());
    assert_eq!(
        left.json()["subscriptions"].as_array().map(Vec::len),
        Some(1),
        "only the healthy one is left"
    );

    // The healthy subscriber is still live and got nothing extra.
    publish("marker".to_owned(), "m".to_owned()).await;
    let ev = next(&mut reader, "healthy subscriber, marker").await;
    assert_eq!(ev.id.as_deref(), Some("marker"));
    hub.shutdown().await;
}

/// Raises this process's soft open-files limit to at least `needed` (up to the hard limit).
fn ensure_open_files_limit(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < needed) {
        let soft = limit.maximum.map_or(needed, |hard| hard.min(needed));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: limit.maximum,
            },
        )
        .expect("raise the soft open-files limit");
    }
    let now = getrlimit(Resource::Nofile);
    assert!(
        now.current.is_none_or(|soft| soft >= needed),
        "this test needs {needed} open files; limits are {now:?} (raise the hard limit)"
    );
}

/// The hub's `/healthz` `subscribers` count.
/// On its own task, reads subscription events from the start of history until `count`
/// subscriptions to `topic` have ended (`active: false`). Its own queue is as small as everyone's
/// here, so a burst of 1,000 drops ends its stream too: it resumes with `Last-Event-ID`, as any
/// client would (spec "Reconnection"), and loses nothing.
fn count_drops(
    client: TestClient,
    token: String,
    topic: &'static str,
    count: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let target = sub_target(&match_param("match_urlpattern", ALL_EVENTS));
        let mut last = "earliest".to_owned();
        let mut dropped = 0;
        while dropped < count {
            let req = Request::sse(&target)
                .bearer(&token)
                .header("last-event-id", &last);
            let mut events = open(&client, req).await;
            loop {
                let ev = match events.next_event_outcome(END_DEADLINE).await {
                    Outcome::Got(ev) => ev,
                    Outcome::Ended | Outcome::Failed(_) => break,
                    Outcome::TimedOut => panic!("watcher: no event after {dropped} drops"),
                };
                last = ev.id.clone().expect("event id");
                let body: serde_json::Value = serde_json::from_str(&ev.data).expect("JSON event");
                if body["match"] == topic && body["active"] == false {
                    dropped += 1;
                    if dropped == count {
                        break;
                    }
                }
            }
        }
    })
}

async fn subscribers(health: &TestClient) -> usize {
    let resp = health.send(Request::get("/healthz")).await;
    assert_eq!(resp.status, StatusCode::OK, "healthz: {}", resp.text());
    let count = resp.json()["subscribers"]
        .as_u64()
        .expect("subscribers count");
    usize::try_from(count).expect("count fits usize")
}

/// A subscriber that sent its request and read the response headers, and then reads nothing.
struct Stalled {
    stream: TcpStream,
    /// Body bytes that arrived with the headers.
    early: Vec<u8>,
}

/// How a stalled stream ended once read.
enum End {
    Eof,
    Reset(String),
    LastChunk,
}

struct Drained {
    end: End,
    /// The de-chunked body, when kept.
    body: Option<Vec<u8>>,
}

async fn open_stalled(addr: SocketAddr, query: &str, token: &str, i: usize) -> Stalled {
    let socket = TcpSocket::new_v4().expect("TCP socket");
    socket
        .set_recv_buffer_size(STALLED_RCVBUF)
        .expect("SO_RCVBUF");
    socket2::SockRef::from(&socket)
        .set_tcp_mss(STALLED_MSS)
        .expect("TCP_MAXSEG");
    let mut stream = timeout(DEADLINE, socket.connect(addr))
        .await
        .unwrap_or_else(|_| panic!("stalled subscriber {i}: no connection within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("stalled subscriber {i}: connect: {e}"));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        sub_target(query)
    );
    let head = timeout(DEADLINE, async {
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok::<_, std::io::Error>((head, end + 4));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stalled subscriber {i}: no response headers within {DEADLINE:?}"))
    .unwrap_or_else(|e| panic!("stalled subscriber {i}: {e}"));
    let (bytes, end) = head;
    let text = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 200 "),
        "stalled subscriber {i}: {text}"
    );
    assert!(
        text.contains("\r\ntransfer-encoding: chunked\r\n"),
        "stalled subscriber {i}: {text}"
    );
    Stalled {
        stream,
        early: bytes[end..].to_vec(),
    }
}

impl Stalled {
    /// Reads until the stream ends; keeps the de-chunked body when `keep`.
    async fn drain(mut self, keep: bool) -> Drained {
        let mut chunks = Dechunker {
            kept: keep.then(Vec::new),
            ..Dechunker::default()
        };
        let mut end = None;
        if chunks.feed(&self.early) {
            end = Some(End::LastChunk);
        }
        let mut buf = vec![0u8; 64 * 1024];
        while end.is_none() {
            end = match self.stream.read(&mut buf).await {
                Ok(0) => Some(End::Eof),
                Ok(n) => chunks.feed(&buf[..n]).then_some(End::LastChunk),
                Err(e) => Some(End::Reset(e.to_string())),
            };
        }
        Drained {
            end: end.expect("loop ends with an end"),
            body: chunks.kept,
        }
    }
}

/// HTTP/1.1 chunked transfer decoding for the raw sockets: payloads are skipped by length (cheap
/// over ~0.2 GB in a debug build) or kept, and the last chunk is reported.
#[derive(Default)]
struct Dechunker {
    state: ChunkState,
    size_line: Vec<u8>,
    kept: Option<Vec<u8>>,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    /// CRLF bytes still expected after a payload.
    DataEnd(usize),
    Last,
}

impl Dechunker {
    /// Feeds body bytes; true once the last (zero-size) chunk has been seen.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self.state {
                ChunkState::Size => match bytes.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        self.size_line.extend_from_slice(&bytes[..p]);
                        bytes = &bytes[p + 1..];
                        let line = std::str::from_utf8(&self.size_line).expect("ASCII size");
                        let hex = line.split(';').next().unwrap_or_default().trim();
                        let size = usize::from_str_radix(hex, 16)
                            .unwrap_or_else(|_| panic!("chunk size line {line:?}"));
                        self.size_line.clear();
                        self.state = match size {
                            0 => ChunkState::Last,
                            n => ChunkState::Data(n),
                        };
                    }
                    None => {
                        self.size_line.extend_from_slice(bytes);
                        bytes = &[];
                    }
                },
                ChunkState::Data(n) => {
                    let take = n.min(bytes.len());
                    if let Some(kept) = &mut self.kept {
                        kept.extend_from_slice(&bytes[..take]);
                    }
                    bytes = &bytes[take..];
                    self.state = match n - take {
                        0 => ChunkState::DataEnd(2),
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::DataEnd(n) => {
                    let take = n.min(bytes.len());
                    assert!(
                        bytes[..take].iter().all(|&b| b == b'\r' || b == b'\n'),
                        "CRLF after a chunk"
                    );
                    bytes = &bytes[take..];
                    self.state = match n - take {
                        0 => ChunkState::Size,
                        left => ChunkState::DataEnd(left),
                    };
                }
                ChunkState::Last => return true,
            }
        }
        matches!(self.state, ChunkState::Last)
    }
}
