//! JWK Set key sources from a file (issue 6): keys chosen by `kid` and bound to their
//! `alg`/`kty`, rotation picked up without a restart, the last good set kept when the file
//! breaks (visible in `/healthz`), HS* and algorithm confusion rejected, issuers not pooled.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;
use quicksilver::auth::{IssuerConfig, JwksSource, JwksUrl};
use serde_json::{json, Value};

const HUB: &str = "/.well-known/mercure";
const IDP: &str = "https://idp.test";
const OTHER_IDP: &str = "https://other-idp.test";

fn jwk(key: &TestKey, kid: &str, alg: Option<&str>) -> Value {
    let mut jwk = key.jwk();
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    if let Some(alg) = alg {
        jwk["alg"] = alg.into();
    }
    jwk
}

/// Atomically replaces `path` with the JWK Set `keys` (as an identity provider's rotation does).
fn write_set(path: &std::path::Path, keys: &[Value]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({ "keys": keys }).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn token(alg: &str, key: &TestKey, kid: Option<&str>, iss: &str) -> String {
    let mut header = json!({"alg": alg, "typ": "at+jwt"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let claims = claims(
        iss,
        RESOURCE,
        unix_now() + 3600,
        json!([publish_detail(&[("*", "")])]),
    );
    sign(alg, key, header, claims)
}

fn jwks_issuer(id: &str, path: &std::path::Path) -> IssuerConfig {
    IssuerConfig {
        id: id.to_owned(),
        publisher: None,
        subscriber: None,
        publisher_jwks: Some(JwksSource::File(path.to_owned())),
        subscriber_jwks: None,
        authorization_server: true,
    }
}

async fn publish_status(client: &TestClient, token: &str) -> StatusCode {
    client
        .send(
            Request::post(HUB)
                .form(&[("topic", "https://example.com/jwks"), ("data", "x")])
                .bearer(token),
        )
        .await
        .status
}

#[tokio::test]
async fn jwks_file_rotation_and_confusion() {
    let dir = temp_data_dir("jwks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idp.json");
    let (k1, k2, rsa) = (TestKey::es256(), TestKey::es256(), TestKey::rsa_fixture());
    write_set(
        &path,
        &[jwk(&k1, "k1", Some("ES256")), jwk(&rsa, "r1", None)],
    );
    let hub = TestHub::start_with(|c| c.issuers.push(jwks_issuer(IDP, &path))).await;
    let client = hub.client(Proto::H1).await;

    assert_eq!(
        publish_status(&client, &token("ES256", &k1, Some("k1"), IDP)).await,
        StatusCode::OK
    );
    // No kid: any key bound to the token's algorithm may verify it.
    assert_eq!(
        publish_status(&client, &token("ES256", &k1, None, IDP)).await,
        StatusCode::OK
    );
    // An RSA JWK without alg is bound to RS256: PS256 and RS384 tokens do not verify.
    assert_eq!(
        publish_status(&client, &token("RS256", &rsa, Some("r1"), IDP)).await,
        StatusCode::OK
    );
    for alg in ["PS256", "RS384"] {
        assert_eq!(
            publish_status(&client, &token(alg, &rsa, Some("r1"), IDP)).await,
            StatusCode::UNAUTHORIZED,
            "{alg}"
        );
    }
    // HS256 keyed with the public key's bytes never verifies against a published key.
    let public = TestKey::hmac(&k1.public_key_raw());
    assert_eq!(
        publish_status(&client, &token("HS256", &public, Some("k1"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    // A key unknown to the set, or signed by another key under a known kid.
    assert_eq!(
        publish_status(&client, &token("ES256", &k2, Some("k2"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        publish_status(&client, &token("ES256", &k2, Some("k1"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );

    // Rotation: k2 replaces k1 and is used without a restart; k1 is gone.
    write_set(&path, &[jwk(&k2, "k2", Some("ES256"))]);
    assert_eq!(
        publish_status(&client, &token("ES256", &k2, Some("k2"), IDP)).await,
        StatusCode::OK
    );
    assert_eq!(
        publish_status(&client, &token("ES256", &k1, Some("k1"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );

    // A broken file keeps the last good set, and health says so.
    std::fs::write(&path, "{not json").unwrap();
    let k3 = TestKey::es256();
    assert_eq!(
        publish_status(&client, &token("ES256", &k3, Some("k3"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        publish_status(&client, &token("ES256", &k2, Some("k2"), IDP)).await,
        StatusCode::OK
    );
    let health = client.send(Request::get("/healthz")).await.json();
    let source = &health["jwks"][0];
    assert_eq!(source["issuer"], IDP, "{health}");
    assert_eq!(source["role"], "publisher");
    assert_eq!(source["keys"], 1);
    assert_eq!(source["loads"], 2);
    assert!(
        source["error"].as_str().unwrap().contains("not JSON"),
        "{health}"
    );
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Two issuers with their own sets: a token naming one issuer but signed with the other's key
// (even under that key's kid) is rejected.
#[tokio::test]
async fn jwks_issuers_are_not_pooled() {
    let dir = temp_data_dir("jwks2");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (TestKey::ed25519(), TestKey::es384());
    let (path_a, path_b) = (dir.join("a.json"), dir.join("b.json"));
    write_set(&path_a, &[jwk(&a, "a", None)]);
    write_set(&path_b, &[jwk(&b, "b", None)]);
    let hub = TestHub::start_with(|c| {
        c.issuers.push(jwks_issuer(IDP, &path_a));
        c.issuers.push(jwks_issuer(OTHER_IDP, &path_b));
    })
    .await;
    let client = hub.client(Proto::H1).await;
    assert_eq!(
        publish_status(&client, &token("EdDSA", &a, Some("a"), IDP)).await,
        StatusCode::OK
    );
    assert_eq!(
        publish_status(&client, &token("ES384", &b, Some("b"), OTHER_IDP)).await,
        StatusCode::OK
    );
    assert_eq!(
        publish_status(&client, &token("ES384", &b, Some("b"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        publish_status(&client, &token("EdDSA", &a, Some("a"), OTHER_IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    // Both issuers are advertised as authorization servers.
    let doc = client
        .send(Request::get(
            "/.well-known/oauth-protected-resource/.well-known/mercure",
        ))
        .await
        .json();
    let servers = doc["authorization_servers"].to_string();
    assert!(
        servers.contains(IDP) && servers.contains(OTHER_IDP),
        "{doc}"
    );
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local HTTPS server (dev certificate for `localhost`) serving a JWK Set the test can swap,
/// or an error status; counts the requests it answers.
struct JwksServer {
    port: u16,
    reply: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(keys: &[Value]) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::atomic::Ordering;
        let dir = certs_dev_dir();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("localhost.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("localhost-key.pem")).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reply = std::sync::Arc::new(std::sync::Mutex::new((
            200,
            json!({ "keys": keys }).to_string(),
        )));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (reply2, hits2) = (reply.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, reply, hits) = (acceptor.clone(), reply2.clone(), hits2.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (reply, hits) = (reply.clone(), hits.clone());
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let (status, body) = reply.lock().unwrap().clone();
                            let status = if req.uri().path() == "/jwks.json" {
                                status
                            } else {
                                404
                            };
                            let response = http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            reply,
            hits,
            task,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/jwks.json", self.port)
    }

    fn serve(&self, status: u16, keys: &[Value]) {
        *self.reply.lock().unwrap() = (status, json!({ "keys": keys }).to_string());
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn url_issuer(id: &str, url: String, min_interval: std::time::Duration) -> IssuerConfig {
    let mut source = JwksUrl::new(url);
    source.ca_file = Some(certs_dev_dir().join("ca.pem"));
    source.refresh_min_interval = min_interval;
    IssuerConfig {
        id: id.to_owned(),
        publisher: None,
        subscriber: None,
        publisher_jwks: Some(JwksSource::Url(source)),
        subscriber_jwks: None,
        authorization_server: false,
    }
}

/// Retries `token` (a real request each time, up to ~10 s) until it gets `want`.
async fn until_status(client: &TestClient, token: &str, want: StatusCode) -> bool {
    for _ in 0..200 {
        if publish_status(client, token).await == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

async fn jwks_health(client: &TestClient) -> Value {
    let health = client.send(Request::get("/healthz")).await.json();
    health["jwks"][0].clone()
}

// An HTTPS JWK Set: fetched at start, a rotated key picked up after the refresh its `kid` miss
// triggers (rate-limited), HS256 and algorithm confusion rejected, a failing server keeps the
// last good set and shows in `/healthz`.
#[tokio::test]
async fn jwks_url_rotation_rate_limit_and_failure() {
    let (a, b, rsa) = (TestKey::es256(), TestKey::es256(), TestKey::rsa_fixture());
    let set_a = [jwk(&a, "a", Some("ES256")), jwk(&rsa, "r", None)];
    let server = JwksServer::start(&set_a).await;
    let min_interval = std::time::Duration::from_secs(2);
    let url = server.url();
    let hub = TestHub::start_with(|c| c.issuers.push(url_issuer(IDP, url, min_interval))).await;
    let client = hub.client(Proto::H1).await;

    // Fetched before the hub serves.
    assert_eq!(
        publish_status(&client, &token("ES256", &a, Some("a"), IDP)).await,
        StatusCode::OK
    );
    let status = jwks_health(&client).await;
    assert_eq!(status["source"], server.url(), "{status}");
    assert_eq!(status["keys"], 2);
    assert_eq!(status["loads"], 1);
    assert!(status["error"].is_null(), "{status}");
    assert!(status["last_success"].as_u64().is_some(), "{status}");
    assert_eq!(
        publish_status(&client, &token("RS256", &rsa, Some("r"), IDP)).await,
        StatusCode::OK
    );
    // Algorithm confusion: the RSA key is bound to RS256; ES256's key never verifies HS256,
    // neither keyed with its JWK text nor with its raw public key.
    assert_eq!(
        publish_status(&client, &token("PS256", &rsa, Some("r"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );
    for secret in [
        serde_json::to_vec(&jwk(&a, "a", Some("ES256"))).unwrap(),
        a.public_key_raw(),
    ] {
        let hmac = TestKey::hmac(&secret);
        assert_eq!(
            publish_status(&client, &token("HS256", &hmac, Some("a"), IDP)).await,
            StatusCode::UNAUTHORIZED
        );
    }

    // Rotation: b replaces a at the server. The first b token misses (and asks for a refresh);
    // once fetched, b verifies and a does not.
    server.serve(200, &[jwk(&b, "b", Some("ES256"))]);
    let token_b = token("ES256", &b, Some("b"), IDP);
    assert_eq!(
        publish_status(&client, &token_b).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(until_status(&client, &token_b, StatusCode::OK).await);
    assert_eq!(
        publish_status(&client, &token("ES256", &a, Some("a"), IDP)).await,
        StatusCode::UNAUTHORIZED
    );

    // Rate limit: a burst of unknown kids costs at most one fetch per interval.
    let unknown = token("ES256", &TestKey::es256(), Some("zzz"), IDP);
    let before = server.hits();
    for _ in 0..20 {
        assert_eq!(
            publish_status(&client, &unknown).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let mut refreshed = false;
    for _ in 0..200 {
        if server.hits() > before {
            refreshed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refreshed, "the misses triggered a refresh");
    for _ in 0..20 {
        assert_eq!(
            publish_status(&client, &unknown).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(server.hits(), before + 1, "one fetch within the rate limit");

    // A failing server: the last good set stays in use and health shows the error.
    server.serve(500, &[]);
    let mut reported = Value::Null;
    for _ in 0..200 {
        assert_eq!(
            publish_status(&client, &unknown).await,
            StatusCode::UNAUTHORIZED
        );
        reported = jwks_health(&client).await;
        if reported["error"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        reported["error"].as_str().unwrap().contains("500"),
        "{reported}"
    );
    assert_eq!(reported["keys"], 1, "{reported}");
    assert_eq!(publish_status(&client, &token_b).await, StatusCode::OK);
    hub.shutdown().await;
}

// A set unavailable at start: the hub starts anyway, its tokens are rejected and health shows
// why; the set is fetched in the background once the server answers.
#[tokio::test]
async fn jwks_url_unavailable_at_start() {
    let key = TestKey::es256();
    let server = JwksServer::start(&[]).await;
    server.serve(503, &[]);
    let url = server.url();
    let hub = TestHub::start_with(|c| {
        c.issuers
            .push(url_issuer(IDP, url, std::time::Duration::from_millis(100)))
    })
    .await;
    let client = hub.client(Proto::H1).await;
    let token = token("ES256", &key, Some("k"), IDP);
    assert_eq!(
        publish_status(&client, &token).await,
        StatusCode::UNAUTHORIZED
    );
    let status = jwks_health(&client).await;
    assert!(
        status["error"].as_str().unwrap().contains("503"),
        "{status}"
    );
    assert_eq!(status["loads"], 0);
    assert!(status["last_success"].is_null());
    server.serve(200, &[jwk(&key, "k", None)]);
    assert!(until_status(&client, &token, StatusCode::OK).await);
    assert!(jwks_health(&client).await["error"].is_null());
    hub.shutdown().await;
}
