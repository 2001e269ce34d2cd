//! Plain configuration of a proxied route and of the client pools.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::TrustedProxies;

/// Upstream timeouts of a route (nginx's `proxy_*_timeout`; 60 s each by default). Each
/// bounds its own phase of the exchange, from the moment that phase starts; expiry answers
/// 504 (see the crate's docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP connection (a connector setting).
    pub connect: Duration,
    /// Sending the request: from the moment the connection is ready until the last byte of
    /// the request (its head, or the last frame of its body) is written.
    pub send: Duration,
    /// Waiting for the upstream: for the answer's head from the moment the request was sent,
    /// then the longest gap allowed between two frames of the answer's body.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let d = Duration::from_secs(60);
        Timeouts {
            connect: d,
            send: d,
            read: d,
        }
    }
}

/// How a route retries (docs/configuration.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retries.
    pub times: u32,
    /// Wait between attempts.
    pub delay: Duration,
}

/// Headers to remove, then add (overwriting), on a request or a response.
#[derive(Clone, Debug, Default)]
pub struct HeaderRules {
    /// Set, replacing any existing value.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Removed before `add` is applied.
    pub remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    pub(crate) fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.add {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Everything a route's [`Proxy`](crate::Proxy) needs to know.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// `None`: no retry.
    pub retry: Option<RetryPolicy>,
    /// Applied to the upstream request.
    pub request_headers: HeaderRules,
    /// Applied to the client response.
    pub response_headers: HeaderRules,
    /// Request bodies above this answer 413.
    pub max_body_bytes: u64,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            timeouts: Timeouts::default(),
            retry: None,
            request_headers: HeaderRules::default(),
            response_headers: HeaderRules::default(),
            max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Settings of the pooled upstream clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long an idle keep-alive connection stays in the pool (90 s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per instance (256).
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}
