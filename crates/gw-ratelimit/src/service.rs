//! [`RateLimit`]: the middleware service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gw_core::{error_response_for, Body, HttpError};
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower::Service;

use crate::error::RateLimitError;
use crate::layer::{LimitKind, Shared};
use crate::store::Decision;

/// `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (epoch seconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The future of [`RateLimit`]: the store check, then the inner service.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// Rate-limits the requests to `S` (see [`RateLimitLayer`](crate::RateLimitLayer)).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("route", &self.shared.policy.route_id)
            .finish_non_exhaustive()
    }
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

/// The decision the headers describe: among denying limits the one that frees up last,
/// else the one with the fewest requests left.
fn most_restrictive<'a>(
    decisions: &'a [Decision],
    kinds: &[LimitKind],
) -> Option<(&'a Decision, LimitKind)> {
    let all = decisions.iter().zip(kinds.iter().copied());
    if decisions.iter().any(|d| !d.allowed) {
        all.filter(|(d, _)| !d.allowed)
            .max_by_key(|(d, _)| d.retry_after_secs)
    } else {
        all.min_by_key(|(d, _)| d.remaining)
    }
}

fn set_headers(
    headers: &mut HeaderMap,
    d: &Decision,
    kind: LimitKind,
    policy: Option<&HeaderValue>,
) {
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(d.reset_epoch_secs));
    if let Some(p) = policy {
        headers.insert(RATELIMIT_POLICY, p.clone());
    }
    // `"name";r=remaining;t=reset`, written once into the bytes the header value keeps.
    let mut field = Vec::with_capacity(kind.name().len() + 48);
    field.push(b'"');
    field.extend_from_slice(kind.name().as_bytes());
    field.extend_from_slice(b"\";r=");
    field.extend_from_slice(itoa::Buffer::new().format(d.remaining).as_bytes());
    field.extend_from_slice(b";t=");
    field.extend_from_slice(itoa::Buffer::new().format(d.reset_after_secs).as_bytes());
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(field)) {
        headers.insert(RATELIMIT, v);
    }
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        if !shared.policy.is_limited() {
            return Box::pin(inner.call(req));
        }
        let keys = shared.keys(&req);
        // Written into its box in place: the limiter's state (the Redis path included) is large.
        gw_core::pin_boxed(|| async move {
            let decisions = match shared.limiter.check(&keys.limits).await {
                Ok(d) => d,
                Err(err @ RateLimitError::Unavailable) => {
                    return Ok(error_response_for(&req, err.status(), err.message()));
                }
                Err(err @ RateLimitError::Limited { .. }) => {
                    return Ok(error_response_for(&req, err.status(), err.message()));
                }
            };
            let allowed = decisions.iter().all(|d| d.allowed);
            let shown = most_restrictive(&decisions, &keys.kinds);
            let route_remaining =
                decisions
                    .first()
                    .map_or(0, |d| if allowed { d.remaining } else { 0 });
            shared.route.record(
                &keys.subject,
                allowed,
                route_remaining,
                shared.limiter.now_ms(),
            );
            if !allowed {
                shared.limited_total.increment(1);
                let retry_after = decisions
                    .iter()
                    .filter(|d| !d.allowed)
                    .map(|d| d.retry_after_secs)
                    .max()
                    .unwrap_or(1);
                let err = RateLimitError::Limited {
                    retry_after_secs: retry_after,
                };
                let mut res = error_response_for(&req, err.status(), err.message());
                if let Some((d, kind)) = shown {
                    set_headers(res.headers_mut(), d, kind, shared.policy_header.as_ref());
                }
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after));
                return Ok(res);
            }
            let mut res = inner.call(req).await?;
            if let Some((d, kind)) = shown {
                set_headers(res.headers_mut(), d, kind, shared.policy_header.as_ref());
            }
            Ok(res)
        })
    }
}
