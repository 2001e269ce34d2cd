//! A rate-limited axum app on the memory store: `cargo run -p gw-ratelimit --example memory`.
//!
//! Sends 7 requests to a route limited to 5 per minute and prints each answer's status and
//! rate-limit headers, then the admin stats.

use std::sync::Arc;

use axum::{routing::get, Router};
use gw_ratelimit::{
    Algorithm, Limit, MemoryStore, RateLimitConfig, RateLimitLayer, RateLimiter, RoutePolicy,
};
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = RateLimitConfig {
        algorithm: Algorithm::SlidingWindow,
        default: Some(Limit::per_minute(5)),
        global: Some(Limit::per_minute(1000)),
        ..RateLimitConfig::default()
    };
    let errors = config.validate();
    assert!(errors.is_empty(), "{errors:?}");
    let limiter = RateLimiter::new(&config, Arc::new(MemoryStore::new()));
    let app: Router = Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(
            limiter.clone(),
            RoutePolicy::from_config("hello", None, &config),
        ));

    for i in 1..=7 {
        let req = http::Request::get("/hello")
            .body(axum::body::Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        let h = res.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "request {i}: {} limit={} remaining={} reset={} retry-after={} RateLimit: {}",
            res.status(),
            get("x-ratelimit-limit"),
            get("x-ratelimit-remaining"),
            get("x-ratelimit-reset"),
            get("retry-after"),
            get("ratelimit"),
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "rate_limits": limiter.stats() }))
            .expect("json")
    );
}
