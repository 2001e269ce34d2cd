//! The request path, assembled: what a request goes through, top to bottom.
//!
//! ```text
//! connection          listener/ (accept, connection limit, sniffing, TLS, deadlines),
//!                     listener/http1/ (plain HTTP/1.1), hyper (HTTP/2, TLS)
//!  └ proxy_connection who the client is (trusted proxies), the one canonical request
//!                     (gw_edge::canonicalize; a refusal travels as `Rejected`), Host of an
//!                     HTTP/1.0 request, ConnInfo; then calls the edge, built once:
//!  └ edge_service     RequestId → Metrics → AccessLog (when configured) → EdgeRoutes
//!   └ EdgeRoutes      the edge's refusal answered (gw_edge::rejection) | GET|HEAD /health
//!                     (health_response) | the Router (gw-router, over the live RouteTable,
//!                     each route matched as its `route_spec` says)
//!    └ build_route    one stack per route: route metrics → Auth (gw-auth) → RateLimit
//!                     (gw-ratelimit) → CircuitBreaker (gw-breaker) → Proxy (gw-proxy:
//!                     balancer, pools, retries, header rules)
//!
//! admin listener      admin_connection: a refusal of the listener's head codec answered,
//!                     else gw-admin's router over `Control` (control.rs)
//! ```
//!
//! The route table itself (which routes, published how) is `state/`'s; this file only says
//! what one route and the edge are made of. Nothing here is boxed or allocated per request
//! beyond what the layers do themselves: the edge is a concrete type unless an access log is
//! configured (see [`Edge`]).

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future;
use gw_auth::AuthLayer;
use gw_core::{Body, ClientAddr, ConnInfo};
use gw_monitor::{AccessLog, AccessLogLayer, Metrics, MetricsLayer, MetricsService};
use gw_monitor::{RequestIdLayer, SetRequestId};
use gw_proxy::{HeaderRules, Proxy, ProxyConfig, RetryPolicy, TrustedProxies, Upstream};
use gw_ratelimit::RateLimitLayer;
use gw_router::ResponseFuture as RouterFuture;
use gw_router::{PathMatcher, RouteService, RouteSpec, Router};
use http::{HeaderName, HeaderValue, Method, Request, Response};
use tower::util::{BoxCloneSyncService, Either, Oneshot};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::config::{Config, HeaderRulesConfig, RouteConfig};
use crate::state::App;

// ---- connection → edge ----

/// One proxy connection's function from request to answer: records who the client is
/// (after trusted proxies), makes the request canonical, then calls the edge. Built once per
/// connection by the listener.
pub(crate) fn proxy_connection(
    app: &App,
    edge: &Edge,
    conn: ConnInfo,
) -> impl Fn(Request<Body>) -> <Edge as Service<Request<Body>>>::Future + Send + Sync + 'static {
    let app = app.clone();
    let edge = edge.clone();
    move |mut req: Request<Body>| {
        let settings = app.edge();
        let client = gw_proxy::client_addr(&conn, req.headers(), &settings.trusted_proxies);
        // The one canonical request: what the router matches, every layer checks and the
        // upstream gets. A refusal is answered at the end of the edge layers (`EdgeRoutes`),
        // so that it has a request id and is counted.
        if let Err(e) = gw_edge::canonicalize(&mut req, &settings.policy) {
            req.extensions_mut().insert(gw_edge::Rejected(e));
        }
        if req.version() < http::Version::HTTP_11 {
            gw_edge::default_host(&mut req, conn.local);
        }
        drop(settings);
        let ext = req.extensions_mut();
        ext.insert(conn);
        // Readers fall back to the connection (`ClientAddr::of`): only a client that differs
        // from it (trusted proxies, a mapped IPv6 peer) is stored.
        if client != ClientAddr::of_conn(&conn) {
            ext.insert(client);
        }
        // Every layer of the edge is always ready: call it directly.
        edge.clone().call(req)
    }
}

// ---- edge layers ----

/// The edge stack as the listener calls it. Without an access log (the fast path) it is a
/// concrete type, so a request costs no boxed future and no boxed service clone here.
pub(crate) type Edge = Either<SetRequestId<MetricsService<EdgeRoutes>>, EdgeService>;

/// The edge boxed: its form when an access log is configured (see [`Edge`]).
pub(crate) type EdgeService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// RequestId → Metrics → AccessLog → (`/health` | Router): built once, cloned per request.
pub(crate) fn edge_service(app: &App, metrics: &Metrics, access_log: Option<AccessLog>) -> Edge {
    let inner = EdgeRoutes {
        // Each route's stack puts its `&'static RouteMetrics` (route and service names included)
        // into the answer, and the metrics and the access log read that: no `RouteTag`.
        router: Router::new(app.table()).tag_responses(false),
    };
    let base = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(MetricsLayer::new(metrics.clone()));
    match access_log {
        None => Either::Left(base.service(inner)),
        Some(log) => Either::Right(BoxCloneSyncService::new(
            base.map_response(|res: Response<_>| res.map(Body::new))
                .layer(AccessLogLayer::new(log))
                .service(inner),
        )),
    }
}

/// A request the edge refused answered here, `GET|HEAD /health` too, everything else through
/// the [`Router`].
#[derive(Clone, Debug)]
pub(crate) struct EdgeRoutes {
    router: Router,
}

impl Service<Request<Body>> for EdgeRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = future::Either<Ready<Result<Response<Body>, Infallible>>, RouterFuture>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if let Some(gw_edge::Rejected(e)) = req.extensions().get::<gw_edge::Rejected>() {
            return future::Either::Left(std::future::ready(Ok(gw_edge::rejection(&req, *e))));
        }
        if is_health_check(&req) {
            return future::Either::Left(std::future::ready(Ok(health_response())));
        }
        future::Either::Right(self.router.call(req))
    }
}

/// `GET /health` on the proxy listener, answered before routing.
fn health_response() -> Response<Body> {
    let mut res = Response::new(Body::from(r#"{"status":"healthy"}"#));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Whether a request is the proxy listener's own health check.
fn is_health_check<B>(req: &Request<B>) -> bool {
    req.uri().path() == "/health" && matches!(*req.method(), Method::GET | Method::HEAD)
}

// ---- router → route stack ----

impl App {
    /// Builds one route's stack, outermost first: route metrics → auth → rate limit →
    /// circuit breaker → proxy: the order in which a request is checked.
    pub(crate) fn build_route(&self, config: &Config, rc: &RouteConfig) -> RouteService {
        let upstream = self
            .inner
            .upstreams
            .load()
            .get(&rc.service)
            .cloned()
            .unwrap_or_else(|| {
                Upstream::new(
                    &rc.service,
                    Default::default(),
                    Default::default(),
                    Vec::new(),
                )
            });
        let proxy_config = Arc::new(ProxyConfig {
            timeouts: rc.timeouts(),
            retry: rc.retry.as_ref().map(|r| RetryPolicy {
                times: r.times,
                delay: Duration::from_secs_f64(r.delay),
            }),
            request_headers: header_rules(rc.headers.as_ref().map(|h| &h.request)),
            response_headers: header_rules(rc.headers.as_ref().map(|h| &h.response)),
            max_body_bytes: config.server.max_body_bytes,
            trusted_proxies: TrustedProxies::new(config.server.trusted_proxies.clone()),
        });
        let proxy = Proxy::new(upstream, self.inner.clients.clone(), proxy_config);

        let breaker_config = match config
            .services
            .get(&rc.service)
            .and_then(|s| s.circuit_breaker.as_ref())
        {
            Some(o) => o.apply(&config.circuit_breaker),
            None => config.circuit_breaker.clone(),
        };
        let breaker = breaker_config
            .enabled
            .then(|| self.inner.breakers.layer(&rc.service, &breaker_config));

        let features = self.inner.features.load();
        let limit_policy = gw_ratelimit::RoutePolicy::from_config(
            rc.id.as_str(),
            rc.rate_limit,
            &features.rate_limit,
        );
        let limit = limit_policy
            .is_limited()
            .then(|| RateLimitLayer::new(features.limiter.clone(), limit_policy));

        let security = rc.security.clone().unwrap_or_default();
        let auth =
            (rc.auth_required || security != gw_auth::SecurityConfig::default()).then(|| {
                AuthLayer::new(
                    features.auth.clone(),
                    gw_auth::RoutePolicy {
                        auth_required: rc.auth_required,
                        method: rc.auth,
                        security,
                    },
                )
            });

        let route_metrics = self.inner.metrics.route(&rc.id, &rc.service);
        let stack = ServiceBuilder::new()
            .map_response(move |mut res: Response<Body>| {
                res.extensions_mut().insert(route_metrics);
                res
            })
            .option_layer(auth)
            .option_layer(limit)
            .option_layer(breaker)
            .service(proxy);
        BoxCloneSyncService::new(stack)
    }
}

fn header_rules(cfg: Option<&HeaderRulesConfig>) -> HeaderRules {
    let Some(cfg) = cfg else {
        return HeaderRules::default();
    };
    // Validated before we get here; invalid entries cannot occur.
    HeaderRules {
        add: cfg
            .add
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
        remove: cfg
            .remove
            .iter()
            .filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok())
            .collect(),
    }
}

/// The router's view of a route.
pub(crate) fn route_spec(rc: &RouteConfig) -> RouteSpec {
    let matcher = match (&rc.pattern, &rc.path) {
        (Some(p), _) => PathMatcher::Pattern(p.clone()),
        (None, Some(p)) => PathMatcher::Prefix {
            path: p.clone(),
            strip_prefix: rc.strip_prefix,
        },
        (None, None) => PathMatcher::Prefix {
            path: "/".into(),
            strip_prefix: false,
        },
    };
    RouteSpec {
        id: rc.id.clone(),
        service: rc.service.clone(),
        matcher,
        methods: rc
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect(),
        host: rc.host.clone(),
        priority: rc.priority,
    }
}

// ---- the admin listener ----

/// An admin answer: the listener's refusal at once, or the admin router's.
pub(crate) type AdminFuture<A> =
    future::Either<Ready<Result<Response<Body>, Infallible>>, Oneshot<A, Request<Body>>>;

/// One admin connection's function from request to answer: a head the listener refused
/// (414 / 431) is answered as on the proxy listener, not routed; everything else goes to the
/// admin router.
pub(crate) fn admin_connection<A>(
    admin: &A,
    conn: ConnInfo,
) -> impl Fn(Request<Body>) -> AdminFuture<A> + Send + Sync + 'static
where
    A: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let admin = admin.clone();
    move |mut req: Request<Body>| {
        if let Some(gw_edge::Rejected(e)) = req.extensions().get::<gw_edge::Rejected>() {
            let res = gw_edge::rejection(&req, *e);
            return future::Either::Left(std::future::ready(Ok(res)));
        }
        req.extensions_mut().insert(conn);
        future::Either::Right(admin.clone().oneshot(req))
    }
}
