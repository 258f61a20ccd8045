//! JWK Set key sources from a file (issue 6): keys chosen by `kid` and bound to their
//! `alg`/`kty`, rotation picked up without a restart, the last good set kept when the file
//! breaks (visible in `/healthz`), HS* and algorithm confusion rejected, issuers not pooled.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;
use http::StatusCode;
use quicksilver::auth::IssuerConfig;
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
        publisher_jwks: Some(path.to_owned()),
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
