//! Key material on `ring`: verification keys (HMAC secret or SubjectPublicKeyInfo PEM) parsed once
//! at start-up and pinned to one algorithm, and PKCS#8 signing keys for minting. No token parsing
//! here, and key material never appears in an error message.
use ring::rand::SystemRandom;
use ring::{hmac, signature};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use spki::der::asn1::UintRef;
use spki::der::{Decode, Reader, SliceReader};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use super::{Algorithm, KeyConfig};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The RSA modulus sizes `ring`'s `*_2048_8192_*` verifiers accept; checked at load so a short
/// key is a start-up error rather than every token failing later.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Below this many bytes an HMAC secret is weaker than the hash (RFC 7518 §3.2 asks for at
/// least the hash size); accepted, but worth a warning.
const HMAC_WEAK_LEN: usize = 32;

/// A verification key bound to exactly one algorithm.
#[derive(Debug)]
pub(crate) struct VerifyKey {
    alg: Algorithm,
    material: Material,
}

#[derive(Debug)]
enum Material {
    Hmac(hmac::Key),
    Public(signature::UnparsedPublicKey<Vec<u8>>),
    /// An RSA JWK (`n`, `e`), verified with the parameters of its pinned algorithm.
    RsaComponents(signature::RsaPublicKeyComponents<Vec<u8>>),
}

impl VerifyKey {
    /// Parses and checks `config`; the error says what is wrong, never what the key is.
    pub(crate) fn from_config(config: &KeyConfig) -> Result<Self, String> {
        let alg = config.alg;
        let material = if alg.is_hmac() {
            if is_pem(&config.key) {
                return Err(format!(
                    "a PEM key cannot be used with {}: HS* algorithms need a shared secret",
                    alg.name()
                ));
            }
            if config.key.is_empty() {
                return Err("the HMAC secret is empty".to_owned());
            }
            if config.key.len() < HMAC_WEAK_LEN {
                tracing::warn!(
                    alg = alg.name(),
                    len = config.key.len(),
                    "HMAC secret shorter than 32 bytes"
                );
            }
            Material::Hmac(hmac::Key::new(hmac_algorithm(alg)?, config.key.as_bytes()))
        } else {
            if !is_pem(&config.key) {
                return Err(format!(
                    "{} needs a PEM public key (-----BEGIN PUBLIC KEY-----), not a shared secret",
                    alg.name()
                ));
            }
            Material::Public(public_key(alg, &config.key)?)
        };
        Ok(Self { alg, material })
    }

    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message` (HMAC comparison is constant-time in `ring`).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Public(key) => key.verify(message, signature).is_ok(),
            Material::RsaComponents(key) => rsa_parameters(self.alg)
                .is_some_and(|params| key.verify(params, message, signature).is_ok()),
        }
    }

    /// A public JWK (RFC 7517, 7518 §6, 8037) bound to one algorithm: its `alg` when present
    /// (which must fit the key type), else the only one the type allows (`RS256` for RSA).
    /// `Ok(None)` for keys that can never verify a token here: `use` other than `sig`, symmetric
    /// (`oct`: an HS* token must never verify against a published key) or unknown types.
    pub(crate) fn from_jwk(
        jwk: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Self>, String> {
        use base64::Engine as _;
        let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let value = text(name).ok_or_else(|| format!("missing {name}"))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| format!("{name} is not base64url"))
        };
        let declared = match text("alg") {
            None => None,
            Some(name) => match Algorithm::from_name(name) {
                Some(alg) if !alg.is_hmac() => Some(alg),
                _ => return Ok(None),
            },
        };
        let fits = |allowed: &[Algorithm], default: Algorithm| match declared {
            None => Ok(default),
            Some(alg) if allowed.contains(&alg) => Ok(alg),
            Some(alg) => Err(format!("alg {} does not fit the key type", alg.name())),
        };
        use Algorithm::*;
        let (alg, material) = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => {
                let alg = fits(&[RS256, RS384, RS512, PS256, PS384, PS512], RS256)?;
                let n = bytes("n")?;
                let e = bytes("e")?;
                let significant = n.iter().skip_while(|&&b| b == 0).count();
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&(significant * 8)) {
                    return Err(format!(
                        "RSA modulus of {} bits (need {RSA_MIN_BITS}–{RSA_MAX_BITS})",
                        significant * 8
                    ));
                }
                (
                    alg,
                    Material::RsaComponents(signature::RsaPublicKeyComponents { n, e }),
                )
            }
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let (alg, size) = if crv == "P-256" {
                    (fits(&[ES256], ES256)?, 32)
                } else {
                    (fits(&[ES384], ES384)?, 48)
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != size || y.len() != size {
                    return Err(format!("{crv} coordinates must be {size} bytes"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = signature::UnparsedPublicKey::new(verification_algorithm(alg)?, point);
                (alg, Material::Public(key))
            }
            (Some("OKP"), Some("Ed25519")) => {
                let alg = fits(&[EdDSA], EdDSA)?;
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 x must be 32 bytes".to_owned());
                }
                let key = signature::UnparsedPublicKey::new(verification_algorithm(alg)?, x);
                (alg, Material::Public(key))
            }
            _ => return Ok(None),
        };
        Ok(Some(Self { alg, material }))
    }
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    use Algorithm::*;
    Some(match alg {
        RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn is_pem(key: &str) -> bool {
    key.trim_start().starts_with("-----BEGIN")
}

fn hmac_algorithm(alg: Algorithm) -> Result<hmac::Algorithm, String> {
    match alg {
        Algorithm::HS256 => Ok(hmac::HMAC_SHA256),
        Algorithm::HS384 => Ok(hmac::HMAC_SHA384),
        Algorithm::HS512 => Ok(hmac::HMAC_SHA512),
        other => Err(format!("{} is not an HMAC algorithm", other.name())),
    }
}

/// The kind of public key an SPKI holds, for load-time compatibility checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    RsaPss,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Rsa => "an RSA key",
            Self::RsaPss => "an RSA-PSS key",
            Self::P256 => "an EC P-256 key",
            Self::P384 => "an EC P-384 key",
            Self::Ed25519 => "an Ed25519 key",
        }
    }

    /// The only key kinds each algorithm may be verified with (RFC 8725 §3.1: the key decides
    /// the algorithm family, never the token).
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            // An id-RSASSA-PSS key is restricted to PSS by its own OID.
            Self::RsaPss => matches!(alg, PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
        }
    }
}

fn public_key(alg: Algorithm, pem: &str) -> Result<signature::UnparsedPublicKey<Vec<u8>>, String> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no -----BEGIN PUBLIC KEY----- section \
             (certificates, private keys and PKCS#1 RSA PUBLIC KEY blocks are not accepted)"
            .to_owned(),
        other => format!("unreadable PEM: {other}"),
    })?;
    let spki = SubjectPublicKeyInfoRef::from_der(der.as_ref())
        .map_err(|e| format!("invalid SubjectPublicKeyInfo: {e}"))?;
    let kind = key_kind(&spki)?;
    if !kind.fits(alg) {
        return Err(format!(
            "the PEM holds {} which cannot verify {}",
            kind.describe(),
            alg.name()
        ));
    }
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key BIT STRING has unused bits")?;
    match kind {
        KeyKind::Rsa | KeyKind::RsaPss => {
            let modulus_bits = rsa_modulus_bits(bits)?;
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&modulus_bits) {
                return Err(format!(
                    "RSA modulus of {modulus_bits} bits (must be {RSA_MIN_BITS} to {RSA_MAX_BITS})"
                ));
            }
        }
        KeyKind::P256 => check_ec_point(bits, 65)?,
        KeyKind::P384 => check_ec_point(bits, 97)?,
        KeyKind::Ed25519 => {
            if bits.len() != 32 {
                return Err(format!(
                    "Ed25519 public key of {} bytes (must be 32)",
                    bits.len()
                ));
            }
        }
    }
    Ok(signature::UnparsedPublicKey::new(
        verification_algorithm(alg)?,
        bits.to_vec(),
    ))
}

fn key_kind(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<KeyKind, String> {
    let oid = spki.algorithm.oid;
    if oid == OID_RSA {
        Ok(KeyKind::Rsa)
    } else if oid == OID_RSA_PSS {
        Ok(KeyKind::RsaPss)
    } else if oid == OID_ED25519 {
        if spki.algorithm.parameters.is_some() {
            return Err("Ed25519 key with algorithm parameters (RFC 8410 forbids them)".to_owned());
        }
        Ok(KeyKind::Ed25519)
    } else if oid == OID_EC {
        let curve = spki
            .algorithm
            .parameters_oid()
            .map_err(|_| "EC key without a named curve".to_owned())?;
        if curve == OID_P256 {
            Ok(KeyKind::P256)
        } else if curve == OID_P384 {
            Ok(KeyKind::P384)
        } else {
            Err(format!(
                "unsupported EC curve {curve} (P-256 and P-384 only)"
            ))
        }
    } else {
        Err(format!("unsupported public key type {oid}"))
    }
}

/// `ring` takes the uncompressed SEC1 point; compressed points are not supported by it.
fn check_ec_point(point: &[u8], len: usize) -> Result<(), String> {
    if point.len() != len || point.first() != Some(&0x04) {
        return Err(format!(
            "EC public key is not an uncompressed point of {len} bytes"
        ));
    }
    Ok(())
}

/// Size of the modulus of a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus, publicExponent }`.
fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, String> {
    let parse = || -> spki::der::Result<usize> {
        let mut reader = SliceReader::new(pkcs1)?;
        let modulus = reader.sequence(|r| {
            let modulus = UintRef::decode(r)?;
            let _exponent = UintRef::decode(r)?;
            Ok(modulus)
        })?;
        let modulus = reader.finish(modulus)?;
        // `UintRef` strips leading zero bytes, so the first byte is significant.
        let bytes = modulus.as_bytes();
        Ok(match bytes.first() {
            Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        })
    };
    parse().map_err(|e| format!("invalid RSA public key: {e}"))
}

fn verification_algorithm(
    alg: Algorithm,
) -> Result<&'static dyn signature::VerificationAlgorithm, String> {
    use Algorithm::*;
    Ok(match alg {
        // JWS carries ECDSA signatures as fixed-width r‖s (RFC 7518 §3.4), not ASN.1.
        ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        EdDSA => &signature::ED25519,
        _ => match rsa_parameters(alg) {
            Some(rsa) => rsa,
            None => return Err(format!("{} is not a public-key algorithm", alg.name())),
        },
    })
}

/// A private key for minting, parsed from PEM (PKCS#8; PKCS#1 is also taken for RSA).
pub(crate) enum SigningKey {
    Hmac(hmac::Key),
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl SigningKey {
    pub(crate) fn new(key: &str, alg: Algorithm, rng: &SystemRandom) -> Result<Self, String> {
        use Algorithm::*;
        if alg.is_hmac() {
            if key.is_empty() {
                return Err("the HMAC secret is empty".to_owned());
            }
            if is_pem(key) {
                return Err(format!(
                    "{} signs with a shared secret, not a PEM key",
                    alg.name()
                ));
            }
            return Ok(Self::Hmac(hmac::Key::new(
                hmac_algorithm(alg)?,
                key.as_bytes(),
            )));
        }
        let der = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no -----BEGIN PRIVATE KEY----- section".to_owned()
            }
            other => format!("unreadable PEM: {other}"),
        })?;
        let rejected = |e: ring::error::KeyRejected| {
            format!("the private key does not fit {}: {e}", alg.name())
        };
        match (alg, &der) {
            (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, PrivateKeyDer::Pkcs8(der)) => {
                let pair =
                    signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(rejected)?;
                Ok(Self::Rsa(pair, rsa_encoding(alg)))
            }
            (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, PrivateKeyDer::Pkcs1(der)) => {
                let pair =
                    signature::RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(rejected)?;
                Ok(Self::Rsa(pair, rsa_encoding(alg)))
            }
            (ES256 | ES384, PrivateKeyDer::Pkcs8(der)) => {
                let signing = if alg == ES256 {
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair =
                    signature::EcdsaKeyPair::from_pkcs8(signing, der.secret_pkcs8_der(), rng)
                        .map_err(rejected)?;
                Ok(Self::Ecdsa(pair))
            }
            (EdDSA, PrivateKeyDer::Pkcs8(der)) => {
                let pair =
                    signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
                        .map_err(rejected)?;
                Ok(Self::Ed25519(pair))
            }
            _ => Err(format!(
                "{} needs a PKCS#8 private key (-----BEGIN PRIVATE KEY-----)",
                alg.name()
            )),
        }
    }

    pub(crate) fn sign(&self, message: &[u8], rng: &SystemRandom) -> Result<Vec<u8>, String> {
        match self {
            Self::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Self::Rsa(pair, encoding) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, rng, message, &mut out)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(out)
            }
            Self::Ecdsa(pair) => pair
                .sign(rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn signature::RsaEncoding {
    use Algorithm::*;
    match alg {
        RS384 => &signature::RSA_PKCS1_SHA384,
        RS512 => &signature::RSA_PKCS1_SHA512,
        PS256 => &signature::RSA_PSS_SHA256,
        PS384 => &signature::RSA_PSS_SHA384,
        PS512 => &signature::RSA_PSS_SHA512,
        // Only RSA algorithms reach here (see `SigningKey::new`).
        RS256 | HS256 | HS384 | HS512 | ES256 | ES384 | EdDSA => &signature::RSA_PKCS1_SHA256,
    }
}
