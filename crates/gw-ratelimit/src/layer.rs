//! [`RateLimitLayer`]: per-route configuration and shared state of the middleware.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use gw_core::{ClientAddr, Identity};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri};
use smallvec::SmallVec;
use tower::Layer;

use crate::config::{Algorithm, Limit, RoutePolicy};
use crate::limiter::{RateLimiter, RouteEntry};
use crate::service::RateLimit;
use crate::store::KeyedLimit;

/// What a custom key function sees of a request.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (`Identity`, `ClientAddr`, `ConnInfo`, …).
    pub extensions: &'a Extensions,
}

impl<'a> RequestView<'a> {
    /// The view of a request.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

type KeyFn = Arc<dyn Fn(&RequestView<'_>) -> Option<String> + Send + Sync>;

/// Which of a route's limits a decision belongs to (the name in the `RateLimit` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    Route,
    PerIp,
    Global,
}

impl LimitKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LimitKind::Route => "default",
            LimitKind::PerIp => "per_ip",
            LimitKind::Global => "global",
        }
    }
}

pub(crate) struct Shared {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) policy: RoutePolicy,
    pub(crate) route: Arc<RouteEntry>,
    key: Option<KeyFn>,
    pub(crate) limited_total: metrics::Counter,
    /// `RateLimit-Policy`, built once.
    pub(crate) policy_header: Option<HeaderValue>,
}

/// The keys of one request.
pub(crate) struct RequestKeys {
    /// `user:{id}` / `ip:{addr}` / the custom key (stats).
    pub(crate) subject: String,
    pub(crate) limits: SmallVec<[KeyedLimit; 3]>,
    pub(crate) kinds: SmallVec<[LimitKind; 3]>,
}

fn client_ip(ext: &Extensions) -> Option<IpAddr> {
    ClientAddr::of(ext).map(|c| c.ip)
}

impl Shared {
    pub(crate) fn keys<B>(&self, req: &Request<B>) -> RequestKeys {
        let ext = req.extensions();
        let ip = client_ip(ext);
        let subject = self
            .key
            .as_ref()
            .and_then(|f| f(&RequestView::of(req)))
            .unwrap_or_else(|| match (ext.get::<Identity>(), ip) {
                (Some(id), _) => format!("user:{}", id.user_id),
                (None, Some(ip)) => format!("ip:{ip}"),
                (None, None) => "ip:unknown".to_owned(),
            });
        let algorithm = self.policy.algorithm;
        let mut limits = SmallVec::new();
        let mut kinds = SmallVec::new();
        if let Some(limit) = self.policy.limit {
            let route = &*self.policy.route_id;
            let mut key = String::with_capacity(12 + subject.len() + route.len());
            let _ = write!(key, "rate_limit:{subject}:{route}");
            limits.push(KeyedLimit::new(key, limit, algorithm));
            kinds.push(LimitKind::Route);
        }
        if let Some(limit) = self.policy.per_ip {
            let key = match ip {
                Some(ip) => format!("rate_limit:per_ip:{ip}"),
                None => "rate_limit:per_ip:unknown".to_owned(),
            };
            limits.push(KeyedLimit::new(key, limit, algorithm));
            kinds.push(LimitKind::PerIp);
        }
        if let Some(limit) = self.policy.global {
            limits.push(KeyedLimit::new("rate_limit:global", limit, algorithm));
            kinds.push(LimitKind::Global);
        }
        RequestKeys {
            subject,
            limits,
            kinds,
        }
    }
}

/// The `(q, w)` of one limit in `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers: `q`
/// quota units per window of `w` seconds). Sliding window: `requests_per_minute` per 60 s.
/// Token bucket: the capacity (`burst`) per the time the bucket takes to refill from empty,
/// `burst * 60 / requests_per_minute` seconds rounded up (at least 1): the stated policy never
/// promises more than the bucket lets through.
pub(crate) fn policy_quota_window(limit: Limit, algorithm: Algorithm) -> (u64, u64) {
    let q = limit.quota(algorithm);
    match algorithm {
        Algorithm::SlidingWindow => (q, 60),
        Algorithm::TokenBucket => {
            let w = q
                .saturating_mul(60)
                .div_ceil(limit.requests_per_minute.max(1))
                .max(1);
            (q, w)
        }
    }
}

fn policy_header(policy: &RoutePolicy) -> Option<HeaderValue> {
    let mut s = String::new();
    let mut add = |kind: LimitKind, limit: Option<Limit>| {
        if let Some(limit) = limit {
            if !s.is_empty() {
                s.push_str(", ");
            }
            let (q, w) = policy_quota_window(limit, policy.algorithm);
            let _ = write!(s, "\"{}\";q={q};w={w}", kind.name());
        }
    };
    add(LimitKind::Route, policy.limit);
    add(LimitKind::PerIp, policy.per_ip);
    add(LimitKind::Global, policy.global);
    HeaderValue::from_str(&s).ok().filter(|_| !s.is_empty())
}

/// Limits the requests of one route. Answers 429 `Rate limit exceeded` (with `Retry-After`)
/// when a limit is exhausted, 503 when the store is down in closed mode, and adds
/// `X-RateLimit-*` / `RateLimit-Policy` / `RateLimit` to every answer of a limited route.
///
/// Clones share everything through an `Arc`.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policy", &self.shared.policy)
            .field("custom_key", &self.shared.key.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// The layer of one route. Registers the route with `limiter` (for stats) and builds the
    /// `gateway_rate_limited_total{route}` counter handle once (install the metrics recorder
    /// before building layers).
    pub fn new(limiter: Arc<RateLimiter>, policy: RoutePolicy) -> Self {
        let route = limiter.register(&policy);
        let limited_total = metrics::counter!(
            "gateway_rate_limited_total",
            "route" => policy.route_id.to_string()
        );
        Self {
            shared: Arc::new(Shared {
                policy_header: policy_header(&policy),
                limiter,
                policy,
                route,
                key: None,
                limited_total,
            }),
        }
    }

    /// Overrides who a request is counted as. `f` returns the key's subject: the route limit
    /// then uses `rate_limit:{subject}:{route_id}` (the default subjects are `user:{user_id}`
    /// and `ip:{addr}`). `None` falls back to the default. `per_ip` and `global` are not
    /// affected.
    pub fn with_key(
        self,
        f: impl Fn(&RequestView<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let s = &*self.shared;
        Self {
            shared: Arc::new(Shared {
                limiter: s.limiter.clone(),
                policy: s.policy.clone(),
                route: s.route.clone(),
                key: Some(Arc::new(f)),
                limited_total: s.limited_total.clone(),
                policy_header: s.policy_header.clone(),
            }),
        }
    }

    /// The route's policy.
    pub fn policy(&self) -> &RoutePolicy {
        &self.shared.policy
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, self.shared.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_policy_states_burst_per_refill_window() {
        let tb = Algorithm::TokenBucket;
        assert_eq!(
            policy_quota_window(Limit::per_minute(60).with_burst(2), tb),
            (2, 2)
        );
        assert_eq!(
            policy_quota_window(Limit::per_minute(100).with_burst(5), tb),
            (5, 3)
        );
        // Without burst the capacity is requests_per_minute: a full minute to refill.
        assert_eq!(policy_quota_window(Limit::per_minute(30), tb), (30, 60));
        // Rounded up: never states more than the bucket lets through.
        assert_eq!(
            policy_quota_window(Limit::per_minute(7).with_burst(1), tb),
            (1, 9)
        );
        assert_eq!(
            policy_quota_window(Limit::per_minute(6000).with_burst(1), tb),
            (1, 1)
        );
        assert_eq!(
            policy_quota_window(
                Limit::per_minute(100).with_burst(5),
                Algorithm::SlidingWindow
            ),
            (100, 60)
        );
    }
}
