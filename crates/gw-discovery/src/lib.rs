//! Service discovery for the gateway: a [`Registry`] of services and their instances, filled
//! from the configuration, the admin API and Consul, with active health checks that decide
//! which instances get traffic.
//!
//! - [`Registry`]: services → instances, each with its [`Source`] and health. Readers take a
//!   short lock; nothing here runs on the request path. [`Registry::healthy`] is what a
//!   service's load balancer should get, and [`Registry::subscribe`] says when that changed.
//!   [`Registry::summary`] and [`Registry::detail`] are the JSON of `GET /admin/services` and
//!   `GET /admin/services/{name}`; [`Registry::register`] and [`Registry::deregister`] back
//!   `POST`/`DELETE /admin/services/{name}/instances`.
//! - [`HealthChecker`]: a future the binary spawns; per service its own interval, every
//!   instance checked concurrently with a timeout, consecutive-result thresholds
//!   ([`HealthState`]). Unhealthy instances leave [`Registry::healthy`]; status changes are
//!   logged and exported as the gauge `gateway_upstream_healthy{service,instance}`.
//! - [`ConsulWatcher`]: a future the binary spawns; Consul's catalog and health endpoints
//!   watched with blocking queries, backing off on errors and keeping the last known
//!   instances while Consul is away.
//!
//! Why not `tower::discover` or pingora's load-balancing crate: the proxy already balances
//! (gw-proxy); what it lacks is the instance set, which must merge three sources, survive
//! configuration reloads with its health intact and be shown by the admin API — a registry
//! that pushes plain `Vec<Instance>` to the proxy on change keeps both crates simple.
//!
//! # Example
//! The registry behind a plain axum `Router` (as the admin API serves it):
//! ```
//! use std::sync::Arc;
//! use axum::{extract::{Path, State}, http::StatusCode, routing::get, Json, Router};
//! use gw_discovery::{HealthCheckConfig, Instance, Registry};
//! use serde_json::{json, Value};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::new();
//! registry.set_static(
//!     "user_service",
//!     vec![Instance::new("user-service-1", "127.0.0.1", 8001)],
//!     Some(HealthCheckConfig::default()),
//! );
//! registry.register("user_service", Instance::new("user-service-2", "127.0.0.1", 8002)).unwrap();
//! assert_eq!(registry.healthy("user_service").len(), 2);
//!
//! let app = Router::new()
//!     .route("/admin/services", get(|State(r): State<Arc<Registry>>| async move {
//!         Json(json!({ "services": r.summary() }))
//!     }))
//!     .route("/admin/services/{name}", get(
//!         |State(r): State<Arc<Registry>>, Path(name): Path<String>| async move {
//!             r.detail(&name).map(Json).ok_or(StatusCode::NOT_FOUND)
//!         },
//!     ))
//!     .with_state(registry.clone());
//!
//! let res = app
//!     .oneshot(axum::http::Request::get("/admin/services").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
//! let v: Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["services"]["user_service"]["total_instances"], 2);
//! assert_eq!(v["services"]["user_service"]["health_ratio"], 1.0);
//! # }
//! ```
//!
//! In the gateway, the binary spawns `HealthChecker::new(registry.clone()).run(shutdown)`
//! (and a [`ConsulWatcher`] when `[discovery.consul]` is set) and, on each change signalled
//! by [`Registry::subscribe`], pushes [`Registry::healthy`] of every service into gw-proxy.

mod checker;
mod client;
mod config;
mod consul;
mod error;
mod health;
mod instance;
mod registry;

pub use checker::HealthChecker;
pub use config::{ConsulConfig, HealthCheckConfig};
pub use consul::ConsulWatcher;
pub use error::RegisterError;
/// The one shape of a configuration mistake, gw-core's (re-exported for existing users).
pub use gw_core::ConfigProblem;
pub use health::{HealthState, Status};
pub use instance::{Instance, Source, DEFAULT_WEIGHT, MAX_WEIGHT, MIN_WEIGHT};
pub use registry::{InstanceInfo, Registry, HEALTH_GAUGE};
