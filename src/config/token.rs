//! `quicksilver token`: mints access tokens for development and scripts, either RFC 9068 with
//! Mercure `authorization_details` or (`--legacy`) the 0.x `mercure` claim. Pure apart from
//! reading a `@file` key; `main` prints the result.
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::auth::{mint, Algorithm, MERCURE_DETAIL_TYPE};

/// Audience used when `--aud` is not given: the default listener as a local client reaches it.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "http://localhost:3000/.well-known/mercure";

/// Flags of `quicksilver token`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenArgs {
    /// Issuer (`iss`) [default: https://localhost]
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,
    /// Audience (`aud`), repeatable [default: http://localhost:3000/.well-known/mercure; none
    /// with --legacy]
    #[arg(long, value_name = "URL")]
    pub aud: Vec<String>,
    /// Signing key: an HMAC secret, or @file (the secret, or a PKCS#8 PEM private key)
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub key: String,
    /// Algorithm (HS256, RS256, PS256, ES256, EdDSA…)
    #[arg(long, value_name = "ALG", default_value = "HS256")]
    pub alg: String,
    /// Lifetime, e.g. 1h, 30m, 7d; 0 omits `exp` (only 0.x compatibility hubs accept that)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Subject (`sub`) [default: a random urn:uuid]
    #[arg(long, value_name = "SUB")]
    pub sub: Option<String>,
    /// Topic the token may publish to, exact (or `*`); repeatable
    #[arg(long, value_name = "TOPIC")]
    pub publish: Vec<String>,
    /// Topic the token may subscribe to (private updates), exact (or `*`); repeatable
    #[arg(long, value_name = "TOPIC")]
    pub subscribe: Vec<String>,
    /// URL pattern the token may publish to; repeatable
    #[arg(long, value_name = "PATTERN")]
    pub publish_urlpattern: Vec<String>,
    /// URL pattern the token may subscribe to; repeatable
    #[arg(long, value_name = "PATTERN")]
    pub subscribe_urlpattern: Vec<String>,
    /// JSON payload attached to the subscribe grant (exposed in subscription events)
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// Emit the Mercure 0.x `mercure` claim instead of `authorization_details` (for hubs in
    /// --protocol-version-compatibility mode and 0.x hubs); bare exact topics become 0.x
    /// selectors (exact or URI template)
    #[arg(long)]
    pub legacy: bool,
}

/// Builds and signs the token described by `args` at `now` (Unix seconds).
pub fn mint_token(args: &TokenArgs, now: u64) -> Result<String, String> {
    let alg = Algorithm::from_name(args.alg.trim())
        .ok_or_else(|| format!("--alg {:?} is not a supported algorithm", args.alg))?;
    let key = match args.key.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path.trim())
            .map_err(|e| format!("--key: cannot read {path}: {e}"))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        None => args.key.clone(),
    };
    let ttl: Duration = humantime::parse_duration(args.ttl.trim())
        .map_err(|e| format!("--ttl {:?}: {e}", args.ttl))?;
    let payload = args
        .payload
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| format!("--payload is not JSON: {e}"))?;
    let iss = args
        .iss
        .clone()
        .unwrap_or_else(|| super::DEFAULT_ISSUER.to_owned());
    let mut claims = Map::new();
    claims.insert("iss".into(), iss.clone().into());
    let aud: Vec<String> = match (&args.aud[..], args.legacy) {
        ([], false) => vec![DEFAULT_TOKEN_AUDIENCE.to_owned()],
        (aud, _) => aud.to_vec(),
    };
    match &aud[..] {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert("aud".into(), many.into());
        }
    }
    let sub = args
        .sub
        .clone()
        .unwrap_or_else(|| format!("urn:uuid:{}", uuid::Uuid::new_v4()));
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), now.into());
    if !ttl.is_zero() {
        claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
    }
    let topics = |exact: &[String], urlpattern: &[String], legacy: bool| -> Vec<Value> {
        let exact = exact.iter().map(|t| {
            if legacy {
                Value::from(t.clone())
            } else {
                json!({"match": t})
            }
        });
        let patterns = urlpattern
            .iter()
            .map(|t| json!({"match": t, "match_type": "urlpattern"}));
        exact.chain(patterns).collect()
    };
    let publish = topics(&args.publish, &args.publish_urlpattern, args.legacy);
    let subscribe = topics(&args.subscribe, &args.subscribe_urlpattern, args.legacy);
    if args.legacy {
        let mut mercure = Map::new();
        mercure.insert("publish".into(), publish.into());
        mercure.insert("subscribe".into(), subscribe.into());
        if let Some(payload) = payload {
            mercure.insert("payload".into(), payload);
        }
        claims.insert("mercure".into(), Value::Object(mercure));
    } else {
        claims.insert("client_id".into(), iss.into());
        claims.insert(
            "jti".into(),
            format!("urn:uuid:{}", uuid::Uuid::new_v4()).into(),
        );
        let mut details = Vec::new();
        if !publish.is_empty() {
            details.push(json!({
                "type": MERCURE_DETAIL_TYPE, "actions": ["publish"], "topics": publish,
            }));
        }
        if !subscribe.is_empty() {
            let mut detail = json!({
                "type": MERCURE_DETAIL_TYPE, "actions": ["subscribe"], "topics": subscribe,
            });
            if let Some(payload) = payload {
                detail["payload"] = payload;
            }
            details.push(detail);
        } else if payload.is_some() {
            return Err("--payload needs --subscribe or --subscribe-urlpattern".to_owned());
        }
        claims.insert("authorization_details".into(), details.into());
    }
    mint(&Value::Object(claims), &key, alg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "constant inputs")]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn args() -> TokenArgs {
        TokenArgs {
            key: "0123456789abcdef0123456789abcdef".into(),
            alg: "HS256".into(),
            ttl: "1h".into(),
            ..TokenArgs::default()
        }
    }

    #[test]
    fn modern_claims() {
        let a = TokenArgs {
            publish: vec!["*".into()],
            subscribe_urlpattern: vec!["/books/:id".into()],
            payload: Some(r#"{"u":1}"#.into()),
            sub: Some("alice".into()),
            ..args()
        };
        let p = payload(&mint_token(&a, 100).unwrap());
        assert_eq!(p["iss"], "https://localhost");
        assert_eq!(p["aud"], DEFAULT_TOKEN_AUDIENCE);
        assert_eq!(p["exp"], 3700);
        assert_eq!(p["sub"], "alice");
        let details = p["authorization_details"].as_array().unwrap();
        assert_eq!(details[0]["topics"], json!([{"match": "*"}]));
        assert_eq!(
            details[1]["topics"],
            json!([{"match": "/books/:id", "match_type": "urlpattern"}])
        );
        assert_eq!(details[1]["payload"], json!({"u": 1}));
        assert!(p.get("mercure").is_none());
    }

    #[test]
    fn legacy_claims() {
        let a = TokenArgs {
            publish: vec!["https://example.com/books/{id}".into()],
            payload: Some("1".into()),
            ttl: "0".into(),
            legacy: true,
            ..args()
        };
        let p = payload(&mint_token(&a, 100).unwrap());
        assert_eq!(
            p["mercure"],
            json!({"publish": ["https://example.com/books/{id}"], "subscribe": [], "payload": 1})
        );
        assert!(p.get("exp").is_none() && p.get("aud").is_none());
        assert!(p.get("authorization_details").is_none());
    }

    // `@file` PKCS#8 private keys sign the asymmetric algorithms.
    #[test]
    fn private_key_file() {
        let a = TokenArgs {
            key: concat!(
                "@",
                env!("CARGO_MANIFEST_DIR"),
                "/src/auth/testdata/p256_private.pem"
            )
            .into(),
            alg: "ES256".into(),
            publish: vec!["*".into()],
            ..args()
        };
        let token = mint_token(&a, 1).unwrap();
        let header = token.split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&header).unwrap()["alg"],
            "ES256"
        );
    }

    #[test]
    fn bad_inputs() {
        for a in [
            TokenArgs {
                alg: "none".into(),
                ..args()
            },
            TokenArgs {
                ttl: "soon".into(),
                ..args()
            },
            TokenArgs {
                payload: Some("{".into()),
                ..args()
            },
            TokenArgs {
                key: "@/nonexistent/key".into(),
                ..args()
            },
            TokenArgs {
                alg: "ES256".into(),
                ..args()
            },
        ] {
            assert!(mint_token(&a, 1).is_err(), "{a:?}");
        }
    }
}
