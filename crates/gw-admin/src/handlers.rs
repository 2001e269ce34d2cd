//! The admin endpoints: HTTP in, typed [`ControlPlane`] calls, the JSON of
//! [`crate::model`] out.
//!
//! Every handler computes a [`Reply`]; [`ReqId::reply`] turns a refusal into the
//! `{"error": ...}` answer with the request id. The steps they share (a path parameter, a JSON
//! body, `?wait=all`, the envelopes around the values) are the helpers at the top.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use gw_core::messages::{BODY_TOO_LARGE, ENDPOINT_NOT_FOUND, METHOD_NOT_ALLOWED, ROUTE_NOT_FOUND};
use gw_core::{HttpError, RequestId};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::StatusCode;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::control::{AdminError, ControlPlane, RouteChange};
use crate::messages as m;
use crate::model::{
    parse_object, ApiKeyInput, InstanceInput, MintTokenRequest, RevokeTokenRequest, RouteDocument,
    UserDocument,
};

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
    /// The answer, or the refusal as `{"error": ..., "request_id": ...}`.
    fn reply(&self, reply: Reply) -> Response {
        reply.unwrap_or_else(|e| gw_core::error_into_response(&e, self.0.as_ref()))
    }
}

/// What a handler computes: the answer, or a refusal.
type Reply = Result<Response, AdminError>;

type Control<C> = State<Arc<C>>;

/// A path parameter, or why it did not decode.
type Param<T = String> = Result<Path<T>, PathRejection>;

/// A request body, or why it could not be read.
type RawBody = Result<Bytes, BytesRejection>;

/// The JSON object `{"message": message}` and/or `{key: value}`: the envelopes the answers
/// put their values in.
struct Envelope<T> {
    message: Option<&'static str>,
    entry: Option<(&'static str, T)>,
}

impl<T: Serialize> Serialize for Envelope<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = usize::from(self.message.is_some()) + usize::from(self.entry.is_some());
        let mut map = s.serialize_map(Some(len))?;
        if let Some(message) = self.message {
            map.serialize_entry("message", message)?;
        }
        if let Some((key, value)) = &self.entry {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `value` as the JSON answer.
fn json(status: StatusCode, value: impl Serialize) -> Reply {
    Ok((status, Json(value)).into_response())
}

/// `{key: value}`.
fn keyed<T: Serialize>(key: &'static str, value: T) -> Json<Envelope<T>> {
    Json(Envelope {
        message: None,
        entry: Some((key, value)),
    })
}

/// 200 `{key: value}`.
fn wrapped(key: &'static str, value: impl Serialize) -> Reply {
    Ok(keyed(key, value).into_response())
}

/// 200 `{"message": message}`.
fn done(message: &'static str) -> Reply {
    json(
        StatusCode::OK,
        Envelope::<()> {
            message: Some(message),
            entry: None,
        },
    )
}

/// 201 `{"message": message, key: value}`.
fn created(message: &'static str, key: &'static str, value: impl Serialize) -> Reply {
    json(
        StatusCode::CREATED,
        Envelope {
            message: Some(message),
            entry: Some((key, value)),
        },
    )
}

/// A path parameter that decodes (bad percent-encoding or not UTF-8 names nothing), or the
/// endpoint's 404.
fn param<T>(p: Param<T>, missing: &'static str) -> Result<T, AdminError> {
    p.map(|Path(v)| v)
        .map_err(|_| AdminError::not_found(missing))
}

/// A JSON body, or 413 / 400 `Invalid JSON`. Parsed by hand (the access layer already
/// required `application/json`): the message is the contract, not axum's.
fn json_body(body: RawBody) -> Result<Value, AdminError> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(AdminError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                BODY_TOO_LARGE,
            ));
        }
        Err(_) => return Err(AdminError::bad_request(m::INVALID_JSON)),
    };
    serde_json::from_slice(&body).map_err(|_| AdminError::bad_request(m::INVALID_JSON))
}

/// A JSON object body, or the 400 of [`json_body`] / `Invalid JSON: expected an object`.
fn json_object(body: RawBody) -> Result<Map<String, Value>, AdminError> {
    match json_body(body)? {
        Value::Object(object) => Ok(object),
        _ => Err(AdminError::bad_request(m::INVALID_JSON_NOT_AN_OBJECT)),
    }
}

/// With `?wait=all`, returns only once every live node runs the configuration version this
/// node now has; 504 naming the nodes that did not get there in time.
async fn wait_if_asked<C: ControlPlane>(c: &C, query: Option<&str>) -> Result<(), AdminError> {
    let wants = query.is_some_and(|q| q.split('&').any(|kv| kv == "wait=all"));
    if !wants {
        return Ok(());
    }
    let version = c.config_version();
    c.wait_for_version(version).await.map_err(|late| {
        AdminError::new(
            StatusCode::GATEWAY_TIMEOUT,
            m::wait_timed_out(version, &late),
        )
    })
}

pub(crate) async fn list_routes<C: ControlPlane>(State(c): Control<C>) -> Response {
    keyed("routes", c.list_routes().await).into_response()
}

pub(crate) async fn get_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Param,
) -> Response {
    rid.reply(
        async {
            let id = param(id, ROUTE_NOT_FOUND)?;
            let route = c.get_route(&id).await;
            wrapped(
                "route",
                route.ok_or_else(|| AdminError::not_found(ROUTE_NOT_FOUND))?,
            )
        }
        .await,
    )
}

pub(crate) async fn post_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let Value::Object(route) = json_body(body)? else {
                return Err(AdminError::bad_request(m::invalid(
                    m::INVALID_ROUTE,
                    m::ROUTE_NOT_AN_OBJECT,
                )));
            };
            let RouteChange { route, created } =
                c.put_route(RouteDocument(route))
                    .await
                    .map_err(|e| match e.status() {
                        StatusCode::BAD_REQUEST => {
                            AdminError::bad_request(m::invalid(m::INVALID_ROUTE, e.message()))
                        }
                        _ => e,
                    })?;
            wait_if_asked(&*c, query.as_deref()).await?;
            let message = if created {
                m::ROUTE_ADDED
            } else {
                m::ROUTE_UPDATED
            };
            self::created(message, "route", route)
        }
        .await,
    )
}

pub(crate) async fn delete_route<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    id: Param,
) -> Response {
    rid.reply(
        async {
            let id = param(id, ROUTE_NOT_FOUND)?;
            if !c.delete_route(&id).await? {
                return Err(AdminError::not_found(ROUTE_NOT_FOUND));
            }
            wait_if_asked(&*c, query.as_deref()).await?;
            done(m::ROUTE_REMOVED)
        }
        .await,
    )
}

pub(crate) async fn metrics_json<C: ControlPlane>(State(c): Control<C>) -> Response {
    keyed("metrics", c.metrics_json()).into_response()
}

pub(crate) async fn metrics_prometheus<C: ControlPlane>(State(c): Control<C>) -> Response {
    let content_type = HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE);
    ([(CONTENT_TYPE, content_type)], c.metrics_prometheus()).into_response()
}

pub(crate) async fn health<C: ControlPlane>(State(c): Control<C>) -> Response {
    Json(c.health().await).into_response()
}

pub(crate) async fn not_found(rid: ReqId) -> Response {
    rid.reply(Err(AdminError::not_found(ENDPOINT_NOT_FOUND)))
}

/// axum adds the `Allow` header listing the path's methods.
pub(crate) async fn method_not_allowed(rid: ReqId) -> Response {
    rid.reply(Err(AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        METHOD_NOT_ALLOWED,
    )))
}

pub(crate) async fn list_services<C: ControlPlane>(State(c): Control<C>, rid: ReqId) -> Response {
    rid.reply(async { wrapped("services", c.list_services().await?) }.await)
}

pub(crate) async fn get_service<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    name: Param,
) -> Response {
    rid.reply(
        async {
            let name = param(name, m::SERVICE_NOT_FOUND)?;
            json(StatusCode::OK, c.get_service(&name).await?)
        }
        .await,
    )
}

pub(crate) async fn register_instance<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    name: Param,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let name = param(name, m::SERVICE_NOT_FOUND)?;
            let instance: InstanceInput = parse_object(json_object(body)?, m::INVALID_INSTANCE)?;
            let instance = c.register_instance(&name, instance).await?;
            wait_if_asked(&*c, query.as_deref()).await?;
            created(m::INSTANCE_REGISTERED, "instance", instance)
        }
        .await,
    )
}

pub(crate) async fn deregister_instance<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    RawQuery(query): RawQuery,
    path: Param<(String, String)>,
) -> Response {
    rid.reply(
        async {
            let (name, id) = param(path, m::INSTANCE_NOT_FOUND)?;
            c.deregister_instance(&name, &id).await?;
            wait_if_asked(&*c, query.as_deref()).await?;
            done(m::INSTANCE_DEREGISTERED)
        }
        .await,
    )
}

pub(crate) async fn list_circuit_breakers<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
) -> Response {
    rid.reply(async { wrapped("circuit_breakers", c.list_circuit_breakers().await?) }.await)
}

pub(crate) async fn get_circuit_breaker<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    service: Param,
) -> Response {
    rid.reply(
        async {
            let service = param(service, m::CIRCUIT_BREAKER_NOT_FOUND)?;
            wrapped("circuit_breaker", c.get_circuit_breaker(&service).await?)
        }
        .await,
    )
}

pub(crate) async fn reset_circuit_breaker<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    service: Param,
) -> Response {
    rid.reply(
        async {
            let service = param(service, m::CIRCUIT_BREAKER_NOT_FOUND)?;
            c.reset_circuit_breaker(&service).await?;
            done(m::CIRCUIT_BREAKER_RESET)
        }
        .await,
    )
}

pub(crate) async fn rate_limits<C: ControlPlane>(State(c): Control<C>, rid: ReqId) -> Response {
    rid.reply(async { wrapped("rate_limits", c.rate_limits().await?) }.await)
}

pub(crate) async fn mint_token<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let body = json_object(body)?;
            c.minting_available()?;
            let request = MintTokenRequest::from_object(&body)?;
            json(StatusCode::CREATED, c.mint_token(request).await?)
        }
        .await,
    )
}

pub(crate) async fn revoke_token<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let request = RevokeTokenRequest::from_object(&json_object(body)?)?;
            c.revoke_token(request).await?;
            done(m::TOKEN_REVOKED)
        }
        .await,
    )
}

pub(crate) async fn put_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Param,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let id = param(id, m::USER_NOT_FOUND)?;
            let mut user = json_object(body)?;
            // The record as `GET` shows it carries its id: taken back when it is the path's own.
            if let Some(given) = user.remove("user_id") {
                if given.as_str() != Some(id.as_str()) {
                    return Err(AdminError::bad_request(m::invalid(
                        m::INVALID_USER,
                        format_args!(
                            "user_id {given} does not match the path's id {}",
                            Value::String(id)
                        ),
                    )));
                }
            }
            wrapped("user", c.put_user(&id, UserDocument(user)).await?)
        }
        .await,
    )
}

pub(crate) async fn get_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Param,
) -> Response {
    rid.reply(
        async {
            let id = param(id, m::USER_NOT_FOUND)?;
            wrapped("user", c.get_user(&id).await?)
        }
        .await,
    )
}

pub(crate) async fn delete_user<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    id: Param,
) -> Response {
    rid.reply(
        async {
            let id = param(id, m::USER_NOT_FOUND)?;
            c.delete_user(&id).await?;
            done(m::USER_DELETED)
        }
        .await,
    )
}

pub(crate) async fn create_api_key<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    body: RawBody,
) -> Response {
    rid.reply(
        async {
            let request: ApiKeyInput = parse_object(json_object(body)?, m::INVALID_REQUEST)?;
            json(StatusCode::CREATED, c.create_api_key(request).await?)
        }
        .await,
    )
}

pub(crate) async fn delete_api_key<C: ControlPlane>(
    State(c): Control<C>,
    rid: ReqId,
    key_id: Param,
) -> Response {
    rid.reply(
        async {
            let key_id = param(key_id, m::API_KEY_NOT_FOUND)?;
            c.delete_api_key(&key_id).await?;
            done(m::API_KEY_REVOKED)
        }
        .await,
    )
}
