//! Runs an axum app behind `AuthLayer` with the memory store and prints what each caller gets.
//!
//! `cargo run -p gw-auth --example memory`

use std::sync::Arc;

use axum::{routing::get, Extension, Router};
use gw_auth::{
    ApiKeyInput, AuthLayer, AuthMethod, Authenticator, JwtConfig, MemoryAuthStore, RoutePolicy,
    SecurityConfig, UserInput,
};
use gw_core::Identity;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = JwtConfig {
        secret: Some("example-secret".into()),
        ..JwtConfig::default()
    };
    let auth = Authenticator::new(config, Arc::new(MemoryAuthStore::new()))
        .await
        .expect("valid config");
    auth.put_user(
        "alice",
        UserInput {
            role: Some("admin".into()),
            ..UserInput::default()
        },
    )
    .await
    .unwrap();
    let (token, _) = auth.mint_token("alice", Some("Alice"), None).unwrap();
    let (key, _) = auth
        .create_api_key(ApiKeyInput {
            user_id: "billing".into(),
            role: Some("service".into()),
            ..ApiKeyInput::default()
        })
        .await
        .unwrap();

    let policy = RoutePolicy::required(AuthMethod::JwtOrApiKey).with_security(SecurityConfig {
        allowed_roles: vec!["admin".into(), "service".into()],
        ..SecurityConfig::default()
    });
    let app: Router = Router::new()
        .route(
            "/whoami",
            get(|Extension(id): Extension<Identity>| async move { format!("{id:?}") }),
        )
        .layer(AuthLayer::new(auth.clone(), policy));

    for (what, header, value) in [
        ("no credentials", None, String::new()),
        ("JWT", Some("authorization"), format!("Bearer {token}")),
        ("API key", Some("x-api-key"), key),
        ("bad API key", Some("x-api-key"), "gwk_wrong".to_owned()),
    ] {
        let mut req = http::Request::get("/whoami");
        if let Some(h) = header {
            req = req.header(h, value);
        }
        let res = app
            .clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        println!("{what:>15}: {status} {}", String::from_utf8_lossy(&body));
    }
}
