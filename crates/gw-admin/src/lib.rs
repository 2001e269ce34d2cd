//! The admin HTTP API (routes, services, breakers, limits, tokens, users, metrics, health) as
//! an axum [`Router`] over a [`ControlPlane`] trait, behind a CIDR allow list and a bearer
//! token ([`AccessControl`]).
//!
//! The crate owns the HTTP contract (docs/admin-api.md) — paths, status codes, messages
//! ([`messages`]), JSON shapes ([`model`]) — and nothing else: `gateway-bin` implements
//! [`ControlPlane`] over its live tables, mapping its values to the types of [`model`], and serves
//! [`admin_router`] on the admin listener, inserting a [`gw_core::ConnInfo`] into each
//! request's extensions.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /admin/routes` | `{"routes": [...]}` |
//! | `GET /admin/routes/{id}` | `{"route": {...}}` · 404 `Route not found` |
//! | `POST /admin/routes` | 201 `{"message": "Route added" \| "Route updated", "route": {...}}` · 400 `Invalid JSON` · 400 `Invalid route configuration: <why>` |
//! | `DELETE /admin/routes/{id}` | `{"message": "Route removed"}` · 404 `Route not found` |
//! | `GET /admin/metrics` | `{"metrics": {...}}` |
//! | `GET /admin/metrics/prometheus` · `GET /metrics` | Prometheus text, `text/plain; version=0.0.4` |
//! | `GET /admin/health` | [`model::Health`] |
//! | `GET /admin/services` · `GET /admin/services/{name}` | `{"services": {...}}` ([`model::Services`]) · [`model::ServiceDetail`] · 404 `Service not found` |
//! | `POST /admin/services/{name}/instances` | 201 `{"message": "Service instance registered", "instance": {...}}` · 400 `Invalid instance: <why>` |
//! | `DELETE /admin/services/{name}/instances/{id}` | `{"message": "Service instance deregistered"}` · 404 `Service instance not found` |
//! | `GET /admin/circuit-breakers` · `GET /admin/circuit-breakers/{service}` | `{"circuit_breakers": {...}}` · `{"circuit_breaker": {...}}` · 404 `Circuit breaker not found` |
//! | `POST /admin/circuit-breakers/{service}/reset` | `{"message": "Circuit breaker reset successfully"}` |
//! | `GET /admin/rate-limits` | `{"rate_limits": {...}}` ([`model::RateLimits`]) |
//! | `POST /admin/tokens` · `POST /admin/tokens/revoke` | 201 [`model::Token`] · `{"message": "Token revoked"}` · 400 `Invalid request: <why>` |
//! | `PUT` · `GET` · `DELETE /admin/users/{id}` | `{"user": {...}}` · `{"message": "User deleted"}` · 400 `Invalid user: <why>` · 404 `User not found` |
//! | `POST /admin/api-keys` · `DELETE /admin/api-keys/{key_id}` | 201 [`model::ApiKey`] · `{"message": "API key revoked"}` · 404 `API key not found` |
//! | unknown path · wrong method | 404 `Endpoint not found` · 405 `Method not allowed` (with `Allow`) |
//!
//! Every request, known path or not, first passes [`AccessControl`]: 403 `Access denied`
//! outside `allow`, 403 `Host not allowed` / `Origin not allowed` for another site's name,
//! 401 `Unauthorized` without the right token, 415 `Unsupported media type` for a body that is
//! not `application/json`. A refused request never reaches
//! a handler, so it changes nothing. Errors are `{"error": "..."}` (plus `request_id` when a
//! layer in front set a [`gw_core::RequestId`]).
//!
//! ```
//! use std::sync::Arc;
//! use gw_admin::{admin_router, AccessControl, AdminError, ControlPlane, RouteChange};
//! use gw_admin::model::{Health, Metrics, NodeStatus, RouteDocument};
//!
//! struct Empty;
//!
//! impl ControlPlane for Empty {
//!     async fn list_routes(&self) -> Vec<RouteDocument> { Vec::new() }
//!     async fn get_route(&self, _id: &str) -> Option<RouteDocument> { None }
//!     async fn put_route(&self, _route: RouteDocument) -> Result<RouteChange, AdminError> {
//!         Err(AdminError::bad_request("read-only"))
//!     }
//!     async fn delete_route(&self, _id: &str) -> Result<bool, AdminError> { Ok(false) }
//!     fn metrics_json(&self) -> Metrics {
//!         Metrics { timestamp: 0, total_requests: 0, status_codes: Default::default(),
//!                   services: Default::default() }
//!     }
//!     fn metrics_prometheus(&self) -> String { String::new() }
//!     async fn health(&self) -> Health {
//!         Health { status: NodeStatus::Healthy, timestamp: 0, version: "0.1.0".into(),
//!                  config_version: None, node: None, uptime_secs: None,
//!                  services: Default::default(), circuit_breakers: Default::default() }
//!     }
//! }
//!
//! let access = AccessControl {
//!     allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
//!     token: Some("change-me".into()),
//!     hosts: Some(AccessControl::default_hosts("127.0.0.1:9901".parse().unwrap())),
//! };
//! let router: axum::Router = admin_router(Arc::new(Empty), access);
//! # drop(router);
//! ```

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

mod access;
mod control;
mod handlers;
pub mod messages;
pub mod model;

pub use access::AccessControl;
pub use control::{AdminError, ControlPlane, RouteChange};
pub use model::{RouteDocument, UserDocument};

/// The whole admin API as an axum [`Router`], state applied, ready to serve.
///
/// Requests must carry a [`gw_core::ConnInfo`] extension (the gateway's listener inserts it);
/// a request without one is treated as outside `allow`.
pub fn admin_router<C: ControlPlane>(control: Arc<C>, access: AccessControl) -> Router {
    use handlers as h;

    Router::new()
        .route(
            "/admin/routes",
            get(h::list_routes::<C>).post(h::post_route::<C>),
        )
        .route(
            "/admin/routes/{id}",
            get(h::get_route::<C>).delete(h::delete_route::<C>),
        )
        .route("/admin/metrics", get(h::metrics_json::<C>))
        .route("/admin/metrics/prometheus", get(h::metrics_prometheus::<C>))
        .route("/metrics", get(h::metrics_prometheus::<C>))
        .route("/admin/health", get(h::health::<C>))
        .route("/admin/services", get(h::list_services::<C>))
        .route("/admin/services/{name}", get(h::get_service::<C>))
        .route(
            "/admin/services/{name}/instances",
            axum::routing::post(h::register_instance::<C>),
        )
        .route(
            "/admin/services/{name}/instances/{id}",
            axum::routing::delete(h::deregister_instance::<C>),
        )
        .route(
            "/admin/circuit-breakers",
            get(h::list_circuit_breakers::<C>),
        )
        .route(
            "/admin/circuit-breakers/{service}",
            get(h::get_circuit_breaker::<C>),
        )
        .route(
            "/admin/circuit-breakers/{service}/reset",
            axum::routing::post(h::reset_circuit_breaker::<C>),
        )
        .route("/admin/rate-limits", get(h::rate_limits::<C>))
        .route("/admin/tokens", axum::routing::post(h::mint_token::<C>))
        .route(
            "/admin/tokens/revoke",
            axum::routing::post(h::revoke_token::<C>),
        )
        .route(
            "/admin/users/{id}",
            get(h::get_user::<C>)
                .put(h::put_user::<C>)
                .delete(h::delete_user::<C>),
        )
        .route(
            "/admin/api-keys",
            axum::routing::post(h::create_api_key::<C>),
        )
        .route(
            "/admin/api-keys/{key_id}",
            axum::routing::delete(h::delete_api_key::<C>),
        )
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        // Last, so that it wraps every route and both fallbacks.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            access::enforce,
        ))
        .with_state(control)
}
