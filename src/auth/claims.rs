//! Registered claims (RFC 7519, RFC 9068 §4): the unverified read of `iss` that selects the
//! issuer, then `exp`, `nbf`, `aud` and `sub` once the signature holds. No grants here; errors
//! never quote claim values except a shortened, escaped `iss`.
use serde::Deserialize;
use serde_json::Value;

use super::jws::{is_json_object, present};

#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default, deserialize_with = "present")]
    iss: Option<String>,
}

/// Reads `iss` from the not yet authenticated payload; nothing else is looked at before the
/// signature is verified.
#[cfg(test)]
pub(crate) fn read_issuer(payload: &[u8]) -> Result<String, String> {
    read_issuer_opt(payload)?.ok_or_else(|| "iss is missing".to_owned())
}

/// `read_issuer`, with a missing `iss` as `None` (compatibility mode may map it to the sole
/// issuer).
pub(crate) fn read_issuer_opt(payload: &[u8]) -> Result<Option<String>, String> {
    if !is_json_object(payload) {
        return Err("payload is not a JSON object".to_owned());
    }
    let claims: IssuerOnly =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not valid: {e}"))?;
    Ok(claims.iss)
}

#[derive(Deserialize)]
struct Registered {
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    sub: Option<String>,
    #[serde(default, deserialize_with = "present")]
    authorization_details: Option<Value>,
    /// The 0.x claim (compatibility mode only).
    #[serde(default)]
    mercure: Option<Value>,
    /// Its namespaced form, which wins over `mercure`.
    #[serde(default, rename = "https://mercure.rocks/")]
    mercure_namespaced: Option<Value>,
}

/// The authenticated claims the hub uses.
#[derive(Debug)]
pub(crate) struct Checked {
    /// `u64::MAX` when absent (compatibility mode only).
    pub(crate) exp: u64,
    /// The first and the last whole second (Unix) at which these claims pass the `nbf` and
    /// `exp` checks: what a cached verification is re-checked against.
    pub(crate) valid: std::ops::RangeInclusive<u64>,
    pub(crate) sub: Option<String>,
    pub(crate) authorization_details: Option<Value>,
    /// The 0.x `mercure` claim (the namespaced one when both are present).
    pub(crate) legacy: Option<Value>,
}

/// Checks `exp` (required, `now < exp`), `nbf` (if present, `nbf <= now`) and `aud` (must
/// contain `audience`), with no clock-skew leeway: the spec and the reference hub allow none.
#[cfg(test)]
pub(crate) fn check(payload: &[u8], audience: &str, now: u64) -> Result<Checked, String> {
    check_with(payload, Some(audience), now)
}

/// `check`; with `audience` `None` (compatibility mode) `aud` is not checked and `exp` is only
/// enforced when present.
pub(crate) fn check_with(
    payload: &[u8],
    audience: Option<&str>,
    now: u64,
) -> Result<Checked, String> {
    let claims: Registered =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not valid: {e}"))?;
    let now_f = now as f64;
    let exp = match (&claims.exp, audience) {
        (Some(exp), _) => numeric_date("exp", exp)?,
        (None, None) => f64::INFINITY,
        (None, Some(_)) => return Err("exp is missing".to_owned()),
    };
    if now_f >= exp {
        return Err("token has expired (exp)".to_owned());
    }
    let mut valid_from = 0;
    if let Some(nbf) = &claims.nbf {
        let nbf = numeric_date("nbf", nbf)?;
        if now_f < nbf {
            return Err("token is not yet valid (nbf)".to_owned());
        }
        // `nbf <= now` holds from the first whole second at or after it (`as` saturates).
        valid_from = nbf.ceil() as u64;
    }
    // `now < exp` holds up to the last whole second before it; `now < exp` here, so
    // `ceil(exp) >= 1` (and `as` saturates: an absent `exp` is infinite).
    // Capped at 2^53 s, where `now as f64` stops being exact (some 285 million years away).
    let valid = valid_from..=(exp.ceil() as u64).saturating_sub(1).min(1 << 53);
    let legacy = claims.mercure_namespaced.or(claims.mercure);
    let Some(audience) = audience else {
        return Ok(Checked {
            exp: exp as u64,
            valid,
            sub: claims.sub,
            authorization_details: claims.authorization_details,
            legacy,
        });
    };
    match claims.aud.as_ref().ok_or("aud is missing")? {
        Value::String(aud) if aud == audience => {}
        Value::String(_) => return Err("aud is not this hub's resource identifier".to_owned()),
        Value::Array(auds) => {
            let mut found = false;
            for aud in auds {
                match aud {
                    Value::String(aud) => found |= aud == audience,
                    _ => return Err("aud array holds a non-string".to_owned()),
                }
            }
            if !found {
                return Err("aud does not contain this hub's resource identifier".to_owned());
            }
        }
        _ => return Err("aud is neither a string nor an array".to_owned()),
    }
    Ok(Checked {
        // `exp > now >= 0` here, and `as` saturates: a fractional `exp` rounds down, so a stream
        // closed at `exp` is never late.
        exp: exp as u64,
        valid,
        sub: claims.sub,
        authorization_details: claims.authorization_details,
        legacy,
    })
}

/// An RFC 7519 NumericDate: a JSON number, possibly fractional.
fn numeric_date(name: &str, value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{name} is out of range")),
        _ => Err(format!("{name} is not a number")),
    }
}

/// `iss` for the log: escaped and cut, since it is attacker-chosen.
pub(crate) fn describe_issuer(iss: &str) -> String {
    const MAX_CHARS: usize = 100;
    let cut: String = iss.chars().take(MAX_CHARS).collect();
    if cut.len() < iss.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "https://hub.example/.well-known/mercure";

    fn run(claims: &str, now: u64) -> Result<Checked, String> {
        check(claims.as_bytes(), AUD, now)
    }

    // Spec "Token Validation": exp required and enforced, nbf enforced, no leeway.
    #[test]
    fn exp_and_nbf() {
        let aud = format!(r#""aud":"{AUD}""#);
        assert_eq!(
            run(&format!(r#"{{{aud},"exp":100}}"#), 99).map(|c| c.exp),
            Ok(100)
        );
        assert!(run(&format!(r#"{{{aud},"exp":100}}"#), 100).is_err());
        assert!(run(&format!(r#"{{{aud},"exp":100.5}}"#), 100).is_ok());
        assert!(run(&format!(r#"{{{aud}}}"#), 1).is_err());
        assert!(run(&format!(r#"{{{aud},"exp":null}}"#), 1).is_err());
        assert!(run(&format!(r#"{{{aud},"exp":"100"}}"#), 1).is_err());
        assert!(run(&format!(r#"{{{aud},"exp":100,"nbf":50}}"#), 50).is_ok());
        assert!(run(&format!(r#"{{{aud},"exp":100,"nbf":51}}"#), 50).is_err());
        assert!(run(&format!(r#"{{{aud},"exp":100,"nbf":null}}"#), 50).is_err());
    }

    // Spec "Token Validation": aud a string or an array containing the resource identifier.
    #[test]
    fn audience() {
        assert!(run(&format!(r#"{{"exp":9,"aud":"{AUD}"}}"#), 1).is_ok());
        assert!(run(&format!(r#"{{"exp":9,"aud":["x","{AUD}"]}}"#), 1).is_ok());
        assert!(run(r#"{"exp":9,"aud":["x"]}"#, 1).is_err());
        assert!(run(r#"{"exp":9,"aud":[]}"#, 1).is_err());
        assert!(run(&format!(r#"{{"exp":9,"aud":["{AUD}",1]}}"#), 1).is_err());
        assert!(run(&format!(r#"{{"exp":9,"aud":"{AUD}/"}}"#), 1).is_err());
        assert!(run(r#"{"exp":9}"#, 1).is_err());
        assert!(run(r#"{"exp":9,"aud":null}"#, 1).is_err());
    }

    // Compatibility mode: no aud check, exp optional but enforced when present.
    #[test]
    #[allow(clippy::unwrap_used, reason = "constant inputs")]
    fn relaxed() {
        let run = |claims: &str, now| check_with(claims.as_bytes(), None, now);
        assert_eq!(run("{}", 1).map(|c| c.exp), Ok(u64::MAX));
        assert!(run(r#"{"exp":100}"#, 100).is_err());
        assert!(run(r#"{"exp":100,"aud":"elsewhere"}"#, 99).is_ok());
        assert!(run(r#"{"nbf":50}"#, 49).is_err());
        let both = run(r#"{"mercure":{"a":1},"https://mercure.rocks/":{"b":2}}"#, 1).unwrap();
        assert_eq!(both.legacy, Some(serde_json::json!({"b":2})));
    }

    #[test]
    fn issuer_read() {
        assert_eq!(read_issuer(br#"{"iss":"a","x":[1]}"#), Ok("a".to_owned()));
        assert!(read_issuer(br#"{"x":1}"#).is_err());
        assert!(read_issuer(br#"{"iss":null}"#).is_err());
        assert!(read_issuer(br#"{"iss":1}"#).is_err());
        assert!(read_issuer(br#"{"iss":"a","iss":"b"}"#).is_err());
        assert!(read_issuer(br#"["a"]"#).is_err());
        assert_eq!(describe_issuer("a\u{7}"), r#""a\u{7}""#);
        assert!(describe_issuer(&"x".repeat(500)).len() < 120);
    }
}
