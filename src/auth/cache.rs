//! The verified-token cache: a token that passed full validation with a configured (static) key
//! is not parsed, verified and compiled again while it stays within its `nbf`/`exp` window; a
//! publisher or subscriber reusing one token pays for its verification once.
use std::ops::RangeInclusive;

use quick_cache::sync::Cache;
use ring::digest;

use super::{Claims, Role};

/// Verified tokens remembered (least recently used ones go first).
pub const TOKEN_CACHE_ENTRIES: usize = 4096;

/// Key: SHA-256 of the role, the audience and the token. A digest, not the token, so a probe
/// compares digests (nothing about a cached token's bytes leaks through comparison timing) and
/// an entry holds 32 bytes instead of a copy of a credential.
type Key = [u8; 32];

#[derive(Debug, Clone)]
struct Entry {
    claims: Claims,
    valid: RangeInclusive<u64>,
}

#[derive(Debug)]
pub(super) struct TokenCache {
    entries: Cache<Key, Entry>,
}

impl TokenCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
        }
    }

    pub(super) fn key(token: &str, role: Role, audience: &str) -> Key {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(role.name().as_bytes());
        ctx.update(&[0]);
        ctx.update(audience.as_bytes());
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

    pub(super) fn insert(&self, key: Key, claims: Claims, valid: RangeInclusive<u64>) {
        self.entries.insert(key, Entry { claims, valid });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
