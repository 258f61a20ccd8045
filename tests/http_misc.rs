//! HTTP surface besides publish and subscribe: protected resource metadata (spec "Protected
//! Resource Metadata", RFC 9728), the welcome page, 404/405, CORS (spec "Subscription", "Subscription
//! API" on exposed headers) and security headers (reference hub §1.2).
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::{Method, StatusCode};
use quicksilver::auth::{Algorithm, IssuerConfig, KeyConfig};
use serde_json::json;

const HUB: &str = "/.well-known/mercure";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";
const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";
const TOPIC: &str = "https://example.com/misc";

fn sub_req(topic: &str) -> Request {
    Request::sse(&sub_target(&match_param("match", topic)))
}

/// Comma-separated header values, lower-cased and trimmed.
fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn issuer(id: &str, authorization_server: bool) -> IssuerConfig {
    IssuerConfig {
        id: id.to_owned(),
        publisher: None,
        subscriber: Some(KeyConfig {
            key: format!("{id}-subscriber-secret-0123456789abcdef"),
            alg: Algorithm::HS256,
        }),
        publisher_jwks: None,
        subscriber_jwks: None,
        authorization_server,
    }
}

// Spec "Protected Resource Metadata": `resource` (the `aud` to use), the Mercure detail type,
// `bearer_methods_supported: ["header"]` (the cookie is `mercure_cookie`), no
// `authorization_servers` when tokens are self-issued. Reference hub §1.6, §8 item 51.
#[tokio::test]
async fn protected_resource_metadata() {
    let hub = TestHub::start().await;
    for proto in Proto::ALL {
        let client = hub.client(proto).await;
        let resp = client.send(Request::get(METADATA_PATH)).await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}");
        let ct = resp.header("content-type").unwrap_or("");
        assert!(ct.starts_with("application/json"), "{proto:?}: {ct}");
        let doc = resp.json();
        assert_eq!(doc["resource"], json!(RESOURCE), "{proto:?}: {doc}");
        assert_eq!(
            doc["authorization_details_types_supported"],
            json!([DETAIL_TYPE]),
            "{proto:?}"
        );
        assert_eq!(
            doc["bearer_methods_supported"],
            json!(["header"]),
            "{proto:?}"
        );
        assert_eq!(
            doc["mercure_cookie"],
            json!("__Secure-mercure_access_token"),
            "{proto:?}"
        );
        assert!(
            doc.get("authorization_servers").is_none(),
            "{proto:?}: self-issued tokens, no authorization server: {doc}"
        );
    }
    hub.shutdown().await;
}

// RFC 9110 §9.3.2: "the server MUST NOT send content in the response" to HEAD; over HTTP/2 a DATA
// frame on a HEAD stream is a protocol error for the client (RFC 9113 §8.1.1), so the metadata
// and welcome routes the hub answers for HEAD must answer with headers only, on every protocol.
#[tokio::test]
async fn head_responses_carry_no_content_on_every_protocol() {
    let hub = TestHub::start().await;
    for proto in Proto::ALL {
        let client = hub.client(proto).await;
        for path in ["/", METADATA_PATH] {
            let head = client
                .try_send(Request::new(Method::HEAD, path))
                .await
                .unwrap_or_else(|e| panic!("{proto:?} HEAD {path}: {}", error_chain(&*e)));
            assert_eq!(head.status, StatusCode::OK, "{proto:?} HEAD {path}");
            assert!(head.body.is_empty(), "{proto:?} HEAD {path}: content sent");
        }
    }
    hub.shutdown().await;
}

// Spec "Protected Resource Metadata": `authorization_servers` lists exactly the issuers flagged as
// authorization servers; `mercure_cookie` is the configured cookie name.
#[tokio::test]
async fn metadata_lists_only_authorization_server_issuers() {
    let hub = TestHub::start_with(|c| {
        c.issuers.push(issuer("https://as1.test", true));
        c.issuers.push(issuer("https://self.test", false));
        c.issuers.push(issuer("https://as2.test", true));
        c.cookie_name = "mercureAuth".to_owned();
    })
    .await;
    let client = hub.client(Proto::H2c).await;
    let doc = client.send(Request::get(METADATA_PATH)).await.json();
    let mut servers: Vec<String> = doc["authorization_servers"]
        .as_array()
        .unwrap_or_else(|| panic!("authorization_servers missing: {doc}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect();
    servers.sort();
    assert_eq!(servers, ["https://as1.test", "https://as2.test"]);
    assert_eq!(doc["mercure_cookie"], json!("mercureAuth"));
    hub.shutdown().await;
}

// Spec "Token Validation" / RFC 9728: without a configured identifier, `resource` is the hub URL
// of the origin the client contacted. Reference hub §1.6, §8 item 51.
#[tokio::test]
async fn metadata_resource_derived_per_origin() {
    let hub = TestHub::start_with(|c| c.resource_identifier = None).await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let doc = client.send(Request::get(METADATA_PATH)).await.json();
        assert_eq!(
            doc["resource"],
            json!(format!("{}{HUB}", client.base_url())),
            "{proto:?}"
        );
    }
    hub.shutdown().await;
}

// The welcome page names the hub, its version and the hub URL as contacted.
#[tokio::test]
async fn welcome_page() {
    let hub = TestHub::start().await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let resp = client.send(Request::get("/")).await;
        assert_eq!(resp.status, StatusCode::OK, "{proto:?}");
        let ct = resp.header("content-type").unwrap_or("");
        assert!(ct.starts_with("text/html"), "{proto:?}: {ct}");
        let page = resp.text();
        assert!(page.contains("Quicksilver"), "{page}");
        assert!(page.contains(env!("CARGO_PKG_VERSION")), "{page}");
        let hub_url = format!("{}{HUB}", client.base_url());
        assert!(
            page.contains(&hub_url),
            "{proto:?}: {hub_url} not in {page}"
        );
    }
    hub.shutdown().await;
}

// Unknown paths are 404; a known path with an unsupported method is 405 with `Allow`
// (RFC 9110 §15.5.6). Reference hub §1.1.
#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let hub = TestHub::start().await;
    let client = hub.client(Proto::H2c).await;
    for path in [
        "/nope",
        "/.well-known/mercure/",
        "/.well-known/mercurex",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = client.send(Request::get(path)).await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}");
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let resp = client
            .send(Request::new(method.clone(), HUB).bearer(&publish_all()))
            .await;
        assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED, "{method} hub");
        let allow = list(resp.header("allow"));
        for m in ["get", "post"] {
            assert!(allow.iter().any(|a| a == m), "{method}: Allow {allow:?}");
        }
        assert!(!allow
            .iter()
            .any(|a| a == &method.as_str().to_ascii_lowercase()));
    }
    let resp = client.send(Request::post(METADATA_PATH).body("x")).await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED, "POST metadata");
    let allow = list(resp.header("allow"));
    assert!(allow.iter().any(|a| a == "get"), "{allow:?}");
    hub.shutdown().await;
}

async fn cors_hub() -> TestHub {
    TestHub::start_with(|c| c.cors_origins = vec![APP.to_owned()]).await
}

fn preflight(origin: &str) -> Request {
    Request::new(Method::OPTIONS, HUB)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization, last-event-id",
        )
}

// Spec "Subscription": credentialed CORS uses an explicit allowlist, never `*`, with
// `Access-Control-Allow-Credentials: true`. Reference hub §1.2, §8 item 52.
#[tokio::test]
async fn cors_preflight_from_an_allowed_origin() {
    let hub = cors_hub().await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let resp = client.send(preflight(APP)).await;
        assert_eq!(resp.status, StatusCode::NO_CONTENT, "{proto:?}");
        assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            resp.header("access-control-allow-credentials"),
            Some("true")
        );
        let methods = list(resp.header("access-control-allow-methods"));
        for m in ["get", "post", "query"] {
            assert!(methods.iter().any(|x| x == m), "{proto:?}: {methods:?}");
        }
        let headers = list(resp.header("access-control-allow-headers"));
        for h in ["authorization", "last-event-id"] {
            assert!(headers.iter().any(|x| x == h), "{proto:?}: {headers:?}");
        }
    }
    hub.shutdown().await;
}

// Spec "Subscription": origins off the allowlist are never reflected.
#[tokio::test]
async fn cors_preflight_from_another_origin_is_not_allowed() {
    let hub = cors_hub().await;
    let client = hub.client(Proto::H1).await;
    for origin in [
        EVIL,
        "https://app.example.evil.example",
        "http://app.example",
        "null",
    ] {
        let resp = client.send(preflight(origin)).await;
        assert_eq!(
            resp.header("access-control-allow-origin"),
            None,
            "{origin}: status {}",
            resp.status
        );
        assert_eq!(
            resp.header("access-control-allow-credentials"),
            None,
            "{origin}"
        );
    }
    // Without any configured origin nothing is allowed either.
    let plain = TestHub::start().await;
    let client = plain.client(Proto::H1).await;
    let resp = client.send(preflight(APP)).await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
    plain.shutdown().await;
    hub.shutdown().await;
}

// Spec "Subscription" (credentialed CORS) and "Subscription API" (expose `Link`): a subscribe
// from an allowed origin gets ACAO = that origin, credentials, and the Mercure headers exposed.
#[tokio::test]
async fn cors_headers_on_a_subscription() {
    let hub = cors_hub().await;
    for proto in [Proto::H1, Proto::H2c, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let stream = client
            .open_stream(
                sub_req(TOPIC)
                    .bearer(&subscribe_all())
                    .header("origin", APP),
            )
            .await;
        assert_eq!(stream.status, StatusCode::OK, "{proto:?}");
        assert_eq!(stream.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            stream.header("access-control-allow-credentials"),
            Some("true")
        );
        let exposed = list(stream.header("access-control-expose-headers"));
        for h in ["mercure-last-event-id", "link"] {
            assert!(exposed.iter().any(|x| x == h), "{proto:?}: {exposed:?}");
        }
        drop(stream);

        let stream = client
            .open_stream(
                sub_req(TOPIC)
                    .bearer(&subscribe_all())
                    .header("origin", EVIL),
            )
            .await;
        assert_eq!(stream.status, StatusCode::OK, "{proto:?}");
        assert_eq!(stream.header("access-control-allow-origin"), None);
        assert_eq!(stream.header("access-control-allow-credentials"), None);
    }
    hub.shutdown().await;
}

// Spec "Subscription": never the `*` wildcard, on any response (errors included).
#[tokio::test]
async fn cors_never_answers_a_wildcard() {
    let hub = cors_hub().await;
    let client = hub.client(Proto::H2c).await;
    for origin in [APP, EVIL, "*"] {
        let reqs = [
            preflight(origin),
            Request::get("/").header("origin", origin),
            Request::get(METADATA_PATH).header("origin", origin),
            Request::post(HUB)
                .header("origin", origin)
                .form(&[("topic", TOPIC)]),
            Request::post(HUB)
                .bearer(&publish_all())
                .header("origin", origin)
                .form(&[("topic", TOPIC)]),
            Request::get("/nope").header("origin", origin),
        ];
        for req in reqs {
            let what = format!("{} {} from {origin}", req.method, req.target);
            let resp = client.send(req).await;
            for v in resp.header_all("access-control-allow-origin") {
                assert_ne!(v, "*", "{what}");
                assert_eq!(v, APP, "{what}: reflected a non-allowlisted origin");
            }
        }
    }
    hub.shutdown().await;
}

// Reference hub §1.2: `X-Content-Type-Options: nosniff` on every response, errors included.
#[tokio::test]
async fn security_headers_on_every_response() {
    let hub = cors_hub().await;
    for proto in [Proto::H1, Proto::TlsH2] {
        let client = hub.client(proto).await;
        let reqs = [
            ("welcome", Request::get("/")),
            ("metadata", Request::get(METADATA_PATH)),
            ("404", Request::get("/nope")),
            ("405", Request::new(Method::PUT, HUB)),
            (
                "publish 200",
                Request::post(HUB)
                    .bearer(&publish_all())
                    .form(&[("topic", TOPIC)]),
            ),
            (
                "publish 400",
                Request::post(HUB)
                    .bearer(&publish_all())
                    .form(&[("data", "no topic")]),
            ),
            ("publish 401", Request::post(HUB).form(&[("topic", TOPIC)])),
            (
                "publish 403",
                Request::post(HUB)
                    .bearer(&publisher_token(&[("https://example.com/other", "")]))
                    .form(&[("topic", TOPIC)]),
            ),
            ("preflight", preflight(APP)),
        ];
        for (what, req) in reqs {
            let resp = client.send(req).await;
            assert_eq!(
                resp.header("x-content-type-options"),
                Some("nosniff"),
                "{proto:?} {what} ({})",
                resp.status
            );
        }
        let stream = client
            .open_stream(sub_req(TOPIC).bearer(&subscribe_all()))
            .await;
        assert_eq!(stream.status, StatusCode::OK);
        assert_eq!(
            stream.header("x-content-type-options"),
            Some("nosniff"),
            "{proto:?} subscribe"
        );
    }
    hub.shutdown().await;
}
