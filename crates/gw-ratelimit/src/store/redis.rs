//! Redis store: one `EVALSHA` per request, all of its limits in one atomic Lua script.

use std::time::Duration;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::Script;
use deadpool_redis::Pool;

use super::{BoxFuture, Decision, Decisions, KeyedLimit, Store, StoreError};
use crate::algorithm::Outcome;
use crate::config::Algorithm;

/// The suffix that names the algorithm of a key: each algorithm has keys of its own (a ZSET
/// for the sliding window, a hash for the token bucket), so nodes or reloads that disagree on
/// the algorithm never meet a key of the other type.
pub(crate) fn algorithm_suffix(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::SlidingWindow => ":sw",
        Algorithm::TokenBucket => ":tb",
    }
}

/// The limiter script. `KEYS`: one per limit (with its algorithm suffix). `ARGV`: per limit `algorithm` (0 sliding
/// window, 1 token bucket), `requests_per_minute`, capacity. Answer: `now_ms`, then per limit
/// `allowed, remaining, reset_at_ms, retry_at_ms`.
///
/// Time is Redis `TIME` (one clock for every node), in milliseconds. The sliding window is a
/// ZSET scored by ms; its members are `"{ms}:{n}"` where `n` is the number of members already
/// scored `ms`. Members of one score are only ever removed together (by score range), so the
/// members scored `ms` are always exactly `ms:0 .. ms:(n-1)`: unique by construction, however
/// many requests share a millisecond. The token bucket is a hash `{u: level in 1/60000
/// token, ts: ms}`. The same arithmetic as [`crate::algorithm`]. A key holding another type is
/// deleted and starts afresh (`redis.pcall` on its first read: no cost when the type is right).
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local W = 60000
local n = #KEYS
local res = { now }
local ok_all = true
local st = {}
for i = 1, n do
  local key = KEYS[i]
  local algo = tonumber(ARGV[(i - 1) * 3 + 1])
  local rate = tonumber(ARGV[(i - 1) * 3 + 2])
  local cap = tonumber(ARGV[(i - 1) * 3 + 3])
  local ok, rem, reset, retry
  if algo == 0 then
    -- A key of another type (written by another algorithm or by hand) is reset, not an error.
    local r = redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now - W)
    if type(r) == 'table' and r.err then redis.call('DEL', key) end
    local count = redis.call('ZCARD', key)
    local reset_base = now
    if count > 0 then
      reset_base = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    end
    reset = reset_base + W
    if count < rate then
      ok = true; rem = rate - count - 1; retry = now
    else
      ok = false; rem = 0
      local idx = count - rate
      local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')[2]
      if e then retry = tonumber(e) + W else retry = now + W end
    end
  else
    local S = W
    local capu = cap * S
    local h = redis.pcall('HMGET', key, 'u', 'ts')
    if h.err then redis.call('DEL', key); h = {} end
    local u = tonumber(h[1])
    local ts = tonumber(h[2])
    if u == nil or ts == nil then u = capu; ts = now end
    if now > ts then u = u + (now - ts) * rate; ts = now end
    if u > capu then u = capu end
    local r = rate
    if r < 1 then r = 1 end
    if u >= S then
      ok = true; rem = math.floor((u - S) / S); retry = now
      reset = now + math.ceil((capu - (u - S)) / r)
    else
      ok = false; rem = 0
      retry = now + math.ceil((S - u) / r)
      reset = now + math.ceil((capu - u) / r)
    end
    st[i] = { u, ts, capu, r }
  end
  if not ok then ok_all = false end
  res[#res + 1] = ok and 1 or 0
  res[#res + 1] = rem
  res[#res + 1] = reset
  res[#res + 1] = retry
end
if ok_all then
  local nows = string.format('%d', now)
  for i = 1, n do
    local key = KEYS[i]
    if st[i] == nil then
      local same = redis.call('ZCOUNT', key, now, now)
      redis.call('ZADD', key, now, nows .. ':' .. same)
      redis.call('PEXPIRE', key, W)
    else
      local s = st[i]
      local u = s[1] - W
      redis.call('HSET', key, 'u', string.format('%d', u), 'ts', nows)
      redis.call('PEXPIRE', key, math.ceil((s[3] - u) / s[4]) + 1000)
    end
  end
end
return res
"#;

/// Limiter state in Redis, shared by every gateway node.
///
/// Each request costs one round trip: `EVALSHA` of one script that evaluates all of the
/// request's limits and consumes them only when all allow (`NOSCRIPT` after a Redis restart
/// or `SCRIPT FLUSH` reloads the script and retries, through
/// [`redis::Script::invoke_async`](deadpool_redis::redis::Script)). Taking a connection and
/// the script together are bounded by `timeout`.
///
/// The store takes one multiplexed connection from the pool and keeps using it (requests are
/// pipelined on it), so a check does not pay the pool's recycle `PING`; after any error it
/// drops that connection and takes a fresh one from the pool on the next check.
///
/// Keys are `{prefix}{key}:sw` (sliding window, a ZSET) and `{prefix}{key}:tb` (token bucket,
/// a hash).
///
/// All keys of one request are passed as `KEYS`, so on a Redis Cluster they would need one
/// hash slot; the gateway targets one Redis (or a primary with replicas).
pub struct RedisStore {
    pool: Pool,
    conn: ArcSwapOption<MultiplexedConnection>,
    prefix: String,
    timeout: Duration,
    script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store over `pool`; `key_prefix` goes in front of every key; every check is bounded
    /// by `timeout` (taking a connection included).
    pub fn new(pool: Pool, key_prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            pool,
            conn: ArcSwapOption::empty(),
            prefix: key_prefix.into(),
            timeout,
            script: Script::new(SCRIPT),
        }
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The script's SHA1 (what `EVALSHA` sends).
    pub fn script_hash(&self) -> &str {
        self.script.get_hash()
    }

    async fn run(&self, limits: &[KeyedLimit]) -> Result<Decisions, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        let mut key = String::with_capacity(self.prefix.len() + 48);
        for l in limits {
            key.clear();
            key.push_str(&self.prefix);
            key.push_str(&l.key);
            key.push_str(algorithm_suffix(l.algorithm));
            invocation.key(key.as_str());
            invocation
                .arg(match l.algorithm {
                    Algorithm::SlidingWindow => 0u8,
                    Algorithm::TokenBucket => 1u8,
                })
                .arg(l.limit.requests_per_minute)
                .arg(l.quota());
        }
        let mut conn = match self.conn.load_full() {
            Some(conn) => MultiplexedConnection::clone(&conn),
            None => {
                let pooled = self.pool.get().await?;
                let conn = MultiplexedConnection::clone(&pooled);
                self.conn.store(Some(Arc::new(conn.clone())));
                conn
            }
        };
        let answer: Vec<i64> = match invocation.invoke_async(&mut conn).await {
            Ok(answer) => answer,
            Err(err) => {
                // An error answer (e.g. WRONGTYPE) came over a healthy connection: keep it.
                if StoreError::redis_is_outage(&err) {
                    self.conn.store(None);
                }
                return Err(err.into());
            }
        };
        if answer.len() != 1 + 4 * limits.len() {
            return Err(StoreError::Protocol(format!(
                "expected {} integers, got {}",
                1 + 4 * limits.len(),
                answer.len()
            )));
        }
        let now_ms = answer[0].max(0) as u64;
        let all = answer[1..].chunks_exact(4).all(|c| c[0] == 1);
        Ok(limits
            .iter()
            .zip(answer[1..].chunks_exact(4))
            .map(|(l, c)| {
                let outcome = Outcome {
                    allowed: c[0] == 1,
                    remaining: c[1].max(0) as u64,
                    reset_at_ms: c[2].max(0) as u64,
                    retry_at_ms: c[3].max(0) as u64,
                };
                Decision::from_outcome(outcome, l.quota(), now_ms, all)
            })
            .collect())
    }
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        _now_ms: u64,
        limits: &'a [KeyedLimit],
    ) -> BoxFuture<'a, Result<Decisions, StoreError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.run(limits)).await {
                Ok(result) => result,
                Err(_) => {
                    // The connection may be stuck (half-open TCP): take a fresh one next time.
                    self.conn.store(None);
                    Err(StoreError::Timeout(self.timeout))
                }
            }
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
