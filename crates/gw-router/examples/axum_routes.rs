//! Two plain axum apps behind a gw-router route table: routes chosen by path prefix and
//! regex, the prefix stripped for one, 404 / 405 answered by the router, and the table
//! swapped at runtime.
//!
//! `cargo run -p gw-router --example axum_routes`

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::routing::get;
use gw_router::{Body, PathMatcher, RouteService, RouteSpec, RouteTable, Router};
use http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn users() -> RouteService {
    RouteService::new(
        axum::Router::new().fallback(get(|uri: http::Uri| async move {
            format!("user service got {uri}")
        })),
    )
}

fn files() -> RouteService {
    RouteService::new(axum::Router::new().route("/{*name}", get(|| async { "a file" })))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let user_route = RouteSpec {
        methods: vec![Method::GET],
        ..RouteSpec::new(
            "users",
            "user_service",
            PathMatcher::Pattern("^/api/v1/users(/.*)?$".into()),
        )
    };
    let file_route = RouteSpec::new(
        "files",
        "file_service",
        PathMatcher::Prefix {
            path: "/files".into(),
            strip_prefix: true,
        },
    );
    let table =
        RouteTable::new(vec![(user_route, users()), (file_route.clone(), files())]).unwrap();
    let router = Router::new(Arc::new(ArcSwap::from_pointee(table)));

    let send = |method: Method, path: &'static str| {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            println!(
                "{method} {path:<24} -> {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    };
    send(Method::GET, "/api/v1/users/42").await;
    send(Method::GET, "/files/report.pdf").await;
    send(Method::DELETE, "/api/v1/users/42").await; // 405 with Allow: GET
    send(Method::GET, "/nowhere").await; // 404

    // Swap the table: requests in flight finish on the old one.
    let only_files = RouteTable::new(vec![(file_route, files())]).unwrap();
    router.table().store(Arc::new(only_files));
    println!("after the swap:");
    send(Method::GET, "/api/v1/users/42").await;
}
