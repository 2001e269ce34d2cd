//! The `[rate_limit]` configuration and the per-route policy built from it.

use std::sync::Arc;

use gw_core::ConfigProblem;
use serde::{Deserialize, Serialize};

/// Which algorithm a limit uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// At most `requests_per_minute` in any 60 s, exactly (a log of request times).
    #[default]
    SlidingWindow,
    /// A bucket of `burst` tokens refilled at `requests_per_minute` per minute.
    TokenBucket,
}

impl Algorithm {
    /// The configuration name (`"sliding_window"` / `"token_bucket"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::TokenBucket => "token_bucket",
        }
    }
}

/// What to do when the shared store cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Keep serving, limited by a local per-node limiter of the same policy.
    #[default]
    Open,
    /// Answer 503 `Service temporarily unavailable`.
    Closed,
}

impl FailureMode {
    /// The configuration name (`"open"` / `"closed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Open => "open",
            FailureMode::Closed => "closed",
        }
    }
}

/// One limit: `{ requests_per_minute = 100, burst = 20 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per minute: the window's quota, or the bucket's refill rate.
    pub requests_per_minute: u64,
    /// Token bucket capacity; `None` means `requests_per_minute`. Ignored by `sliding_window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

impl Limit {
    /// A limit of `requests_per_minute` without an explicit burst.
    pub const fn per_minute(requests_per_minute: u64) -> Self {
        Self {
            requests_per_minute,
            burst: None,
        }
    }

    /// The same limit with a token bucket capacity.
    pub const fn with_burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The most requests that can pass at once under `algorithm`: the window's quota, or the
    /// bucket's capacity. This is the `X-RateLimit-Limit` value.
    pub fn quota(&self, algorithm: Algorithm) -> u64 {
        match algorithm {
            Algorithm::SlidingWindow => self.requests_per_minute,
            Algorithm::TokenBucket => self.burst.unwrap_or(self.requests_per_minute),
        }
    }

    /// Every problem of this limit, paths relative to it (`requests_per_minute`, `burst`);
    /// empty when valid. The one check of a limit, wherever it is written (`[rate_limit]`
    /// or a route's `rate_limit`).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if self.requests_per_minute == 0 {
            errors.push(ConfigProblem::new(
                "requests_per_minute",
                "must be greater than 0",
            ));
        }
        if self.burst == Some(0) {
            errors.push(ConfigProblem::new("burst", "must be greater than 0"));
        }
        errors
    }
}

/// The `[rate_limit]` section.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// The algorithm of every limit.
    pub algorithm: Algorithm,
    /// Behaviour when the shared store cannot be reached.
    pub failure_mode: FailureMode,
    /// The limit of routes without their own `rate_limit`; without it they are not limited.
    pub default: Option<Limit>,
    /// One limit over all requests of all routes (`rate_limit:global`).
    pub global: Option<Limit>,
    /// One limit per client address over all routes (`rate_limit:per_ip:{addr}`).
    pub per_ip: Option<Limit>,
}

impl RateLimitConfig {
    /// Every problem, paths relative to `rate_limit` (`default.requests_per_minute: must be
    /// greater than 0`); empty when valid.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        for (name, limit) in [
            ("default", &self.default),
            ("global", &self.global),
            ("per_ip", &self.per_ip),
        ] {
            if let Some(limit) = limit {
                errors.extend(limit.validate().into_iter().map(|p| p.under(name)));
            }
        }
        errors
    }

    /// Checks a route's own `rate_limit`, paths under `path` (e.g. `routes[2].rate_limit`):
    /// [`Limit::validate`] with a prefix.
    pub fn validate_route_limit(limit: &Limit, path: &str) -> Vec<ConfigProblem> {
        limit
            .validate()
            .into_iter()
            .map(|p| p.under(path))
            .collect()
    }
}

/// What one route is limited by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePolicy {
    /// The route's id (part of the key `rate_limit:ip:{addr}:{route_id}`).
    pub route_id: Arc<str>,
    /// The route's own limit (its `rate_limit`, else `rate_limit.default`); `None`: none.
    pub limit: Option<Limit>,
    /// The algorithm of all three limits.
    pub algorithm: Algorithm,
    /// The gateway-wide limit.
    pub global: Option<Limit>,
    /// The per-client-address limit across routes.
    pub per_ip: Option<Limit>,
}

impl RoutePolicy {
    /// The policy of a route: its own `rate_limit` or else the configuration's `default`, plus
    /// the configuration's `global` and `per_ip`.
    pub fn from_config(
        route_id: impl Into<Arc<str>>,
        route_limit: Option<Limit>,
        config: &RateLimitConfig,
    ) -> Self {
        Self {
            route_id: route_id.into(),
            limit: route_limit.or(config.default),
            algorithm: config.algorithm,
            global: config.global,
            per_ip: config.per_ip,
        }
    }

    /// A policy with only a route limit.
    pub fn route(route_id: impl Into<Arc<str>>, limit: Limit, algorithm: Algorithm) -> Self {
        Self {
            route_id: route_id.into(),
            limit: Some(limit),
            algorithm,
            global: None,
            per_ip: None,
        }
    }

    /// Whether any limit applies (the layer then adds the rate-limit headers).
    pub fn is_limited(&self) -> bool {
        self.limit.is_some() || self.global.is_some() || self.per_ip.is_some()
    }
}
