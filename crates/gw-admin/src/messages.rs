//! The messages only the admin API answers with, in one place (docs/admin-api.md lists them).
//!
//! The messages the admin API shares with the proxy (`Access denied`, `Unauthorized`,
//! `Endpoint not found`, `Method not allowed`, `Request body too large`, `Route not found`)
//! are [`gw_core::messages`]; these are the rest. Tests compare against these constants' text.

/// 404: no service of that name.
pub const SERVICE_NOT_FOUND: &str = "Service not found";
/// 404: the service has no instance of that id.
pub const INSTANCE_NOT_FOUND: &str = "Service instance not found";
/// 404: no circuit breaker for that service.
pub const CIRCUIT_BREAKER_NOT_FOUND: &str = "Circuit breaker not found";
/// 404: no user record of that id (on the admin listener; the proxy's 401 of the same text is
/// [`gw_core::messages::USER_NOT_FOUND`]).
pub const USER_NOT_FOUND: &str = "User not found";
/// 404: no API key of that id.
pub const API_KEY_NOT_FOUND: &str = "API key not found";

/// 400: a request body that is not JSON.
pub const INVALID_JSON: &str = "Invalid JSON";
/// 400: a request body that is JSON but not an object.
pub const INVALID_JSON_NOT_AN_OBJECT: &str = "Invalid JSON: expected an object";
/// 403: a `Host` outside `admin.allowed_hosts`.
pub const HOST_NOT_ALLOWED: &str = "Host not allowed";
/// 403: an `Origin` naming another site.
pub const ORIGIN_NOT_ALLOWED: &str = "Origin not allowed";
/// 415: a body that is not `application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "Unsupported media type";
/// 400: `POST /admin/tokens` without a secret to sign with.
pub const MINTING_UNAVAILABLE: &str =
    "Token minting needs [auth.jwt] with an HS256/384/512 algorithm and a secret";

/// The prefix of a 400 for a route: `Invalid route configuration: <why>`.
pub const INVALID_ROUTE: &str = "Invalid route configuration";
/// The prefix of a 400 for an instance: `Invalid instance: <why>`.
pub const INVALID_INSTANCE: &str = "Invalid instance";
/// The prefix of a 400 for a user record: `Invalid user: <why>`.
pub const INVALID_USER: &str = "Invalid user";
/// The prefix of a 400 for a token or API-key request: `Invalid request: <why>`.
pub const INVALID_REQUEST: &str = "Invalid request";
/// The prefix of a 400 for a token that does not verify: `Invalid token: <why>`.
pub const INVALID_TOKEN: &str = "Invalid token";
/// The prefix of a 503 when the shared store did not answer: `Store unavailable: <why>`.
pub const STORE_UNAVAILABLE: &str = "Store unavailable";

/// 201 `POST /admin/routes`, a new id.
pub const ROUTE_ADDED: &str = "Route added";
/// 201 `POST /admin/routes`, an id that existed.
pub const ROUTE_UPDATED: &str = "Route updated";
/// 200 `DELETE /admin/routes/{id}`.
pub const ROUTE_REMOVED: &str = "Route removed";
/// 201 `POST /admin/services/{name}/instances`.
pub const INSTANCE_REGISTERED: &str = "Service instance registered";
/// 200 `DELETE /admin/services/{name}/instances/{id}`.
pub const INSTANCE_DEREGISTERED: &str = "Service instance deregistered";
/// 200 `POST /admin/circuit-breakers/{service}/reset`.
pub const CIRCUIT_BREAKER_RESET: &str = "Circuit breaker reset successfully";
/// 200 `POST /admin/tokens/revoke`.
pub const TOKEN_REVOKED: &str = "Token revoked";
/// 200 `DELETE /admin/users/{id}`.
pub const USER_DELETED: &str = "User deleted";
/// 200 `DELETE /admin/api-keys/{key_id}`.
pub const API_KEY_REVOKED: &str = "API key revoked";

/// The `<why>` of `Invalid route configuration: <why>` for a body that is not an object.
pub const ROUTE_NOT_AN_OBJECT: &str = "a route must be a JSON object";

/// 504 with `?wait=all`: the change was made, but `late` did not apply `version` in time.
pub fn wait_timed_out(version: u64, late: &[String]) -> String {
    format!(
        "Timed out waiting for nodes to apply version {version}: {}",
        late.join(", ")
    )
}

/// `"{prefix}: {why}"`, the shape of every 400 that names what is wrong.
pub fn invalid(prefix: &str, why: impl std::fmt::Display) -> String {
    format!("{prefix}: {why}")
}
