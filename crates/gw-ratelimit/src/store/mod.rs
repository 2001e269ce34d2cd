//! Where limiter state lives: [`MemoryStore`] (one node) or [`RedisStore`] (many nodes).

use std::future::Future;
use std::pin::Pin;

use smallvec::SmallVec;

use crate::algorithm::{Outcome, WINDOW_MS};
use crate::config::{Algorithm, Limit};

mod memory;
mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// A boxed, sendable future (what [`Store::check`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The decisions of one request, one per limit, in the order of the limits.
pub type Decisions = SmallVec<[Decision; 3]>;

/// One limit applied to one key, e.g. the route limit on `rate_limit:ip:10.0.0.1:users`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedLimit {
    /// The key without the store's prefix (`rate_limit:global`, …).
    pub key: String,
    /// The limit.
    pub limit: Limit,
    /// The algorithm.
    pub algorithm: Algorithm,
}

impl KeyedLimit {
    /// A keyed limit.
    pub fn new(key: impl Into<String>, limit: Limit, algorithm: Algorithm) -> Self {
        Self {
            key: key.into(),
            limit,
            algorithm,
        }
    }

    /// The bucket capacity or window quota.
    pub fn quota(&self) -> u64 {
        self.limit.quota(self.algorithm)
    }
}

/// What one limit says about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether this limit lets the request through.
    pub allowed: bool,
    /// The quota (`X-RateLimit-Limit`): window quota or bucket capacity.
    pub limit: u64,
    /// Requests left after this one (`X-RateLimit-Remaining`); 0 when denied.
    pub remaining: u64,
    /// When the limit resets, epoch seconds (`X-RateLimit-Reset`).
    pub reset_epoch_secs: u64,
    /// Seconds until the reset, from the store's own clock (`RateLimit: ...;t=`).
    pub reset_after_secs: u64,
    /// Seconds until a request could pass (`Retry-After`); 0 when allowed, else at least 1.
    pub retry_after_secs: u64,
}

impl Decision {
    /// A decision from an algorithm outcome at `now_ms`.
    ///
    /// `consumed` is false when another limit of the same request denied: an allowing limit
    /// then reports what is left without this request.
    pub fn from_outcome(outcome: Outcome, quota: u64, now_ms: u64, consumed: bool) -> Self {
        let remaining = if outcome.allowed && !consumed {
            (outcome.remaining + 1).min(quota)
        } else {
            outcome.remaining
        };
        let reset_at = outcome.reset_at_ms.max(now_ms);
        Self {
            allowed: outcome.allowed,
            limit: quota,
            remaining,
            reset_epoch_secs: reset_at.div_ceil(1000),
            reset_after_secs: (reset_at - now_ms).div_ceil(1000),
            retry_after_secs: if outcome.allowed {
                0
            } else {
                outcome
                    .retry_at_ms
                    .saturating_sub(now_ms)
                    .div_ceil(1000)
                    .clamp(1, WINDOW_MS / 1000)
            },
        }
    }
}

/// Why the store could not decide.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] deadpool_redis::redis::RedisError),
    /// No connection could be taken from the pool.
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// The store did not answer within its timeout.
    #[error("store timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The store answered something the limiter does not understand.
    #[error("unexpected store answer: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Whether the error means the store cannot be used (unreachable, timed out, connection
    /// lost), as opposed to an error answer about one request's keys (e.g. `WRONGTYPE`), which
    /// says the store is up.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Redis(e) => Self::redis_is_outage(e),
            Self::Pool(_) | Self::Timeout(_) | Self::Protocol(_) => true,
        }
    }

    pub(crate) fn redis_is_outage(e: &deadpool_redis::redis::RedisError) -> bool {
        use deadpool_redis::redis::{ErrorKind, ServerErrorKind};
        // Only an error answer about the data (`WRONGTYPE`, `ERR …`, an unexpected reply) is
        // not an outage; anything else (I/O, refused, loading, read-only, auth, …) is.
        !matches!(
            e.kind(),
            ErrorKind::Extension
                | ErrorKind::UnexpectedReturnType
                | ErrorKind::Server(ServerErrorKind::ResponseError)
        )
    }
}

/// Limiter state shared by the gateway's requests (and, for Redis, its nodes).
///
/// `check` evaluates all `limits` of one request atomically: the request is allowed only
/// when every limit allows, and only then is each limit consumed.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Decides one request. `now_ms` is the caller's clock (ms since the Unix epoch); a store
    /// with its own clock (Redis `TIME`) may ignore it so that all nodes share one clock.
    fn check<'a>(
        &'a self,
        now_ms: u64,
        limits: &'a [KeyedLimit],
    ) -> BoxFuture<'a, Result<Decisions, StoreError>>;

    /// Forgets idle entries (memory stores); called periodically. Default: nothing.
    fn sweep(&self, _now_ms: u64) {}

    /// A short name for stats (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;
}
