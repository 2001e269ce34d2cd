//! The edge's checks in front of a plain axum app: dot segments are resolved before axum
//! routes, and requests the edge refuses get the gateway's JSON error.
//!
//! `cargo run -p gw-edge --example axum_edge`

use axum::routing::get;
use axum::Router;
use gw_core::Body;
use gw_edge::{EdgeLayer, EdgePolicy};
use http::Request;
use tower::{Layer, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Router::new()
        .route("/public/{*rest}", get(|| async { "public" }))
        .route(
            "/private/{*rest}",
            get(|| async { "private: needs a token" }),
        );
    let edge = EdgeLayer::new(EdgePolicy::default()).layer(app);

    for target in [
        "/public/docs",
        "/public/../private/x",
        "/public/%2e%2e/%2e%2e/etc/passwd",
        "/public/..%2Fprivate/x",
    ] {
        let req = Request::get(target)
            .header("host", "api.example")
            .body(Body::empty())
            .unwrap();
        let res = edge.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        println!(
            "{target:<36} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}
