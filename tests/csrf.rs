//! CSRF protection of cookie-authenticated publishing (spec "Security Considerations"):
//! `--publish-origins` allowlist against `Origin` (else `Referer`), 400 `invalid_request` when
//! neither is present or the origin is not listed; header tokens are not subject to it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;

const HUB: &str = "/.well-known/mercure";
const COOKIE: &str = "__Secure-mercure_access_token";

fn cookie_publish(extra: &[(&str, &str)]) -> Request {
    let mut req = Request::post(HUB)
        .form(&[("topic", "https://example.com/csrf"), ("data", "x")])
        .header("cookie", &format!("{COOKIE}={}", publish_all()));
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req
}

#[tokio::test]
async fn publish_origins_allowlist() {
    let hub = TestHub::start_with(|c| {
        c.publish_origins = vec![
            "https://app.test".to_owned(),
            "https://*.example.com".to_owned(),
        ];
    })
    .await;
    let client = hub.client(Proto::H1).await;
    let cases: [(&[(&str, &str)], StatusCode); 7] = [
        (&[], StatusCode::BAD_REQUEST),
        (&[("origin", "https://evil.test")], StatusCode::BAD_REQUEST),
        (&[("origin", "https://app.test")], StatusCode::OK),
        (&[("origin", "https://a.example.com")], StatusCode::OK),
        (
            &[("origin", "http://a.example.com")],
            StatusCode::BAD_REQUEST,
        ),
        (&[("referer", "https://app.test/page?x=1")], StatusCode::OK),
        (
            &[("referer", "https://evil.test/app.test")],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (headers, status) in cases {
        let resp = client.send(cookie_publish(headers)).await;
        assert_eq!(resp.status, status, "{headers:?}: {}", resp.text());
        if status == StatusCode::BAD_REQUEST {
            let challenge = resp.header("www-authenticate").unwrap_or("");
            assert!(challenge.contains("invalid_request"), "{challenge}");
        }
    }
    // A header token is not cookie-authenticated: no origin needed.
    let resp = client
        .send(
            Request::post(HUB)
                .form(&[("topic", "https://example.com/csrf"), ("data", "x")])
                .bearer(&publish_all()),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    hub.shutdown().await;
}

#[tokio::test]
async fn publish_origins_wildcard_allows_any_origin_but_still_needs_one() {
    let hub = TestHub::start_with(|c| c.publish_origins = vec!["*".to_owned()]).await;
    let client = hub.client(Proto::H1).await;
    let resp = client
        .send(cookie_publish(&[("origin", "https://anything.test")]))
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let resp = client.send(cookie_publish(&[])).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    hub.shutdown().await;
}
