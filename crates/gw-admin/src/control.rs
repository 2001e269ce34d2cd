//! The [`ControlPlane`] trait: what the admin API can see and change.

use std::future::Future;

use serde_json::Value;

/// What the admin API can see and change.
///
/// `gateway-bin` implements it over its live tables; the admin handlers only translate HTTP to
/// these calls and back. Later features (services, breakers, users, tokens) add methods with a
/// default body, so existing implementations keep compiling:
///
/// ```text
/// fn list_services(&self) -> impl Future<Output = Option<Value>> + Send {
///     async { None } // the endpoint answers "not available" until implemented
/// }
/// ```
///
/// Implementations may write the methods as `async fn`; the futures must be `Send` because the
/// admin listener runs on a multi-threaded runtime. Hold no lock across an `.await`.
pub trait ControlPlane: Send + Sync + 'static {
    /// Every route, in table order.
    fn list_routes(&self) -> impl Future<Output = Vec<Value>> + Send;

    /// One route by id.
    fn get_route(&self, id: &str) -> impl Future<Output = Option<Value>> + Send;

    /// Validate and add or replace (same id) a route.
    ///
    /// `Err(reason)` becomes 400 `Invalid route configuration: {reason}` and must leave the
    /// table untouched.
    fn put_route(&self, route: Value) -> impl Future<Output = Result<RouteChange, String>> + Send;

    /// Remove a route; `true` when it existed.
    fn delete_route(&self, id: &str) -> impl Future<Output = bool> + Send;

    /// The inner metrics object `{timestamp, total_requests, status_codes, services}`.
    fn metrics_json(&self) -> Value;

    /// The Prometheus text exposition.
    fn metrics_prometheus(&self) -> String;

    /// The whole `/admin/health` object `{status, timestamp, version, services, circuit_breakers}`.
    fn health(&self) -> impl Future<Output = Value> + Send;
}

/// The outcome of [`ControlPlane::put_route`].
#[derive(Clone, Debug)]
pub struct RouteChange {
    /// The route as stored (normalised by the control plane).
    pub route: Value,
    /// `true` when the id was new (`Route added`), `false` when it replaced one (`Route updated`).
    pub created: bool,
}
