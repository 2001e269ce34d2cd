//! [`RedisAuthStore`]: auth state shared by every gateway node through one Redis.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis::{self, Value};
use deadpool_redis::Pool;

use super::{
    api_key_id_key, api_key_key, blacklist_key, decode, user_key, ApiKeyRecord, AuthStore,
    BoxFuture, Lookup, LookupResult, UserRecord,
};
use crate::error::StoreError;

/// Redis-backed store (deadpool connection pool; the keys of docs/operations.md, "Store layout", behind `key_prefix`).
///
/// Every call is bounded by `timeout` (pool checkout included), so a dead Redis costs at most
/// that long and becomes [`StoreError::Timeout`] / [`StoreError::Backend`], never a hang.
/// The request path ([`AuthStore::lookup`]) is one pipelined round trip.
#[derive(Clone)]
pub struct RedisAuthStore {
    pool: Pool,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisAuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAuthStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedisAuthStore {
    /// A store over `pool`, prefixing every key with `key_prefix`, each call bounded by
    /// `timeout`.
    pub fn new(pool: Pool, key_prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            pool,
            prefix: key_prefix.into(),
            timeout,
        }
    }

    /// Convenience: a pool for `url` (no connection is made until first use).
    pub fn from_url(
        url: &str,
        key_prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(backend)?;
        Ok(Self::new(pool, key_prefix, timeout))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, k: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + k.len());
        s.push_str(&self.prefix);
        s.push_str(k);
        s
    }

    /// Runs `f` on a pooled connection, the whole thing bounded by the timeout.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let work = async {
            let conn = self.pool.get().await.map_err(backend)?;
            f(conn).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn lookup_impl(&self, q: Lookup<'_>) -> Result<LookupResult, StoreError> {
        let mut pipe = redis::pipe();
        if let Some(j) = q.revoked_jti {
            pipe.cmd("EXISTS").arg(self.key(&blacklist_key(j)));
        }
        if let Some(u) = q.user {
            pipe.cmd("GET").arg(self.key(&user_key(u)));
        }
        if let Some(h) = q.api_key_hash {
            pipe.cmd("GET").arg(self.key(&api_key_key(h)));
        }
        if let Some(o) = q.owner_key {
            pipe.cmd("GET").arg(self.key(o));
        }
        if q == Lookup::default() {
            return Ok(LookupResult::default());
        }
        let values: Vec<Value> = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await.map_err(backend) })
            .await?;
        let mut it = values.into_iter();
        let mut next = || it.next().unwrap_or(Value::Nil);
        let mut out = LookupResult::default();
        if q.revoked_jti.is_some() {
            out.revoked = redis::from_redis_value::<bool>(next()).map_err(backend)?;
        }
        if let Some(u) = q.user {
            let raw: Option<String> = redis::from_redis_value(next()).map_err(backend)?;
            out.user = decode(user_key(u), raw.as_deref())?;
        }
        if let Some(h) = q.api_key_hash {
            let raw: Option<String> = redis::from_redis_value(next()).map_err(backend)?;
            out.api_key = decode(api_key_key(h), raw.as_deref())?;
        }
        if q.owner_key.is_some() {
            out.owner = redis::from_redis_value(next()).map_err(backend)?;
        }
        Ok(out)
    }

    async fn set_plain(
        &self,
        key: String,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.run(|mut conn| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            cmd.query_async::<()>(&mut conn).await.map_err(backend)
        })
        .await
    }

    async fn get_plain(&self, key: String) -> Result<Option<String>, StoreError> {
        self.run(|mut conn| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn)
                .await
                .map_err(backend)
        })
        .await
    }

    async fn del(&self, keys: Vec<String>) -> Result<u64, StoreError> {
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<u64>(&mut conn)
                .await
                .map_err(backend)
        })
        .await
    }
}

impl AuthStore for RedisAuthStore {
    fn lookup<'a>(&'a self, q: Lookup<'a>) -> BoxFuture<'a, Result<LookupResult, StoreError>> {
        Box::pin(self.lookup_impl(q))
    }

    fn revoke<'a>(&'a self, jti: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.set_plain(self.key(&blacklist_key(jti)), "1".to_owned(), Some(ttl)))
    }

    fn revoke_until<'a>(
        &'a self,
        jti: &'a str,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = self.key(&blacklist_key(jti));
        Box::pin(self.run(move |mut conn| async move {
            // EXAT: the expiry is judged by the Redis server's clock, the same for every node.
            redis::cmd("SET")
                .arg(key)
                .arg("1")
                .arg("EXAT")
                .arg(until.max(1))
                .query_async::<()>(&mut conn)
                .await
                .map_err(backend)
        }))
    }

    fn put_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(user).map_err(backend)?;
            self.set_plain(self.key(&user_key(&user.user_id)), json, None)
                .await
        })
    }

    fn get_user<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        Box::pin(async move {
            let raw = self.get_plain(self.key(&user_key(id))).await?;
            decode(user_key(id), raw.as_deref())
        })
    }

    fn delete_user<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.del(vec![self.key(&user_key(id))]).await? > 0) })
    }

    fn put_api_key<'a>(
        &'a self,
        hash: &'a str,
        record: &'a ApiKeyRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(record).map_err(backend)?;
            let rec_key = self.key(&api_key_key(hash));
            let idx_key = self.key(&api_key_id_key(&record.key_id));
            self.run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(rec_key)
                    .arg(json)
                    .ignore()
                    .cmd("SET")
                    .arg(idx_key)
                    .arg(hash)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(backend)
            })
            .await
        })
    }

    fn delete_api_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let idx_key = self.key(&api_key_id_key(key_id));
            let Some(hash) = self.get_plain(idx_key.clone()).await? else {
                return Ok(false);
            };
            let removed = self
                .del(vec![self.key(&api_key_key(&hash)), idx_key])
                .await?;
            Ok(removed > 0)
        })
    }

    fn set_value<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.set_plain(self.key(key), value.to_owned(), None))
    }
}
