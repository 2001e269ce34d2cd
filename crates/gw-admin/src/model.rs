//! The JSON shapes of the admin API: what each endpoint takes and what it answers
//! (docs/admin-api.md shows each with an example).
//!
//! The handlers parse request bodies into these types and serialize these types into answers;
//! a [`ControlPlane`](crate::ControlPlane) maps its own values to and from them. Two bodies
//! are documents rather than typed values, because their shape is not the admin API's to
//! judge: a route ([`RouteDocument`], the configuration's `[[routes]]` table, which the
//! control plane parses) and a user record ([`UserDocument`], whose unknown keys the control
//! plane refuses; [`UserDocument::parse`] reads it as a [`UserInput`]).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::control::AdminError;
use crate::messages;

/// Reads an object through [`gw_core::strict`] (a list where a struct is documented is
/// refused); a failure is a 400 `"{prefix}: {why}"`.
pub(crate) fn parse_object<T: DeserializeOwned>(
    object: Map<String, Value>,
    prefix: &str,
) -> Result<T, AdminError> {
    gw_core::strict::from_value(Value::Object(object))
        .map_err(|e| AdminError::bad_request(messages::invalid(prefix, e)))
}

/// A string member of a request object: `None` when absent or `null`, a 400
/// `Invalid request: {key} must be a string` for any other type.
fn string_member(object: &Map<String, Value>, key: &str) -> Result<Option<String>, AdminError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AdminError::bad_request(messages::invalid(
            messages::INVALID_REQUEST,
            format_args!("{key} must be a string"),
        ))),
    }
}

/// A required string member: as [`string_member`], and a 400
/// `Invalid request: {key} is required` when absent or `null`.
fn required_member(object: &Map<String, Value>, key: &str) -> Result<String, AdminError> {
    string_member(object, key)?.ok_or_else(|| {
        AdminError::bad_request(messages::invalid(
            messages::INVALID_REQUEST,
            format_args!("{key} is required"),
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

/// A route object as the configuration's `[[routes]]` table has it (docs/configuration.md).
///
/// The admin API passes it through: the control plane owns that shape, parses it on
/// `POST /admin/routes` and answers with the route as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RouteDocument(pub Map<String, Value>);

impl RouteDocument {
    /// The route's `id`, when it has a string one.
    pub fn id(&self) -> Option<&str> {
        self.0.get("id").and_then(Value::as_str)
    }

    /// The object.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// The object as a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

impl From<Map<String, Value>> for RouteDocument {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

// ---------------------------------------------------------------------------------------------
// Services and instances

/// One service in `GET /admin/services` (the map under `"services"`, by name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Instances in use, from every source.
    pub total_instances: u64,
    /// Those the health checks count as healthy.
    pub healthy_instances: u64,
    /// `healthy / total`; 0 for a service without instances.
    pub health_ratio: f64,
}

impl ServiceSummary {
    /// The summary of `total` instances of which `healthy` are healthy.
    pub fn new(total: u64, healthy: u64) -> Self {
        let health_ratio = if total == 0 {
            0.0
        } else {
            healthy as f64 / total as f64
        };
        Self {
            total_instances: total,
            healthy_instances: healthy,
            health_ratio,
        }
    }
}

/// `GET /admin/services`: every service by name.
pub type Services = BTreeMap<String, ServiceSummary>;

/// `GET /admin/services/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDetail {
    /// The service's name.
    pub service: String,
    /// Its instances with their health.
    pub instances: Vec<InstanceStatus>,
}

/// An instance's health as the health checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceHealth {
    /// Takes traffic.
    Healthy,
    /// Taken out of the balancer by the health checks.
    Unhealthy,
}

/// One instance in [`ServiceDetail`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Unique id within the service.
    pub id: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative weight.
    pub weight: u32,
    /// `healthy` / `unhealthy`.
    pub status: InstanceHealth,
    /// Epoch seconds of the last health check; `null` before the first or without checks.
    pub last_check: Option<u64>,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
}

/// The body of `POST /admin/services/{name}/instances`: `{id, host, port, weight?, metadata?}`.
///
/// Unknown keys are refused; errors are `Invalid instance: <why>` (`missing field `port``).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename = "Instance", deny_unknown_fields)]
pub struct InstanceInput {
    /// Unique id within the service.
    pub id: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative weight; `None` when left out (the control plane's default then). `null` is
    /// refused like any value that is not a number.
    #[serde(default, deserialize_with = "present")]
    pub weight: Option<u32>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A member that may be left out but, when there, must be a `T` (not `null`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An instance as registered: the `instance` of `POST /admin/services/{name}/instances`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique id within the service.
    pub id: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative weight.
    pub weight: u32,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Circuit breakers

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Requests are refused.
    Open,
    /// A few probes pass.
    HalfOpen,
}

/// `GET /admin/circuit-breakers/{service}`, and each entry of the list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    /// The service.
    pub service: String,
    /// Its state.
    pub state: BreakerState,
    /// Requests in the current window.
    pub total_requests: u64,
    /// Failed ones.
    pub failed_requests: u64,
    /// Successful ones.
    pub success_requests: u64,
    /// `failed / total` of the window.
    pub failure_rate: f64,
    /// Mean response time of the window, in seconds.
    pub avg_response_time: f64,
    /// Ids the outlier detection has taken out of the balancer.
    pub ejected_instances: Vec<String>,
}

/// `GET /admin/circuit-breakers`: every breaker by service.
pub type CircuitBreakers = BTreeMap<String, CircuitBreaker>;

// ---------------------------------------------------------------------------------------------
// Rate limits

/// `GET /admin/rate-limits`: the limiter and each limited route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// `sliding_window` or `token_bucket`.
    pub algorithm: String,
    /// `open` or `closed`: what happens when the store does not answer.
    pub failure_mode: String,
    /// `memory` or `redis`.
    pub store: String,
    /// Running on local limits because the store is unreachable.
    pub degraded: bool,
    /// Store calls that failed since start.
    pub store_failures: u64,
    /// Each limited route, by id.
    pub routes: BTreeMap<String, RouteRateLimit>,
}

/// One route in [`RateLimits`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRateLimit {
    /// The route's algorithm.
    pub algorithm: String,
    /// The per-caller limit (`null` when none).
    pub limit: Option<RateLimit>,
    /// The route-wide limit.
    pub global: Option<RateLimit>,
    /// The per-address limit.
    pub per_ip: Option<RateLimit>,
    /// Requests let through by this node since start.
    pub allowed: u64,
    /// Requests refused by this node since start.
    pub limited: u64,
    /// The busiest keys of the current minute.
    pub top_keys: Vec<TopKey>,
}

/// One limit: `{requests_per_minute, burst?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per minute.
    pub requests_per_minute: u64,
    /// Token bucket capacity, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// One of the busiest keys of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopKey {
    /// `ip:…` / `user:…`.
    pub key: String,
    /// Requests this minute.
    pub requests: u64,
    /// What is left of its quota.
    pub remaining: u64,
}

// ---------------------------------------------------------------------------------------------
// Metrics and health

/// `GET /admin/metrics`: the object under `"metrics"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Epoch seconds.
    pub timestamp: u64,
    /// Requests answered since start.
    pub total_requests: u64,
    /// Answers by status code (`"200"`).
    pub status_codes: BTreeMap<String, u64>,
    /// Each service's counters.
    pub services: BTreeMap<String, ServiceMetrics>,
}

/// One service in [`Metrics`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    /// Requests since start.
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// Mean response time, in seconds.
    pub avg_response_time: f64,
}

/// The node's status in [`Health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Serving.
    Healthy,
}

/// `GET /admin/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `healthy`.
    pub status: NodeStatus,
    /// Epoch seconds.
    pub timestamp: u64,
    /// The gateway's version.
    pub version: String,
    /// The configuration version this node runs (left out by a control plane without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<u64>,
    /// This node's id (left out by a control plane without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Seconds since start (left out by a control plane without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    /// As `GET /admin/services`.
    pub services: Services,
    /// As `GET /admin/circuit-breakers`.
    pub circuit_breakers: CircuitBreakers,
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// The body of `POST /admin/tokens`: `{user_id, username?, role?}`; other keys are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintTokenRequest {
    /// The token's `sub`.
    pub user_id: String,
    /// Its `username` claim.
    pub username: Option<String>,
    /// Its `role` claim.
    pub role: Option<String>,
}

impl MintTokenRequest {
    /// Reads a request body: 400 `Invalid request: user_id is required` ·
    /// `Invalid request: <key> must be a string`.
    pub fn from_object(object: &Map<String, Value>) -> Result<Self, AdminError> {
        let user_id = required_member(object, "user_id")?;
        Ok(Self {
            user_id,
            username: string_member(object, "username")?,
            role: string_member(object, "role")?,
        })
    }
}

/// The answer of `POST /admin/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The signed JWT.
    pub token: String,
    /// Its `exp`, in epoch seconds.
    pub expires_at: u64,
}

/// The body of `POST /admin/tokens/revoke`: `{"token": "<jwt>"}`; other keys are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeTokenRequest {
    /// The token to revoke.
    pub token: String,
}

impl RevokeTokenRequest {
    /// Reads a request body: 400 `Invalid request: token is required` ·
    /// `Invalid request: token must be a string`.
    pub fn from_object(object: &Map<String, Value>) -> Result<Self, AdminError> {
        Ok(Self {
            token: required_member(object, "token")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Users and API keys

/// The body of `PUT /admin/users/{id}` without `user_id` (the handler has checked that one
/// against the path): the control plane reads it, usually with [`UserDocument::parse`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserDocument(pub Map<String, Value>);

impl UserDocument {
    /// The body as a [`UserInput`]; 400 `Invalid user: <why>` (`unknown field …`).
    pub fn parse(self) -> Result<UserInput, AdminError> {
        parse_object(self.0, messages::INVALID_USER)
    }
}

/// A user record as `PUT /admin/users/{id}` takes it: `{username, email, role, status,
/// permissions}`, every key optional, unknown keys refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserInput {
    /// Display name.
    pub username: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Status; `"active"` when left out.
    pub status: Option<String>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// A user record as stored: the `user` of `GET` / `PUT /admin/users/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The id (`sub` of the user's tokens).
    pub user_id: String,
    /// Display name.
    pub username: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// `active` or anything else (not active).
    pub status: String,
    /// Granted permissions.
    pub permissions: Vec<String>,
}

/// The body of `POST /admin/api-keys`: `{user_id, username, role, permissions, expires_at?}`,
/// unknown keys refused; errors are `Invalid request: <why>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyInput {
    /// Owner's user id (required: empty is refused by the control plane).
    pub user_id: String,
    /// Owner's name.
    pub username: Option<String>,
    /// Role granted.
    pub role: Option<String>,
    /// Permissions granted.
    pub permissions: Vec<String>,
    /// Epoch seconds after which the key is refused.
    pub expires_at: Option<u64>,
}

/// The answer of `POST /admin/api-keys` (the key is shown once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key callers send as `X-API-Key`.
    pub key: String,
    /// Its public id, for `DELETE /admin/api-keys/{key_id}`.
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn instance_input_refuses_what_the_registry_refuses() {
        let ok: InstanceInput =
            parse_object(object(json!({"id": "a", "host": "h", "port": 1})), "x").unwrap();
        assert_eq!(ok.weight, None);
        let e = |v: Value| {
            parse_object::<InstanceInput>(object(v), messages::INVALID_INSTANCE)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(json!({"id": "a", "host": "h"})),
            "400 Invalid instance: missing field `port`"
        );
        assert_eq!(
            e(json!({"id": "a", "host": "h", "port": 1, "weight": null})),
            "400 Invalid instance: invalid type: null, expected u32"
        );
        assert_eq!(
            e(json!({"id": "a", "host": "h", "port": 1, "zone": "b"})),
            "400 Invalid instance: unknown field `zone`, expected one of `id`, `host`, `port`, `weight`, `metadata`"
        );
    }

    #[test]
    fn token_requests_check_their_members_in_order() {
        let e = |v: Value| {
            MintTokenRequest::from_object(&object(v))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e(json!({})), "400 Invalid request: user_id is required");
        assert_eq!(
            e(json!({"user_id": 1, "role": 2})),
            "400 Invalid request: user_id must be a string"
        );
        assert_eq!(
            e(json!({"user_id": "a", "role": 2})),
            "400 Invalid request: role must be a string"
        );
        let ok = MintTokenRequest::from_object(&object(json!({"user_id": "a", "x": 1}))).unwrap();
        assert_eq!((ok.user_id.as_str(), ok.role), ("a", None));
        assert_eq!(
            RevokeTokenRequest::from_object(&object(json!({"token": null})))
                .unwrap_err()
                .to_string(),
            "400 Invalid request: token is required"
        );
    }

    #[test]
    fn health_leaves_out_what_a_control_plane_does_not_have() {
        let h = Health {
            status: NodeStatus::Healthy,
            timestamp: 1,
            version: "v".into(),
            config_version: None,
            node: None,
            uptime_secs: None,
            services: Services::new(),
            circuit_breakers: CircuitBreakers::new(),
        };
        assert_eq!(
            serde_json::to_value(h).unwrap(),
            json!({"status": "healthy", "timestamp": 1, "version": "v", "services": {}, "circuit_breakers": {}})
        );
    }
}
