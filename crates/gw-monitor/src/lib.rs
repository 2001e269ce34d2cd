//! Request ids, Prometheus metrics with pre-built handles and a JSON access log written off
//! the request path, as tower layers.
//!
//! - [`RequestIdLayer`]: keeps a valid client `X-Request-ID` (1–128 of `[A-Za-z0-9._:-]`) or
//!   generates one, puts [`gw_core::RequestId`] in the request extensions and the
//!   `x-request-id` header (for the upstream), and sets `x-request-id` and `x-gateway` on
//!   every answer.
//! - [`Metrics`] + [`MetricsLayer`]: `gateway_requests_total{route,service,method,status}`,
//!   `gateway_request_duration_seconds{route,service}` and
//!   `gateway_upstream_duration_seconds{service}` (Prometheus histograms, fixed buckets,
//!   kept here rather than in the exporter: a sample is two atomic adds and nothing waits to
//!   be drained), `gateway_requests_in_flight`, plus the JSON counters of `/admin/metrics`.
//!   Handles are built once per route ([`Metrics::route`]); the per-route stack puts the
//!   `&'static RouteMetrics` into the response extensions, so recording a request allocates
//!   nothing and takes no lock.
//! - [`AccessLog`] + [`AccessLogLayer`]: one JSON line per request (`time`, `request_id`,
//!   `client`, `method`, `path`, `route`, `service`, `upstream`, `status`, `bytes`,
//!   `request_time`, `upstream_connect_time`, `upstream_header_time`,
//!   `upstream_response_time`, `user_id`), handed through a bounded channel to a writer
//!   thread; the request path never blocks on I/O.
//!
//! Why our own layers rather than tower-http's `request_id` / `trace`: the id validation of
//! docs/http-answers.md and the gw-core extension types, label values known in advance (no label
//! allocation per request), and a log line that needs the route and upstream timings only the
//! response extensions carry. They stack with tower-http's layers.
//!
//! Order: `RequestIdLayer` outermost (the others read its id), then `MetricsLayer` and
//! `AccessLogLayer`, then the router.
//!
//! ```
//! use std::convert::Infallible;
//! use gw_monitor::{AccessLog, AccessLogLayer, Metrics, MetricsLayer, RequestIdLayer};
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let metrics = Metrics::global();
//! let route = metrics.route("users", "user_service"); // once, when the route is built
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RequestIdLayer)
//!     .layer(MetricsLayer::new(metrics.clone()))
//!     .layer(AccessLogLayer::new(AccessLog::writer(Box::new(std::io::sink()))))
//!     .service_fn(move |req: Request<String>| {
//!         let route = route.clone();
//!         async move {
//!             assert!(req.extensions().get::<gw_core::RequestId>().is_some());
//!             let mut res = Response::new(String::from("hello"));
//!             res.extensions_mut().insert(route);
//!             Ok::<_, Infallible>(res)
//!         }
//!     });
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let res = rt.block_on(svc.oneshot(Request::new(String::new()))).unwrap();
//! assert_eq!(res.headers()["x-gateway"], gw_core::GATEWAY_NAME);
//! assert_eq!(res.headers()["x-request-id"].len(), 32);
//! assert!(metrics.render_prometheus().contains("gateway_requests_total{"));
//! ```

mod access_log;
mod access_log_layer;
mod metrics_layer;
mod registry;
mod request_id;

pub use access_log::{AccessLog, DEFAULT_MAX_QUEUED_BYTES};
pub use access_log_layer::MAX_FIELD_BYTES;
pub use access_log_layer::{AccessLogFuture, AccessLogLayer, AccessLogService, LogBody};
pub use metrics_layer::{MetricsFuture, MetricsLayer, MetricsService};
pub use registry::{
    Metrics, RouteMetrics, ACCESS_LOG_DROPPED, LATENCY_BUCKETS, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL,
    REQUEST_DURATION, UPSTREAM_DURATION,
};
pub use request_id::{RequestIdFuture, RequestIdLayer, SetRequestId};
