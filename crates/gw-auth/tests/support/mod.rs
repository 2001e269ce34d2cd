//! gw-auth's own test helpers: token and request builders over its API (Redis, polls and
//! the rest come from the workspace's test-support crate).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use gw_auth::{AuthLayer, Authenticator, JwtConfig, RoutePolicy};
use gw_core::{Body, Identity};
use http::{Request, Response};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tower::{BoxError, ServiceBuilder, ServiceExt};

pub const SECRET: &str = "test-secret-0123456789-abcdefghij";

pub fn now() -> u64 {
    gw_auth::unix_now()
}

pub fn key_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

pub fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

pub fn hs_config() -> JwtConfig {
    JwtConfig {
        secret: Some(SECRET.into()),
        user_lookup: false,
        ..JwtConfig::default()
    }
}

/// Signs `claims` with `alg` and `key`.
pub fn sign(
    alg: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    claims: serde_json::Value,
) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, &claims, key).unwrap()
}

/// `claims` signed with HS256 under [`SECRET`].
pub fn hs256(claims: serde_json::Value) -> String {
    test_support::jwt::sign_hs256(&claims, SECRET)
}

/// Typical claims valid for an hour.
pub fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "exp": now() + 3600, "iat": now(), "iss": "api-gateway",
        "role": "user", "permissions": ["read"],
    })
}

/// The upstream: echoes what it saw as response headers.
pub async fn echo(req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let mut res = Response::new(Body::empty());
    let h = res.headers_mut();
    if let Some(v) = req.headers().get("x-user-id") {
        h.insert("seen-user-id", v.clone());
    }
    if let Some(v) = req.headers().get("x-user-role") {
        h.insert("seen-user-role", v.clone());
    }
    if req.headers().contains_key("x-user-evil") {
        h.insert("seen-evil", "1".parse().unwrap());
    }
    if let Some(id) = req.extensions().get::<Identity>() {
        h.insert("seen-identity", id.user_id.parse().unwrap());
    }
    Ok(res)
}

/// Runs one request through `AuthLayer(auth, policy)` over [`echo`].
pub async fn call(
    auth: &Arc<Authenticator>,
    policy: RoutePolicy,
    req: Request<Body>,
) -> Response<Body> {
    ServiceBuilder::new()
        .layer(AuthLayer::new(auth.clone(), policy))
        .service_fn(echo)
        .oneshot(req)
        .await
        .unwrap()
}

pub fn get(path: &str) -> http::request::Builder {
    Request::get(path)
}

pub fn bearer(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// The `error` field of a JSON answer.
pub async fn error_of(res: Response<Body>) -> String {
    use http_body_util::BodyExt;
    let b = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    v["error"].as_str().unwrap_or_default().to_owned()
}
