//! [`MemoryAuthStore`]: one node's auth state in a sharded map.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::{
    api_key_id_key, api_key_key, blacklist_key, decode, user_key, ApiKeyRecord, AuthStore,
    BoxFuture, Lookup, LookupResult, UserRecord,
};
use crate::error::StoreError;

const SHARDS: usize = 16;

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// In-process store with the same key layout as Redis (values are the same JSON strings).
///
/// Sixteen `RwLock` shards keyed by hash: readers of different keys never contend and no lock
/// is global. Expired blacklist entries are invisible at once and evicted when their shard is
/// next written.
#[derive(Debug)]
pub struct MemoryAuthStore {
    shards: Box<[RwLock<HashMap<String, Entry>>]>,
    hasher: RandomState,
}

impl Default for MemoryAuthStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryAuthStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<String, Entry>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[i]
    }

    /// The live value at `key` (no prefix in the memory store).
    pub fn get(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        let shard = self.shard(key).read();
        shard
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    fn exists(&self, key: &str) -> bool {
        let now = Instant::now();
        self.shard(key).read().get(key).is_some_and(|e| e.live(now))
    }

    /// Sets `key` to `value`, optionally expiring after `ttl`.
    pub fn set(&self, key: &str, value: &str, ttl: Option<Duration>) {
        let now = Instant::now();
        let mut shard = self.shard(key).write();
        // Amortised eviction of expired entries (blacklist TTLs).
        if shard.len() > 64 && should_sweep(shard.len()) {
            shard.retain(|_, e| e.live(now));
        }
        shard.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires: ttl.map(|t| now + t),
            },
        );
    }

    /// Removes `key`; whether a live value was there.
    pub fn remove(&self, key: &str) -> bool {
        let now = Instant::now();
        self.shard(key)
            .write()
            .remove(key)
            .is_some_and(|e| e.live(now))
    }

    /// Number of live entries (tests, diagnostics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|s| s.read().values().filter(|e| e.live(now)).count())
            .sum()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup_now(&self, q: Lookup<'_>) -> Result<LookupResult, StoreError> {
        let revoked = q
            .revoked_jti
            .is_some_and(|j| self.exists(&blacklist_key(j)));
        let user = match q.user {
            Some(id) => {
                let k = user_key(id);
                let raw = self.get(&k);
                decode(k, raw.as_deref())?
            }
            None => None,
        };
        let api_key = match q.api_key_hash {
            Some(h) => {
                let k = api_key_key(h);
                let raw = self.get(&k);
                decode(k, raw.as_deref())?
            }
            None => None,
        };
        let owner = q.owner_key.and_then(|k| self.get(k));
        Ok(LookupResult {
            revoked,
            user,
            api_key,
            owner,
        })
    }
}

/// Sweep when the shard size crosses a power of two, so eviction stays amortised O(1).
fn should_sweep(len: usize) -> bool {
    len.is_power_of_two()
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl AuthStore for MemoryAuthStore {
    fn lookup<'a>(&'a self, q: Lookup<'a>) -> BoxFuture<'a, Result<LookupResult, StoreError>> {
        ready(self.lookup_now(q))
    }

    fn revoke<'a>(&'a self, jti: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>> {
        self.set(&blacklist_key(jti), "1", Some(ttl));
        ready(Ok(()))
    }

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        let json = serde_json::to_string(user).unwrap_or_default();
        self.set(&user_key(&user.user_id), &json, None);
        ready(Ok(()))
    }

    fn get_user<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        let k = user_key(id);
        let raw = self.get(&k);
        ready(decode(k, raw.as_deref()))
    }

    fn delete_user<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        ready(Ok(self.remove(&user_key(id))))
    }

    fn put_api_key<'a>(
        &'a self,
        hash: &'a str,
        record: &'a ApiKeyRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let json = serde_json::to_string(record).unwrap_or_default();
        self.set(&api_key_key(hash), &json, None);
        self.set(&api_key_id_key(&record.key_id), hash, None);
        ready(Ok(()))
    }

    fn delete_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let idx = api_key_id_key(key_id);
        let existed = match self.get(&idx) {
            Some(hash) => {
                self.remove(&idx);
                self.remove(&api_key_key(&hash))
            }
            None => false,
        };
        ready(Ok(existed))
    }

    fn set_value<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.set(key, value, None);
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_invisible() {
        let s = MemoryAuthStore::new();
        s.set("blacklist:a", "1", Some(Duration::ZERO));
        s.set("blacklist:b", "1", Some(Duration::from_secs(60)));
        assert!(!s.exists("blacklist:a"));
        assert!(s.exists("blacklist:b"));
        assert_eq!(s.len(), 1);
    }
}
