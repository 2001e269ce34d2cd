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

use crate::control::{ControlPlane, RouteChange};

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
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return rid.error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
        }
        Err(_) => return rid.error(StatusCode::BAD_REQUEST, "Invalid JSON"),
    };
    // Parsed by hand, whatever the Content-Type: the SPEC message is the contract, not axum's.
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
            let body = json!({ "message": message, "route": route });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(reason) => rid.error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid route configuration: {reason}"),
        ),
    }
}

pub(crate) async fn delete_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let removed = match id {
        Ok(Path(id)) => c.delete_route(&id).await,
        Err(_) => false,
    };
    if removed {
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
