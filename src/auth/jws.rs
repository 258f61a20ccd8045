//! Compact JWS (RFC 7515 §7.1): splitting and base64url decoding under size caps, the protected
//! header rules of RFC 8725 and RFC 9068 (`typ` at+jwt, no `none`, no `crit`), and minting.
//! Knows nothing of issuers, keys or claims; errors never quote the token.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::keys::SigningKey;
use super::Algorithm;

/// Longest token accepted, in bytes. Bounds the JSON read before the signature is checked, yet
/// leaves room for tokens at the detail caps: 100 topic matchers of ~100-byte URLs already take
/// ~18 KiB once base64url-encoded, so 16 KiB would refuse legitimate tokens.
pub const MAX_TOKEN_LEN: usize = 32 * 1024;

/// Decoded protected header cap: ours need ~40 bytes; issuers adding `x5c` chains stay below.
const MAX_HEADER_LEN: usize = 4 * 1024;

/// Decoded signature cap: an RSA-8192 signature, the largest `ring` verifies.
const MAX_SIGNATURE_LEN: usize = 1024;

/// A structurally valid compact JWS whose header passed the algorithm-independent checks.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    /// `alg` from the header; still to be compared with the key's pinned algorithm.
    pub(crate) alg: Algorithm,
    /// `kid` from the header: only a JWK Set source looks at it, to pick among its keys.
    pub(crate) kid: Option<String>,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    /// Decoded payload, not yet authenticated.
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "present")]
    alg: Option<String>,
    #[serde(default, deserialize_with = "present")]
    typ: Option<String>,
    // We implement no extension, so any `crit` (even `null` or `[]`, both invalid per RFC 7515
    // §4.1.11) means the token needs processing we cannot do.
    #[serde(default, deserialize_with = "present")]
    crit: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<String>,
    // `jwk`, `jku`, `x5u`, `x5c`… are deliberately not read: keys come from configuration only
    // (spec, Token Validation); `kid` only selects among a configured JWK Set's keys.
}

/// Makes a member that is present with JSON `null` an error instead of "absent".
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Whether `json` starts as an object; serde's derived structs would also accept an array.
pub(crate) fn is_json_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Splits and decodes `token`, checking the header's `typ`, `alg` and `crit`.
#[cfg(test)]
pub(crate) fn parse(token: &str) -> Result<Compact<'_>, String> {
    parse_with(token, true)
}

/// `parse`, with the `typ` check optional (compatibility mode: 0.x tokens carry `typ: JWT` or
/// none).
pub(crate) fn parse_with(token: &str, require_typ: bool) -> Result<Compact<'_>, String> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "token of {} bytes exceeds {MAX_TOKEN_LEN}",
            token.len()
        ));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three dot-separated parts)".to_owned());
    };
    if header_b64.len() > MAX_HEADER_LEN * 4 / 3 + 4 {
        return Err("protected header too large".to_owned());
    }
    if signature_b64.is_empty() {
        return Err("empty signature".to_owned());
    }
    if signature_b64.len() > MAX_SIGNATURE_LEN * 4 / 3 + 4 {
        return Err("signature too large".to_owned());
    }
    let header = decode("header", header_b64)?;
    let (alg, kid) = check_header(&header, require_typ)?;
    let payload = decode("payload", payload_b64)?;
    let signature = decode("signature", signature_b64)?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Compact {
        alg,
        kid,
        signing_input,
        payload,
        signature,
    })
}

fn decode(part: &str, b64: &str) -> Result<Vec<u8>, String> {
    // URL_SAFE_NO_PAD rejects `=` padding, the standard alphabet and non-canonical trailing
    // bits, so each token has exactly one encoding.
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| format!("{part} is not unpadded base64url: {e}"))
}

fn check_header(json: &[u8], require_typ: bool) -> Result<(Algorithm, Option<String>), String> {
    if !is_json_object(json) {
        return Err("header is not a JSON object".to_owned());
    }
    let header: Header =
        serde_json::from_slice(json).map_err(|e| format!("header is not valid: {e}"))?;
    match header.typ.as_deref() {
        _ if !require_typ => {}
        None => return Err("header has no typ (at+jwt required)".to_owned()),
        Some(typ) if !is_at_jwt(typ) => {
            return Err("header typ is not at+jwt".to_owned());
        }
        Some(_) => {}
    }
    if header.crit.is_some() {
        return Err("header has crit: no extension is supported".to_owned());
    }
    let alg = header.alg.ok_or("header has no alg")?;
    if alg.eq_ignore_ascii_case("none") {
        return Err("alg none is never accepted".to_owned());
    }
    let alg = Algorithm::from_name(&alg).ok_or_else(|| "header alg is not supported".to_owned())?;
    Ok((alg, header.kid))
}

/// RFC 9068 §4 with RFC 7515 §4.1.9: `at+jwt`, case-insensitive, `application/` optional.
fn is_at_jwt(typ: &str) -> bool {
    const PREFIX: &str = "application/";
    let subtype = match typ.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    subtype.eq_ignore_ascii_case("at+jwt")
}

/// Signs `claims` as a compact JWS with header `{"alg":…,"typ":"at+jwt"}`. `key` is an HMAC
/// secret for HS*, or a PKCS#8 PEM private key for the other algorithms. For dev mode, the token
/// CLI and tests.
pub fn mint(claims: &serde_json::Value, key: &str, alg: Algorithm) -> Result<String, String> {
    if !claims.is_object() {
        return Err("claims must be a JSON object".to_owned());
    }
    let header = format!(r#"{{"alg":"{}","typ":"at+jwt"}}"#, alg.name());
    let payload = serde_json::to_vec(claims).map_err(|e| format!("claims: {e}"))?;
    sign_compact(header.as_bytes(), &payload, key, alg)
}

/// Signs arbitrary header and payload bytes; tests use it to craft hostile headers.
pub(crate) fn sign_compact(
    header: &[u8],
    payload: &[u8],
    key: &str,
    alg: Algorithm,
) -> Result<String, String> {
    let rng = SystemRandom::new();
    let signer = SigningKey::new(key, alg, &rng)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = signer.sign(token.as_bytes(), &rng)?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9068 §4 / spec "Token Validation": typ compared case-insensitively, prefix optional.
    #[test]
    fn typ_forms() {
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            assert!(is_at_jwt(ok), "{ok}");
        }
        for bad in [
            "JWT",
            "jwt",
            "application/jwt",
            "at+jwt ",
            "application/",
            "",
            "x/at+jwt",
        ] {
            assert!(!is_at_jwt(bad), "{bad}");
        }
    }

    #[test]
    fn header_must_be_object_without_crit() {
        assert!(check_header(br#"{"alg":"HS256","typ":"at+jwt"}"#, true).is_ok());
        assert!(check_header(br#"["HS256","at+jwt"]"#, true).is_err());
        assert!(check_header(br#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#, true).is_err());
        assert!(check_header(br#"{"alg":"HS256","typ":"at+jwt","crit":null}"#, true).is_err());
        assert!(check_header(br#"{"alg":"HS256","typ":null}"#, true).is_err());
        assert!(check_header(br#"{"alg":"HS256","alg":"HS256","typ":"at+jwt"}"#, true).is_err());
        assert!(check_header(br#"{"alg":"hs256","typ":"at+jwt"}"#, true).is_err());
        assert!(check_header(br#"{"alg":"none","typ":"at+jwt"}"#, true).is_err());
        assert!(check_header(br#"{"typ":"at+jwt"}"#, true).is_err());
    }

    // Compatibility mode: `typ` is not checked, everything else still is.
    #[test]
    fn typ_optional_in_compat() {
        assert!(check_header(br#"{"alg":"HS256","typ":"JWT"}"#, false).is_ok());
        assert!(check_header(br#"{"alg":"HS256"}"#, false).is_ok());
        assert!(check_header(br#"{"alg":"HS256","typ":"JWT"}"#, true).is_err());
        assert!(check_header(br#"{"alg":"none"}"#, false).is_err());
        assert!(check_header(br#"{"alg":"HS256","crit":["exp"]}"#, false).is_err());
    }

    #[test]
    fn structure_and_encoding() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt"}"#);
        let p = URL_SAFE_NO_PAD.encode(b"{}");
        assert!(parse(&format!("{h}.{p}.AAAA")).is_ok());
        assert!(parse(&format!("{h}.{p}")).is_err());
        assert!(parse(&format!("{h}.{p}.AAAA.AAAA")).is_err());
        assert!(parse(&format!("{h}.{p}.")).is_err());
        assert!(parse(&format!("{h}.{p}.AA==")).is_err());
        assert!(parse(&format!("{h}.{p}.AA+/")).is_err());
        let long = "A".repeat(MAX_TOKEN_LEN);
        assert!(parse(&format!("{h}.{long}.AAAA")).is_err());
    }
}
