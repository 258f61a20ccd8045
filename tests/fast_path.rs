//! The HTTP/1.1 fast path (src/server/fast.rs), byte for byte over raw TCP: a stream is
//! chunked and ends with the last chunk; an error answered by the fast path keeps the connection
//! alive for hyper (a publish and a health check follow on the same socket) or closes it when
//! asked; pipelined requests and other methods are hyper's; publishes with a `Content-Length`
//! body are answered on one kept-alive connection whatever their writes' boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw HTTP/1.1 connection with a read buffer; every read is bounded by `DEADLINE`.
struct Raw {
    tcp: BoxIo,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(hub: &TestHub) -> Self {
        let tcp = TcpStream::connect(hub.addr).await.expect("connect");
        Self {
            tcp: Box::new(tcp),
            buf: Vec::new(),
        }
    }

    /// A subscriber to the test topic with a token, its stream head read.
    async fn subscriber(hub: &TestHub) -> Self {
        let mut raw = Self::connect(hub).await;
        raw.send(&authorized_subscribe_head()).await;
        assert_eq!(raw.head().await.0, 200);
        raw
    }

    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    async fn connect_tls(hub: &TestHub) -> Self {
        let proto = Proto::TlsH1;
        let tcp = open_io(hub.addr_for(proto), proto)
            .await
            .expect("TLS connect");
        Self {
            tcp,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.tcp.write_all(bytes.as_bytes()).await.expect("write");
    }

    /// Reads more bytes; false at EOF (or a reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(DEADLINE, self.tcp.read(&mut chunk)).await {
            Err(_) => panic!("no bytes within {DEADLINE:?}; have {:?}", self.text()),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// The next response head (status line + headers, lowercased names), consumed.
    async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).expect("UTF-8 head");
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status = lines.next().expect("status line");
                assert!(status.starts_with("HTTP/1.1 "), "{status}");
                let code = status[9..12].parse().expect("status code");
                let headers = lines
                    .map(|l| {
                        let (n, v) = l.split_once(':').expect("header line");
                        (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                return (code, headers);
            }
            assert!(
                self.fill().await,
                "EOF before a complete head: {:?}",
                self.text()
            );
        }
    }

    /// A whole response with a `content-length` body.
    async fn response(&mut self) -> (u16, Vec<(String, String)>, String) {
        let (code, headers) = self.head().await;
        let len: usize = header(&headers, "content-length")
            .expect("content-length")
            .parse()
            .expect("length");
        while self.buf.len() < len {
            assert!(self.fill().await, "EOF inside the body");
        }
        let body = String::from_utf8(self.buf.drain(..len).collect()).expect("UTF-8 body");
        (code, headers, body)
    }

    /// Publishes `data` (with `extra` headers) in one write and reads the whole response.
    async fn publish(&mut self, extra: &str, data: &str) -> (u16, Vec<(String, String)>, String) {
        let (head, body) = publish_request(extra, data);
        self.send(&format!("{head}{body}")).await;
        self.response().await
    }

    /// Reads until the peer closes, which it must do without sending anything more.
    async fn assert_closes_silently(&mut self, after: &str) {
        let rest = self.read_to_eof().await;
        assert!(rest.is_empty(), "bytes {after}: {rest:?}");
    }

    /// Reads until the peer closes; returns everything received.
    async fn read_to_eof(&mut self) -> String {
        while self.fill().await {}
        self.text()
    }
}

/// RFC 6750 §3: a refused request carries a `Bearer` challenge.
fn assert_bearer_challenge(headers: &[(String, String)]) {
    assert!(
        header(headers, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{headers:?}"
    );
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn subscribe_head(extra: &str) -> String {
    format!(
        "GET /.well-known/mercure?match=https%3A%2F%2Fexample.com%2Ffast HTTP/1.1\r\nHost: hub.test\r\n{extra}\r\n"
    )
}

fn authorized_subscribe_head() -> String {
    subscribe_head(&format!("Authorization: Bearer {}\r\n", subscribe_all()))
}

/// Publishes `data` on the topic `raw` subscribed to and reads until it arrives.
async fn publish_and_receive(hub: &TestHub, raw: &mut Raw, data: &str) {
    let publisher = hub.client(Proto::H1).await;
    let resp = publisher
        .send(
            Request::post("/.well-known/mercure")
                .bearer(&publish_all())
                .form(&[("topic", "https://example.com/fast"), ("data", data)]),
        )
        .await;
    assert_eq!(resp.status, http::StatusCode::OK);
    while !raw.text().contains(&format!("data: {data}\n\n")) {
        assert!(raw.fill().await, "EOF before the update: {:?}", raw.text());
    }
}

/// Spec "Subscription": the stream is `text/event-stream`; over HTTP/1.1 it is chunked, carries
/// a `Date`, and a hub ending it (here: shutdown) sends the terminating chunk before closing.
#[tokio::test]
async fn stream_is_chunked_and_ends_with_the_last_chunk() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&authorized_subscribe_head()).await;
    let (code, headers) = raw.head().await;
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    assert!(header(&headers, "date").is_some(), "{headers:?}");
    assert!(header(&headers, "content-length").is_none());
    // The connection ends with the stream: the head says so (RFC 9112 §9.6).
    assert_eq!(header(&headers, "connection"), Some("close"));
    // The update arrives framed as a chunk.
    publish_and_receive(&hub, &mut raw, "over the fast path").await;
    tokio::time::timeout(DEADLINE, hub.shutdown())
        .await
        .expect("shutdown within the deadline");
    let all = raw.read_to_eof().await;
    assert!(
        all.ends_with("\r\n0\r\n\r\n"),
        "no terminating chunk: {all:?}"
    );
}

/// An error answered on the fast path (401 with its RFC 6750 challenge) leaves the connection
/// open: hyper serves what follows on the same socket (a publish, a health check).
#[tokio::test]
async fn error_then_keep_alive_on_the_same_connection() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&subscribe_head("")).await;
    let (code, headers, body) = raw.response().await;
    assert_eq!(code, 401, "{body}");
    assert_bearer_challenge(&headers);
    let form = "topic=https%3A%2F%2Fexample.com%2Ffast&data=after+the+401";
    raw.send(&format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        publish_all(),
        form.len()
    ))
    .await;
    let (code, _, body) = raw.response().await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("urn:uuid:"), "{body}");
    raw.send("GET /healthz HTTP/1.1\r\nHost: hub.test\r\n\r\n")
        .await;
    let (code, _, body) = raw.response().await;
    assert_eq!(code, 200, "{body}");
    hub.shutdown().await;
}

/// After a refused subscription the next request on the connection is sniffed again: a
/// subscription with a token then streams on the same socket.
#[tokio::test]
async fn error_then_subscription_on_the_same_connection() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&subscribe_head("")).await;
    let (code, headers, _) = raw.response().await;
    assert_eq!(code, 401);
    assert_eq!(header(&headers, "connection"), None, "kept alive");
    raw.send(&authorized_subscribe_head()).await;
    let (code, headers) = raw.head().await;
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    // The fast path (not hyper) serves it: only its stream heads announce the close.
    assert_eq!(header(&headers, "connection"), Some("close"));
    hub.shutdown().await;
}

/// Bytes a client sends during its stream are not read (no spinning on them, like hyper); the
/// stream goes on delivering.
#[tokio::test]
async fn bytes_sent_during_a_stream_do_not_end_it() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&authorized_subscribe_head()).await;
    let (code, _) = raw.head().await;
    assert_eq!(code, 200);
    raw.send(&"x".repeat(64 * 1024)).await;
    publish_and_receive(&hub, &mut raw, "still here").await;
    hub.shutdown().await;
}

/// `Connection: close` on a refused subscription: the answer, then the connection closes.
#[tokio::test]
async fn error_with_connection_close_closes() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&subscribe_head("Connection: close\r\n")).await;
    let (code, headers, _) = raw.response().await;
    assert_eq!(code, 401);
    assert_eq!(header(&headers, "connection"), Some("close"));
    raw.assert_closes_silently("after the response").await;
    hub.shutdown().await;
}

/// Pipelined requests are hyper's, answered in order on the one connection.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let hub = TestHub::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&format!(
        "{}GET /healthz HTTP/1.1\r\nHost: hub.test\r\n\r\n",
        subscribe_head("")
    ))
    .await;
    let (first, _, _) = raw.response().await;
    let (second, _, body) = raw.response().await;
    assert_eq!((first, second), (401, 200), "{body}");
    hub.shutdown().await;
}

/// The publisher's `Authorization` header line.
fn bearer() -> String {
    format!("Authorization: Bearer {}\r\n", publish_all())
}

/// A publish request over a raw connection: `extra` headers, then the form as its body.
fn publish_request(extra: &str, data: &str) -> (String, String) {
    let form = format!(
        "topic=https%3A%2F%2Fexample.com%2Ffast&data={}",
        data.replace(' ', "+")
    );
    let head = format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}Content-Length: {}\r\n\r\n",
        form.len()
    );
    (head, form)
}

/// Reads the subscriber's stream until `data` arrived; returns its event's `id`.
async fn received_id(raw: &mut Raw, data: &str) -> String {
    let marker = format!("data: {data}\n\n");
    loop {
        let text = raw.text();
        if let Some(end) = text.find(&marker) {
            let event = &text[..end];
            let id_line = event.rfind("id: ").expect("an id before the data");
            return event[id_line + 4..]
                .lines()
                .next()
                .expect("id line")
                .to_owned();
        }
        assert!(raw.fill().await, "EOF before {data:?}: {text:?}");
    }
}

/// Spec "Publication" over the fast path (Content-Length bodies read with their head): on one
/// kept-alive connection a publish sent in one write, one whose body follows its head in a
/// second write, a refused one (401 with its challenge; the connection stays), and one with
/// `Expect: 100-continue` (hyper's from there) are each answered in order, and the subscriber
/// receives the accepted ones under the ids the publisher was given.
#[tokio::test]
async fn publishes_on_one_kept_alive_connection() {
    let hub = TestHub::start().await;
    let mut sub = Raw::subscriber(&hub).await;
    let mut publisher = Raw::connect(&hub).await;
    let auth = bearer();

    let (code, headers, first) = publisher.publish(&auth, "one write").await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(header(&headers, "connection"), None, "kept alive");
    assert_eq!(received_id(&mut sub, "one write").await, first);

    // A slow client: the body follows its head a moment later (hyper reads it, within its
    // own body timeout).
    let (head, body) = publish_request(&auth, "two writes");
    publisher.send(&head).await;
    publisher.tcp.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.send(&body).await;
    let (code, _, second) = publisher.response().await;
    assert_eq!(code, 200, "{second}");
    assert_ne!(first, second);
    assert_eq!(received_id(&mut sub, "two writes").await, second);

    let (code, headers, _) = publisher.publish("", "no token").await;
    assert_eq!(code, 401);
    assert_bearer_challenge(&headers);

    let (head, body) = publish_request(&format!("{auth}Expect: 100-continue\r\n"), "continued");
    publisher.send(&head).await;
    let (code, _) = publisher.head().await;
    assert_eq!(code, 100, "the interim answer comes before the body");
    publisher.send(&body).await;
    let (code, _, third) = publisher.response().await;
    assert_eq!(code, 200, "{third}");
    assert_eq!(received_id(&mut sub, "continued").await, third);
    hub.shutdown().await;
}

/// Two publishes pipelined in one write (hyper's) are both answered, in order, and delivered.
#[tokio::test]
async fn pipelined_publishes_are_answered_in_order() {
    let hub = TestHub::start().await;
    let mut sub = Raw::subscriber(&hub).await;
    let mut publisher = Raw::connect(&hub).await;
    let auth = bearer();
    let (h1, b1) = publish_request(&auth, "pipelined one");
    let (h2, b2) = publish_request(&auth, "pipelined two");
    publisher.send(&format!("{h1}{b1}{h2}{b2}")).await;
    let (c1, _, id1) = publisher.response().await;
    let (c2, _, id2) = publisher.response().await;
    assert_eq!((c1, c2), (200, 200), "{id1} {id2}");
    assert_eq!(received_id(&mut sub, "pipelined one").await, id1);
    assert_eq!(received_id(&mut sub, "pipelined two").await, id2);
    hub.shutdown().await;
}

/// A publish without a token is answered 401 from its head (spec "Authorization"): a large body
/// that has not all arrived is never waited for, so an unauthenticated client cannot park it in
/// the hub.
#[tokio::test]
async fn unauthorized_publish_is_refused_before_its_body() {
    let hub = TestHub::start().await;
    let mut publisher = Raw::connect(&hub).await;
    publisher
        .send(&format!(
            "POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n{}",
            "x".repeat(1000)
        ))
        .await;
    let (code, headers) = publisher.head().await;
    assert_eq!(code, 401);
    assert_bearer_challenge(&headers);
    hub.shutdown().await;
}

/// RFC 9113 §3.4: the HTTP/2 preface opens a connection. After an HTTP/1.1 publish on the same
/// connection it is refused (closed, nothing sent), not taken as a protocol switch.
#[tokio::test]
async fn h2_preface_after_a_request_closes_the_connection() {
    let hub = TestHub::start().await;
    let mut publisher = Raw::connect(&hub).await;
    let (code, _, id) = publisher.publish(&bearer(), "first").await;
    assert_eq!(code, 200, "{id}");
    // The preface and an empty SETTINGS frame.
    publisher
        .send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await;
    publisher
        .assert_closes_silently("answering a late preface")
        .await;
    hub.shutdown().await;
}

/// `Connection: close` over TLS: the answer, then a clean close (close_notify before the FIN,
/// so the client can tell a complete response from a truncated one).
#[tokio::test]
async fn connection_close_over_tls_ends_with_close_notify() {
    let hub = TestHub::start().await;
    let mut publisher = Raw::connect_tls(&hub).await;
    let extra = format!("{}Connection: close\r\n", bearer());
    let (code, headers, id) = publisher.publish(&extra, "then close").await;
    assert_eq!(code, 200, "{id}");
    assert_eq!(header(&headers, "connection"), Some("close"));
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, publisher.tcp.read_to_end(&mut rest))
        .await
        .expect("closed within the deadline");
    assert!(end.is_ok(), "no close_notify: {end:?}");
    assert!(rest.is_empty(), "bytes after the response: {rest:?}");
    hub.shutdown().await;
}
