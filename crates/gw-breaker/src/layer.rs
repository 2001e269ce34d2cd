//! `CircuitBreakerLayer`, the `CircuitBreaker<S>` service and its `ResponseFuture`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use gw_core::{error_response_for, Body, FailedAttempts, HttpError, NotForwarded, UpstreamInfo};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::breaker::{Breaker, BreakerPermit};
use crate::outlier::OutlierDetector;

/// Guards a service with a [`Breaker`] and, optionally, feeds an [`OutlierDetector`].
///
/// While the breaker refuses, requests are answered 503 `Service temporarily unavailable`
/// (the gateway's JSON error with the request id) without calling the inner service. A
/// response with status >= 500, or an `Err` from the inner service, is a failure; anything
/// else a success. An answer marked [`NotForwarded`] (the gateway's own `No healthy
/// upstream`: no upstream was contacted) is not counted. The breaker counts each request
/// once, by its final answer. The instance in the response's [`UpstreamInfo`] gets the same
/// verdict in the outlier detector, and each instance listed in [`FailedAttempts`] (attempts
/// that failed before a retry) a failure.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    breaker: Arc<Breaker>,
    outliers: Option<Arc<OutlierDetector>>,
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .field("outliers", &self.outliers.is_some())
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// A layer over `breaker`, reporting per-instance results to `outliers` when given.
    pub fn new(breaker: Arc<Breaker>, outliers: Option<Arc<OutlierDetector>>) -> Self {
        CircuitBreakerLayer { breaker, outliers }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            outliers: self.outliers.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    breaker: Arc<Breaker>,
    outliers: Option<Arc<OutlierDetector>>,
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("outliers", &self.outliers.is_some())
            .finish()
    }
}

impl<S, B> Service<Request<B>> for CircuitBreaker<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Decided per request in `call` (routed services are always ready).
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => ResponseFuture {
                kind: Kind::Called {
                    future: self.inner.call(req),
                    permit: Some(permit),
                    outliers: self.outliers.clone(),
                },
            },
            Err(rejected) => ResponseFuture {
                kind: Kind::Rejected {
                    response: Some(error_response_for(
                        &req,
                        rejected.status(),
                        rejected.message(),
                    )),
                },
            },
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`]. Dropped before completion (the client went
    /// away), it hands back its half-open probe slot; the request counts as a breaker
    /// failure when it had been waiting at least `abandoned_failure_secs`, and not at all
    /// otherwise (see [`BreakerPermit`](crate::BreakerPermit)). The outlier detector is not
    /// told: the instance is not known before the answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called {
            #[pin]
            future: F,
            permit: Option<BreakerPermit>,
            outliers: Option<Arc<OutlierDetector>>,
        },
        Rejected {
            response: Option<Response<Body>>,
        },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Called {
                future,
                permit,
                outliers,
            } => {
                let result = ready!(future.poll(cx));
                let success = matches!(&result, Ok(res) if res.status().as_u16() < 500);
                let ext = result.as_ref().ok().map(Response::extensions);
                // An answer the gateway made without contacting any upstream says nothing
                // about the service: the permit goes back unrecorded.
                let forwarded = success || ext.is_none_or(|e| e.get::<NotForwarded>().is_none());
                if let Some(permit) = permit.take() {
                    if forwarded {
                        permit.record(success);
                    } else {
                        permit.release();
                    }
                }
                if let (Some(outliers), Some(ext)) = (outliers.as_ref(), ext) {
                    // Every failed attempt before a retry counts against its instance
                    // (the breaker above counts the request once, by its final answer).
                    let info = ext.get::<UpstreamInfo>();
                    // Only a retried request has a list to look up.
                    if info.is_none_or(|i| i.attempts > 1) {
                        if let Some(failed) = ext.get::<FailedAttempts>() {
                            for instance in &failed.0 {
                                outliers.record(instance, false);
                            }
                        }
                    }
                    if let Some(info) = info {
                        outliers.record(&info.instance, success);
                    }
                }
                Poll::Ready(result)
            }
        }
    }
}
