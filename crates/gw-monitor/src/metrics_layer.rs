//! `MetricsLayer`: counts, times and tracks in-flight requests against pre-built handles.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use gw_core::UpstreamInfo;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::registry::{Metrics, RouteMetrics};

/// Records `gateway_requests_total`, `gateway_request_duration_seconds` (to the response
/// headers), `gateway_upstream_duration_seconds` and `gateway_requests_in_flight`, and feeds
/// [`Metrics::snapshot_json`].
///
/// The route is taken from a `&'static RouteMetrics` in the response extensions (put there by the
/// gateway's per-route stack, see [`Metrics::route`]); answers without one count under
/// `route=""`, `service=""`. An `Err` from the inner service is not counted (gateway services
/// answer with responses), but still leaves the in-flight gauge.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, ResBody> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = req.method().clone();
        let guard = InFlight::enter(self.metrics.clone());
        MetricsFuture {
            inner: self.inner.call(req),
            method,
            start: Instant::now(),
            guard: Some(guard),
        }
    }
}

/// Holds one unit of `gateway_requests_in_flight`; gives it back when dropped.
struct InFlight(Metrics);

impl InFlight {
    fn enter(metrics: Metrics) -> Self {
        metrics.in_flight(true);
        Self(metrics)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight(false);
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

pin_project! {
    /// Response future of [`MetricsService`].
    #[derive(Debug)]
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        method: Method,
        start: Instant,
        guard: Option<InFlight>,
    }
}

impl<F, ResBody, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let elapsed = this.start.elapsed();
        if let Some(guard) = this.guard.take() {
            if let Ok(res) = &result {
                let ext = res.extensions();
                let route = ext
                    .get::<&'static RouteMetrics>()
                    .copied()
                    .unwrap_or_else(|| guard.0.unmatched());
                guard.0.record(
                    route,
                    this.method,
                    res.status(),
                    elapsed,
                    ext.get::<UpstreamInfo>(),
                );
            }
            drop(guard);
        }
        Poll::Ready(result)
    }
}
