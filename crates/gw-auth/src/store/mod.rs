//! Where users, API keys, revocations and ownership records live: [`AuthStore`], with
//! [`MemoryAuthStore`] (one node) and [`RedisAuthStore`] (many nodes), same key layout (docs/operations.md, "Store layout").

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

mod memory;
mod redis;

pub use self::memory::MemoryAuthStore;
pub use self::redis::RedisAuthStore;

/// A boxed, `Send` future (the store trait is object safe without `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `user:{user_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The id (`sub` of the user's tokens).
    pub user_id: String,
    /// Display name.
    #[serde(default)]
    pub username: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Role (`admin`, `user`, …).
    #[serde(default)]
    pub role: Option<String>,
    /// `active` or anything else (not active).
    #[serde(default)]
    pub status: String,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `api_key:{sha256 hex of the key}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id of the key (for `DELETE /admin/api-keys/{key_id}`).
    pub key_id: String,
    /// Owner's user id (the caller's identity).
    pub user_id: String,
    /// Owner's name.
    #[serde(default)]
    pub username: Option<String>,
    /// Role granted to callers with this key.
    #[serde(default)]
    pub role: Option<String>,
    /// Permissions granted to callers with this key.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// `active` or anything else (not active).
    #[serde(default)]
    pub status: String,
    /// Epoch seconds after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// SHA-256 hex of the key, compared in constant time on use. Written by
    /// [`create_api_key`](crate::Authenticator::create_api_key); records written by other
    /// tools may leave it out (the key lookup itself is by this hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
}

/// What one authenticated request needs from the store, fetched in ONE round trip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// `blacklist:{jti}`: is it there?
    pub revoked_jti: Option<&'a str>,
    /// `user:{id}`: the record.
    pub user: Option<&'a str>,
    /// `api_key:{hash}`: the record.
    pub api_key_hash: Option<&'a str>,
    /// A raw key (already with `{id}` filled in, without prefix): its string value.
    pub owner_key: Option<&'a str>,
}

/// Answer to a [`Lookup`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupResult {
    /// `blacklist:{jti}` exists.
    pub revoked: bool,
    /// The user record, when asked for and present.
    pub user: Option<UserRecord>,
    /// The API-key record, when asked for and present.
    pub api_key: Option<ApiKeyRecord>,
    /// The owner value, when asked for and present.
    pub owner: Option<String>,
}

/// Storage of auth state. Keys follow docs/operations.md, "Store layout"; implementations apply their key prefix to every
/// key, `owner_key` included. Every method is bounded by the store's timeout.
pub trait AuthStore: Debug + Send + Sync + 'static {
    /// Hot path: everything one request needs, in one round trip.
    fn lookup<'a>(&'a self, q: Lookup<'a>) -> BoxFuture<'a, Result<LookupResult, StoreError>>;
    /// Sets `blacklist:{jti}` = `"1"` expiring after `ttl`.
    fn revoke<'a>(&'a self, jti: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Sets `blacklist:{jti}` = `"1"` expiring at `until` (epoch seconds) by the store's own
    /// clock (Redis: `SET … EXAT`), so that the entry outlives every moment at which the token
    /// could still be accepted. The default converts to a TTL with this node's clock.
    fn revoke_until<'a>(
        &'a self,
        jti: &'a str,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let ttl = until.saturating_sub(crate::unix_now()).max(1);
        self.revoke(jti, Duration::from_secs(ttl))
    }
    /// Writes `user:{user_id}`.
    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Reads `user:{id}`.
    fn get_user<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>>;
    /// Deletes `user:{id}`; whether it existed.
    fn delete_user<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Writes `api_key:{hash}` and the index `api_key_id:{key_id}` → hash.
    fn put_api_key<'a>(
        &'a self,
        hash: &'a str,
        record: &'a ApiKeyRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes the key with this id (through the index, no scan); whether it existed.
    fn delete_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Writes a plain string value (ownership records such as `order:{id}:owner`).
    fn set_value<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

pub(crate) fn user_key(id: &str) -> String {
    format!("user:{id}")
}
pub(crate) fn blacklist_key(jti: &str) -> String {
    format!("blacklist:{jti}")
}
pub(crate) fn api_key_key(hash: &str) -> String {
    format!("api_key:{hash}")
}
pub(crate) fn api_key_id_key(key_id: &str) -> String {
    format!("api_key_id:{key_id}")
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    key: String,
    raw: Option<&str>,
) -> Result<Option<T>, StoreError> {
    match raw {
        None => Ok(None),
        Some(s) => serde_json::from_str(s)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { key, source }),
    }
}
