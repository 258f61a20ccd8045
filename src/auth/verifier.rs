//! The `Verifier`: trusted issuers and their per-role keys, and the full validation order
//! (structure → header → issuer → pinned algorithm → signature → claims → grants). Keys are
//! never pooled across issuers or roles; reasons are for the log and never quote the token.
use std::collections::HashMap;
use std::sync::Arc;

use super::cache::{TokenCache, TOKEN_CACHE_BYTES};
use super::fetch::UrlKeys;
use super::jwks::JwksKeys;
use super::keys::VerifyKey;
use super::{
    claims, grants, jws, AuthError, Claims, Grants, IssuerConfig, JwksSource, JwksStatus,
    KeyConfig, Role,
};
use crate::topic::MatcherEngine;

/// Verifies tokens against the trusted issuers.
#[derive(Debug)]
pub struct Verifier {
    issuers: HashMap<Box<str>, IssuerKeys>,
    engine: Arc<MatcherEngine>,
    /// Compatibility mode (`--protocol-version-compatibility`): relaxed `typ`/`aud`/`exp`/`iss`
    /// checks and the 0.x `mercure` claim.
    compat: bool,
    /// Tokens verified with a static key (a JWK Set can drop a key: those are always checked).
    cache: Option<TokenCache>,
}

#[derive(Debug)]
struct IssuerKeys {
    publisher: Option<RoleKey>,
    subscriber: Option<RoleKey>,
}

/// Where one role's verification keys come from.
#[derive(Debug)]
enum RoleKey {
    Static(VerifyKey),
    Jwks(JwksKeys),
    JwksUrl(UrlKeys),
}

impl IssuerKeys {
    fn key(&self, role: Role) -> Option<&RoleKey> {
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
            if issuer.publisher.is_none()
                && issuer.subscriber.is_none()
                && issuer.publisher_jwks.is_none()
                && issuer.subscriber_jwks.is_none()
            {
                errors.push(format!("{name}: no publisher or subscriber key"));
            }
            let mut load =
                |role: Role, config: &Option<KeyConfig>, jwks: &Option<JwksSource>| match (
                    config, jwks,
                ) {
                    (Some(_), Some(_)) => {
                        errors.push(format!(
                            "{name}: both a {0} key and a {0} JWK Set",
                            role.name()
                        ));
                        None
                    }
                    (Some(config), None) => VerifyKey::from_config(config)
                        .map(RoleKey::Static)
                        .map_err(|e| errors.push(format!("{name}, {} key: {e}", role.name())))
                        .ok(),
                    (None, Some(JwksSource::File(path))) => JwksKeys::load(path)
                        .map(RoleKey::Jwks)
                        .map_err(|e| errors.push(format!("{name}, {} JWK Set: {e}", role.name())))
                        .ok(),
                    (None, Some(JwksSource::Url(url))) => UrlKeys::start(url)
                        .map(RoleKey::JwksUrl)
                        .map_err(|e| errors.push(format!("{name}, {} JWK Set: {e}", role.name())))
                        .ok(),
                    (None, None) => None,
                };
            let keys = IssuerKeys {
                publisher: load(Role::Publisher, &issuer.publisher, &issuer.publisher_jwks),
                subscriber: load(
                    Role::Subscriber,
                    &issuer.subscriber,
                    &issuer.subscriber_jwks,
                ),
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
                compat: false,
                cache: Some(TokenCache::new(TOKEN_CACHE_BYTES)),
            })
        } else {
            Err(errors)
        }
    }
    /// Turns compatibility mode on or off (reference hub §4): `typ` and `aud` are not checked,
    /// `exp` is optional (enforced when present), a missing or unknown `iss` selects the sole
    /// configured issuer, and a token without `authorization_details` is granted by its 0.x
    /// `mercure` claim. Algorithm pinning and key binding are unchanged.
    pub fn with_compat(mut self, compat: bool) -> Self {
        self.compat = compat;
        // What was verified under the other rules must be verified again.
        self.cache = self.cache.as_ref().map(TokenCache::emptied);
        self
    }
    /// Remembers verified tokens up to `bytes` of them (the default is 4 MiB, see
    /// `auth::cache`); `0` verifies every presentation in full.
    pub fn with_token_cache(mut self, bytes: u64) -> Self {
        self.cache = (bytes > 0).then(|| TokenCache::new(bytes));
        self
    }
    /// Every JWK Set source with its health, as (issuer, role, status), sorted.
    pub fn jwks_status(&self) -> Vec<(String, Role, JwksStatus)> {
        let mut out = Vec::new();
        for (id, keys) in &self.issuers {
            for role in [Role::Publisher, Role::Subscriber] {
                match keys.key(role) {
                    Some(RoleKey::Jwks(set)) => out.push((id.to_string(), role, set.status())),
                    Some(RoleKey::JwksUrl(set)) => out.push((id.to_string(), role, set.status())),
                    _ => {}
                }
            }
        }
        out.sort_by(|a, b| (&a.0, a.1.name()).cmp(&(&b.0, b.1.name())));
        out
    }
    /// Resolves once every HTTPS JWK Set has finished its first fetch attempt (each is bounded
    /// in time; a failure leaves the set empty and retried in the background).
    pub async fn jwks_fetched(&self) {
        for keys in self.issuers.values() {
            for role in [Role::Publisher, Role::Subscriber] {
                if let Some(RoleKey::JwksUrl(set)) = keys.key(role) {
                    set.first_attempt().await;
                }
            }
        }
    }
    /// Whether any issuer has a key for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.issuers.values().any(|keys| keys.key(role).is_some())
    }
    /// Full validation: signature with the key of the issuer named by `iss` for `role` only,
    /// `typ` at+jwt, algorithm pinning, `exp` (required) and `nbf` against `now` (Unix seconds),
    /// `aud` containing `audience`, then strict `authorization_details` parsing. A token that
    /// passed it with a static key is answered from the verified-token cache afterwards, with
    /// `nbf`/`exp` re-checked against `now` (`auth::cache`).
    pub fn verify(
        &self,
        token: &str,
        role: Role,
        audience: &str,
        now: u64,
    ) -> Result<Claims, AuthError> {
        // Compatibility mode does not check `aud`: the same verification for every audience.
        let cached = self
            .cache
            .as_ref()
            .filter(|_| TokenCache::accepts(token))
            .map(|cache| {
                let key = TokenCache::key(token, role, (!self.compat).then_some(audience));
                (cache, key)
            });
        if let Some(claims) = cached.and_then(|(cache, key)| cache.get(&key, now)) {
            return Ok(claims);
        }
        let (claims, valid) = self
            .check(token, role, audience, now)
            .map_err(AuthError::InvalidToken)?;
        if let (Some((cache, key)), Some(valid)) = (cached, valid) {
            cache.insert(key, token, claims.clone(), valid);
        }
        Ok(claims)
    }

    /// Verified tokens currently cached.
    #[cfg(test)]
    pub(crate) fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// The engine grants are compiled with (the one `Grants` checks must be given).
    pub fn engine(&self) -> &Arc<MatcherEngine> {
        &self.engine
    }

    /// Full validation; with the claims, the window in which the verification may be reused
    /// (`Some` for a static key only).
    fn check(
        &self,
        token: &str,
        role: Role,
        audience: &str,
        now: u64,
    ) -> Result<(Claims, Option<std::ops::RangeInclusive<u64>>), String> {
        let compact = jws::parse_with(token, !self.compat)?;
        let iss = claims::read_issuer_opt(&compact.payload)?;
        let known = iss.as_deref().and_then(|iss| self.issuers.get(iss));
        // Compatibility mode: 0.x tokens carry no (or any) `iss`; with one issuer there is no
        // ambiguity about whose keys verify them.
        let sole = (self.compat && self.issuers.len() == 1)
            .then(|| self.issuers.iter().next())
            .flatten();
        let (iss, issuer) = match (known, sole, iss) {
            (Some(issuer), _, Some(iss)) => (iss, issuer),
            (_, Some((id, issuer)), _) => (id.to_string(), issuer),
            (_, _, Some(iss)) => {
                return Err(format!(
                    "iss {} is not a trusted issuer",
                    claims::describe_issuer(&iss)
                ))
            }
            (_, _, None) => return Err("iss is missing".to_owned()),
        };
        let key = issuer.key(role).ok_or_else(|| {
            format!(
                "issuer {} has no {} key",
                claims::describe_issuer(&iss),
                role.name()
            )
        })?;
        let cacheable = matches!(key, RoleKey::Static(_));
        match key {
            RoleKey::Static(key) => {
                // RFC 8725 §3.1: the key's configured algorithm decides, the token only has to
                // agree.
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
            }
            RoleKey::Jwks(set) => set.verify(
                compact.kid.as_deref(),
                compact.alg,
                compact.signing_input,
                &compact.signature,
            )?,
            RoleKey::JwksUrl(set) => set.verify(
                compact.kid.as_deref(),
                compact.alg,
                compact.signing_input,
                &compact.signature,
            )?,
        }
        let audience = (!self.compat).then_some(audience);
        let checked = claims::check_with(&compact.payload, audience, now)?;
        let grants = match (checked.authorization_details, &checked.legacy) {
            (Some(details), _) => grants::parse(details, &self.engine)?,
            (None, Some(legacy)) if self.compat => grants::parse_legacy(legacy, &self.engine)?,
            (None, _) => Grants::default(),
        };
        let claims = Claims {
            exp: checked.exp,
            sub: checked.sub,
            grants: Arc::new(grants),
        };
        Ok((claims, cacheable.then_some(checked.valid)))
    }
}
