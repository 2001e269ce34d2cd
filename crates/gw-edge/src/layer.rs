//! [`EdgeLayer`]: the edge's checks in front of any tower service.

use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use gw_core::{error_response_for, Body};
use http::header::{HeaderValue, ALLOW};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::{canonicalize, EdgeError, EdgePolicy, Rejected, ALLOW_WITHOUT_CONNECT};

/// Wraps a service in [`Edge`] with one [`EdgePolicy`].
#[derive(Clone, Debug, Default)]
pub struct EdgeLayer {
    policy: Arc<EdgePolicy>,
}

impl EdgeLayer {
    /// A layer applying `policy`.
    pub fn new(policy: EdgePolicy) -> Self {
        EdgeLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Makes each request canonical ([`canonicalize`]) before `inner` sees it, or answers the
/// gateway's JSON error itself. A request already marked [`Rejected`] by its listener is
/// answered the same way.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    policy: Arc<EdgePolicy>,
}

/// The future of [`Edge`].
pub type ResponseFuture<F, E> = Either<Ready<Result<Response<Body>, E>>, F>;

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let refused = match req.extensions().get::<Rejected>() {
            Some(Rejected(e)) => Err(*e),
            None => canonicalize(&mut req, &self.policy),
        };
        match refused {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(e) => Either::Left(ready(Ok(rejection(&req, e)))),
        }
    }
}

/// The answer to a refused request: the gateway's JSON error, with `Allow` for `CONNECT`.
pub fn rejection<B>(req: &Request<B>, err: EdgeError) -> Response<Body> {
    let mut res = error_response_for(req, err.status(), err.message());
    if err == EdgeError::Connect {
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOW_WITHOUT_CONNECT));
    }
    res
}
