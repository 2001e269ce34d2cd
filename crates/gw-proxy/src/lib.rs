//! Upstream forwarding: pooled hyper clients, HTTP/1.1 and HTTP/2, gRPC, WebSocket upgrades,
//! load balancing, retries with a budget, timeouts and forwarded headers.
//!
//! - [`Upstream`]: one service — its [`Instance`]s (swapped atomically at runtime with
//!   [`Upstream::set_instances`]), its [`LoadBalancer`] state and its retry budget.
//! - [`Clients`]: the keep-alive pools, one per gateway, shared by every route. HTTP/1.1
//!   connections are pooled per instance and go back to the pool once the response body has
//!   been read to its end (closed otherwise); HTTP/2 services use hyper-util's pooled client.
//! - [`Proxy`]: the per-route `tower::Service<Request<Body>>` that forwards a request whose
//!   URI was already rewritten by the router, and streams the answer back. It never fails:
//!   errors become the gateway's JSON answers (docs/http-answers.md) (502 `Bad gateway`, 504 `Gateway timeout`,
//!   503 `No healthy upstream`, 413 `Request body too large`, 400 `Bad request`) through
//!   `gw_core`.
//! - [`client_addr`] and [`TrustedProxies`]: who the client is (`server.trusted_proxies`), for the listener.
//!
//! # What is sent upstream
//! - The client's `Host` is kept (as nginx's `proxy_set_header Host $host`); when the request
//!   has none (HTTP/2 clients), the URI authority is used. To an HTTP/2 upstream no `Host` is
//!   sent: `:authority` is the instance's `host:port` (RFC 9113 forbids a differing `Host`)
//!   and the original host is in `X-Forwarded-Host`.
//! - The request goes out as HTTP/1.1 to `http1` services and HTTP/2 (h2c, prior knowledge)
//!   to `http2` services, whatever the client spoke. `Expect` is not forwarded (the listener
//!   answers `100-continue` itself).
//! - `X-Request-ID`, `X-Gateway-Version`, `X-Forwarded-For` (kept and appended to when the
//!   peer is a trusted proxy, replaced by the peer otherwise), `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` (a trusted peer's values are kept).
//! - Client-sent `X-User-*` headers are removed; with an [`gw_core::Identity`] extension,
//!   `X-User-ID` and `X-User-Role` are set from it.
//! - Hop-by-hop headers and every header named by `Connection` are removed; `TE: trailers`
//!   is kept for gRPC; `Trailer` is kept (end-to-end since RFC 7230, and hyper needs it to
//!   write HTTP/1.1 trailers). The route's request header rules apply last.
//!
//! # Timeouts
//! Each bounds its own phase, from the moment that phase starts; expiry answers 504:
//! - `connect`: opening the connection (the connector's timeout).
//! - `send`: from the moment the connection is ready until the request's last byte is
//!   written (its head, for a request without a body; for a streamed body, its last frame,
//!   so a client that uploads slowly runs into it too).
//! - `read`: the wait for the answer's head, from the moment the request was sent (an answer
//!   that comes before the upload is over is taken as well), and then every gap between two
//!   frames of the answer's body. A gap ends the body with an error: the status was already
//!   sent, so the client's connection (HTTP/1.1) or stream (HTTP/2) is reset.
//!
//! Over HTTP/2, hyper-util's client makes the connection and sends the request in one
//! future: the connection counts as ready at the request's start unless the client's
//! connector was making one meanwhile (then when that ended, at most `connect` later), and a
//! streamed body as sent when its last frame was handed to the client.
//!
//! # Client body errors
//! An error reading the client's request body (a malformed chunk size, a body that ends
//! before its `Content-Length`, a reset stream) is the client's fault: 400 `Bad request`,
//! never retried, and the answer carries no [`gw_core::UpstreamInfo`], so the outlier
//! detector hears nothing about the instance (and the breaker sees a 4xx, not a failure).
//! An HTTP/1.1 connection caught mid-request is closed, not pooled.
//!
//! # Retries
//! Only with a [`RetryPolicy`] of `times > 0`, only for GET, HEAD, OPTIONS, PUT and DELETE,
//! only when the body is empty or at most 64 KiB (buffered up front so it can be sent
//! again), after a refused or reset connection, a connect timeout or an upstream
//! 502/503/504, on another instance when there is one, and within the service's retry budget
//! (`TpsBudget`: 10 retries a second plus 20 % of requests). Nothing has reached the client
//! before the last attempt's headers, so a retry is always safe to make.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use gw_proxy::{
//!     ClientOptions, Clients, Instance, LoadBalancer, Proxy, ProxyConfig, RetryPolicy,
//!     Timeouts, Upstream, UpstreamProtocol,
//! };
//! use std::time::Duration;
//! use tower::ServiceExt;
//!
//! # async fn demo() {
//! let upstream = Upstream::new(
//!     "user_service",
//!     LoadBalancer::RoundRobin,
//!     UpstreamProtocol::Http1,
//!     vec![Instance {
//!         id: "user-service-1".into(),
//!         host: "127.0.0.1".into(),
//!         port: 8001,
//!         weight: 100,
//!         metadata: Default::default(),
//!     }],
//! );
//! let clients = Clients::new(ClientOptions::default());
//! let config = Arc::new(ProxyConfig {
//!     timeouts: Timeouts { connect: Duration::from_secs(5), ..Timeouts::default() },
//!     retry: Some(RetryPolicy { times: 3, delay: Duration::from_millis(100) }),
//!     ..ProxyConfig::default()
//! });
//! let proxy = Proxy::new(upstream, clients, config);
//!
//! let req = http::Request::get("/users/1").body(gw_core::Body::empty()).unwrap();
//! let res = proxy.oneshot(req).await.unwrap();
//! println!("{}", res.status());
//! # }
//! ```
//!
//! # Layout
//! Each module uses only those listed before it (no import loop):
//! - `balancer`: which instance takes a request (pure); `fields`: scanning, adding and
//!   stripping fields; `forwarded`: the client's address and the rules for the upstream
//!   request's fields; `config`, `error`; `timer`: deadlines
//!   on a reused timer; `pool`: idle keep-alive connections per instance; `retry`: the retry
//!   policy's decisions.
//! - `upload`: the request body sent upstream; `h1`: the HTTP/1.1 exchange on one
//!   connection; `body`: the answer's body passed back (over `h1`'s or hyper's).
//! - `upstream`: services and their instances; `client`: connections and sending, per
//!   protocol.
//! - `payload`: the request body across attempts; `attempt`: one exchange with one
//!   instance and what came of it; `upgrade`: WebSocket tunnels.
//! - `proxy`: the [`Proxy`] service, whose `forward` runs these steps in order.

mod attempt;
mod balancer;
mod body;
mod client;
mod config;
mod error;
mod fields;
mod forwarded;
mod h1;
mod payload;
mod pool;
mod proxy;
mod retry;
mod timer;
mod upgrade;
mod upload;
mod upstream;

pub use balancer::LoadBalancer;
pub use client::Clients;
pub use config::{ClientOptions, HeaderRules, ProxyConfig, RetryPolicy, Timeouts};
pub use error::ProxyError;
pub use forwarded::{client_addr, TrustedProxies};
pub use proxy::{Proxy, ResponseFuture};
pub use upstream::{Instance, Upstream, UpstreamProtocol};

// For the property tests and fuzz targets.
#[doc(hidden)]
pub use h1::probe as h1_probe;
