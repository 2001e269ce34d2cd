//! [`Router`]: the tower service that dispatches each request to its route's service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use arc_swap::ArcSwap;
use gw_core::{error_response_for, Body, HttpError, RouteTag};
use http::header::{ALLOW, HOST};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use crate::{DispatchError, RouteMatch, RouteService, RouteTable};

/// Dispatches each request to the service of the route it matches.
///
/// - The host is the `Host` header, else the URI's authority (HTTP/2).
/// - On a match the request URI's path becomes the route's upstream path; the query, scheme
///   and authority are kept. The route's service is called, and the route's
///   [`RouteTag`] is put into the response extensions.
/// - No route: 404 `Route not found`. Path matched, method not: 405 `Method not allowed` with
///   an `Allow` header. Both are the gateway's JSON error answer.
///
/// The table is read once per request from the shared [`ArcSwap`]: store a new
/// [`RouteTable`] there to change the routes; requests in flight finish on the snapshot they
/// started with. Always ready; cloning is cheap (an [`Arc`]).
#[derive(Clone, Debug)]
pub struct Router {
    table: Arc<ArcSwap<RouteTable>>,
    tag: bool,
}

impl Router {
    /// A router reading its routes from `table`.
    pub fn new(table: Arc<ArcSwap<RouteTable>>) -> Self {
        Self { table, tag: true }
    }

    /// Whether answers get the route's [`RouteTag`] (the default). A program whose route
    /// services mark their answers themselves can turn it off and save one extension per
    /// request.
    pub fn tag_responses(mut self, on: bool) -> Self {
        self.tag = on;
        self
    }

    /// The shared table: `router.table().store(Arc::new(new_table))` swaps the routes.
    pub fn table(&self) -> &Arc<ArcSwap<RouteTable>> {
        &self.table
    }
}

impl Service<Request<Body>> for Router {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The guard lives only in this block: nothing is held across an await.
        let outcome = {
            let table = self.table.load();
            let host = request_host(&req);
            let path = req.uri().path();
            match table.find(req.method(), host, path) {
                RouteMatch::Found {
                    route,
                    upstream_path,
                } => {
                    let rewrite = (upstream_path != path)
                        .then(|| path_and_query(&upstream_path, req.uri().query()))
                        .flatten();
                    let tag = self.tag.then(|| route.tag().clone());
                    Ok((route.service().clone(), tag, rewrite))
                }
                RouteMatch::MethodNotAllowed { allow } => Err(Some(allow)),
                RouteMatch::NotFound => Err(None),
            }
        };

        match outcome {
            Ok((service, tag, rewrite)) => {
                if let Some(path_and_query) = rewrite {
                    let mut parts = std::mem::take(req.uri_mut()).into_parts();
                    parts.path_and_query = Some(path_and_query);
                    // Scheme and authority came from a valid URI: rebuilding cannot fail.
                    if let Ok(uri) = Uri::from_parts(parts) {
                        *req.uri_mut() = uri;
                    }
                }
                // Route services are ready at once (no layer applies backpressure): call now,
                // so the future holds only the service's (boxed) future, not the request.
                let mut service = service;
                let noop = &mut Context::from_waker(Waker::noop());
                let call = match service.poll_ready(noop) {
                    Poll::Ready(Ok(())) => Call::Called(service.call(req)),
                    _ => Call::Oneshot(Box::new(service.oneshot(req))),
                };
                ResponseFuture {
                    kind: Kind::Dispatch { call, tag },
                }
            }
            Err(Some(allow)) => {
                let mut res = answer(&req, DispatchError::MethodNotAllowed);
                res.headers_mut().insert(ALLOW, allow);
                ResponseFuture::ready(res)
            }
            Err(None) => ResponseFuture::ready(answer(&req, DispatchError::NotFound)),
        }
    }
}

/// The gateway's JSON answer for `err`, with the request's id.
fn answer<B>(req: &Request<B>, err: DispatchError) -> Response<Body> {
    error_response_for(req, err.status(), err.message())
}

/// The request's host: the `Host` header, else the URI's authority.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    match req.headers().get(HOST) {
        Some(value) => value.to_str().ok(),
        None => req.uri().authority().map(|a| a.host()),
    }
}

/// `path` + `?query`. `None` only if the result is not a valid request target, which cannot
/// happen: `path` is a piece of the request's own path, maybe with a leading '/'.
fn path_and_query(path: &str, query: Option<&str>) -> Option<PathAndQuery> {
    let mut target = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    target.push_str(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    PathAndQuery::try_from(target).ok()
}

/// The future of [`Router::call`]: the route's service call, or the gateway's own answer.
pub struct ResponseFuture {
    kind: Kind,
}

enum Kind {
    Ready(Option<Response<Body>>),
    Dispatch { call: Call, tag: Option<RouteTag> },
}

/// The route service's call: made at once when it was ready, else through `Oneshot`.
enum Call {
    Called(<RouteService as Service<Request<Body>>>::Future),
    // Boxed: the cold path should not make every request's future bigger.
    Oneshot(Box<Oneshot<RouteService, Request<Body>>>),
}

impl ResponseFuture {
    fn ready(res: Response<Body>) -> Self {
        Self {
            kind: Kind::Ready(Some(res)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(res) => Poll::Ready(Ok(res.take().expect("polled after completion"))),
            Kind::Dispatch { call, tag } => {
                let Ok(mut res) = std::task::ready!(match call {
                    Call::Called(f) => f.as_mut().poll(cx),
                    Call::Oneshot(f) => Pin::new(&mut **f).poll(cx),
                });
                if let Some(tag) = tag.take() {
                    res.extensions_mut().insert(tag);
                }
                Poll::Ready(Ok(res))
            }
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Ready(_) => "Ready",
            Kind::Dispatch { .. } => "Dispatch",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
