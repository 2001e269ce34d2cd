//! The [`ControlPlane`] trait: what the admin API can see and change, in the types of
//! [`crate::model`]; and [`AdminError`], a refusal from it.

use std::future::Future;

use gw_core::HttpError;
use http::StatusCode;

use crate::model::{
    ApiKey, ApiKeyInput, CircuitBreaker, CircuitBreakers, Health, Instance, InstanceInput, Metrics,
    MintTokenRequest, RateLimits, RevokeTokenRequest, RouteDocument, ServiceDetail, Services,
    Token, User, UserDocument,
};

/// A refusal from the control plane: the status and the message of the `{"error": ...}` body
/// (see [`HttpError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminError {
    status: StatusCode,
    message: String,
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
        Self::not_found(gw_core::messages::ENDPOINT_NOT_FOUND)
    }
}

impl HttpError for AdminError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn message(&self) -> &str {
        &self.message
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
/// these calls and back: they parse the bodies into the types of [`crate::model`] (a 400 for a
/// body that does not fit never reaches the control plane) and serialize the answers. Later
/// features add methods with a default body, so existing implementations keep compiling:
///
/// ```text
/// fn list_services(&self) -> impl Future<Output = Answer<Services>> + Send {
///     async { Err(AdminError::not_implemented()) } // 404 `Endpoint not found`
/// }
/// ```
///
/// Implementations may write the methods as `async fn`; the futures must be `Send` because the
/// admin listener runs on a multi-threaded runtime. Hold no lock across an `.await`.
pub trait ControlPlane: Send + Sync + 'static {
    /// Every route, in table order.
    fn list_routes(&self) -> impl Future<Output = Vec<RouteDocument>> + Send;

    /// One route by id.
    fn get_route(&self, id: &str) -> impl Future<Output = Option<RouteDocument>> + Send;

    /// Validate and add or replace (same id) a route.
    ///
    /// An `Err` must leave the table untouched. A 400 becomes
    /// `Invalid route configuration: {message}` (use [`AdminError::bad_request`] with the
    /// reason); any other status (503 when the shared store is unreachable) is answered as is.
    fn put_route(
        &self,
        route: RouteDocument,
    ) -> impl Future<Output = Result<RouteChange, AdminError>> + Send;

    /// Remove a route; `Ok(true)` when it existed. An `Err` leaves the table untouched.
    fn delete_route(&self, id: &str) -> impl Future<Output = Result<bool, AdminError>> + Send;

    /// The object under `"metrics"` of `GET /admin/metrics`.
    fn metrics_json(&self) -> Metrics;

    /// The Prometheus text exposition.
    fn metrics_prometheus(&self) -> String;

    /// `GET /admin/health`.
    fn health(&self) -> impl Future<Output = Health> + Send;

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

    /// `GET /admin/services`: every service by name.
    fn list_services(&self) -> impl Future<Output = Answer<Services>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/services/{name}`.
    fn get_service(&self, name: &str) -> impl Future<Output = Answer<ServiceDetail>> + Send {
        let _ = name;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/services/{name}/instances`: the instance as registered.
    fn register_instance(
        &self,
        service: &str,
        instance: InstanceInput,
    ) -> impl Future<Output = Answer<Instance>> + Send {
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

    /// `GET /admin/circuit-breakers`: every breaker by service.
    fn list_circuit_breakers(&self) -> impl Future<Output = Answer<CircuitBreakers>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/circuit-breakers/{service}`.
    fn get_circuit_breaker(
        &self,
        service: &str,
    ) -> impl Future<Output = Answer<CircuitBreaker>> + Send {
        let _ = service;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/circuit-breakers/{service}/reset`.
    fn reset_circuit_breaker(&self, service: &str) -> impl Future<Output = Answer<()>> + Send {
        let _ = service;
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/rate-limits`.
    fn rate_limits(&self) -> impl Future<Output = Answer<RateLimits>> + Send {
        async { Err(AdminError::not_implemented()) }
    }

    /// Whether `POST /admin/tokens` can mint at all; checked before the body is read, so a
    /// gateway without a signing secret says so whatever the body.
    fn minting_available(&self) -> Answer<()> {
        Ok(())
    }

    /// `POST /admin/tokens`.
    fn mint_token(&self, request: MintTokenRequest) -> impl Future<Output = Answer<Token>> + Send {
        let _ = request;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/tokens/revoke`.
    fn revoke_token(&self, request: RevokeTokenRequest) -> impl Future<Output = Answer<()>> + Send {
        let _ = request;
        async { Err(AdminError::not_implemented()) }
    }

    /// `PUT /admin/users/{id}`: the user record as stored.
    ///
    /// `user` is the body without `user_id`: a body may carry it (the record as
    /// `GET /admin/users/{id}` shows it), and the handler has checked that it equals `id`.
    /// Every other key is the control plane's to judge ([`UserDocument::parse`]).
    fn put_user(&self, id: &str, user: UserDocument) -> impl Future<Output = Answer<User>> + Send {
        let _ = (id, user);
        async { Err(AdminError::not_implemented()) }
    }

    /// `GET /admin/users/{id}`.
    fn get_user(&self, id: &str) -> impl Future<Output = Answer<User>> + Send {
        let _ = id;
        async { Err(AdminError::not_implemented()) }
    }

    /// `DELETE /admin/users/{id}`.
    fn delete_user(&self, id: &str) -> impl Future<Output = Answer<()>> + Send {
        let _ = id;
        async { Err(AdminError::not_implemented()) }
    }

    /// `POST /admin/api-keys` (the key is shown once).
    fn create_api_key(&self, request: ApiKeyInput) -> impl Future<Output = Answer<ApiKey>> + Send {
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
    pub route: RouteDocument,
    /// `true` when the id was new (`Route added`), `false` when it replaced one (`Route updated`).
    pub created: bool,
}
