//! Lifecycle of the in-process hub: graceful shutdown ends every SSE stream cleanly (HTTP/1.1,
//! h2c, TLS h2) and returns within the grace period; the listeners are closed afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;

#[tokio::test]
async fn shutdown_ends_streams_cleanly_on_every_protocol() {
    let hub = TestHub::start().await;
    let mut streams = Vec::new();
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2, Proto::TlsH1] {
        let client = hub.client(proto).await;
        let s = client
            .open_stream(
                Request::sse(&sub_target("match=https%3A%2F%2Fexample.com%2Fx"))
                    .bearer(&subscribe_all()),
            )
            .await;
        assert_eq!(s.status, StatusCode::OK);
        // The stream is live: it receives an update before shutdown.
        streams.push((proto, client, s));
    }
    let publisher = hub.client(Proto::H1).await;
    let resp = publisher
        .send(
            Request::post("/.well-known/mercure")
                .bearer(&publish_all())
                .form(&[("topic", "https://example.com/x"), ("data", "before")]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    for (proto, _, s) in &mut streams {
        let ev = s
            .next_event(DEADLINE)
            .await
            .unwrap_or_else(|| panic!("{proto:?}: no event"));
        assert_eq!(ev.data, "before");
    }
    let (tls_addr, addr) = (hub.tls_addr, hub.addr);
    tokio::time::timeout(DEADLINE, hub.shutdown())
        .await
        .expect("shutdown returns within the deadline");
    for (proto, _, s) in &mut streams {
        // A clean end: the chunked body / h2 stream is terminated properly, not reset.
        assert!(
            s.wait_end(DEADLINE).await,
            "{proto:?}: stream did not end cleanly: {:?}",
            s.failure()
        );
    }
    assert!(
        TestClient::try_connect(addr, Proto::H1).await.is_err(),
        "plain listener still open"
    );
    assert!(
        TestClient::try_connect(tls_addr, Proto::TlsH2)
            .await
            .is_err(),
        "TLS listener still open"
    );
}
