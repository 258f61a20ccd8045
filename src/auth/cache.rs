//! The verified-token cache: a token that passed full validation with a configured (static) key
//! is not parsed, verified and compiled again while it stays within its `nbf`/`exp` window; a
//! publisher or subscriber reusing one token pays for its verification once.
use std::ops::RangeInclusive;

use quick_cache::sync::Cache;
use quick_cache::Weighter;
use ring::digest;

use super::{Claims, Role};

/// Default budget: cached tokens' lengths (plus `ENTRY_OVERHEAD` each) add up to at most this.
pub const TOKEN_CACHE_BYTES: u64 = 4 << 20;
/// Longer tokens are always verified in full (and never hashed for a lookup).
pub const MAX_CACHED_TOKEN_LEN: usize = 4096;
/// What an entry costs beyond its token's length in the budget (key, claims, bookkeeping).
const ENTRY_OVERHEAD: u32 = 256;
/// A token whose grants carry payloads counts this many times its length: a payload is
/// arbitrary JSON, kept parsed, which can take ~12× its encoded size (a 25 KiB object of 2,300
/// small keys measured ~310 KiB).
const PAYLOAD_WEIGHT_FACTOR: u32 = 16;

/// Key: SHA-256 of the role, the audience and the token. A digest, not the token, so a probe
/// compares digests (nothing about a cached token's bytes leaks through comparison timing) and
/// an entry holds 32 bytes instead of a copy of a credential.
type Key = [u8; 32];

#[derive(Debug, Clone)]
struct Entry {
    claims: Claims,
    valid: RangeInclusive<u64>,
    weight: u32,
}

#[derive(Debug, Clone)]
struct ByWeight;

impl Weighter<Key, Entry> for ByWeight {
    fn weight(&self, _: &Key, entry: &Entry) -> u64 {
        u64::from(entry.weight)
    }
}

#[derive(Debug)]
pub(super) struct TokenCache {
    entries: Cache<Key, Entry, ByWeight>,
    budget: u64,
}

impl TokenCache {
    /// A cache holding at most `budget` bytes of tokens (see `ENTRY_OVERHEAD`).
    pub(super) fn new(budget: u64) -> Self {
        let typical = 512 + u64::from(ENTRY_OVERHEAD);
        Self {
            entries: Cache::with_weighter(
                usize::try_from(budget / typical)
                    .unwrap_or(usize::MAX)
                    .max(1),
                budget.max(1),
                ByWeight,
            ),
            budget,
        }
    }

    /// An empty cache with the same budget.
    pub(super) fn emptied(&self) -> Self {
        Self::new(self.budget)
    }

    /// Whether `token` may be looked up or cached at all.
    pub(super) fn accepts(token: &str) -> bool {
        token.len() <= MAX_CACHED_TOKEN_LEN
    }

    /// `audience` is `None` when the verification does not depend on it (compatibility mode).
    pub(super) fn key(token: &str, role: Role, audience: Option<&str>) -> Key {
        let mut ctx = digest::Context::new(&digest::SHA256);
        // Role names are fixed ASCII words and the audience comes from an HTTP authority or
        // the configuration (no NUL): the NUL separators make the triple unambiguous.
        ctx.update(role.name().as_bytes());
        ctx.update(&[0]);
        ctx.update(audience.unwrap_or("").as_bytes());
        ctx.update(&[0]);
        ctx.update(token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// The claims of a cached token still valid at `now` (Unix seconds).
    pub(super) fn get(&self, key: &Key, now: u64) -> Option<Claims> {
        let entry = self.entries.get(key)?;
        if entry.valid.contains(&now) {
            return Some(entry.claims);
        }
        if now > *entry.valid.end() {
            // Expired for good (a clock stepping back could revive one before `nbf`: kept).
            self.entries.remove(key);
        }
        None
    }

    /// Caches `claims` of `token` (which `accepts`), valid for the whole seconds in `valid`.
    pub(super) fn insert(&self, key: Key, token: &str, claims: Claims, valid: RangeInclusive<u64>) {
        let factor = if claims.grants.has_payloads() {
            PAYLOAD_WEIGHT_FACTOR
        } else {
            1
        };
        let weight = u32::try_from(token.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(factor)
            .saturating_add(ENTRY_OVERHEAD);
        self.entries.insert(
            key,
            Entry {
                claims,
                valid,
                weight,
            },
        );
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
