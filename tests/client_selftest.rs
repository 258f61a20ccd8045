//! Proves the `tests/common` helpers against tiny hyper servers started here on 127.0.0.1:0
//! (plain and rustls, ALPN h2 + http/1.1): protocol round trips, SSE parsing, h2 multiplexing,
//! lazy body reading, and that minted JWTs verify with ring. Never talks to the hub.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use common::{
    certs_dev_dir, claims, hs256_token, publish_detail, sign, subscribe_detail,
    subscribe_detail_with_payload, unix_now, Outcome, Proto, Request, SseEvent, SseItem, SseParser,
    TestClient, TestKey, DEADLINE,
};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ring::signature::{self, UnparsedPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

type Body = BoxBody<Bytes, Infallible>;
type HandlerFuture = Pin<Box<dyn Future<Output = hyper::Response<Body>> + Send>>;
type Handler = Arc<dyn Fn(hyper::Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// A response body fed by a channel: the test decides when each chunk is written and when the
/// body ends (sender dropped).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn channel_body(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, BoxBody::new(ChannelBody(rx)))
}

fn full(body: impl Into<Bytes>) -> Body {
    BoxBody::new(Full::new(body.into()))
}

/// A server on 127.0.0.1:0 (TLS with the dev certificate when `alpn` is given), aborted on drop.
struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_tls(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let dir = certs_dev_dir();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("localhost.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("localhost-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn start_server(alpn: Option<&[&[u8]]>, handler: Handler) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = alpn.map(server_tls);
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            // Without it, Nagle + delayed ACKs stall each h2 window refill by up to 40 ms.
            tcp.set_nodelay(true).unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = handler(req);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                // Errors here are client hang-ups and refused handshakes: the test asserts on
                // what the client saw.
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        connections,
        task,
    }
}

fn alpn_for(proto: Proto) -> Option<&'static [&'static [u8]]> {
    const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
    proto.is_tls().then_some(BOTH)
}

/// Echoes what the server saw: version, method, target, authority in headers; the body back.
fn echo_handler() -> Handler {
    Arc::new(|req: hyper::Request<Incoming>| {
        Box::pin(async move {
            let version = format!("{:?}", req.version());
            let method = req.method().to_string();
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| {
                    req.headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap().to_owned())
                })
                .unwrap_or_default();
            let content_type = req
                .headers()
                .get("content-type")
                .map(|h| h.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            hyper::Response::builder()
                .header("x-version", version)
                .header("x-method", method)
                .header("x-target", target)
                .header("x-authority", authority)
                .header("x-content-type", content_type)
                .body(full(body))
                .unwrap()
        })
    })
}

#[tokio::test]
async fn round_trips_on_every_protocol() {
    for proto in Proto::ALL {
        let server = start_server(alpn_for(proto), echo_handler()).await;
        let client = TestClient::connect(server.addr, proto).await;
        let seen_version = format!("{:?}", proto.version());

        let resp = client.send(Request::get("/hello?x=1&y=%20")).await;
        assert_eq!(resp.status, 200, "{proto:?}");
        assert_eq!(resp.version, proto.version(), "{proto:?}");
        assert_eq!(
            resp.header("x-version"),
            Some(seen_version.as_str()),
            "{proto:?}"
        );
        assert_eq!(resp.header("x-method"), Some("GET"), "{proto:?}");
        assert_eq!(
            resp.header("x-target"),
            Some("/hello?x=1&y=%20"),
            "{proto:?}"
        );
        assert_eq!(
            resp.header("x-authority"),
            Some(client.authority().as_str()),
            "{proto:?}"
        );
        assert!(resp.body.is_empty(), "{proto:?}");

        let resp = client
            .send(
                Request::query("/.well-known/mercure").body("match=https%3A%2F%2Fexample.com%2F1"),
            )
            .await;
        assert_eq!(resp.header("x-method"), Some("QUERY"), "{proto:?}");
        assert_eq!(
            resp.text(),
            "match=https%3A%2F%2Fexample.com%2F1",
            "{proto:?}"
        );

        let resp = client
            .send(Request::post("/.well-known/mercure").form(&[
                ("topic", "a b"),
                ("topic", "c"),
                ("data", "é\n"),
            ]))
            .await;
        assert_eq!(resp.header("x-method"), Some("POST"), "{proto:?}");
        assert_eq!(
            resp.header("x-content-type"),
            Some("application/x-www-form-urlencoded"),
            "{proto:?}"
        );
        assert_eq!(resp.text(), "topic=a+b&topic=c&data=%C3%A9%0A", "{proto:?}");

        let resp = client
            .send(Request::get("/h").header("host", "example.test:8080"))
            .await;
        assert_eq!(
            resp.header("x-authority"),
            Some("example.test:8080"),
            "{proto:?}"
        );

        // HTTP/1.1: one connection per request; HTTP/2: everything on the one connection.
        let expected = if proto.is_h2() { 1 } else { 4 };
        assert_eq!(
            server.connections.load(Ordering::SeqCst),
            expected,
            "{proto:?}"
        );
    }
}

/// Wire bytes mixing every line ending, split so a CRLF straddles two chunks.
const SSE_CHUNKS: &[&str] = &[
    ":\n",
    "event: greeting\r\nid: 1\r\nretry: 2500\r\ndata: hello\r\n\r\n",
    "data: line one\rdata:line two\r\r",
    ": a comment\n",
    "id: 3\ndata:  two spaces\ndata\n\n",
    "data: split\r",
    "\n\r\n",
    "id: 4\nevent: ignored\n\n",
    "retry: soon\ndata: last\n\n",
    "data: never dispatched",
];

fn expected_events() -> Vec<SseEvent> {
    vec![
        SseEvent::data("hello")
            .with_id("1")
            .with_event("greeting")
            .with_retry(2500),
        SseEvent::data("line one\nline two"),
        SseEvent::data(" two spaces\n").with_id("3"),
        SseEvent::data("split"),
        SseEvent::data("last"),
    ]
}

#[tokio::test]
async fn sse_stream_is_parsed_exactly_on_every_protocol() {
    for proto in Proto::ALL {
        let handler: Handler = Arc::new(|_req| {
            Box::pin(async move {
                let (tx, body) = channel_body(SSE_CHUNKS.len());
                for chunk in SSE_CHUNKS {
                    tx.try_send(Bytes::from_static(chunk.as_bytes())).unwrap();
                }
                drop(tx);
                hyper::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(body)
                    .unwrap()
            })
        });
        let server = start_server(alpn_for(proto), handler).await;
        let client = TestClient::connect(server.addr, proto).await;
        let mut stream = client.open_stream(Request::sse("/events")).await;
        assert_eq!(stream.status, 200, "{proto:?}");
        assert_eq!(stream.version, proto.version(), "{proto:?}");
        assert_eq!(
            stream.header("content-type"),
            Some("text/event-stream"),
            "{proto:?}"
        );

        assert_eq!(
            stream.next_comment(DEADLINE).await.as_deref(),
            Some(""),
            "{proto:?}"
        );
        for want in expected_events() {
            assert_eq!(stream.next_event(DEADLINE).await, Some(want), "{proto:?}");
        }
        // Skipped by next_event, still queued for next_comment.
        assert_eq!(
            stream.next_comment(DEADLINE).await.as_deref(),
            Some(" a comment"),
            "{proto:?}"
        );
        assert_eq!(
            stream.next_event_outcome(DEADLINE).await,
            Outcome::Ended,
            "{proto:?}"
        );
        assert!(stream.wait_end(DEADLINE).await, "{proto:?}");
        assert_eq!(stream.raw(), SSE_CHUNKS.concat().as_bytes(), "{proto:?}");
        assert_eq!(stream.last_event_id(), "4", "{proto:?}");
        assert_eq!(stream.retry(), Some(2500), "{proto:?}");
    }
}

#[test]
fn sse_parser_is_independent_of_chunking() {
    let wire = SSE_CHUNKS.concat();
    let mut whole = SseParser::new();
    let items = whole.feed(wire.as_bytes());

    let mut bytewise = SseParser::new();
    let items_bytewise: Vec<SseItem> = wire
        .as_bytes()
        .iter()
        .flat_map(|b| bytewise.feed(&[*b]))
        .collect();
    assert_eq!(items, items_bytewise);

    let events: Vec<SseEvent> = items
        .iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => Some(e.clone()),
            SseItem::Comment(_) => None,
        })
        .collect();
    assert_eq!(events, expected_events());
    assert_eq!(items[0], SseItem::Comment(String::new()));
}

#[test]
fn sse_parser_follows_the_spec_edge_cases() {
    let mut p = SseParser::new();
    // Leading BOM skipped once; a field name without colon; unknown fields ignored; id with NUL
    // ignored; an invalid retry ignored; `data:` with nothing is an empty line of data.
    let items = p.feed(
        b"\xEF\xBB\xBFdata: a\nfoo: bar\nid: x\0y\nretry: 12a\n\ndata:\n\n\xEF\xBB\xBFdata: b\n\n",
    );
    assert_eq!(
        items,
        vec![
            SseItem::Event(SseEvent::data("a")),
            SseItem::Event(SseEvent::data("")),
            // A BOM after the start is part of the field name: an unknown field.
        ]
    );
    assert_eq!(p.last_event_id(), "");
    assert_eq!(p.reconnection_time(), None);

    // An id persists across events (spec) while SseEvent.id reports only the block's own field.
    let mut p = SseParser::new();
    let items = p.feed(b"id: 7\ndata: x\n\ndata: y\n\nid\ndata: z\n\n");
    assert_eq!(
        items,
        vec![
            SseItem::Event(SseEvent::data("x").with_id("7")),
            SseItem::Event(SseEvent::data("y")),
            SseItem::Event(SseEvent::data("z").with_id("")),
        ]
    );
    assert_eq!(p.last_event_id(), "");

    // A lone CR at the end of a chunk followed by a non-LF byte ends the line once.
    let mut p = SseParser::new();
    let mut items = p.feed(b"data: 1\r");
    items.extend(p.feed(b"\rdata: 2\r\n"));
    items.extend(p.feed(b"\n"));
    assert_eq!(
        items,
        vec![
            SseItem::Event(SseEvent::data("1")),
            SseItem::Event(SseEvent::data("2"))
        ]
    );
}

/// Hands each stream's body sender to the test as the server handles the request.
fn registering_handler(
    capacity: usize,
) -> (
    Handler,
    mpsc::UnboundedReceiver<(String, mpsc::Sender<Bytes>)>,
) {
    let (reg_tx, reg_rx) = mpsc::unbounded_channel();
    let handler: Handler = Arc::new(move |req: hyper::Request<Incoming>| {
        let reg_tx = reg_tx.clone();
        Box::pin(async move {
            let (tx, body) = channel_body(capacity);
            reg_tx.send((req.uri().path().to_owned(), tx)).unwrap();
            hyper::Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
        })
    });
    (handler, reg_rx)
}

async fn registered(
    reg: &mut mpsc::UnboundedReceiver<(String, mpsc::Sender<Bytes>)>,
) -> (String, mpsc::Sender<Bytes>) {
    timeout(DEADLINE, reg.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn two_concurrent_streams_share_one_h2_connection() {
    for proto in [Proto::H2c, Proto::TlsH2] {
        let (handler, mut reg) = registering_handler(4);
        let server = start_server(alpn_for(proto), handler).await;
        let client = TestClient::connect(server.addr, proto).await;

        let (mut a, mut b) = tokio::join!(
            client.open_stream(Request::sse("/a")),
            client.open_stream(Request::sse("/b"))
        );
        let mut senders = std::collections::HashMap::new();
        for _ in 0..2 {
            let (path, tx) = registered(&mut reg).await;
            senders.insert(path, tx);
        }
        let tx_a = senders.remove("/a").unwrap();
        let tx_b = senders.remove("/b").unwrap();

        tx_b.send(Bytes::from_static(b"data: b1\n\n"))
            .await
            .unwrap();
        tx_a.send(Bytes::from_static(b"data: a1\n\n"))
            .await
            .unwrap();
        assert_eq!(
            b.next_event(DEADLINE).await,
            Some(SseEvent::data("b1")),
            "{proto:?}"
        );
        assert_eq!(
            a.next_event(DEADLINE).await,
            Some(SseEvent::data("a1")),
            "{proto:?}"
        );

        // Ending b leaves a open; a plain request still fits on the same connection.
        drop(tx_b);
        assert!(b.wait_end(DEADLINE).await, "{proto:?}");
        tx_a.send(Bytes::from_static(b"data: a2\n\n"))
            .await
            .unwrap();
        assert_eq!(
            a.next_event(DEADLINE).await,
            Some(SseEvent::data("a2")),
            "{proto:?}"
        );
        let c = client.open_stream(Request::get("/c")).await;
        let (_, tx_c) = registered(&mut reg).await;
        drop(tx_c);
        let mut c = c;
        assert!(c.wait_end(DEADLINE).await, "{proto:?}");

        assert_eq!(server.connections.load(Ordering::SeqCst), 1, "{proto:?}");
    }
}

/// Dropping an `SseStream` closes it at once (HTTP/1.1: the connection; h2: RST_STREAM), which
/// the server sees as its body receiver going away: what hub tests use for "subscriber left".
#[tokio::test]
async fn dropping_a_stream_is_seen_by_the_server() {
    for proto in Proto::ALL {
        let (handler, mut reg) = registering_handler(1);
        let server = start_server(alpn_for(proto), handler).await;
        let client = TestClient::connect(server.addr, proto).await;
        let mut stream = client.open_stream(Request::sse("/gone")).await;
        let (_, tx) = registered(&mut reg).await;
        tx.send(Bytes::from_static(b":\n")).await.unwrap();
        assert_eq!(
            stream.next_comment(DEADLINE).await.as_deref(),
            Some(""),
            "{proto:?}"
        );
        drop(stream);
        timeout(DEADLINE, tx.closed())
            .await
            .unwrap_or_else(|_| panic!("{proto:?}: server never saw the client leave"));
    }
}

/// A stream nobody polls must not be drained behind the caller's back: an endless server
/// writer stalls once the transport buffers (kernel socket buffers, the client's 64 KiB h2 stream
/// window, hyper's write buffer) are full, and moves again as soon as the test reads.
#[tokio::test]
async fn an_unpolled_stream_pushes_back_on_the_server() {
    const CHUNK: usize = 64 * 1024;
    // Far above what the buffers hold, far below what a background reader would pull in the
    // window on any machine this runs on.
    const BOUND: usize = 16 * 1024 * 1024;
    for proto in [Proto::H1, Proto::H2c] {
        let (handler, mut reg) = registering_handler(1);
        let server = start_server(None, handler).await;
        let client = TestClient::connect(server.addr, proto).await;
        let mut stream = client.open_stream(Request::sse("/flood")).await;
        let (_, tx) = registered(&mut reg).await;

        let written = Arc::new(AtomicUsize::new(0));
        let counter = written.clone();
        tokio::spawn(async move {
            let mut line = vec![b'x'; CHUNK];
            line[0] = b':';
            line[CHUNK - 1] = b'\n';
            let line = Bytes::from(line);
            // Ends when the client goes away.
            while tx.send(line.clone()).await.is_ok() {
                counter.fetch_add(CHUNK, Ordering::SeqCst);
            }
        });

        // An absence window, not synchronization: the assertion below holds after any wait
        // for a client that does not read, so a slow machine can only make it pass more easily.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stalled_at = written.load(Ordering::SeqCst);
        assert!(
            stalled_at < BOUND,
            "{proto:?}: the server wrote {stalled_at} bytes to a client that was not reading"
        );

        // Reading moves the writer on: consume more than could ever have been buffered.
        let mut read = 0;
        while read <= stalled_at + BOUND {
            let comment = stream.next_comment(DEADLINE).await.expect("flood comment");
            read += comment.len() + 2;
        }
        assert!(written.load(Ordering::SeqCst) > stalled_at, "{proto:?}");
        assert!(stream.failure().is_none(), "{proto:?}");
    }
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_a_failure_not_an_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        // Read until the end of the request head; the client sends no body.
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut byte)
                .await
                .unwrap();
            request.push(byte[0]);
        }
        tcp.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
              9\r\ndata: x\n\n\r\n",
        )
        .await
        .unwrap();
        // Dropped without the terminating 0-size chunk.
    });
    let client = TestClient::connect(addr, Proto::H1).await;
    let mut stream = client.open_stream(Request::sse("/")).await;
    assert_eq!(stream.next_event(DEADLINE).await, Some(SseEvent::data("x")));
    assert!(!stream.wait_end(DEADLINE).await);
    let failure = stream.failure().unwrap();
    assert!(failure.contains("unexpected EOF"), "{failure}");
    assert!(matches!(
        stream.next_event_outcome(DEADLINE).await,
        Outcome::Failed(_)
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn tls_refuses_an_alpn_the_server_does_not_offer() {
    let server = start_server(Some(&[b"http/1.1"]), echo_handler()).await;
    let err = TestClient::try_connect(server.addr, Proto::TlsH2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
    // The same server is fine for what it offers.
    let client = TestClient::connect(server.addr, Proto::TlsH1).await;
    assert_eq!(client.send(Request::get("/")).await.status, 200);

    // A server that ignores ALPN completes the handshake; the helper's own check refuses it.
    let silent = start_server(Some(&[]), echo_handler()).await;
    for proto in [Proto::TlsH2, Proto::TlsH1] {
        let err = TestClient::try_connect(silent.addr, proto)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("server chose None"),
            "{proto:?}: {err}"
        );
    }
}

fn split_token(token: &str) -> (Value, Value, Vec<u8>, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    (header, claims, sig, format!("{}.{}", parts[0], parts[1]))
}

#[test]
fn hs256_token_verifies_with_ring_hmac() {
    let details = json!([
        publish_detail(&[("*", "")]),
        subscribe_detail(&[("https://example.com/books/:id", "urlpattern")])
    ]);
    let exp = unix_now() + 3600;
    let token = hs256_token(
        "!ChangeThisMercureHubJWTSecretKey!",
        claims(
            "https://localhost",
            "https://localhost/.well-known/mercure",
            exp,
            details.clone(),
        ),
    );
    let (header, got, sig, input) = split_token(&token);
    assert_eq!(header, json!({"alg": "HS256", "typ": "at+jwt"}));
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        b"!ChangeThisMercureHubJWTSecretKey!",
    );
    ring::hmac::verify(&key, input.as_bytes(), &sig).unwrap();
    let wrong = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another secret");
    assert!(ring::hmac::verify(&wrong, input.as_bytes(), &sig).is_err());

    assert_eq!(got["iss"], "https://localhost");
    assert_eq!(got["aud"], "https://localhost/.well-known/mercure");
    assert_eq!(got["exp"], exp);
    assert_eq!(got["client_id"], "https://localhost");
    assert!(got["sub"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(got["iat"].as_u64().unwrap() <= exp);
    assert!(!got["jti"].as_str().unwrap().is_empty());
    assert_eq!(
        got["authorization_details"],
        json!([
            {"type": "https://mercure.rocks/authorization-detail", "actions": ["publish"], "topics": [{"match": "*"}]},
            {"type": "https://mercure.rocks/authorization-detail", "actions": ["subscribe"],
             "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]},
        ])
    );
    let with_payload = subscribe_detail_with_payload(&[("a", "exact")], json!({"user": 1}));
    assert_eq!(with_payload["payload"], json!({"user": 1}));
    assert!(claims("i", "a", 1, Value::Null)
        .get("authorization_details")
        .is_none());
}

#[test]
fn es256_token_verifies_with_ring_and_its_spki_pem_is_well_formed() {
    let key = TestKey::es256();
    let token = sign("ES256", &key, Value::Null, json!({"sub": "x"}));
    let (header, claims, sig, input) = split_token(&token);
    assert_eq!(header, json!({"alg": "ES256", "typ": "at+jwt"}));
    assert_eq!(claims, json!({"sub": "x"}));
    assert_eq!(sig.len(), 64, "JWS ECDSA signatures are r || s");
    let point = key.public_key_raw();
    assert_eq!((point.len(), point[0]), (65, 0x04));
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &sig)
        .unwrap();

    let pem = key.public_key_pem();
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
            && pem.ends_with("-----END PUBLIC KEY-----\n")
    );
    let der = rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(der.as_ref(), key.public_key_spki_der().as_slice());
    let spki = spki::SubjectPublicKeyInfoRef::try_from(der.as_ref()).unwrap();
    assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.10045.2.1");
    assert_eq!(spki.subject_public_key.raw_bytes(), point.as_slice());

    let jwk = key.jwk();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    assert_eq!([&[0x04][..], &x, &y].concat(), point);
}

#[test]
fn every_other_algorithm_verifies_with_ring() {
    type Check = (
        &'static str,
        fn() -> TestKey,
        &'static dyn signature::VerificationAlgorithm,
    );
    let checks: [Check; 9] = [
        ("ES384", TestKey::es384, &signature::ECDSA_P384_SHA384_FIXED),
        ("EdDSA", TestKey::ed25519, &signature::ED25519),
        (
            "RS256",
            TestKey::rsa_fixture,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            "RS384",
            TestKey::rsa_fixture,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            "RS512",
            TestKey::rsa_fixture,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        (
            "PS256",
            TestKey::rsa_fixture,
            &signature::RSA_PSS_2048_8192_SHA256,
        ),
        (
            "PS384",
            TestKey::rsa_fixture,
            &signature::RSA_PSS_2048_8192_SHA384,
        ),
        (
            "PS512",
            TestKey::rsa_fixture,
            &signature::RSA_PSS_2048_8192_SHA512,
        ),
        ("ES256", TestKey::es256, &signature::ECDSA_P256_SHA256_FIXED),
    ];
    for (alg, make, verify) in checks {
        let key = make();
        let token = sign(alg, &key, Value::Null, json!({"n": 1}));
        let (header, _, sig, input) = split_token(&token);
        assert_eq!(header["alg"], alg);
        UnparsedPublicKey::new(verify, key.public_key_raw())
            .verify(input.as_bytes(), &sig)
            .unwrap_or_else(|_| panic!("{alg}"));
        // The SPKI wrapping parses and carries exactly the raw key.
        let spki_der = key.public_key_spki_der();
        let spki = spki::SubjectPublicKeyInfoRef::try_from(spki_der.as_slice()).unwrap();
        assert_eq!(
            spki.subject_public_key.raw_bytes(),
            key.public_key_raw().as_slice(),
            "{alg}"
        );
        assert!(!key.jwk()["kty"].as_str().unwrap().is_empty());
        assert!(key
            .private_key_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    for (alg, digest) in [
        ("HS384", ring::hmac::HMAC_SHA384),
        ("HS512", ring::hmac::HMAC_SHA512),
    ] {
        let token = sign(alg, &TestKey::hmac(b"k"), Value::Null, json!({}));
        let (_, _, sig, input) = split_token(&token);
        ring::hmac::verify(&ring::hmac::Key::new(digest, b"k"), input.as_bytes(), &sig).unwrap();
    }

    // A header that lies about its algorithm is kept as given; `none` signs with nothing.
    let lying = sign(
        "HS256",
        &TestKey::hmac(b"k"),
        json!({"alg": "RS256"}),
        json!({}),
    );
    assert_eq!(split_token(&lying).0, json!({"alg": "RS256"}));
    let unsigned = sign(
        "none",
        &TestKey::hmac(b""),
        json!({"typ": "at+jwt"}),
        json!({}),
    );
    assert!(unsigned.ends_with('.'));
}
