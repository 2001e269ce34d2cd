//! `[store]`: where state shared by gateway nodes lives, and the one Redis pool of the process.
//!
//! The pool is created once at start and handed to every crate that keeps state in Redis
//! (revocations, users, API keys, limiter state, admin-made routes and instances). Creating it
//! dials nothing: the gateway starts while Redis is unreachable and connects when it can;
//! every call is bounded by `timeout_ms`.

use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use gw_core::ConfigProblem;
use serde::{Deserialize, Serialize};

/// `[store] backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One node; state lives in this process.
    #[default]
    Memory,
    /// Many nodes share one Redis.
    Redis,
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `"memory"` or `"redis"`.
    pub backend: Backend,
    /// `redis://[user:password@]host:port[/db]`.
    pub redis_url: String,
    /// Put in front of every key the gateway reads or writes (`""` keeps the seed's layout).
    pub key_prefix: String,
    /// Bound on every Redis call, in milliseconds.
    pub timeout_ms: u64,
    /// Largest number of pooled Redis connections.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: String::new(),
            timeout_ms: 1000,
            pool_size: 32,
        }
    }
}

impl StoreConfig {
    /// Problems, with paths relative to `[store]`; empty when valid.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.backend == Backend::Redis {
            use deadpool_redis::redis::IntoConnectionInfo;
            if let Err(e) = self.redis_url.as_str().into_connection_info() {
                out.push(ConfigProblem::new(
                    "redis_url",
                    format!("invalid URL \"{}\": {e}", self.redis_url),
                ));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.push(ConfigProblem::new(
                "timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.pool_size == 0 {
            out.push(ConfigProblem::new("pool_size", "must be greater than 0"));
        }
        out
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The pool, when the backend is Redis. Dials nothing yet.
    pub fn pool(&self) -> Result<Option<Pool>, String> {
        if self.backend != Backend::Redis {
            return Ok(None);
        }
        let mut cfg = deadpool_redis::Config::from_url(self.redis_url.clone());
        let t = Some(self.timeout());
        cfg.pool = Some(PoolConfig {
            max_size: self.pool_size,
            timeouts: Timeouts {
                wait: t,
                create: t,
                recycle: t,
            },
            ..PoolConfig::default()
        });
        cfg.create_pool(Some(Runtime::Tokio1))
            .map(Some)
            .map_err(|e| format!("cannot create the Redis pool: {e}"))
    }
}
