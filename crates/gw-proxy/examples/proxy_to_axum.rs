//! A gw-proxy [`Proxy`] as the fallback service of a plain axum `Router`: `/local` is
//! answered by the router itself, every other path is forwarded to a tiny axum upstream
//! started on an ephemeral port.
//!
//! Run with `cargo run -p gw-proxy --example proxy_to_axum`.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use gw_proxy::UpstreamProtocol;
use gw_proxy::{ClientOptions, Clients, Instance, LoadBalancer, Proxy, ProxyConfig, Upstream};
use http::Request;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The upstream: one axum app on 127.0.0.1, port chosen by the OS.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let upstream_app = Router::new().route("/hello", get(|| async { "hello from upstream" }));
    tokio::spawn(async move { axum::serve(listener, upstream_app).await });

    // The proxy: one service with that single instance.
    let upstream = Upstream::new(
        "hello_service",
        LoadBalancer::RoundRobin,
        UpstreamProtocol::Http1,
        vec![Instance {
            id: "hello-1".into(),
            host: addr.ip().to_string(),
            port: addr.port(),
            weight: 100,
            metadata: Default::default(),
        }],
    );
    let clients = Clients::new(ClientOptions::default());
    let proxy = Proxy::new(upstream, clients, Arc::new(ProxyConfig::default()));

    // The front app: a local route, everything else proxied.
    let app = Router::new()
        .route("/local", get(|| async { "hello from the front router" }))
        .fallback_service(proxy);

    for path in ["/local", "/hello"] {
        let req = Request::get(path)
            .header(http::header::HOST, "example.local")
            .body(Body::empty())?;
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        println!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
