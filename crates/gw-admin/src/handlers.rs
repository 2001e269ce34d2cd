//! The admin endpoints: HTTP in, [`ControlPlane`] calls, SPEC JSON out.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use gw_core::RequestId;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::StatusCode;
use serde_json::{json, Value};

use axum::extract::RawQuery;

use crate::control::{AdminError, ControlPlane, RouteChange};

/// The content type of the Prometheus text exposition format.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The request's id, when a layer in front set one; error bodies carry it.
#[derive(Debug)]
pub(crate) struct ReqId(Option<RequestId>);

impl<S: Send + Sync> FromRequestParts<S> for ReqId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.extensions.get::<RequestId>().cloned()))
    }
}

impl ReqId {
    fn error(&self, status: StatusCode, message: &str) -> Response {
        gw_core::error_response(status, message, self.0.as_ref())
    }
}

type Control<C> = State<Arc<C>>;

pub(crate) async fn list_routes<C: ControlPlane>(State(c): Control<C>) -> Response {
    Json(json!({ "routes": c.list_routes().await })).into_response()
}

pub(crate) async fn get_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    // An id that does not decode (bad percent-encoding, not UTF-8) cannot name a route.
    let route = match id {
        Ok(Path(id)) => c.get_route(&id).await,
        Err(_) => None,
    };
    match route {
        Some(route) => Json(json!({ "route": route })).into_response(),
        None => rid.error(StatusCode::NOT_FOUND, "Route not found"),
    }
}

pub(crate) async fn post_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return rid.error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
        }
        Err(_) => return rid.error(StatusCode::BAD_REQUEST, "Invalid JSON"),
    };
    // Parsed by hand (the access layer already required `application/json`): the message is
    // the contract, not axum's.
    let Ok(route) = serde_json::from_slice::<Value>(&body) else {
        return rid.error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    if !route.is_object() {
        return rid.error(
            StatusCode::BAD_REQUEST,
            "Invalid route configuration: a route must be a JSON object",
        );
    }
    match c.put_route(route).await {
        Ok(RouteChange { route, created }) => {
            let message = if created {
                "Route added"
            } else {
                "Route updated"
            };
            if let Err(res) = wait_if_asked(&*c, &rid, query.as_deref()).await {
                return res;
            }
            let body = json!({ "message": message, "route": route });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => rid.error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid route configuration: {}", e.message),
        ),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn delete_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let removed = match id {
        Ok(Path(id)) => match c.delete_route(&id).await {
            Ok(removed) => removed,
            Err(e) => return refused(&rid, e),
        },
        Err(_) => false,
    };
    if removed {
        if let Err(res) = wait_if_asked(&*c, &rid, query.as_deref()).await {
            return res;
        }
        Json(json!({ "message": "Route removed" })).into_response()
    } else {
        rid.error(StatusCode::NOT_FOUND, "Route not found")
    }
}

pub(crate) async fn metrics_json<C: ControlPlane>(State(c): Control<C>) -> Response {
    Json(json!({ "metrics": c.metrics_json() })).into_response()
}

pub(crate) async fn metrics_prometheus<C: ControlPlane>(State(c): Control<C>) -> Response {
    let content_type = HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE);
    ([(CONTENT_TYPE, content_type)], c.metrics_prometheus()).into_response()
}

pub(crate) async fn health<C: ControlPlane>(State(c): Control<C>) -> Response {
    Json(c.health().await).into_response()
}

pub(crate) async fn not_found(rid: ReqId) -> Response {
    rid.error(StatusCode::NOT_FOUND, "Endpoint not found")
}

/// axum adds the `Allow` header listing the path's methods.
pub(crate) async fn method_not_allowed(rid: ReqId) -> Response {
    rid.error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// With `?wait=all`, answers only once every live node runs the configuration version this
/// node now has; 504 naming the nodes that did not get there in time.
#[allow(clippy::result_large_err)]
async fn wait_if_asked<C: ControlPlane>(
    c: &C,
    rid: &ReqId,
    query: Option<&str>,
) -> Result<(), Response> {
    let wants = query.is_some_and(|q| q.split('&').any(|kv| kv == "wait=all"));
    if !wants {
        return Ok(());
    }
    let version = c.config_version();
    c.wait_for_version(version).await.map_err(|late| {
        rid.error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "Timed out waiting for nodes to apply version {version}: {}",
                late.join(", ")
            ),
        )
    })
}

/// A JSON object body, or the SPEC's 400.
#[allow(clippy::result_large_err)] // built once per admin request; boxing buys nothing here
fn json_object(rid: &ReqId, body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(rid.error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"));
        }
        Err(_) => return Err(rid.error(StatusCode::BAD_REQUEST, "Invalid JSON")),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(rid.error(StatusCode::BAD_REQUEST, "Invalid JSON: expected an object")),
        Err(_) => Err(rid.error(StatusCode::BAD_REQUEST, "Invalid JSON")),
    }
}

fn refused(rid: &ReqId, e: AdminError) -> Response {
    rid.error(e.status, &e.message)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A path parameter that decodes, or the endpoint's 404.
fn param(p: Result<Path<String>, PathRejection>) -> Option<String> {
    p.ok().map(|Path(s)| s)
}

pub(crate) async fn list_services<C: ControlPlane>(State(c): Control<C>, rid: ReqId) -> Response {
    match c.list_services().await {
        Ok(v) => answer(StatusCode::OK, json!({ "services": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn get_service<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(name) = param(name) else {
        return rid.error(StatusCode::NOT_FOUND, "Service not found");
    };
    match c.get_service(&name).await {
        Ok(v) => answer(StatusCode::OK, v),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn register_instance<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(name) = param(name) else {
        return rid.error(StatusCode::NOT_FOUND, "Service not found");
    };
    let instance = match json_object(&rid, body) {
        Ok(v) => v,
        Err(res) => return res,
    };
    match c.register_instance(&name, instance).await {
        Ok(instance) => {
            if let Err(res) = wait_if_asked(&*c, &rid, query.as_deref()).await {
                return res;
            }
            answer(
                StatusCode::CREATED,
                json!({ "message": "Service instance registered", "instance": instance }),
            )
        }
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn deregister_instance<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((name, id))) = path else {
        return rid.error(StatusCode::NOT_FOUND, "Service instance not found");
    };
    match c.deregister_instance(&name, &id).await {
        Ok(()) => {
            if let Err(res) = wait_if_asked(&*c, &rid, query.as_deref()).await {
                return res;
            }
            answer(
                StatusCode::OK,
                json!({ "message": "Service instance deregistered" }),
            )
        }
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn list_circuit_breakers<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
) -> Response {
    match c.list_circuit_breakers().await {
        Ok(v) => answer(StatusCode::OK, json!({ "circuit_breakers": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn get_circuit_breaker<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    service: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(service) = param(service) else {
        return rid.error(StatusCode::NOT_FOUND, "Circuit breaker not found");
    };
    match c.get_circuit_breaker(&service).await {
        Ok(v) => answer(StatusCode::OK, json!({ "circuit_breaker": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn reset_circuit_breaker<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    service: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(service) = param(service) else {
        return rid.error(StatusCode::NOT_FOUND, "Circuit breaker not found");
    };
    match c.reset_circuit_breaker(&service).await {
        Ok(()) => answer(
            StatusCode::OK,
            json!({ "message": "Circuit breaker reset successfully" }),
        ),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn rate_limits<C: ControlPlane>(State(c): Control<C>, rid: ReqId) -> Response {
    match c.rate_limits().await {
        Ok(v) => answer(StatusCode::OK, json!({ "rate_limits": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn mint_token<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match json_object(&rid, body) {
        Ok(v) => v,
        Err(res) => return res,
    };
    match c.mint_token(request).await {
        Ok(v) => answer(StatusCode::CREATED, v),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn revoke_token<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match json_object(&rid, body) {
        Ok(v) => v,
        Err(res) => return res,
    };
    match c.revoke_token(request).await {
        Ok(()) => answer(StatusCode::OK, json!({ "message": "Token revoked" })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn put_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(id) = param(id) else {
        return rid.error(StatusCode::NOT_FOUND, "User not found");
    };
    let mut user = match json_object(&rid, body) {
        Ok(v) => v,
        Err(res) => return res,
    };
    // The record as `GET` shows it carries its id: taken back when it is the path's own.
    if let Some(given) = user.as_object_mut().and_then(|o| o.remove("user_id")) {
        if given.as_str() != Some(id.as_str()) {
            return rid.error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Invalid user: user_id {given} does not match the path's id {}",
                    Value::String(id)
                ),
            );
        }
    }
    match c.put_user(&id, user).await {
        Ok(v) => answer(StatusCode::OK, json!({ "user": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn get_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = param(id) else {
        return rid.error(StatusCode::NOT_FOUND, "User not found");
    };
    match c.get_user(&id).await {
        Ok(v) => answer(StatusCode::OK, json!({ "user": v })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn delete_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = param(id) else {
        return rid.error(StatusCode::NOT_FOUND, "User not found");
    };
    match c.delete_user(&id).await {
        Ok(()) => answer(StatusCode::OK, json!({ "message": "User deleted" })),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn create_api_key<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match json_object(&rid, body) {
        Ok(v) => v,
        Err(res) => return res,
    };
    match c.create_api_key(request).await {
        Ok(v) => answer(StatusCode::CREATED, v),
        Err(e) => refused(&rid, e),
    }
}

pub(crate) async fn delete_api_key<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    key_id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(key_id) = param(key_id) else {
        return rid.error(StatusCode::NOT_FOUND, "API key not found");
    };
    match c.delete_api_key(&key_id).await {
        Ok(()) => answer(StatusCode::OK, json!({ "message": "API key revoked" })),
        Err(e) => refused(&rid, e),
    }
}
