//! [`RateLimiter`]: the store, the per-node fallback, the failure mode and the stats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

use crate::algorithm::WINDOW_MS;
use crate::config::{Algorithm, FailureMode, Limit, RateLimitConfig, RoutePolicy};
use crate::error::RateLimitError;
use crate::store::{Decisions, KeyedLimit, MemoryStore, Store};

/// The limiter's clock: milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in ms since the Unix epoch.
pub fn system_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// After a store failure, requests skip the store for this long, then one request probes it.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

const TOP_SHARDS: usize = 8;
const TOP_PER_SHARD: usize = 8;
/// How many keys `stats()` lists per route.
const TOP_LISTED: usize = 10;

/// One gateway's rate limiting: the shared store, the per-node fallback used when it is
/// unreachable, the failure mode and the per-route stats. Create one and give it to every
/// route's [`RateLimitLayer`](crate::RateLimitLayer); it outlives route rebuilds.
pub struct RateLimiter {
    store: Arc<dyn Store>,
    fallback: MemoryStore,
    failure_mode: FailureMode,
    algorithm: Algorithm,
    clock: Clock,
    retry_interval_ms: u64,
    /// 0 while the store is healthy; else when the next probe may go.
    skip_until_ms: AtomicU64,
    degraded: AtomicBool,
    store_failures: AtomicU64,
    routes: RwLock<HashMap<Arc<str>, Arc<RouteEntry>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("store", &self.store)
            .field("failure_mode", &self.failure_mode)
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter over `store` (a [`MemoryStore`] or a [`RedisStore`](crate::RedisStore)) with
    /// the system clock.
    pub fn new(config: &RateLimitConfig, store: Arc<dyn Store>) -> Arc<Self> {
        Self::with_clock(config, store, Arc::new(system_clock_ms))
    }

    /// A limiter with an explicit clock (ms since the Unix epoch), for tests.
    pub fn with_clock(config: &RateLimitConfig, store: Arc<dyn Store>, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            store,
            fallback: MemoryStore::new(),
            failure_mode: config.failure_mode,
            algorithm: config.algorithm,
            clock,
            retry_interval_ms: DEFAULT_RETRY_INTERVAL.as_millis() as u64,
            skip_until_ms: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            store_failures: AtomicU64::new(0),
            routes: RwLock::new(HashMap::new()),
        })
    }

    /// The current time of the limiter's clock (ms).
    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// The failure mode.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// Whether the last contact with the shared store failed (requests are then served by
    /// the per-node fallback, or 503 in closed mode).
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Decides one request: all `limits` together (allowed only if each allows, and only
    /// then consumed). Never waits longer than the store's timeout.
    ///
    /// When the store fails: `failure_mode = "open"` decides with the per-node memory
    /// fallback; `"closed"` returns [`RateLimitError::Unavailable`]. For the next second
    /// requests do not wait for the store; then one request probes it, and when it answers
    /// every request uses it again.
    pub async fn check(&self, limits: &[KeyedLimit]) -> Result<Decisions, RateLimitError> {
        let now = self.now_ms();
        let skip_until = self.skip_until_ms.load(Ordering::Acquire);
        let use_store = skip_until == 0
            || (now >= skip_until
                && self
                    .skip_until_ms
                    .compare_exchange(
                        skip_until,
                        now + self.retry_interval_ms,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok());
        if use_store {
            match self.store.check(now, limits).await {
                Ok(decisions) => {
                    if skip_until != 0 {
                        self.skip_until_ms.store(0, Ordering::Release);
                    }
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            store = self.store.name(),
                            "rate limit store reachable again"
                        );
                    }
                    return Ok(decisions);
                }
                Err(err) if !err.is_outage() => {
                    // The store answered, with an error about this request's keys: decide
                    // this request as in an outage, but keep using the store for the others.
                    self.store_failures.fetch_add(1, Ordering::Relaxed);
                    if skip_until != 0 {
                        self.skip_until_ms.store(0, Ordering::Release);
                    }
                    tracing::warn!(
                        store = self.store.name(),
                        error = %err,
                        failure_mode = self.failure_mode.as_str(),
                        "rate limit store refused one decision"
                    );
                }
                Err(err) => {
                    self.store_failures.fetch_add(1, Ordering::Relaxed);
                    let now = self.now_ms();
                    self.skip_until_ms
                        .store((now + self.retry_interval_ms).max(1), Ordering::Release);
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            store = self.store.name(),
                            error = %err,
                            failure_mode = self.failure_mode.as_str(),
                            "rate limit store unreachable"
                        );
                    }
                }
            }
        }
        match self.failure_mode {
            FailureMode::Open => Ok(self.fallback.check_now(now, limits)),
            FailureMode::Closed => Err(RateLimitError::Unavailable),
        }
    }

    /// Forgets idle entries of the memory stores (the shared one when it is memory, and the
    /// fallback). Call it periodically (e.g. every 10 s) from a background task; the stores
    /// also sweep themselves, amortized, as new keys arrive.
    pub fn sweep(&self) {
        let now = self.now_ms();
        self.store.sweep(now);
        self.fallback.sweep(now);
    }

    /// A background task that calls [`sweep`](Self::sweep) every `interval`, for the binary
    /// to spawn (and drop on shutdown). Holds only a weak reference: it ends when the limiter
    /// is dropped.
    pub fn sweeper(
        self: &Arc<Self>,
        interval: Duration,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let weak = Arc::downgrade(self);
        async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiter) => limiter.sweep(),
                    None => return,
                }
            }
        }
    }

    /// Registers a route (its policy and stats); the layer calls this once when it is built.
    /// A rebuilt route keeps its stats.
    pub(crate) fn register(&self, policy: &RoutePolicy) -> Arc<RouteEntry> {
        if let Some(entry) = self.routes.read().get(&policy.route_id) {
            *entry.policy.lock() = policy.clone();
            return entry.clone();
        }
        self.routes
            .write()
            .entry(policy.route_id.clone())
            .or_insert_with(|| Arc::new(RouteEntry::new(policy.clone())))
            .clone()
    }

    /// Drops a removed route's stats.
    pub fn forget_route(&self, route_id: &str) {
        self.routes.write().remove(route_id);
    }

    /// The state for `GET /admin/rate-limits` (the admin wraps it as `{"rate_limits": ...}`):
    ///
    /// ```json
    /// {"algorithm": "sliding_window", "failure_mode": "open", "store": "redis",
    ///  "degraded": false, "store_failures": 0,
    ///  "routes": {"users": {"algorithm": "sliding_window",
    ///     "limit": {"requests_per_minute": 100}, "global": null, "per_ip": null,
    ///     "allowed": 12, "limited": 3,
    ///     "top_keys": [{"key": "ip:10.0.0.1", "requests": 15, "remaining": 0}]}}}
    /// ```
    ///
    /// `allowed` / `limited` count since start; `top_keys` are the busiest keys of the current
    /// minute on this node (bounded heavy-hitter counters, no `KEYS` scan).
    pub fn stats(&self) -> Value {
        let now = self.now_ms();
        let minute = now / WINDOW_MS;
        let mut routes = Map::new();
        let entries: Vec<Arc<RouteEntry>> = self.routes.read().values().cloned().collect();
        for entry in entries {
            let policy = entry.policy.lock().clone();
            let mut top: Vec<(Box<str>, u64, u64)> = Vec::new();
            for shard in entry.top.iter() {
                let shard = shard.lock();
                if shard.minute == minute {
                    top.extend(shard.keys.iter().cloned());
                }
            }
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(TOP_LISTED);
            routes.insert(
                policy.route_id.to_string(),
                json!({
                    "algorithm": policy.algorithm.as_str(),
                    "limit": limit_json(policy.limit),
                    "global": limit_json(policy.global),
                    "per_ip": limit_json(policy.per_ip),
                    "allowed": entry.allowed.load(Ordering::Relaxed),
                    "limited": entry.limited.load(Ordering::Relaxed),
                    "top_keys": top.iter().map(|(k, n, r)| json!({
                        "key": &**k, "requests": n, "remaining": r,
                    })).collect::<Vec<_>>(),
                }),
            );
        }
        json!({
            "algorithm": self.algorithm.as_str(),
            "failure_mode": self.failure_mode.as_str(),
            "store": self.store.name(),
            "degraded": self.is_degraded(),
            "store_failures": self.store_failures.load(Ordering::Relaxed),
            "routes": routes,
        })
    }
}

fn limit_json(limit: Option<Limit>) -> Value {
    serde_json::to_value(limit).unwrap_or(Value::Null)
}

/// A route's policy and counters, shared by its layer and the limiter.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    policy: Mutex<RoutePolicy>,
    allowed: AtomicU64,
    limited: AtomicU64,
    top: [Mutex<TopKeys>; TOP_SHARDS],
}

impl RouteEntry {
    fn new(policy: RoutePolicy) -> Self {
        Self {
            policy: Mutex::new(policy),
            allowed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            top: Default::default(),
        }
    }

    /// Counts one request of `subject` (`user:42` / `ip:10.0.0.1`).
    pub(crate) fn record(&self, subject: &str, allowed: bool, remaining: u64, now_ms: u64) {
        if allowed {
            self.allowed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        let shard = subject
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % TOP_SHARDS;
        self.top[shard]
            .lock()
            .record(subject, remaining, now_ms / WINDOW_MS);
    }
}

/// Space-saving heavy hitters of one minute: at most `TOP_PER_SHARD` keys; a new key replaces
/// the least counted one and inherits its count (an over-estimate, never an under-estimate).
#[derive(Debug, Default)]
struct TopKeys {
    minute: u64,
    keys: Vec<(Box<str>, u64, u64)>,
}

impl TopKeys {
    fn record(&mut self, subject: &str, remaining: u64, minute: u64) {
        if self.minute != minute {
            self.minute = minute;
            self.keys.clear();
        }
        if let Some(e) = self.keys.iter_mut().find(|e| &*e.0 == subject) {
            e.1 += 1;
            e.2 = remaining;
            return;
        }
        if self.keys.len() < TOP_PER_SHARD {
            self.keys.push((subject.into(), 1, remaining));
            return;
        }
        if let Some(min) = self.keys.iter_mut().min_by_key(|e| e.1) {
            *min = (subject.into(), min.1 + 1, remaining);
        }
    }
}
