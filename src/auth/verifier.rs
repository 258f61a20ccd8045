//! The `Verifier`: trusted issuers and their per-role keys, and the full validation order
//! (structure → header → issuer → pinned algorithm → signature → claims → grants). Keys are
//! never pooled across issuers or roles; reasons are for the log and never quote the token.
use std::collections::HashMap;
use std::sync::Arc;

use super::keys::VerifyKey;
use super::{claims, grants, jws, AuthError, Claims, Grants, IssuerConfig, KeyConfig, Role};
use crate::topic::MatcherEngine;

/// Verifies tokens against the trusted issuers.
#[derive(Debug)]
pub struct Verifier {
    issuers: HashMap<Box<str>, IssuerKeys>,
    engine: Arc<MatcherEngine>,
}

#[derive(Debug)]
struct IssuerKeys {
    publisher: Option<VerifyKey>,
    subscriber: Option<VerifyKey>,
}

impl IssuerKeys {
    fn key(&self, role: Role) -> Option<&VerifyKey> {
        match role {
            Role::Publisher => self.publisher.as_ref(),
            Role::Subscriber => self.subscriber.as_ref(),
        }
    }
}

impl Verifier {
    /// Loads and checks every issuer's keys; all problems are returned together.
    pub fn new(issuers: &[IssuerConfig], engine: Arc<MatcherEngine>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut loaded = HashMap::with_capacity(issuers.len());
        for (index, issuer) in issuers.iter().enumerate() {
            let name = if issuer.id.is_empty() {
                format!("issuer #{}", index + 1)
            } else {
                format!("issuer {:?}", issuer.id)
            };
            if issuer.id.is_empty() {
                errors.push(format!("{name}: the issuer identifier (iss) is empty"));
            }
            if issuer.publisher.is_none() && issuer.subscriber.is_none() {
                errors.push(format!("{name}: no publisher or subscriber key"));
            }
            let mut load = |role: Role, config: &Option<KeyConfig>| {
                config.as_ref().and_then(|config| {
                    VerifyKey::from_config(config)
                        .map_err(|e| errors.push(format!("{name}, {} key: {e}", role.name())))
                        .ok()
                })
            };
            let keys = IssuerKeys {
                publisher: load(Role::Publisher, &issuer.publisher),
                subscriber: load(Role::Subscriber, &issuer.subscriber),
            };
            if loaded.contains_key(issuer.id.as_str()) {
                errors.push(format!("{name}: declared more than once"));
            } else {
                loaded.insert(issuer.id.as_str().into(), keys);
            }
        }
        if errors.is_empty() {
            Ok(Self {
                issuers: loaded,
                engine,
            })
        } else {
            Err(errors)
        }
    }
    /// Whether any issuer has a key for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.issuers.values().any(|keys| keys.key(role).is_some())
    }
    /// Full validation: signature with the key of the issuer named by `iss` for `role` only,
    /// `typ` at+jwt, algorithm pinning, `exp` (required) and `nbf` against `now` (Unix seconds),
    /// `aud` containing `audience`, then strict `authorization_details` parsing.
    pub fn verify(
        &self,
        token: &str,
        role: Role,
        audience: &str,
        now: u64,
    ) -> Result<Claims, AuthError> {
        self.check(token, role, audience, now)
            .map_err(AuthError::InvalidToken)
    }

    /// The engine grants are compiled with (the one `Grants` checks must be given).
    pub fn engine(&self) -> &Arc<MatcherEngine> {
        &self.engine
    }

    fn check(&self, token: &str, role: Role, audience: &str, now: u64) -> Result<Claims, String> {
        let compact = jws::parse(token)?;
        let iss = claims::read_issuer(&compact.payload)?;
        let issuer = self.issuers.get(iss.as_str()).ok_or_else(|| {
            format!(
                "iss {} is not a trusted issuer",
                claims::describe_issuer(&iss)
            )
        })?;
        let key = issuer.key(role).ok_or_else(|| {
            format!(
                "issuer {} has no {} key",
                claims::describe_issuer(&iss),
                role.name()
            )
        })?;
        // RFC 8725 §3.1: the key's configured algorithm decides, the token only has to agree.
        if compact.alg != key.alg() {
            return Err(format!(
                "alg {} does not match the {} key's {}",
                compact.alg.name(),
                role.name(),
                key.alg().name()
            ));
        }
        if !key.verify(compact.signing_input, &compact.signature) {
            return Err("signature verification failed".to_owned());
        }
        let checked = claims::check(&compact.payload, audience, now)?;
        let grants = match checked.authorization_details {
            None => Grants::default(),
            Some(details) => grants::parse(details, &self.engine)?,
        };
        Ok(Claims {
            exp: checked.exp,
            sub: checked.sub,
            grants,
        })
    }
}
