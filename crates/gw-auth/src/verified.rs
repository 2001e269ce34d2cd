//! A bounded memory of tokens whose signature verified, so that a client sending the same
//! token again costs a lookup instead of base64, two JSON parses and a signature check.
//!
//! What it keeps is only "this exact text was signed by a key we trust": the claims are
//! checked against the clock on every request by the caller (`exp`, `nbf`, issuer,
//! audience), and revocation and user lookups run after it as before. An entry is tied to
//! the key set it was verified with: when the JWKS keys are refreshed, older entries no longer
//! count. HMAC secrets and PEM keys cannot change inside one verifier (a new configuration
//! builds a new one, with an empty memory).
//!
//! Sharded by the token's last bytes (its signature), each shard behind its own short lock:
//! no lock is shared by all requests, and a shard holds at most `capacity / shards` tokens.
//! A full shard drops one arbitrary entry per insert.
//!
//! Keys are hashed by their last 16 bytes only (FNV-1a): a token is a few hundred bytes, and
//! SipHash over all of it cost more than the rest of the lookup. Only tokens whose signature
//! verified are ever stored, and a signature's bytes cannot be chosen without the key, so
//! nobody can fill a shard with colliding entries.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::jwt::TokenClaims;

/// Most shards of one cache.
const SHARDS: usize = 16;

struct Entry {
    claims: Arc<TokenClaims>,
    /// The key-set generation the signature verified under.
    keys: u64,
}

/// One shard: token text → entry.
type Shard = Mutex<HashMap<Box<str>, Entry, TailHash>>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a over the last 16 bytes of `bytes`, last byte first.
fn tail_fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes.iter().rev().take(16) {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Hashes what is written by its last 16 bytes (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
struct TailHash;

struct TailHasher(u64);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(FNV_OFFSET)
    }
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = tail_fnv(self.0, bytes);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) struct VerifiedTokens {
    shards: Box<[Shard]>,
    per_shard: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .finish()
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; `None` when `capacity` is 0 (off).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let shards = capacity.min(SHARDS);
        Some(Self {
            shards: (0..shards)
                .map(|_| Mutex::new(HashMap::with_hasher(TailHash)))
                .collect(),
            per_shard: capacity / shards,
        })
    }

    fn shard(&self, token: &str) -> &Shard {
        // The signature's last characters (its very last base64 character carries only a
        // few bits), mixed; the map's own hash of the key mixes in one more byte (`str`'s
        // terminator), so keys of one shard still spread over its table.
        let tail = (tail_fnv(FNV_OFFSET, token.as_bytes()) >> 32) as usize;
        &self.shards[tail % self.shards.len()]
    }

    /// The claims of `token` if it verified under key-set generation `keys`.
    pub(crate) fn get(&self, token: &str, keys: u64) -> Option<Arc<TokenClaims>> {
        let shard = self.shard(token).lock();
        shard
            .get(token)
            .filter(|e| e.keys == keys)
            .map(|e| e.claims.clone())
    }

    /// Remembers that `token`'s signature verified under key-set generation `keys`.
    pub(crate) fn insert(&self, token: &str, claims: Arc<TokenClaims>, keys: u64) {
        let mut shard = self.shard(token).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(token) {
            let victim = shard.keys().next().cloned();
            if let Some(victim) = victim {
                shard.remove(&victim);
            }
        }
        shard.insert(token.into(), Entry { claims, keys });
    }

    /// Forgets `token` (it expired: its entry is of no more use).
    pub(crate) fn remove(&self, token: &str) {
        self.shard(token).lock().remove(token);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Arc<TokenClaims> {
        Arc::new(TokenClaims {
            sub: Some(sub.into()),
            ..TokenClaims::default()
        })
    }

    #[test]
    fn zero_capacity_is_off() {
        assert!(VerifiedTokens::new(0).is_none());
    }

    #[test]
    fn hit_only_for_the_same_text_and_key_set() {
        let c = VerifiedTokens::new(64).unwrap();
        let a = claims("a");
        c.insert("aaa.bbb.ccc", a.clone(), 3);
        assert!(Arc::ptr_eq(&c.get("aaa.bbb.ccc", 3).unwrap(), &a));
        assert!(c.get("aaa.bbb.ccd", 3).is_none(), "another signature");
        assert!(c.get("aaa.bbb.ccc", 4).is_none(), "keys refreshed since");
        c.remove("aaa.bbb.ccc");
        assert!(c.get("aaa.bbb.ccc", 3).is_none());
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let c = VerifiedTokens::new(40).unwrap();
        for i in 0..1000 {
            c.insert(&format!("h.p.sig{i}"), claims("u"), 0);
        }
        // 16 shards of 40 / 16 = 2.
        assert!(c.len() <= 40, "{}", c.len());
        assert!(c.len() >= 16, "every shard keeps some: {}", c.len());
        let last = "h.p.sig999";
        assert!(c.get(last, 0).is_some(), "the newest entry is kept");
    }
}
