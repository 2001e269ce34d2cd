//! Authentication and authorization for the gateway, as a tower layer.
//!
//! - **JWT** in `Authorization: Bearer`: HS256/384/512 with a `secret`, RS*/ES256/ES384/EdDSA
//!   with a `public_key_file` or a `jwks_url` (keys cached by `kid` in an `ArcSwap`, refreshed
//!   every `Cache-Control: max-age` of the JWKS answer, bounded to 60 s..1 h, 5 min without
//!   one, and on an unknown `kid` at most once per 10 s; old keys kept when a refresh fails, so
//!   a JWKS outage never blocks tokens signed with known keys; only keys with `use` absent or
//!   `sig` are taken, and a key's `alg` restricts it to that algorithm). Only the configured
//!   algorithms are accepted: `alg: none` and HS/RS confusion are refused. `exp` (exclusive),
//!   `nbf`, `iat` (not in the future), `iss`, `aud` and `leeway_secs` are checked with an
//!   explicit clock; a revocation lasts until `exp + leeway_secs`. A JWKS is fetched over `https://`
//!   (rustls with the ring provider, public web PKI roots) or `http://`.
//! - **API keys** in `X-API-Key`, stored as `api_key:{sha256 hex}`; `status`, `expires_at`.
//! - **Revocation** (`blacklist:{jti}`), **user lookup** (`user:{sub}`, status `active`), role,
//!   permission and ownership rules ([`SecurityConfig`]), `require_https`.
//! - One store round trip per authenticated request (revocation, user and owner fetched in
//!   one pipeline); none at all on routes without `auth_required`.
//!
//! - **Background work**: with a `jwks_url`, [`Authenticator::new`] and
//!   [`Authenticator::with_options`] spawn the periodic JWKS refresh on the current tokio
//!   runtime; [`Authenticator::with_options_unstarted`] spawns nothing and leaves
//!   [`Authenticator::jwks_refresh`] (a future that ends when the authenticator is dropped)
//!   to the embedder, for one that starts all its tasks in one place.
//!
//! After authentication the [`gw_core::Identity`] is put into the request **and** response
//! extensions, and `X-User-ID` / `X-User-Role` are set for the upstream; client-sent
//! `X-User-*` headers are removed first, on every route. Refusals are the gateway's JSON answers (docs/http-answers.md)
//! (401 with `WWW-Authenticate`, 403, 503 when the store is down).
//!
//! Why not tower-http's `ValidateRequestHeaderLayer`/`auth`: the gateway needs JWT/JWKS,
//! revocation through a shared store, the exact messages of docs/http-answers.md and an [`Identity`](gw_core::Identity)
//! for the other layers.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Extension, Router};
//! use gw_auth::{AuthLayer, AuthMethod, Authenticator, JwtConfig, MemoryAuthStore, RoutePolicy};
//! use gw_core::Identity;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = JwtConfig {
//!     secret: Some("change-me".into()),
//!     user_lookup: false,
//!     ..JwtConfig::default()
//! };
//! let auth = Authenticator::new(config, Arc::new(MemoryAuthStore::new())).await.unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(|Extension(id): Extension<Identity>| async move { id.user_id }))
//!     .layer(AuthLayer::new(auth.clone(), RoutePolicy::required(AuthMethod::Jwt)));
//!
//! let (token, _exp) = auth.mint_token("alice", None, Some("user")).unwrap();
//! # use tower::ServiceExt;
//! let req = http::Request::get("/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # });
//! ```

mod authenticator;
mod config;
mod error;
mod jwt;
mod layer;
mod store;
mod verified;

pub use authenticator::{
    hash_api_key, unix_now, ApiKeyInput, Authenticator, Refusal, UserInput, X_API_KEY,
};
pub use config::{AuthMethod, JwtConfig, ResourceCheck, RoutePolicy, SecurityConfig};
pub use error::{AdminError, AuthConfigError, AuthError, StoreError};
pub use jwt::{parse_algorithm, JwksOptions, TokenClaims};
pub use layer::{Auth, AuthLayer, ResponseFuture};
pub use store::{
    ApiKeyRecord, AuthStore, BoxFuture, Lookup, LookupResult, MemoryAuthStore, RedisAuthStore,
    UserRecord,
};
