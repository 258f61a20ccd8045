//! JWK Set key sources (RFC 7517) from a file: keys bound to their `alg`/`kty` at load, chosen by
//! the token's `kid`, re-read when a `kid` is unknown and the file changed (rotation without a
//! restart), the last good set kept when a re-read fails. Sync; never logs key material.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

use super::keys::VerifyKey;
use super::Algorithm;

/// Most keys read from one set (a bigger file is a configuration mistake or an attack).
const MAX_KEYS: usize = 100;

#[derive(Debug)]
pub(super) struct Jwk {
    kid: Option<String>,
    key: VerifyKey,
}

/// What identifies a version of the file without reading it: modification time, length and
/// (Unix) inode, so an atomic replace is seen even within the file system's time granularity.
type Stamp = (Option<SystemTime>, u64, u64);

#[derive(Debug)]
struct State {
    keys: Arc<Vec<Jwk>>,
    stamp: Stamp,
    /// The last failed re-read (the previous good set stays in use).
    error: Option<String>,
    /// Successful loads so far (1 after start).
    loads: u64,
    /// Unix time of the last successful load.
    last_success: Option<u64>,
}

/// A JWK Set file and its current keys.
#[derive(Debug)]
pub(crate) struct JwksKeys {
    path: PathBuf,
    state: Mutex<State>,
}

/// Health of one JWK Set source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksStatus {
    pub source: String,
    pub keys: usize,
    pub loads: u64,
    pub error: Option<String>,
    /// Unix time (seconds) of the last successful load or fetch.
    pub last_success: Option<u64>,
}

/// Unix time in seconds.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies with the key named by `kid` (any key when the token has none) whose bound algorithm
/// is `alg`; `None` when no key has that `kid` (a miss: the set may need refreshing).
pub(super) fn verify_in(
    keys: &[Jwk],
    kid: Option<&str>,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Option<Result<(), String>> {
    let mut named = false;
    for jwk in keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
    {
        named = true;
        // RFC 8725 §3.1: the key's bound algorithm decides, the token only has to agree.
        if jwk.key.alg() == alg && jwk.key.verify(message, signature) {
            return Some(Ok(()));
        }
    }
    named.then(|| {
        Err(format!(
            "no JWK with this kid verifies an {} signature",
            alg.name()
        ))
    })
}

impl JwksKeys {
    /// Loads the set; at start-up a missing or invalid file is an error.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let stamp = stamp(path);
        let keys = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                keys: Arc::new(keys),
                stamp,
                error: None,
                loads: 1,
                last_success: Some(unix_now()),
            }),
        })
    }

    fn current(&self) -> Arc<Vec<Jwk>> {
        match self.state.lock() {
            Ok(state) => Arc::clone(&state.keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().keys),
        }
    }

    /// Re-reads the file if it changed since the last attempt; `true` when a new set is in use.
    /// Unchanged files are not re-read, which also bounds what unknown `kid`s can cost.
    fn reload_if_changed(&self) -> bool {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = stamp(&self.path);
        if now == state.stamp {
            return false;
        }
        state.stamp = now;
        match read(&self.path) {
            Ok(keys) => {
                state.keys = Arc::new(keys);
                state.error = None;
                state.loads += 1;
                state.last_success = Some(unix_now());
                tracing::info!(path = %self.path.display(), keys = state.keys.len(), "JWK Set reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "JWK Set reload failed; keeping the last good set");
                state.error = Some(e);
                false
            }
        }
    }

    /// Verifies with the key named by `kid` (any key when the token has none) whose pinned
    /// algorithm is `alg`. An unknown `kid` triggers one re-read of a changed file.
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        let mut reloaded = false;
        loop {
            if let Some(result) = verify_in(&self.current(), kid, alg, message, signature) {
                return result;
            }
            if reloaded || !self.reload_if_changed() {
                return Err("no JWK with this kid".to_owned());
            }
            reloaded = true;
        }
    }

    pub(crate) fn status(&self) -> JwksStatus {
        let state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        JwksStatus {
            source: self.path.display().to_string(),
            keys: state.keys.len(),
            loads: state.loads,
            error: state.error.clone(),
            last_success: state.last_success,
        }
    }
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len(), inode(&m)),
        Err(_) => (None, 0, 0),
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

fn read(path: &Path) -> Result<Vec<Jwk>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text)
}

/// Parses a JWK Set; keys that can never verify here (`oct`, `use` ≠ `sig`, unknown types) are
/// skipped, malformed ones reject the set, and a set with no usable key is an error.
pub(super) fn parse(text: &str) -> Result<Vec<Jwk>, String> {
    let set: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(Value::Array(entries)) = set.get("keys") else {
        return Err("not a JWK Set (no keys array)".to_owned());
    };
    if entries.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} keys"));
    }
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(jwk) = entry else {
            return Err(format!("keys[{i}] is not an object"));
        };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(format!("keys[{i}].kid is not a string")),
        };
        if let Some(key) = VerifyKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))? {
            keys.push(Jwk { kid, key });
        }
    }
    if keys.is_empty() {
        return Err("no usable signature key (RSA, EC P-256/P-384, Ed25519)".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "constant inputs")]
mod tests {
    use super::*;

    const P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn parse_rules() {
        let set = |keys: &str| parse(&format!(r#"{{"keys":[{keys}]}}"#));
        let keys = set(&format!(r#"{P256},{{"kty":"oct","k":"c2VjcmV0"}}"#)).unwrap();
        assert_eq!(keys.len(), 1, "oct keys are never usable");
        assert_eq!(keys[0].key.alg(), Algorithm::ES256);
        assert!(set(r#"{"kty":"oct","k":"c2VjcmV0"}"#).is_err());
        let enc = P256.replace('{', r#"{"use":"enc","#);
        assert!(set(&enc).is_err(), "only an encryption key: nothing usable");
        let wrong_alg = P256.replace('{', r#"{"alg":"ES384","#);
        assert!(set(&wrong_alg).is_err());
        let hs = P256.replace('{', r#"{"alg":"HS256","#);
        assert!(set(&hs).is_err(), "an HS* alg never binds a published key");
        assert!(
            set(&P256.replace("f83O", "AAAA")).is_ok(),
            "point checked at use"
        );
        assert!(set(&P256.replace(r#""x":"f83O"#, r#""x":"f8"#)).is_err());
        assert!(parse("[]").is_err());
        assert!(parse("{").is_err());
    }
}
