//! gw-alloc as the global allocator of a plain axum app: one `#[global_allocator]` line, and
//! every allocation of the app (hyper's buffers, boxed futures, bodies) goes to mimalloc.
//!
//! `cargo run -p gw-alloc --example axum_mimalloc`

use axum::routing::get;
use axum::Router;
use http::Request;
use tower::ServiceExt;

#[global_allocator]
static GLOBAL: gw_alloc::MiMalloc = gw_alloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Router::new().route(
        "/sum/{n}",
        get(
            |axum::extract::Path(n): axum::extract::Path<u64>| async move {
                // A heap-allocated Vec, from mimalloc.
                let v: Vec<u64> = (0..n).collect();
                v.iter().sum::<u64>().to_string()
            },
        ),
    );
    let req = Request::get("/sum/1000")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
    println!("GET /sum/1000 -> {}", String::from_utf8_lossy(&body));
}
