//! Smoke test of the harness: publish over each protocol, receive over each protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;

#[tokio::test]
async fn publish_and_receive_on_every_protocol() {
    let hub = TestHub::start().await;
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2, Proto::TlsH1] {
        let client = hub.client(proto).await;
        let topic = format!("https://example.com/smoke/{proto:?}");
        let mut stream = client
            .open_stream(
                Request::sse(&sub_target(&match_param("match", &topic))).bearer(&subscribe_all()),
            )
            .await;
        assert_eq!(stream.status, StatusCode::OK, "{proto:?}");
        assert_eq!(stream.version, proto.version(), "{proto:?}");
        let resp = client
            .send(
                Request::post("/.well-known/mercure")
                    .bearer(&publish_all())
                    .form(&[("topic", &topic), ("data", "hi")]),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}: {}", resp.text());
        let ev = stream.next_event(DEADLINE).await.expect("event");
        assert_eq!(ev.data, "hi");
        assert_eq!(ev.id.as_deref(), Some(resp.text()));
    }
    hub.shutdown().await;
}
