//! Per-service circuit breakers and per-instance outlier ejection, as a tower layer.
//!
//! - [`state::CircuitState`]: the pure state machine (closed → open → half-open → closed;
//!   docs/configuration.md, `[circuit_breaker]`), time passed in explicitly. The rolling
//!   window is a ring of 10 bucketed counters of `window_secs / 10`, so a request costs O(1)
//!   and a breaker has a fixed size however busy the service is.
//! - [`Breaker`]: one service's machine behind a short `parking_lot` lock (never held across
//!   an `.await`), with a clock and the `gateway_circuit_breaker_state{service}` gauge
//!   (0 closed, 1 open, 2 half-open), set on every transition through a handle built once.
//! - [`outlier::Ejections`] / [`OutlierDetector`]: instances that fail
//!   `consecutive_failures` times in a row are ejected for a growing, capped interval, never
//!   more than `max_ejection_percent` of a service at once. The crate cannot touch the
//!   balancer: it reports each service's ejected set through an [`EjectFn`] the binary
//!   supplies; ejections end in [`BreakerRegistry::tick`], which the binary calls about once
//!   a second.
//! - [`BreakerRegistry`]: the breakers and detectors of every service, kept across route
//!   rebuilds, with the data of `GET /admin/circuit-breakers[/{service}]` and
//!   `POST .../reset`.
//! - [`CircuitBreakerLayer`]: answers 503 `Service temporarily unavailable` (the gateway's
//!   JSON error) without calling the inner service while the breaker refuses; classifies a
//!   response with status >= 500 (the proxy's 502 for refused/reset connections and 504 for
//!   timeouts included) or an `Err` as a failure, except the gateway's own answers marked
//!   [`gw_core::NotForwarded`] (no upstream contacted), which are not counted; feeds the
//!   instance named by the response's [`gw_core::UpstreamInfo`] to the outlier detector, and
//!   each instance of [`gw_core::FailedAttempts`] (attempts that failed before a retry) as a
//!   failure. The breaker counts a request once, by its final answer. A response future
//!   dropped before it completes (the client went away) gives back its half-open probe
//!   slot, and counts as a breaker failure only when it had waited at least
//!   `abandoned_failure_secs` (default 10; the instance is unknown then, so outlier
//!   detection is not told).
//!
//! Why not tower's building blocks: tower has no circuit breaker, and its `load_shed` /
//! `limit` layers decide in `poll_ready`, where a routed service cannot answer with the
//! gateway's JSON 503. Outlier ejection is Envoy's consecutive-5xx detector, reduced to what
//! the balancer needs (a set of ids).
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use gw_breaker::{BreakerConfig, BreakerRegistry, State};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! let registry = BreakerRegistry::new(Arc::new(|service: &str, ejected: &[String]| {
//!     println!("{service}: ejected {ejected:?}");
//! }));
//! let config = BreakerConfig { min_requests: 2, ..BreakerConfig::default() };
//!
//! let app = Router::new()
//!     .route("/", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
//!     .layer(registry.layer("user_service", &config));
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! rt.block_on(async {
//!     for _ in 0..2 {
//!         let res = app.clone().oneshot(Request::new(axum::body::Body::empty())).await.unwrap();
//!         assert_eq!(res.status(), 500);
//!     }
//!     // Two failures out of two: the breaker is open and answers by itself.
//!     let res = app.clone().oneshot(Request::new(axum::body::Body::empty())).await.unwrap();
//!     assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! });
//! assert_eq!(registry.breaker("user_service", &config).state(), State::Open);
//! assert_eq!(registry.get("user_service").unwrap()["state"], "open");
//! ```

mod breaker;
mod clock;
mod config;
mod error;
mod layer;
pub mod outlier;
mod registry;
pub mod state;

pub use breaker::{Breaker, BreakerPermit, STATE_GAUGE};
pub use config::{BreakerConfig, BreakerOverride, OutlierConfig, OutlierOverride};
pub use error::OPEN_MESSAGE;
pub use layer::{CircuitBreaker, CircuitBreakerLayer, ResponseFuture};
pub use outlier::{EjectFn, OutlierDetector};
pub use registry::BreakerRegistry;
pub use state::{Rejected, State};
