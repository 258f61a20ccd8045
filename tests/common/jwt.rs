//! JWT minting for tests, written independently of `quicksilver::auth` (its own JOSE encoding on
//! ring) so integration tests check the hub's verifier against a second implementation. Keys are
//! generated per test (EC, Ed25519) or loaded from `tests/fixtures` (RSA: ring cannot generate it).
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Value};

/// The Mercure `authorization_details` type.
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// DER SubjectPublicKeyInfo header for an EC P-256 key (id-ecPublicKey, prime256v1), followed
/// by the 65-byte uncompressed point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Same for P-384 (secp384r1), followed by the 97-byte uncompressed point.
const SPKI_P384_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// Same for Ed25519 (id-Ed25519), followed by the 32-byte public key.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// A signing key for test tokens.
pub enum TestKey {
    /// HS256/384/512 secret (any bytes, e.g. a public key PEM for alg-confusion tests).
    Hmac(Vec<u8>),
    /// ES256.
    EcP256 { pair: EcdsaKeyPair, pkcs8: Vec<u8> },
    /// ES384.
    EcP384 { pair: EcdsaKeyPair, pkcs8: Vec<u8> },
    /// EdDSA.
    Ed25519 {
        pair: Ed25519KeyPair,
        pkcs8: Vec<u8>,
    },
    /// RS256/384/512 and PS256/384/512.
    Rsa { pair: RsaKeyPair, pkcs8: Vec<u8> },
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKey::{}", self.kind())
    }
}

impl TestKey {
    pub fn hmac(secret: &[u8]) -> Self {
        TestKey::Hmac(secret.to_vec())
    }

    /// A fresh P-256 key.
    pub fn es256() -> Self {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load P-256 key");
        TestKey::EcP256 {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    /// A fresh P-384 key.
    pub fn es384() -> Self {
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-384 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load P-384 key");
        TestKey::EcP384 {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed25519() -> Self {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("load Ed25519 key");
        TestKey::Ed25519 {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    /// An RSA key from a PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn rsa_from_pem(pem: &str) -> Self {
        let der = pem_decode(pem, "PRIVATE KEY");
        let pair = RsaKeyPair::from_pkcs8(&der).expect("load RSA PKCS#8 key");
        TestKey::Rsa { pair, pkcs8: der }
    }

    /// The fixed 2048-bit RSA test key in `tests/fixtures/jwt-rsa-2048-key.pem`.
    pub fn rsa_fixture() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwt-rsa-2048-key.pem"
        );
        let pem = std::fs::read_to_string(path).expect("read RSA fixture key");
        Self::rsa_from_pem(&pem)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TestKey::Hmac(_) => "Hmac",
            TestKey::EcP256 { .. } => "EcP256",
            TestKey::EcP384 { .. } => "EcP384",
            TestKey::Ed25519 { .. } => "Ed25519",
            TestKey::Rsa { .. } => "Rsa",
        }
    }

    /// The raw public key: the uncompressed EC point (`04 || x || y`), the 32 Ed25519 bytes,
    /// or the DER `RSAPublicKey`. Panics for HMAC.
    pub fn public_key_raw(&self) -> Vec<u8> {
        match self {
            TestKey::Hmac(_) => panic!("an HMAC key has no public key"),
            TestKey::EcP256 { pair, .. } | TestKey::EcP384 { pair, .. } => {
                pair.public_key().as_ref().to_vec()
            }
            TestKey::Ed25519 { pair, .. } => pair.public_key().as_ref().to_vec(),
            TestKey::Rsa { pair, .. } => pair.public().as_ref().to_vec(),
        }
    }

    /// DER SubjectPublicKeyInfo of the public key.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        let raw = self.public_key_raw();
        match self {
            TestKey::EcP256 { .. } => [&SPKI_P256_PREFIX[..], &raw].concat(),
            TestKey::EcP384 { .. } => [&SPKI_P384_PREFIX[..], &raw].concat(),
            TestKey::Ed25519 { .. } => [&SPKI_ED25519_PREFIX[..], &raw].concat(),
            TestKey::Rsa { .. } => {
                let bit_string = der(0x03, &[&[0x00][..], &raw].concat());
                der(0x30, &[&RSA_ALGORITHM_ID[..], &bit_string].concat())
            }
            TestKey::Hmac(_) => unreachable!("public_key_raw panicked"),
        }
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM, what the hub takes as a verification key.
    pub fn public_key_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.public_key_spki_der())
    }

    /// `-----BEGIN PRIVATE KEY-----` PKCS#8 PEM. Panics for HMAC.
    pub fn private_key_pem(&self) -> String {
        let pkcs8 = match self {
            TestKey::Hmac(_) => panic!("an HMAC key has no PKCS#8 form"),
            TestKey::EcP256 { pkcs8, .. }
            | TestKey::EcP384 { pkcs8, .. }
            | TestKey::Ed25519 { pkcs8, .. }
            | TestKey::Rsa { pkcs8, .. } => pkcs8,
        };
        pem_encode("PRIVATE KEY", pkcs8)
    }

    /// The public key as a JWK (RFC 7517/8037), without `kid`/`alg`/`use`: add them as needed.
    pub fn jwk(&self) -> Value {
        match self {
            TestKey::Hmac(secret) => json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret)}),
            TestKey::EcP256 { .. } | TestKey::EcP384 { .. } => {
                let (crv, size) = match self {
                    TestKey::EcP256 { .. } => ("P-256", 32),
                    _ => ("P-384", 48),
                };
                let point = self.public_key_raw();
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..1 + size]),
                    "y": URL_SAFE_NO_PAD.encode(&point[1 + size..]),
                })
            }
            TestKey::Ed25519 { .. } => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(self.public_key_raw()),
            }),
            TestKey::Rsa { pair, .. } => {
                let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(&parts.n),
                    "e": URL_SAFE_NO_PAD.encode(&parts.e),
                })
            }
        }
    }
}

/// The header the hub expects: `{"alg": alg, "typ": "at+jwt"}`.
pub fn default_header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt"})
}

/// An HS256 `at+jwt` token over `claims` with `secret`.
pub fn hs256_token(secret: &str, claims: Value) -> String {
    sign(
        "HS256",
        &TestKey::hmac(secret.as_bytes()),
        default_header("HS256"),
        claims,
    )
}

/// A compact JWS over `claims`, signed with `key` using `alg` (`HS256`…`HS512`, `ES256`,
/// `ES384`, `EdDSA`, `RS256`…`RS512`, `PS256`…`PS512`, or `none` for an empty signature).
/// `header` is used as given (`null` means `{"typ":"at+jwt"}`); `alg` is added only when the
/// header lacks one, so tests can make the header lie about the algorithm.
pub fn sign(alg: &str, key: &TestKey, header: Value, claims: Value) -> String {
    let mut header = match header {
        Value::Null => json!({"typ": "at+jwt"}),
        Value::Object(map) => Value::Object(map),
        other => panic!("a JOSE header is a JSON object, got {other}"),
    };
    if let Value::Object(map) = &mut header {
        map.entry("alg").or_insert_with(|| Value::from(alg));
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign_bytes(alg, key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn sign_bytes(alg: &str, key: &TestKey, msg: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    let hmac = |algorithm, secret: &[u8]| {
        ring::hmac::sign(&ring::hmac::Key::new(algorithm, secret), msg)
            .as_ref()
            .to_vec()
    };
    match (alg, key) {
        ("none", _) => Vec::new(),
        ("HS256", TestKey::Hmac(s)) => hmac(ring::hmac::HMAC_SHA256, s),
        ("HS384", TestKey::Hmac(s)) => hmac(ring::hmac::HMAC_SHA384, s),
        ("HS512", TestKey::Hmac(s)) => hmac(ring::hmac::HMAC_SHA512, s),
        ("ES256", TestKey::EcP256 { pair, .. }) | ("ES384", TestKey::EcP384 { pair, .. }) => {
            pair.sign(&rng, msg).expect("ECDSA sign").as_ref().to_vec()
        }
        ("EdDSA", TestKey::Ed25519 { pair, .. }) => pair.sign(msg).as_ref().to_vec(),
        (_, TestKey::Rsa { pair, .. }) => {
            let padding: &'static dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                "PS512" => &signature::RSA_PSS_SHA512,
                _ => panic!("cannot sign {alg} with an RSA key"),
            };
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, msg, &mut sig).expect("RSA sign");
            sig
        }
        _ => panic!("cannot sign {alg} with a {} key", key.kind()),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// RFC 9068-shaped claims: `iss`, `aud`, `exp` as given; `iat` now; `sub` a random `urn:uuid`;
/// `client_id` = `iss` (like the reference token CLI); `jti` random; `authorization_details`
/// = `details` unless it is `null`.
pub fn claims(iss: &str, aud: &str, exp: u64, details: Value) -> Value {
    let mut claims = json!({
        "iss": iss,
        "aud": aud,
        "exp": exp,
        "iat": unix_now(),
        "sub": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "client_id": iss,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if !details.is_null() {
        claims["authorization_details"] = details;
    }
    claims
}

/// One Mercure authorization detail. `topics` are `(match, match_type)` pairs; an empty
/// `match_type` leaves the member out (the hub then defaults to `exact`).
pub fn detail(actions: &[&str], topics: &[(&str, &str)], payload: Option<Value>) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(pattern, match_type)| {
            if match_type.is_empty() {
                json!({"match": pattern})
            } else {
                json!({"match": pattern, "match_type": match_type})
            }
        })
        .collect();
    let mut detail = json!({"type": DETAIL_TYPE, "actions": actions, "topics": topics});
    if let Some(payload) = payload {
        detail["payload"] = payload;
    }
    detail
}

/// A `publish` detail, e.g. `publish_detail(&[("https://example.com/books/:id", "urlpattern")])`.
pub fn publish_detail(topics: &[(&str, &str)]) -> Value {
    detail(&["publish"], topics, None)
}

/// A `subscribe` detail.
pub fn subscribe_detail(topics: &[(&str, &str)]) -> Value {
    detail(&["subscribe"], topics, None)
}

/// A `subscribe` detail carrying a `payload`.
pub fn subscribe_detail_with_payload(topics: &[(&str, &str)], payload: Value) -> Value {
    detail(&["subscribe"], topics, Some(payload))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn pem_decode(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).unwrap_or_else(|| panic!("no {begin}")) + begin.len();
    let stop = pem[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("no {end}"))
        + start;
    let b64: String = pem[start..stop].split_whitespace().collect();
    STANDARD.decode(b64).expect("PEM body is base64")
}
