//! Keyed rate limits for the gateway, as a tower layer.
//!
//! - **Algorithms** ([`algorithm`]): `sliding_window` — at most `requests_per_minute` in any
//!   60 s, exactly (a log of request times, not an approximation from two fixed windows);
//!   `token_bucket` — capacity `burst`, refilled at `requests_per_minute` per minute. Both are
//!   pure state machines taking `now_ms`, with millisecond resolution.
//! - **Stores** ([`Store`]): [`MemoryStore`] (one node; 64 lock shards, idle keys evicted) and
//!   [`RedisStore`] (many nodes; one atomic Lua script per request, Redis `TIME` as the one
//!   clock, `EVALSHA` with reload on `NOSCRIPT`).
//! - **[`RateLimiter`]**: one per gateway; the store, the failure mode, a per-node fallback
//!   and the stats for `GET /admin/rate-limits` ([`RateLimiter::stats`]).
//! - **[`RateLimitLayer`]**: one per route, built from a [`RoutePolicy`].
//!
//! # Keys (docs/operations.md, "Store layout")
//!
//! The route limit counts `rate_limit:user:{user_id}:{route_id}` when the request carries a
//! [`gw_core::Identity`], else `rate_limit:ip:{addr}:{route_id}` (the address from
//! [`gw_core::ClientAddr`], else the [`gw_core::ConnInfo`] peer). The optional `global` limit
//! counts `rate_limit:global`, `per_ip` counts `rate_limit:per_ip:{addr}`. The store's key
//! prefix goes in front of every key; in Redis the algorithm's suffix follows it (`:sw`, a ZSET,
//! for the sliding window; `:tb`, a hash, for the token bucket), so the two never share a key. A request passes only if every limit allows it, and only
//! then is each limit consumed: a request denied by `global` does not use up its route quota.
//!
//! # Answers
//!
//! Every answer of a limited route carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Reset` (epoch seconds) and the IETF fields `RateLimit-Policy`
//! (`"default";q=100;w=60`, one item per limit: `default` is the route's limit, then
//! `per_ip`, `global`; for the token bucket `q` is the capacity `burst` and `w` the seconds the
//! bucket takes to refill from empty, `"default";q=5;w=3` for `burst = 5` at 100 per minute) and `RateLimit` (`"default";r=42;t=17`), all describing the most
//! restrictive limit (the one with the fewest requests left). A denied request gets 429
//! `{"error": "Rate limit exceeded", "request_id": ...}` with `Retry-After` (seconds), and
//! counts in `gateway_rate_limited_total{route}`.
//!
//! # When Redis is unreachable
//!
//! A store error or a check that exceeds the store's timeout never holds a request longer
//! than that timeout, and never panics:
//!
//! - `failure_mode = "open"` (default): the request is decided by a **per-node memory limiter
//!   with the same policy**. This is degraded but bounded: each node enforces the full limit
//!   on its own, so with `n` nodes a key gets at most `n ×` its limit while Redis is down; the
//!   counts made during the outage are not carried back to Redis.
//! - `failure_mode = "closed"`: 503 `Service temporarily unavailable`.
//!
//! After a failure, requests do not wait for Redis for one second; then one request probes it,
//! and once it answers, every request uses it again — the shared path resumes by itself.
//!
//! # Why not tower's `RateLimit`
//!
//! `tower::limit::RateLimit` is one fixed-window counter for a whole service, in one process.
//! The gateway needs per-key, per-route limits, exact across nodes, with headers and the
//! gateway's error body, so this crate has its own layer. It stacks with tower-http's layers.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use gw_ratelimit::{
//!     Limit, MemoryStore, RateLimitConfig, RateLimitLayer, RateLimiter, RoutePolicy,
//! };
//! use tower::ServiceExt;
//!
//! let config = RateLimitConfig {
//!     default: Some(Limit::per_minute(2)),
//!     ..RateLimitConfig::default()
//! };
//! assert!(config.validate().is_empty());
//! let limiter = RateLimiter::new(&config, Arc::new(MemoryStore::new()));
//! let policy = RoutePolicy::from_config("hello", None, &config);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(RateLimitLayer::new(limiter.clone(), policy));
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     let mut statuses = Vec::new();
//!     for _ in 0..3 {
//!         let req = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
//!         let res = app.clone().oneshot(req).await.unwrap();
//!         statuses.push(res.status().as_u16());
//!         assert_eq!(res.headers()["x-ratelimit-limit"], "2");
//!     }
//!     assert_eq!(statuses, [200, 200, 429]);
//! });
//! assert_eq!(limiter.stats()["routes"]["hello"]["limited"], 1);
//! ```

pub mod algorithm;
mod config;
mod error;
mod layer;
mod limiter;
mod service;
pub mod store;

pub use config::{Algorithm, FailureMode, Limit, RateLimitConfig, RoutePolicy};
pub use error::RateLimitError;
pub use layer::{RateLimitLayer, RequestView};
pub use limiter::{system_clock_ms, Clock, RateLimiter, DEFAULT_RETRY_INTERVAL};
pub use service::{
    RateLimit, ResponseFuture, RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
pub use store::{Decision, KeyedLimit, MemoryStore, RedisStore, Store, StoreError};
