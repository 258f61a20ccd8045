//! Shared integration-test helpers: a real hyper client for HTTP/1.1, h2c and TLS (`client`), an
//! incremental SSE parser and stream reader (`sse`), and JWT minting independent of the hub (`jwt`).
//! Test-only code: it panics with context instead of returning errors wherever a test would.
#![allow(
    dead_code,
    unused_imports,
    reason = "each tests/*.rs crate compiles this module but uses only part of it"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic with a message is the right failure"
)]

pub mod client;
pub mod hub;
pub mod jwt;
pub mod presence;
pub mod sse;

pub use client::{
    certs_dev_dir, error_chain, open_io, query_method, BoxIo, Proto, Request, Response, TestClient,
    ALPN_H1, ALPN_H2, DEADLINE,
};
pub use hub::{
    match_param, publish_all, publisher_token, sub_target, subscribe_all, subscriber_token,
    temp_data_dir, test_config, TestHub, ISSUER, PUBLISHER_SECRET, RESOURCE, SUBSCRIBER_SECRET,
};
pub use jwt::{
    claims, default_header, detail, hs256_token, publish_detail, sign, subscribe_detail,
    subscribe_detail_with_payload, unix_now, TestKey, DETAIL_TYPE,
};
pub use presence::{enc, next_sub_event, unique, wait_for_sub_event, ALL_EVENTS, NS};
pub use sse::{Outcome, SseEvent, SseItem, SseParser, SseStream};

/// Whether an external program a test needs (curl, …) is installed. Absent: the test is skipped
/// with a message, except in CI (`QUICKSILVER_TEST_EXTERNAL=1`), where absence fails the test.
pub fn external_program(name: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("QUICKSILVER_TEST_EXTERNAL").as_deref() == Ok("1") {
            panic!("{name} is required (QUICKSILVER_TEST_EXTERNAL=1) but not installed");
        }
        eprintln!(
            "skipping: {name} is not installed (set QUICKSILVER_TEST_EXTERNAL=1 to require it)"
        );
    }
    found
}

/// Opens a stream and asserts 200 (showing the error body otherwise).
pub async fn open(client: &TestClient, req: Request) -> SseStream {
    let what = format!("{} {}", req.method, req.target);
    let mut s = client.open_stream(req).await;
    if s.status != http::StatusCode::OK {
        s.wait_end(DEADLINE).await;
        panic!("{what}: {} {:?}", s.status, s.raw_str());
    }
    s
}

/// The next event, or a panic saying why there is none.
pub async fn next(s: &mut SseStream, what: &str) -> SseEvent {
    match s.next_event_outcome(DEADLINE).await {
        Outcome::Got(ev) => ev,
        other => panic!(
            "{what}: no event ({other:?}); received so far: {:?}",
            s.raw_str()
        ),
    }
}

/// A subscriber that reads `expected` (ids, each with `size` bytes of data) in order on a task
/// of its own and gives a permit back per event: a publisher taking a permit per publish stays
/// at most the semaphore's initial permits ahead of it, so it can never overflow its queue.
pub fn paced_reader(
    mut reader: SseStream,
    expected: Vec<String>,
    size: usize,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    label: &'static str,
) -> tokio::task::JoinHandle<SseStream> {
    tokio::spawn(async move {
        for (i, id) in expected.iter().enumerate() {
            let ev = match reader.next_event_outcome(DEADLINE).await {
                Outcome::Got(ev) => ev,
                other => panic!("{label}: {other:?} at update {i}"),
            };
            assert_eq!(ev.id.as_deref(), Some(id.as_str()), "{label}, update {i}");
            assert_eq!(ev.data.len(), size, "{label}, update {i}");
            permits.add_permits(1);
        }
        reader
    })
}
