//! The [`ControlPlane`] trait: what the admin API can see and change.

use std::future::Future;

use http::StatusCode;
use serde_json::Value;

/// A refusal from the control plane: the status and the message of the `{"error": ...}` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminError {
    /// The answer's status.
    pub status: StatusCode,
    /// The answer's `error` message.
    pub message: String,
}

impl AdminError {
    /// Any status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 with a reason.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with a reason.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503: the store behind the control plane cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// What an endpoint this control plane does not implement answers.
    pub fn not_implemented() -> Self {
        Self::not_found("Endpoint not found")
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for AdminError {}

/// Shorthand for the futures of the optional endpoints.
type Answer<T> = Result<T, AdminError>;

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
    /// An `Err` must leave the table untouched. A 400 becomes
    /// `Invalid route configuration: {message}` (use [`AdminError::bad_request`] with the
    /// reason); any other status (503 when the shared store is unreachable) is answered as is.
    fn put_route(
        &self,
        route: Value,
    ) -> impl Future<Output = Result<RouteChange, AdminError>> + Send;

    /// Remove a route; `Ok(true)` when it existed. An `Err` leaves the table untouched.
    fn delete_route(&self, id: &str) -> impl Future<Output = Result<bool, AdminError>> + Send;

    /// The inner metrics object `{timestamp, total_requests, status_codes, services}`.
    fn metrics_json(&self) -> Value;

    /// The Prometheus text exposition.
    fn metrics_prometheus(&self) -> String;

    /// The whole `/admin/health` object `{status, timestamp, version, services, circuit_breakers}`.
    fn health(&self) -> impl Future<Output = Value> + Send;

    /// The version of the configuration state this node runs; bumped by every admin write.
    fn config_version(&self) -> u64 {
        0
    }

    /// Waits until every live gateway node runs `version` (for `?wait=all`); `Err` names the
    /// nodes that did not get there in time.
    fn wait_for_version(
        &self,
        version: u64,
    ) -> impl Future<Output = Result<(), Vec<String>>> + Send {
        let _ = version;
        async { Ok(()) }
    }

    /// `GET /admin/services`: `{name: {total_instances, healthy_instances, health_ratio}}`.
    fn list_services(&self) -> impl Future<Output = Answer<Value>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/services/{name}`: `{service, instances: [...]}`.
    fn get_service(&self, name: &str) -> impl Future<Output = Answer<Value>> + Send {
        let _ = name;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/services/{name}/instances`: the instance as registered.
    fn register_instance(
        &self,
        service: &str,
        instance: Value,
    ) -> impl Future<Output = Answer<Value>> + Send {
        let _ = (service, instance);
        async { Err(AdminError::not_implemented()) }
    }

    /// `DELETE /admin/services/{name}/instances/{id}`.
    fn deregister_instance(
        &self,
        service: &str,
        id: &str,
    ) -> impl Future<Output = Answer<()>> + Send {
        let _ = (service, id);
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/circuit-breakers`: `{service: {...}}`.
    fn list_circuit_breakers(&self) -> impl Future<Output = Answer<Value>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/circuit-breakers/{service}`.
    fn get_circuit_breaker(&self, service: &str) -> impl Future<Output = Answer<Value>> + Send {
        let _ = service;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/circuit-breakers/{service}/reset`.
    fn reset_circuit_breaker(&self, service: &str) -> impl Future<Output = Answer<()>> + Send {
        let _ = service;
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/rate-limits`.
    fn rate_limits(&self) -> impl Future<Output = Answer<Value>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/tokens`: `{token, expires_at}` from `{user_id, username, role}`.
    fn mint_token(&self, request: Value) -> impl Future<Output = Answer<Value>> + Send {
        let _ = request;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/tokens/revoke` from `{"token": ...}`.
    fn revoke_token(&self, request: Value) -> impl Future<Output = Answer<()>> + Send {
        let _ = request;
        async { Err(AdminError::not_implemented()) }
    }

    /// `PUT /admin/users/{id}`: the user record as stored.
    ///
    /// `user` is the body without `user_id`: a body may carry it (the record as
    /// `GET /admin/users/{id}` shows it), and the handler has checked that it equals `id`.
    fn put_user(&self, id: &str, user: Value) -> impl Future<Output = Answer<Value>> + Send {
        let _ = (id, user);
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/users/{id}`.
    fn get_user(&self, id: &str) -> impl Future<Output = Answer<Value>> + Send {
        let _ = id;
        async { Err(AdminError::not_implemented()) }
    }

    /// `DELETE /admin/users/{id}`.
    fn delete_user(&self, id: &str) -> impl Future<Output = Answer<()>> + Send {
        let _ = id;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/api-keys`: `{key, key_id}` (the key is shown once).
    fn create_api_key(&self, request: Value) -> impl Future<Output = Answer<Value>> + Send {
        let _ = request;
        async { Err(AdminError::not_implemented()) }
    }

    /// `DELETE /admin/api-keys/{key_id}`.
    fn delete_api_key(&self, key_id: &str) -> impl Future<Output = Answer<()>> + Send {
        let _ = key_id;
        async { Err(AdminError::not_implemented()) }
    }
}

/// The outcome of [`ControlPlane::put_route`].
#[derive(Clone, Debug)]
pub struct RouteChange {
    /// The route as stored (normalised by the control plane).
    pub route: Value,
    /// `true` when the id was new (`Route added`), `false` when it replaced one (`Route updated`).
    pub created: bool,
}
